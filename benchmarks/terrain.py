"""A third-party EDM consistency model as a Denoiser: search for terrain of a given steepness.

    python benchmarks/terrain.py                 # everything (about an hour on 2 busy CPU cores)
    python benchmarks/terrain.py --tables        # the tables of docs/terrain.md and README.md from the JSON

Setting: the terrain model of ``adaptive-terrain-diffusion`` (tts_fast.terrain.terrain_model:
its EDM UNet through tts_fast.models.EDMDenoiser, prompt rows = difficulties 0.25, 0.5, 0.75), the
differentiable verifier SlopeTarget(0.03): reward -(log mean slope - log 0.03)^2 on the heights in
metres (a mean slope of 0.03 m per cell is steep for these difficulties: plain samples have about
0.01-0.02). Measured on the returned terrain, besides the reward: the mean slope itself and the
lag-1 autocorrelation of the heights, which no search sees (the model's own terrains: about 0.998;
white noise: 0), so a search that buys slope by roughening the surface shows up there. Each seed is
one search call per method; cells are mean +- standard error over seeds; every method gets the
same model-NFE budget per row (N x steps).

Parts (``--only``):
- levels: why the default schedule spans sigma 40..80 -- the model's one-step samples re-noised to
  sigma and denoised again, their autocorrelation and slope per sigma;
- agreement: the onnx2torch module against onnxruntime (max |difference|) at three sigmas;
- main: every method family at N (default 4) and ``--steps`` (default 4) levels, and plain sampling
  (search over paths is left out: at 4 levels its branching costs more than N x steps; the CI smoke
  test runs it);
- the picture of the returned terrains of seed 0 (benchmarks/results/terrain_samples.png).
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import terrain_tables
from _common import RESULTS, ROOT, atomic_write_json, environment, save_figure, summarise, write_tables
from tts_fast import _threads as threads  # noqa: E402
from tts_fast._arg_types import positive_int  # noqa: E402
from tts_fast._user_errors import command  # noqa: E402

from tts_fast.terrain import SlopeTarget, lag1_autocorrelation, mean_slope, terrain_model, to_metres
from tts_fast.terrain import onnx_model
from tts_fast.terrain.heights import height_std
from tts_fast.terrain.model import SEARCH_SIGMA_RANGE
from tts_fast.zoo.experiment import SPECS, Spec, search_spec

DEFAULT_OUT = str(RESULTS / "terrain.json")
DOC = ROOT / "docs" / "terrain.md"
PNG = RESULTS / "terrain_samples.png"
DIFFICULTIES = (0.25, 0.5, 0.75)
TARGET = 0.03
# x0-space ascent only (no gradient through the 10M-parameter UNet): J = 4 steps of mu on the
# verifier's gradient, relative scale (unit RMS per pixel), so mu is a step in model units.
LOCAL_X0 = dict(rho=0.0, mu=0.02, sigma=0.0, iter_steps=4, step_scale="relative", local_steps=1)
MAIN = [
    ("baseline", SPECS["baseline"]), ("bon", SPECS["bon"]), ("zero_order", SPECS["zero_order"]),
    ("bfs_best", SPECS["bfs_best"]), ("fk", SPECS["fk"]), ("svdd", SPECS["svdd"]), ("das", SPECS["das"]), ("dfs", SPECS["dfs"]),
    ("local_x0", Spec("local search (x0-space ascent)", "local", options=dict(LOCAL_X0))),
    ("bfs_local_x0", Spec("BFS-best + local (x0-space ascent)", "bfs_best", options=dict(LOCAL_X0))),
    ("local", Spec("local search (the paper's rho, mu)", "local", particles=lambda n: max(1, n // 2),
                   options=dict(SPECS["local"].options), min_n=2)),
]
METRICS = ("reward", "slope", "autocorrelation", "height_std", "nfe_per_row", "nfe_grad_per_row", "seconds")


def measure(samples: torch.Tensor, rewards: torch.Tensor) -> dict:
    """Reward, mean slope, lag-1 autocorrelation and height std (each averaged over rows) of terrain samples."""
    h = to_metres(samples.float())
    return {"reward": float(rewards.double().mean()), "slope": float(mean_slope(h).double().mean()),
            "autocorrelation": float(lag1_autocorrelation(h).double().mean()), "height_std": float(height_std(h).double().mean())}


def levels(log) -> list:
    """One-step samples re-noised to sigma and denoised: autocorrelation and slope per sigma (8 samples)."""
    g = torch.Generator().manual_seed(0)
    d = torch.linspace(0.1, 0.9, 8)
    x0 = onnx_model.run_ort(torch.randn(8, 1, 128, 128, generator=g) * 80.0, torch.full((8,), 80.0), d)
    rows = []
    for sigma in (80.0, 40.0, 20.0, 10.0, 5.0, 1.0, 0.1):
        y = onnx_model.run_ort(x0 + sigma * torch.randn(x0.shape, generator=g), torch.full((8,), sigma), d)
        h = to_metres(y)
        ac, sl = lag1_autocorrelation(h).double(), mean_slope(h).double()
        rows.append({"sigma": sigma, "autocorrelation": float(ac.mean()), "autocorrelation_se": float(ac.std() / 8**0.5),
                     "slope": float(sl.mean()), "slope_se": float(sl.std() / 8**0.5)})
        log(f"  sigma {sigma:5.1f}: autocorrelation {rows[-1]['autocorrelation']:.4f} slope {rows[-1]['slope']:.4f}")
    h0 = to_metres(x0)
    rows.insert(0, {"sigma": None, "autocorrelation": float(lag1_autocorrelation(h0).mean()), "autocorrelation_se": float(lag1_autocorrelation(h0).double().std() / 8**0.5),
                    "slope": float(mean_slope(h0).mean()), "slope_se": float(mean_slope(h0).double().std() / 8**0.5)})
    return rows


def agreement(log) -> list:
    """max |torch - onnxruntime| of the model at three sigmas (2 samples each)."""
    g = torch.Generator().manual_seed(1)
    net = onnx_model.torch_module()
    out = []
    for sigma in (80.0, 5.0, 0.05):
        x = torch.randn(2, 1, 128, 128, generator=g) * sigma
        s, d = torch.full((2,), sigma), torch.tensor([0.2, 0.8])
        with torch.no_grad():
            diff = float((net(x, s, d) - onnx_model.run_ort(x, s, d)).abs().max())
        out.append({"sigma": sigma, "max_abs_diff": diff})
        log(f"  sigma {sigma}: max |torch - onnxruntime| = {diff:.2e}")
    return out


def picture(rows: list, path) -> None:
    """Returned terrains (seed 0): one row per method, one column per difficulty, heights in metres."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), len(DIFFICULTIES), figsize=(1.25 * len(DIFFICULTIES) + 2.2, 1.2 * len(rows) + 0.3))
    for i, (label, x) in enumerate(rows):
        h = to_metres(x.float())
        for j in range(len(DIFFICULTIES)):
            ax = axes[i, j]
            ax.imshow(h[j].numpy(), cmap="terrain")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"difficulty {DIFFICULTIES[j]}", fontsize=7)
            if j == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
    fig.subplots_adjust(left=0.42, right=0.99, top=0.96, bottom=0.01, hspace=0.08, wspace=0.05)
    save_figure(fig, path, dpi=100)
    plt.close(fig)


@command("python benchmarks/terrain.py")
def main(argv=None) -> int:
    """The command line (see the module docstring); returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=positive_int, default=5)
    p.add_argument("--steps", type=positive_int, default=4, help="sampling steps (levels between sigma 80 and 40)")
    p.add_argument("--n", type=positive_int, default=4, help="budget in trajectories per row")
    threads.add_argument(p)
    p.add_argument("--only", nargs="+", choices=("levels", "agreement", "main"), default=["levels", "agreement", "main"])
    p.add_argument("--methods", nargs="+", default=[k for k, _ in MAIN], help="rows of the main table")
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--tables", action="store_true", help="only rewrite the tables of docs/terrain.md and README.md from --out")
    args = p.parse_args(argv)
    if args.tables:
        return write_tables(args.out, DOC, "terrain", terrain_tables.available)
    unknown = sorted(set(args.methods) - {k for k, _ in MAIN})
    if unknown:
        p.error(f"unknown method(s) {unknown}; allowed: {', '.join(k for k, _ in MAIN)}")
    n_threads = threads.apply(args.threads)
    t0 = time.perf_counter()
    log = lambda s: print(s, flush=True)  # noqa: E731
    result = {"meta": {"environment": environment("cpu"), "threads": n_threads,
                       "settings": {"difficulties": list(DIFFICULTIES), "target_slope": TARGET, "num_steps": args.steps, "n": args.n,
                                    "seeds": list(range(args.seeds)), "sigma_range": list(SEARCH_SIGMA_RANGE),
                                    "local_x0": LOCAL_X0, "local": SPECS["local"].options},
                       "command": "python benchmarks/terrain.py " + " ".join(argv if argv is not None else sys.argv[1:])},
              "runs": {}, "tables": {}}
    if "levels" in args.only:
        log("levels")
        result["tables"]["levels"] = levels(log)
    if "agreement" in args.only:
        log("agreement")
        result["tables"]["agreement"] = agreement(log)
    if "main" in args.only:
        log(f"main: N = {args.n}, {args.steps} steps")
        model = terrain_model(DIFFICULTIES)
        verifier = SlopeTarget(TARGET)
        rows, pics = [], []
        for key, spec in MAIN:
            if key not in args.methods:
                continue
            runs = []
            for seed in range(args.seeds):
                res, seconds, budget = search_spec(model, spec, verifier, None, rows=len(DIFFICULTIES), n=args.n, num_steps=args.steps, seed=seed)
                rec = dict(measure(res.samples, res.rewards), seed=seed, seconds=seconds, budget_per_row=budget,
                           nfe_per_row=res.nfe.model / len(DIFFICULTIES), nfe_grad_per_row=res.nfe.model_grad / len(DIFFICULTIES))
                runs.append(rec)
                log(f"  {spec.label:40s} seed={seed} NFE={rec['nfe_per_row']:.0f} reward={rec['reward']:.3f} slope={rec['slope']:.4f} "
                    f"ac={rec['autocorrelation']:.4f} ({seconds:.0f}s)")
                if seed == 0:
                    pics.append((spec.label, res.samples.detach().cpu()))
            result["runs"][key] = runs
            rows.append({"key": key, "label": spec.label, **summarise(runs, METRICS)})
        result["tables"]["main"] = rows
        picture(pics, PNG)
    result["meta"]["seconds"] = time.perf_counter() - t0
    atomic_write_json(args.out, result)
    log(f"wrote {args.out} ({result['meta']['seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
