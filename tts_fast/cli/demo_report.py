"""What ``tts-fast demo`` reports: the table of methods x budgets, the per-digit table and two figures.

Rows come from :func:`tts_fast.zoo.experiment.run` (one per method, budget and seed); the tables
are plain text, the figures PNGs written atomically.
"""

from __future__ import annotations

from .._io import atomic_path


def save_png(fig, path, dpi: int = 110) -> None:
    """A matplotlib figure -> PNG at ``path``, atomically (an interrupt never leaves half a file)."""
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)


_METRICS = ("nfe_per_row", "nfe_grad_per_row", "verifier_reward", "verifier_acc", "evaluator_acc", "gap", "seconds")


def aggregate(runs, methods) -> list[dict]:
    """Rows of the summary table: per method and budget, the mean and standard error of each metric over seeds."""
    from ..zoo.experiment import SPECS, mean_se

    rows = []
    for key in methods:
        for n in sorted({r["n"] for r in runs if r["method"] == key}):
            group = [r for r in runs if r["method"] == key and r["n"] == n]
            row = {"method": key, "label": SPECS[key].label, "n": n, "seeds": len(group)}
            for m in _METRICS:
                row[m], row[m + "_se"] = mean_se([g[m] for g in group])
            rows.append(row)
    return rows


def _fmt(v, se, multi, digits=2):
    s = f"{v:.{digits}f}"
    return s + (f" ±{se:.{digits}f}" if multi else "")


def _text_table(cols: list, lines: list, *, rule: bool) -> str:
    """Columns padded to their widest cell: the first left-aligned, the others right-aligned; ``rule``: a dashed line under the header."""
    widths = [max(len(c), *(len(l[i]) for l in lines)) for i, c in enumerate(cols)]

    def fmt(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([fmt(cols)] + ([fmt(["-" * w for w in widths])] if rule else []) + [fmt(l) for l in lines])


def format_table(rows, multi_seed: bool) -> str:
    """The summary table (NFE, grad NFE, verifier reward and accuracy, evaluator accuracy, seconds) as text."""
    cols = ["method", "NFE", "grad NFE", "verifier reward", "verifier acc", "evaluator acc", "seconds"]
    lines = []
    for r in rows:
        lines.append([
            r["label"], f"{r['nfe_per_row']:.0f}", f"{r['nfe_grad_per_row']:.0f}",
            _fmt(r["verifier_reward"], r["verifier_reward_se"], multi_seed), _fmt(r["verifier_acc"], r["verifier_acc_se"], multi_seed),
            _fmt(r["evaluator_acc"], r["evaluator_acc_se"], multi_seed), f"{r['seconds']:.2f}",
        ])
    return _text_table(cols, lines, rule=True)


def format_per_digit(runs, methods, digits, n_max) -> str:
    """The held-out evaluator's accuracy per target digit at the largest budget, as text."""
    from ..zoo.experiment import SPECS

    cols = ["method"] + [str(d) for d in digits]
    lines = []
    for key in methods:
        group = [r for r in runs if r["method"] == key and (r["n"] == n_max or SPECS[key].fixed_nfe)]
        if not group:
            continue
        cells = [SPECS[key].label]
        for d in digits:
            vals = [g["per_digit_evaluator_acc"][d] for g in group]
            cells.append(f"{sum(vals) / len(vals):.2f}")
        lines.append(cells)
    return _text_table(cols, lines, rule=False)


def _mosaic(tiles, pad: int = 2):
    """Images [rows][cols] of [h, w] arrays (None: blank) -> one [H, W] array, ``pad`` blank pixels between
    tiles (NaN, drawn as the background), and the centre of every row and column (for the labels)."""
    import numpy as np

    rows, cols = len(tiles), max(len(r) for r in tiles)
    h, w = next(t.shape for r in tiles for t in r if t is not None)
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), np.nan)
    for i, r in enumerate(tiles):
        for j, t in enumerate(r):
            if t is not None:
                out[i * (h + pad):i * (h + pad) + h, j * (w + pad):j * (w + pad) + w] = t
    return out, [i * (h + pad) + (h - 1) / 2 for i in range(rows)], [j * (w + pad) + (w - 1) / 2 for j in range(cols)]


def plot_grid(plt, runs, methods, n_max, path) -> None:
    """samples.png: the chosen sample of every method (rows) and target (columns) at the largest budget.

    One image with labelled rows and columns (one axes: a figure of 100 small axes took seconds to draw).
    """
    import matplotlib

    from ..zoo.experiment import SPECS

    picked = []
    for key in methods:
        group = [r for r in runs if r["method"] == key and (r["n"] == n_max or SPECS[key].fixed_nfe)]
        if group:
            picked.append((key, group[0]))
    tiles = [[r["samples"][j, 0].numpy() for j in range(r["samples"].shape[0])] for _, r in picked]
    image, ys, xs = _mosaic(tiles)
    ncols = len(xs)
    fig, ax = plt.subplots(figsize=(max(4.6, 0.55 * ncols + 2.2), 0.62 * len(picked) + 0.6))
    cmap = matplotlib.colormaps["gray_r"].with_extremes(bad="white")  # the gaps between tiles
    ax.imshow(image, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xticks(xs, [str(int(t)) for t in picked[0][1]["targets"][:ncols]], fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks(ys, [SPECS[key].label + (f"\nN={r['n']}" if not SPECS[key].fixed_nfe else "") for key, r in picked], fontsize=7)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    fig.suptitle(f"chosen samples (column title = target digit), budget N = {n_max}", fontsize=9)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


def plot_curves(plt, rows, path, steps: int) -> None:
    """accuracy_vs_nfe.png: evaluator and verifier accuracy against model NFE per method.

    The x ticks are the budgets that ran. Methods often tie (several at accuracy 1.0): each method's
    points are shifted sideways by a few percent of the NFE, and marker, line style and colour all
    differ, so that every line stays visible.
    """
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.6), sharey=True)
    markers = "osD^v<>ph*XP"
    styles = ["-", "--", "-.", ":"]
    keys = list(dict.fromkeys(r["method"] for r in rows))
    budgets = sorted({int(r["n"] * steps) for r in rows})
    spread = 0.035  # sideways shift between neighbouring methods, as a fraction of the NFE (log axis)
    for ax, metric, title in ((axes[0], "evaluator_acc", "held-out evaluator accuracy"), (axes[1], "verifier_acc", "verifier accuracy (what search sees)")):
        for k, key in enumerate(keys):
            rs = [r for r in rows if r["method"] == key]
            shift = 1.0 if len(rs) == 1 else (1 + spread) ** (k - (len(keys) - 1) / 2)  # a lone point (plain sampling) ties with none
            x = [r["nfe_per_row"] * shift for r in rs]
            y = [r[metric] for r in rs]
            e = [r[metric + "_se"] for r in rs]
            ax.errorbar(x, y, yerr=e, marker=markers[k % len(markers)], ms=6, mfc="none" if k % 2 else None, mew=1.3, capsize=2,
                        label=rs[0]["label"], linestyle=styles[k % len(styles)] if len(rs) > 1 else "none", alpha=0.9)
        ax.set_xscale("log")
        ax.set_xticks(budgets, [str(b) for b in budgets])
        ax.minorticks_off()
        ax.set_xlim(budgets[0] / 1.4, budgets[-1] * 1.4)
        ax.set_ylim(-0.05, 1.08)
        ax.set_xlabel(f"model NFE per sample ({steps} steps per trajectory)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction classified as the target digit")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.text(0.01, 0.01, "x ticks: the budgets that ran; each method's points are shifted sideways a little so that tied "
             "methods stay visible (hollow and filled markers alternate)", fontsize=7, color="0.35")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    save_png(fig, path)
    plt.close(fig)
