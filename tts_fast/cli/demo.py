"""``tts-fast demo``: the search methods on a model of real digits, judged by a classifier nobody here built.

    tts-fast demo                      # plain, best-of-N, BFS-best, SVDD, local search single and dual; all ten digits
    tts-fast demo --quick              # a reduced run (seconds)
    tts-fast demo --digits 3 8 --n-particles 16 --methods bon fk dfs local_dual --out my_demo
    tts-fast demo --model digits       # the built-in 8x8 digits model instead (no third-party judge needed)
    tts-fast demo --workers 1          # the searches in this process only (default: one per idle CPU)

A classifier trained here (the verifier) selects; the judge (ccexam's MNIST classifier, never
searched with) measures; every figure is a mean over samples with its standard error, and the gap
between the two accuracies shows where search fools its verifier. Writes results.json, table.txt,
samples.png and accuracy_vs_nfe.png into ``--out``. The stages are in :mod:`.demo_stages`.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

from .. import _threads as threads
from .._arg_types import positive_int
from .._user_errors import UserError, user_device
from . import demo_report as report
from . import demo_runs as runs_of

DEFAULT_OUT = "tts_fast_demo"


def _digit(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"unknown digit {s!r}: digits are integers 0..9") from None
    if not 0 <= v <= 9:
        raise argparse.ArgumentTypeError(f"unknown digit {v}: digits are integers 0..9")
    return v


def add_parser(sub) -> argparse.ArgumentParser:
    """Register ``demo`` on an argparse subparsers object; the handler is :func:`main`."""
    from ..zoo.experiment import DEMO_METHODS, SPECS
    from .demo_stages import STAGES

    mn, dg = STAGES["mnist"].defaults, STAGES["digits"].defaults
    p = sub.add_parser(
        "demo",
        help="compare the search methods on a model of real digits, judged by a third-party classifier",
        description=(
            "Run plain sampling, best-of-N, BFS-best, SVDD and local search with one verifier and with two (dual: gradients "
            "from a second classifier) (--methods adds FK, DAS, DFS, BFS + local search, ...) on a diffusion model of real MNIST digits, used unconditionally, for each target digit, at "
            "matched model-NFE budgets. A classifier trained here (the verifier) selects; the judge, ccexam's MNIST classifier, "
            "which nobody here trained and no search sees, measures. Every figure is a mean over samples ± its standard error; "
            "the gap between the verifier's and the judge's accuracy is what search fooled its verifier into. "
            "Prints a table and writes results.json, table.txt, samples.png and accuracy_vs_nfe.png."
        ),
    )
    p.add_argument("--model", choices=tuple(STAGES), default="mnist",
                   help="'mnist' (default): the 28x28 model of real MNIST digits, judged by ccexam's classifier; 'digits': "
                   "the built-in 8x8 model, judged by a held-out MLP trained here")
    p.add_argument("--digits", type=_digit, nargs="+", default=None, metavar="D", help="target digits (default: all ten; --quick: 0 1)")
    p.add_argument("--n-particles", type=positive_int, default=None, metavar="N",
                   help=f"largest budget, in trajectories per sample: N x steps model NFE (default {mn.n_max}; --quick {mn.quick_n_max}); "
                   "the demo also runs N/2 and N/4 (>= 2)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help=f"denoising steps per trajectory (default {mn.steps}, --quick {mn.quick_steps}; --model digits: "
                   f"{dg.steps}, --quick {dg.quick_steps})")
    p.add_argument("--per-digit", type=positive_int, default=None,
                   help=f"samples (searches) per digit and seed (default {mn.per_digit}, --quick {mn.quick_per_digit}; "
                   f"--model digits: {dg.per_digit})")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="S", help="search seeds (default: 0)")
    p.add_argument("--methods", nargs="+", default=None, metavar="M",
                   help=f"methods (default: {' '.join(DEMO_METHODS)}; also: {' '.join(k for k in SPECS if k not in DEMO_METHODS)})")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default: ./{DEFAULT_OUT})")
    p.add_argument("--device", default="auto", help="'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:1', ...")
    p.add_argument("--quick", action="store_true", help=f"a reduced setting: digits 0 1, N = {mn.quick_n_max}, {mn.quick_steps} steps, {mn.quick_per_digit} samples per digit "
                   f"(--model digits: {dg.quick_steps} steps, {dg.quick_per_digit})")
    threads.add_argument(p)
    p.add_argument("--workers", type=positive_int, default=None, metavar="W",
                   help="processes that run the searches side by side, each with --threads threads (default: as many as the "
                   "load average leaves CPUs idle, 1 on CUDA); the results do not depend on it")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=main)
    return p


@dataclass(frozen=True)
class DemoSettings:
    """The demo's settings after --quick and the defaults: model, digits, budgets (N per sample), steps, ..."""

    model: str
    digits: list
    budgets: list
    steps: int
    per_digit: int
    methods: list
    seeds: list


def budgets(n_max: int) -> list[int]:
    """The three budgets of the demo: N/4, N/2 and N particles (at least 2 each, no repeats)."""
    return sorted({max(2, n_max // 4), max(2, n_max // 2), max(2, n_max)})


def settings_of(args) -> DemoSettings:
    """The demo's settings from its flags (checked: a UserError naming the flag)."""
    from ..zoo import experiment as ex
    from .demo_stages import STAGES

    quick = args.quick
    d = STAGES[args.model].defaults
    digits = list(dict.fromkeys(args.digits if args.digits is not None else ([0, 1] if quick else list(range(10)))))
    n_max = args.n_particles or (d.quick_n_max if quick else d.n_max)
    try:
        methods = ex.check_methods(args.methods or list(ex.DEMO_METHODS))
    except ValueError as e:
        raise UserError(str(e)) from None
    if n_max < 2:
        raise UserError("--n-particles must be >= 2 (the local-search variants split the budget between particles and recurrence)")
    return DemoSettings(model=args.model, digits=digits, budgets=budgets(n_max), steps=args.steps or (d.quick_steps if quick else d.steps),
                        per_digit=args.per_digit or (d.quick_per_digit if quick else d.per_digit), methods=methods, seeds=list(args.seeds))


def _need_matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("the demo draws its figures with matplotlib: pip install --no-build-isolation 'tts_fast[demo]' (or pip install matplotlib)") from None
    return plt


def _run_all(s: DemoSettings, stage, device, n_threads: int, workers: int, progress: bool) -> list:
    """Every (method, budget, seed) run of the demo, in order, in ``workers`` processes (1: this one, on ``stage``)."""
    from ..zoo import experiment as ex

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(runs_of.jobs_of(s, ex.SPECS)), unit="run", desc="demo")
    try:
        return runs_of.run_all(stage, s, device=device, n_threads=n_threads, workers=workers, bar=bar)
    finally:
        if bar is not None:
            bar.close()


def _write_results(out: str, s: DemoSettings, judge_name: str, device, plt, runs: list, t_start: float) -> None:
    """Print the tables and write table.txt, results.json, samples.png and accuracy_vs_nfe.png into ``out``."""
    import torch

    from .._io import atomic_write_json, atomic_write_text

    rows = report.aggregate(runs, s.methods)
    table = report.format_table(rows)
    n_max = max(s.budgets)
    per_digit_table = report.format_per_digit(runs, s.methods, s.digits, n_max)
    elapsed = time.perf_counter() - t_start
    header = (
        f"model {s.model}; digits {s.digits}, {s.per_digit} sample(s) per digit per seed, seeds {s.seeds}, {s.steps} steps, device {device}; "
        f"NFE = model evaluations per returned sample (grad NFE: backward passes through the model)\n"
        f"verifier = the classifier trained here that the search selects with; judge = {judge_name}: its accuracy is the honest measure\n"
        f"gap = verifier acc - judge acc, per sample: > 0 where the search fooled its verifier (reward hacking)\n"
        f"± = one standard error over the samples; (dual) = local-search gradients from a second classifier ('guide'), "
        f"selection by the verifier\n"
    )
    print()
    print(header)
    print(table)
    print()
    print(f"judge's hits per digit at N = {n_max} ({n_max * s.steps} NFE):")
    print(per_digit_table)
    report.plot_grid(plt, runs, s.methods, n_max, os.path.join(out, "samples.png"), judge_name)
    report.plot_curves(plt, rows, os.path.join(out, "accuracy_vs_nfe.png"), s.steps, judge_name)
    atomic_write_text(os.path.join(out, "table.txt"), header + "\n" + table + "\n\njudge's hits per digit:\n" + per_digit_table + "\n")
    atomic_write_json(
        os.path.join(out, "results.json"),
        {
            "settings": {"model": s.model, "judge": judge_name, "digits": s.digits, "per_digit": s.per_digit, "seeds": s.seeds, "steps": s.steps, "budgets": s.budgets,
                         "methods": s.methods, "device": str(device), "torch": str(torch.__version__),
                         "threads": torch.get_num_threads()},
            "summary": rows,
            "runs": [{k: v for k, v in r.items() if k not in ("samples", "targets")} for r in runs],
            "seconds": elapsed,
        },
    )
    print(f"\nwrote {out}/samples.png, accuracy_vs_nfe.png, table.txt, results.json ({elapsed:.1f}s)")


def main(args) -> int:
    """Handler of ``tts-fast demo`` (args from the parser of :func:`add_parser`). Returns the exit status."""
    from .._io import check_writable_dir

    s = settings_of(args)
    plt = _need_matplotlib()
    try:
        out = check_writable_dir(args.out)
    except OSError as e:
        raise UserError(str(e)) from None
    device = user_device(args.device)
    n_threads = threads.apply(args.threads)
    workers = args.workers or (1 if device.type == "cuda" else max(1, threads.idle_cpus() // n_threads))
    t_start = time.perf_counter()
    stage = runs_of.load_stage(s.model, device)  # here too with workers: a missing judge is named before any search
    print(
        f"tts-fast demo ({s.model}): {len(s.methods)} methods x budgets {s.budgets} x {len(s.seeds)} seed(s); digits {s.digits}, "
        f"{s.per_digit} sample(s) per digit, {s.steps} steps, device {device}, {workers} process(es) x {n_threads} thread(s)",
        flush=True,
    )
    runs = _run_all(s, stage, device, n_threads, workers, progress=not args.no_progress)
    _write_results(out, s, stage.judge_name, device, plt, runs, t_start)
    return 0
