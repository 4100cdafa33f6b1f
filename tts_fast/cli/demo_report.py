"""What ``tts-fast demo`` reports: the table of methods x budgets, the per-digit table and two figures.

Runs come from :func:`tts_fast.cli.demo_runs.run_job` (one per method, budget and seed, with
per-sample hits of the verifier and of the judge); every figure is a mean over samples with its
standard error. The tables are plain text, the figures PNGs written atomically.
"""

from __future__ import annotations

from .._io import atomic_path


def save_png(fig, path, dpi: int = 110) -> None:
    """A matplotlib figure -> PNG at ``path``, atomically (an interrupt never leaves half a file)."""
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)


def aggregate(runs, methods) -> list[dict]:
    """Rows of the summary table, per method and budget, pooling the samples of every seed.

    Each row has the mean and the standard error over samples (``_se``) of the verifier's reward,
    the verifier's and the judge's accuracy and their per-sample difference ``gap`` (the samples
    the verifier accepts and the judge rejects, minus the reverse); the model NFE per sample; the
    number of samples; the mean seconds per search call. Samples are independent searches (one
    prompt row each), so these standard errors are the usual ones of a mean of n values.
    """
    from ..zoo.experiment import mean_se

    rows = []
    for key in methods:
        for n in sorted({r["n"] for r in runs if r["method"] == key}):
            group = [r for r in runs if r["method"] == key and r["n"] == n]
            v = [float(h) for g in group for h in g["verifier_hit"]]
            j = [float(h) for g in group for h in g["judge_hit"]]
            row = {"method": key, "label": group[0]["label"], "n": n, "seeds": len(group), "samples": len(v)}
            for name, values in (("verifier_reward", [x for g in group for x in g["reward"]]), ("verifier_acc", v), ("judge_acc", j),
                                 ("gap", [a - b for a, b in zip(v, j)])):
                row[name], row[name + "_se"] = mean_se(values)
            for name in ("nfe_per_row", "nfe_grad_per_row", "seconds"):
                row[name] = sum(g[name] for g in group) / len(group)
            rows.append(row)
    return rows


def _pm(v: float, se: float, digits: int = 2) -> str:
    return f"{v:.{digits}f} ±{se:.{digits}f}"


def _text_table(cols: list, lines: list, *, rule: bool) -> str:
    """Columns padded to their widest cell: the first left-aligned, the others right-aligned; ``rule``: a dashed line under the header."""
    widths = [max(len(c), *(len(l[i]) for l in lines)) for i, c in enumerate(cols)]

    def fmt(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([fmt(cols)] + ([fmt(["-" * w for w in widths])] if rule else []) + [fmt(l) for l in lines])


def format_table(rows) -> str:
    """The summary table as text: NFE, grad NFE, then verifier reward, verifier and judge accuracy and
    their gap, each mean ± standard error over the samples, and the seconds per search call."""
    cols = ["method", "N", "NFE", "grad NFE", "samples", "verifier reward", "verifier acc", "judge acc", "gap (verifier - judge)", "seconds"]
    lines = []
    for r in rows:
        lines.append([
            r["label"], str(r["n"]), f"{r['nfe_per_row']:.0f}",
            f"{r['nfe_grad_per_row']:.0f}", str(r["samples"]), _pm(r["verifier_reward"], r["verifier_reward_se"]),
            _pm(r["verifier_acc"], r["verifier_acc_se"]), _pm(r["judge_acc"], r["judge_acc_se"]), _pm(r["gap"], r["gap_se"]),
            f"{r['seconds']:.2f}",
        ])
    return _text_table(cols, lines, rule=True)


def _at_largest(runs, key, n_max, fixed_nfe: bool) -> list:
    return [r for r in runs if r["method"] == key and (r["n"] == n_max or fixed_nfe)]


def format_per_digit(runs, methods, digits, n_max) -> str:
    """The judge's hits per target digit at the largest budget ('hits/samples', all seeds), as text."""
    from ..zoo.experiment import SPECS

    cols = ["method"] + [str(d) for d in digits]
    lines = []
    for key in methods:
        group = _at_largest(runs, key, n_max, SPECS[key].fixed_nfe)
        if not group:
            continue
        cells = [group[0]["label"]]
        for d in digits:
            hits = [h for g in group for h, t in zip(g["judge_hit"], g["targets"].tolist()) if t == d]
            cells.append(f"{sum(hits)}/{len(hits)}")
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


def frame_of(verifier_hit: bool, judge_hit: bool):
    """How samples.png frames a sample: None (the judge sees its target), 'hacked' (only the verifier does), 'missed' (neither)."""
    if judge_hit:
        return None
    return "hacked" if verifier_hit else "missed"


def picked_samples(runs, methods, n_max) -> list:
    """What samples.png shows: per method with a run at the largest budget (or a fixed-NFE method),
    (key, the first seed's run, the index of the first sample of each target digit, their frames)."""
    from ..zoo.experiment import SPECS

    picked = []
    for key in methods:
        group = _at_largest(runs, key, n_max, SPECS[key].fixed_nfe)
        if not group:
            continue
        r = min(group, key=lambda g: g["seed"])
        targets = r["targets"].tolist()
        first = [targets.index(d) for d in dict.fromkeys(targets)]
        picked.append((key, r, first, [frame_of(r["verifier_hit"][i], r["judge_hit"][i]) for i in first]))
    return picked


def plot_grid(plt, runs, methods, n_max, path, judge_name: str) -> None:
    """samples.png: a returned sample per method (rows) and target digit (columns) at the largest budget.

    The first seed's first sample of each digit. A red frame marks a sample the verifier classifies
    as its target and the judge does not (the search fooled its verifier: reward hacking); a grey
    dashed frame, one that neither classifies as its target (the search did not get there).
    One image with labelled rows and columns (one axes: a figure of 100 small axes took seconds to draw).
    """
    import matplotlib
    from matplotlib.patches import Rectangle

    from ..zoo.experiment import SPECS

    picked = picked_samples(runs, methods, n_max)
    tiles = [[r["samples"][i, 0].numpy() for i in first] for _, r, first, _ in picked]
    image, ys, xs = _mosaic(tiles)
    h, w = tiles[0][0].shape
    ncols = len(xs)
    fig, ax = plt.subplots(figsize=(max(4.6, 0.55 * ncols + 2.2), 0.62 * len(picked) + 0.9))
    cmap = matplotlib.colormaps["gray_r"].with_extremes(bad="white")  # the gaps between tiles
    ax.imshow(image, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    marks = [m for _, _, _, m in picked]
    style = {"hacked": dict(edgecolor="red", linewidth=1.6), "missed": dict(edgecolor="0.55", linewidth=1.0, linestyle="--")}
    for y, row in zip(ys, marks):
        for x, mark in zip(xs, row):
            if mark is not None:
                ax.add_patch(Rectangle((x - w / 2, y - h / 2), w, h, fill=False, **style[mark]))
    ax.set_xticks(xs, [str(picked[0][1]["targets"][i].item()) for i in picked[0][2]], fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks(ys, [SPECS[key].label + (f"\nN={r['n']}" if not SPECS[key].fixed_nfe else "") for key, r, _, _ in picked], fontsize=7)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    fig.suptitle(f"returned samples (column title = target digit), budget N = {n_max}; judge: {judge_name}\nred frame: the verifier "
                 f"sees the target, the judge does not (reward hacking); grey dashed: neither sees it", fontsize=8)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


def plot_curves(plt, rows, path, steps: int, judge_name: str) -> None:
    """accuracy_vs_nfe.png: the judge's accuracy, the verifier's, and their gap against model NFE per method.

    Error bars: one standard error over the samples. The x ticks are the budgets that ran. Methods
    often tie (several at accuracy 1.0): each method's points are shifted sideways by a few percent
    of the NFE, and marker, line style and colour all differ, so that every line stays visible.
    """
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    markers = "osD^v<>ph*XP"
    styles = ["-", "--", "-.", ":"]
    keys = list(dict.fromkeys(r["method"] for r in rows))
    budgets = sorted({int(r["n"] * steps) for r in rows})
    spread = 0.035  # sideways shift between neighbouring methods, as a fraction of the NFE (log axis)
    panels = ((axes[0], "judge_acc", f"judge accuracy: {judge_name}", (-0.05, 1.08)),
              (axes[1], "verifier_acc", "verifier accuracy (what the search sees)", (-0.05, 1.08)),
              (axes[2], "gap", "gap = verifier - judge accuracy (> 0: reward hacking)", None))
    for ax, metric, title, ylim in panels:
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
        if ylim is not None:
            ax.set_ylim(*ylim)
        else:
            ax.axhline(0.0, color="0.5", linewidth=0.8)
        ax.set_xlabel(f"model NFE per sample ({steps} steps per trajectory)")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction classified as the target digit")
    axes[2].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.text(0.01, 0.01, "error bars: ± one standard error over the samples; x ticks: the budgets that ran; each method's points "
             "are shifted sideways a little so that tied methods stay visible (hollow and filled markers alternate)", fontsize=7,
             color="0.35")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    save_png(fig, path)
    plt.close(fig)
