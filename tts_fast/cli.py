"""The ``tts-fast`` command (also ``python -m tts_fast``).

    tts-fast demo                      # every method on the built-in digits model, table + PNGs
    tts-fast demo --quick              # a reduced run (seconds)
    tts-fast demo --digits 3 8 --n-particles 16 --out my_demo
    tts-fast run --model sd15 --weights PATH --prompt "a red bicycle" --method bfs_best ...
    tts-fast profile --model sd15 --method bfs_best --particles 8 --device cuda --trace trace.json

Subcommands are registered in ``_COMMANDS`` (a parser builder and a handler each).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional, Sequence

from ._cli_common import CLIError, positive_int, resolve_device

DEFAULT_OUT = "tts_fast_demo"


# ----------------------------------------------------------------------------------------------
# demo


def _digit(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"unknown digit {s!r}: digits are integers 0..9") from None
    if not 0 <= v <= 9:
        raise argparse.ArgumentTypeError(f"unknown digit {v}: digits are integers 0..9")
    return v


def _build_demo(sub) -> None:
    from .zoo.experiment import DEMO_METHODS, SPECS

    p = sub.add_parser(
        "demo",
        help="compare every search method on the built-in digits model",
        description=(
            "Run plain sampling, best-of-N, BFS-best, FK, DAS, SVDD, DFS, local search and BFS + local search "
            "on the built-in digits diffusion model, for each target digit, at matched model-NFE budgets. "
            "The verifier (a CNN) selects; a held-out evaluator (an MLP that no search sees) measures. "
            "Prints a table and writes results.json, table.txt, samples.png and accuracy_vs_nfe.png."
        ),
    )
    p.add_argument("--digits", type=_digit, nargs="+", default=None, metavar="D", help="target digits (default: all ten; --quick: 0 1)")
    p.add_argument("--n-particles", type=positive_int, default=None, metavar="N",
                   help="largest budget, in trajectories per sample: N x steps model NFE (default 8; --quick 4); "
                   "the demo also runs N/2 and N/4 (>= 2)")
    p.add_argument("--steps", type=positive_int, default=None, help="denoising steps per trajectory (default 50; --quick 20)")
    p.add_argument("--per-digit", type=positive_int, default=None, help="samples (searches) per digit and seed (default 1)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="S", help="search seeds (default: 0)")
    p.add_argument("--methods", nargs="+", default=None, metavar="M",
                   help=f"methods (default: {' '.join(DEMO_METHODS)}; also: {' '.join(k for k in SPECS if k not in DEMO_METHODS)})")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default: ./{DEFAULT_OUT})")
    p.add_argument("--device", default="auto", help="'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:1', ...")
    p.add_argument("--quick", action="store_true", help="a reduced setting: digits 0 1, N = 4, 20 steps, one sample per digit")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch CPU threads (default 1: the demo runs many small kernels, for which extra threads only add overhead)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=_demo)


def _need_matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CLIError("the demo draws its figures with matplotlib: pip install 'tts_fast[demo]' (or pip install matplotlib)") from None
    return plt


def _budgets(n_max: int) -> list[int]:
    return sorted({max(2, n_max // 4), max(2, n_max // 2), max(2, n_max)})


def _demo(args) -> int:
    from .zoo import experiment as ex
    from ._io import atomic_write_json as write_json, atomic_write_text as write_text, check_writable_dir, save_figure

    quick = args.quick
    digits = list(dict.fromkeys(args.digits if args.digits is not None else ([0, 1] if quick else list(range(10)))))
    n_max = args.n_particles or (4 if quick else 8)
    steps = args.steps or (20 if quick else 50)
    per_digit = args.per_digit or 1
    methods = args.methods or list(ex.DEMO_METHODS)
    try:
        methods = ex.check_methods(methods)
    except ValueError as e:
        raise CLIError(str(e)) from None
    if n_max < 2:
        raise CLIError("--n-particles must be >= 2 (the local-search variants split the budget between particles and recurrence)")
    plt = _need_matplotlib()
    try:
        out = check_writable_dir(args.out)
    except OSError as e:
        raise CLIError(str(e)) from None
    device = resolve_device(args.device)

    import torch

    torch.set_num_threads(args.threads)
    budgets = _budgets(n_max)
    t_start = time.perf_counter()
    zoo = ex.Zoo(device)
    jobs = []
    for key in methods:
        for n in ([1] if ex.SPECS[key].fixed_nfe else budgets):
            for seed in args.seeds:
                jobs.append((key, n, seed))
    print(
        f"tts-fast demo: {len(methods)} methods x budgets {budgets} x {len(args.seeds)} seed(s); digits {digits}, "
        f"{per_digit} sample(s) per digit, {steps} steps, device {device}",
        flush=True,
    )
    bar = None
    if not args.no_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), unit="run", desc="demo")
    runs = []
    try:
        for key, n, seed in jobs:
            if bar is not None:
                bar.set_description(f"{key} N={n}")
            runs.append(ex.run(zoo, key, digits_=digits, per_digit=per_digit, n=n, num_steps=steps, seed=seed))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()

    rows = _aggregate(runs, methods)
    table = _format_table(rows, multi_seed=len(args.seeds) > 1)
    per_digit_table = _format_per_digit(runs, methods, digits, max(budgets))
    elapsed = time.perf_counter() - t_start
    header = (
        f"digits {digits}, {per_digit} sample(s) per digit per seed, seeds {args.seeds}, {steps} steps, device {device}; "
        f"NFE = model evaluations per returned sample (grad NFE: backward passes through the model)\n"
        f"verifier = CNN that selects; evaluator = held-out MLP that no search sees (its accuracy is the honest measure)\n"
        f"(dual) = local-search gradients from a third classifier ('guide'), selection by the verifier\n"
    )
    print()
    print(header)
    print(table)
    print()
    print(f"held-out evaluator accuracy per digit at N = {max(budgets)} ({max(budgets) * steps} NFE):")
    print(per_digit_table)

    _plot_grid(plt, runs, methods, max(budgets), os.path.join(out, "samples.png"), save_figure)
    _plot_curves(plt, rows, os.path.join(out, "accuracy_vs_nfe.png"), save_figure, steps)
    write_text(os.path.join(out, "table.txt"), header + "\n" + table + "\n\nper digit (evaluator accuracy):\n" + per_digit_table + "\n")
    write_json(
        os.path.join(out, "results.json"),
        {
            "settings": {"digits": digits, "per_digit": per_digit, "seeds": args.seeds, "steps": steps, "budgets": budgets,
                         "methods": methods, "device": str(device), "torch": str(torch.__version__)},
            "summary": rows,
            "runs": [{k: v for k, v in r.items() if k not in ("samples", "targets")} for r in runs],
            "seconds": elapsed,
        },
    )
    print(f"\nwrote {out}/samples.png, accuracy_vs_nfe.png, table.txt, results.json ({elapsed:.1f}s)")
    return 0


_METRICS = ("nfe_per_row", "nfe_grad_per_row", "verifier_reward", "verifier_acc", "evaluator_acc", "gap", "seconds")


def _aggregate(runs, methods) -> list[dict]:
    from .zoo.experiment import SPECS, mean_se

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


def _format_table(rows, multi_seed: bool) -> str:
    cols = ["method", "NFE", "grad NFE", "verifier reward", "verifier acc", "evaluator acc", "seconds"]
    lines = []
    for r in rows:
        lines.append([
            r["label"], f"{r['nfe_per_row']:.0f}", f"{r['nfe_grad_per_row']:.0f}",
            _fmt(r["verifier_reward"], r["verifier_reward_se"], multi_seed), _fmt(r["verifier_acc"], r["verifier_acc_se"], multi_seed),
            _fmt(r["evaluator_acc"], r["evaluator_acc_se"], multi_seed), f"{r['seconds']:.2f}",
        ])
    widths = [max(len(c), *(len(l[i]) for l in lines)) for i, c in enumerate(cols)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([fmt(cols), fmt(["-" * w for w in widths])] + [fmt(l) for l in lines])


def _format_per_digit(runs, methods, digits, n_max) -> str:
    from .zoo.experiment import SPECS

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
    widths = [max(len(c), *(len(l[i]) for l in lines)) for i, c in enumerate(cols)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([fmt(cols)] + [fmt(l) for l in lines])


def _plot_grid(plt, runs, methods, n_max, path, save_figure):
    from .zoo.experiment import SPECS

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
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def _plot_curves(plt, rows, path, save_figure, steps):
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
    save_figure(fig, path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------
# entry point

def _build_run(sub):
    from . import cli_run

    return cli_run.add_parser(sub)


def _build_profile(sub):
    from . import cli_profile

    return cli_profile.add_parser(sub)


_COMMANDS = {"demo": _build_demo, "run": _build_run, "profile": _build_profile}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tts-fast", description="tts_fast: inference-time scaling of diffusion models through classical search")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for build in _COMMANDS.values():
        build(sub)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except CLIError as e:
        parser.exit(2, f"tts-fast: error: {e}\n")
    except KeyboardInterrupt:
        print("\ninterrupted: results written so far are complete files; nothing half-written was left", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
