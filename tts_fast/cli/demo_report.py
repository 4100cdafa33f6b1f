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


def plot_grid(plt, runs, methods, n_max, path) -> None:
    """samples.png: the chosen sample of every method (rows) and target (columns) at the largest budget."""
    from ..zoo.experiment import SPECS

    picked = []
    for key in methods:
        group = [r for r in runs if r["method"] == key and (r["n"] == n_max or SPECS[key].fixed_nfe)]
        if group:
            picked.append((key, group[0]))
    ncols = max(r["samples"].shape[0] for _, r in picked)
    fig, axes = plt.subplots(len(picked), ncols, figsize=(0.55 * ncols + 1.8, 0.62 * len(picked) + 0.4), squeeze=False)
    for i, (key, r) in enumerate(picked):
        for j in range(ncols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if j < r["samples"].shape[0]:
                ax.imshow(r["samples"][j, 0].numpy(), cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
                if i == 0:
                    ax.set_title(str(int(r["targets"][j])), fontsize=8)
        axes[i][0].set_ylabel(SPECS[key].label + (f"\nN={r['n']}" if not SPECS[key].fixed_nfe else ""), rotation=0, ha="right",
                              va="center", fontsize=7)
    fig.suptitle(f"chosen samples (column title = target digit), budget N = {n_max}", fontsize=9)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


def plot_curves(plt, rows, path, steps: int) -> None:
    """accuracy_vs_nfe.png: evaluator and verifier accuracy against model NFE per method."""
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.4), sharey=True)
    markers = "osD^v<>ph*XP"
    styles = ["-", "--", "-.", ":"]
    for ax, metric, title in ((axes[0], "evaluator_acc", "held-out evaluator accuracy"), (axes[1], "verifier_acc", "verifier accuracy (what search sees)")):
        for k, key in enumerate(dict.fromkeys(r["method"] for r in rows)):
            rs = [r for r in rows if r["method"] == key]
            x = [r["nfe_per_row"] for r in rs]
            y = [r[metric] for r in rs]
            e = [r[metric + "_se"] for r in rs]
            ax.errorbar(x, y, yerr=e, marker=markers[k % len(markers)], ms=5, capsize=2, label=rs[0]["label"],
                        linestyle=styles[k % len(styles)] if len(rs) > 1 else "none", alpha=0.85)
        ax.set_xscale("log", base=2)
        ax.set_xlabel(f"model NFE per sample ({steps} steps per trajectory)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction classified as the target digit")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)
