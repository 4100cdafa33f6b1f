"""The full search ablation on the analytic Gaussian-mixture model (CPU, seeded).

Problem "rare mode": p0 = 0.95 N((-2, 0), 0.5^2) + 0.05 N((2, 0), 0.5^2), verifier
log f(x) = -|x - (2, 0)|^2 / 2 (it prefers the rare mode). 256 prompt rows (independent replicas)
x 3 seeds, 50 steps. For every method and particle count we record model NFE per prompt, the
mean reward of the returned samples (standard error across seeds x rows), the rate at which the
returned sample lies in the rare mode, and the sliced 2-Wasserstein distance between the returned
samples and the exact tilted target p0 f (lam = 1). Nothing here is tuned toward a ranking.

Problem "tilted target": overlapping modes, where exact answers are known: the weighted BFS
population (difference scoring) against p0 f as N grows, and local search (both moves) as the
number of MCMC rounds grows.

    python benchmarks/search_ablation.py [--quick]
    python benchmarks/search_ablation.py --tables    # the tables in README.md from the JSON

writes benchmarks/results/search_ablation.json; ``--tables`` rewrites README's search tables from it.
"""

from __future__ import annotations

import argparse
import sys
import itertools
import json
import math
import time

import torch

from _common import README, RESULTS, atomic_write_json, environment, markdown_table, mean_se, refresh_tables
from tts_fast._user_errors import command  # noqa: E402

import tts_fast as tts

STEPS = 50
ROWS = 256


def rare_mode():
    model = tts.models.GaussianMixture([[-2.0, 0.0], [2.0, 0.0]], [0.5, 0.5], [0.95, 0.05])
    verifier = tts.verifiers.GaussianReward([2.0, 0.0], 1.0)
    return model, verifier, model.tilted([2.0, 0.0], 1.0, 1.0)


def sliced_w2(x: torch.Tensor, y: torch.Tensor, n_dirs: int = 64, seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance between two samples (quantile matching per direction)."""
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(n_dirs, x.shape[1], generator=g, dtype=x.dtype)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    q = torch.linspace(0.005, 0.995, 199, dtype=x.dtype)
    px, py = x @ dirs.T, y @ dirs.T
    d = torch.quantile(px, q, dim=0) - torch.quantile(py, q, dim=0)
    return float(d.pow(2).mean().sqrt())


def configs(n: int):
    """(label, family, method, options, particles) at a per-prompt budget of about n * STEPS NFE."""
    half, quarter = max(1, n // 2), max(1, n // 4)
    out = [("best-of-N", "noise", "bon", {}, n)]
    for t, s, r in itertools.product(["constant", "increase", "inf"], ["current", "difference", "max"], tts.ops.SCHEMES):
        out.append((f"bfs {t}/{s}/{r}", "bfs", "bfs", dict(temperature=t, scoring=s, resampling=r), n))
    for t, s in itertools.product(["constant", "increase", "inf"], ["current", "difference", "max"]):
        out.append((f"bfs-prune {t}/{s}", "bfs-prune", "bfs", dict(temperature=t, scoring=s, prune=True), n))
    for p in ("svdd", "das", "fk", "bfs_best"):
        out.append((p, "preset", p, {}, n))
    out += [
        ("zero-order", "noise", "zero_order", dict(budget=n * STEPS * ROWS), quarter),
        ("search over paths", "noise", "search_over_paths", dict(width=2), quarter),
        ("dfs threshold", "dfs", "dfs", dict(threshold=-1.0, max_backtracks=None, budget=n * STEPS * ROWS), half),
        ("dfs quantile", "dfs", "dfs", dict(quantile=0.5, max_backtracks=None, budget=n * STEPS * ROWS), half),
        ("dfs calibrated", "dfs", "dfs", dict(calibrate=0.5, max_backtracks=None, budget=n * STEPS * ROWS), half),
        ("local (recurrence)", "local", "local", dict(rho=1.0, rho_schedule="langevin", local_steps=2), half),
        ("local (langevin)", "local", "local", dict(rho=1.0, rho_schedule="langevin", local_steps=2, move="langevin"), half),
        ("bfs_best + local", "joint", "bfs_best", dict(rho=1.0, rho_schedule="langevin", local_steps=2), half),
        ("dfs + local", "joint", "dfs", dict(threshold=-1.0, max_backtracks=None, budget=n * STEPS * ROWS, rho=1.0,
                                             rho_schedule="langevin", local_steps=2), quarter),
    ]
    return out


def run_rare(particle_counts, seeds, only=None):
    model, verifier, target = rare_mode()
    target_samples = target.sample(20_000, torch.Generator().manual_seed(123))
    rows = []
    for n in particle_counts:
        for label, family, method, opts, particles in configs(n):
            if only is not None and label not in only:
                continue
            rewards, hits, nfe, grad, sw, secs = [], [], [], [], [], []
            for seed in seeds:
                t0 = time.perf_counter()
                r = tts.search(model, verifier, method, n_particles=particles, num_steps=STEPS, batch_size=ROWS, seed=seed,
                               progress=False, **opts)
                secs.append(time.perf_counter() - t0)
                rewards += r.rewards.tolist()
                hits += (r.samples[:, 0] > 0).double().tolist()
                nfe.append(r.nfe.model / ROWS)
                grad.append(r.nfe.model_grad / ROWS)
                sw.append(sliced_w2(r.samples, target_samples))
            m, se = mean_se(rewards)
            h, hse = mean_se(hits)
            rows.append(dict(n=n, label=label, family=family, particles=particles, nfe_per_prompt=sum(nfe) / len(nfe),
                             grad_nfe_per_prompt=sum(grad) / len(grad), reward=m, reward_se=se, hit_rate=h, hit_se=hse,
                             sliced_w2=sum(sw) / len(sw), seconds=sum(secs) / len(secs)))
            print(f"N={n:3d} {label:32s} nfe={rows[-1]['nfe_per_prompt']:7.1f} reward={m:7.3f}±{se:.3f} hit={h:.3f} sw2={rows[-1]['sliced_w2']:.3f}", flush=True)
    return rows


def run_tilted(quick: bool):
    model = tts.models.GaussianMixture([[-1.0, 0.0], [1.0, 0.5]], [0.9, 0.9], [0.7, 0.3])
    verifier = tts.verifiers.GaussianReward([1.5, 1.0], 2.0)
    target = model.tilted([1.5, 1.0], 2.0, 1.0)
    t_mean, t_var = target.mean(), torch.diag(target.covariance())
    out = {"target_mean": t_mean.tolist(), "target_var": t_var.tolist(), "local": [], "bfs_difference": []}
    for move, r in itertools.product(["recurrence", "langevin"], [1, 4, 16] if quick else [1, 4, 16, 64]):
        res = tts.search(model, verifier, "local", n_particles=4096, num_steps=50, seed=0, progress=False, rho=1.0,
                         rho_schedule="langevin", local_steps=r, move=move)
        x = res.particles.reshape(-1, 2)
        out["local"].append(dict(move=move, rounds=r, nfe_per_sample=res.nfe.model / 4096, mean=x.mean(0).tolist(),
                                 var=x.var(0).tolist(), mean_error=float((x.mean(0) - t_mean).norm()),
                                 var_ratio=(x.var(0) / t_var).tolist()))
        print("local", out["local"][-1], flush=True)
    for n in [16, 64, 256]:
        b = 8192 // n
        res = tts.search(model, verifier, "bfs", n_particles=n, batch_size=b, num_steps=200 if quick else 1000, seed=0,
                         progress=False, scoring="difference", temperature="constant", resampling="ssp")
        w = res.log_weights.exp()
        mean = (w[..., None] * res.particles).sum(1)
        err = (mean.mean(0) - t_mean)
        se = mean.std(0) / math.sqrt(b)
        out["bfs_difference"].append(dict(n=n, rows=b, mean=mean.mean(0).tolist(), se=se.tolist(), error=err.tolist(),
                                          ess=float((1 / (w**2).sum(1)).mean())))
        print("bfs", out["bfs_difference"][-1], flush=True)
    return out


def fmt(m, se, digits=2):
    return f"{m:.{digits}f} ± {se:.{digits}f}"


def _by_label_and_n(data) -> tuple:
    rows = data["rare_mode"]
    return sorted({r["n"] for r in rows}), {(r["label"], r["n"]): r for r in rows}


def table_main(data) -> str:
    """Every method x N: reward (hit rate) [model NFE per prompt] on the rare-mode problem."""
    ns, by = _by_label_and_n(data)
    main_labels = ["best-of-N", "svdd", "das", "fk", "bfs_best", "zero-order", "search over paths", "dfs threshold",
                   "dfs quantile", "dfs calibrated", "local (recurrence)", "local (langevin)", "bfs_best + local", "dfs + local"]
    head = ["method"] + [f"N={n} reward (hit rate) [NFE]" for n in ns]
    body = []
    for lab in main_labels:
        cells = []
        for n in ns:
            r = by[(lab, n)]
            g = f"+{r['grad_nfe_per_prompt']:.0f}g" if r["grad_nfe_per_prompt"] else ""
            cells.append(f"{fmt(r['reward'], r['reward_se'])} ({r['hit_rate']:.2f}) [{r['nfe_per_prompt']:.0f}{g}]")
        body.append([lab] + cells)
    return markdown_table(head, body)


def table_ablation(data) -> str:
    """The BFS design space at the middle N: temperature x scoring x resampling scheme, and pruning."""
    ns, by = _by_label_and_n(data)
    n_mid = 8 if 8 in ns else ns[len(ns) // 2]
    abl_rows = []
    for t, s in itertools.product(["constant", "increase", "inf"], ["current", "difference", "max"]):
        cells = [fmt(by[(f"bfs {t}/{s}/{k}", n_mid)]["reward"], by[(f"bfs {t}/{s}/{k}", n_mid)]["reward_se"]) for k in tts.ops.SCHEMES]
        pr = by[(f"bfs-prune {t}/{s}", n_mid)]
        cells.append(f"{fmt(pr['reward'], pr['reward_se'])} [{pr['nfe_per_prompt']:.0f}]")
        abl_rows.append([f"{t} / {s}"] + cells)
    bon = by[("best-of-N", n_mid)]
    abl = markdown_table(["temperature / scoring"] + list(tts.ops.SCHEMES) + ["prune [NFE]"], abl_rows)
    return abl + f"\n\nN = {n_mid}, {n_mid * STEPS} model NFE per prompt (prune: what it spent). Best-of-N at the same NFE: {fmt(bon['reward'], bon['reward_se'])}."


def table_exact(data) -> str:
    """The tilted-target problem: the weighted BFS population's error as N grows, then local search's."""
    t = data["tilted_target"]
    loc = markdown_table(
        ["move", "rounds per level", "mean error", "variance / target variance"],
        [[r["move"], r["rounds"], f"{r['mean_error']:.3f}", ", ".join(f"{v:.2f}" for v in r["var_ratio"])] for r in t["local"]],
    )
    bfs = markdown_table(
        ["N", "rows", "weighted-mean error (x, y)", "standard error", "mean ESS"],
        [[r["n"], r["rows"], ", ".join(f"{v:+.3f}" for v in r["error"]), ", ".join(f"{v:.3f}" for v in r["se"]), f"{r['ess']:.1f}"]
         for r in t["bfs_difference"]],
    )
    return bfs + "\n\n" + loc


TABLES = (("main", table_main), ("ablation", table_ablation), ("exact", table_exact))  # README.md blocks search:NAME


@command("python benchmarks/search_ablation.py")
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one seed, N in {4, 8}: a smoke run")
    ap.add_argument("--tables", action="store_true", help="only rewrite the tables in README.md from --out")
    ap.add_argument("--out", default=str(RESULTS / "search_ablation.json"))
    ap.add_argument("--only", nargs="+", default=None, metavar="LABEL",
                    help="re-run only these methods of the rare-mode table and merge them into --out")
    args = ap.parse_args(argv)
    if args.tables:
        refresh_tables(README, "search", TABLES, json.load(open(args.out)))
        print("wrote the search tables of README.md")
        return
    torch.set_num_threads(max(1, torch.get_num_threads()))
    t0 = time.perf_counter()
    data = {
        "benchmark": "search_ablation",
        "environment": environment("cpu"),
        "settings": {"steps": STEPS, "rows": ROWS, "seeds": [0] if args.quick else [0, 1, 2],
                     "particles": [4, 8] if args.quick else [4, 8, 16]},
    }
    if args.only:
        old = json.load(open(args.out))
        new = run_rare(old["settings"]["particles"], old["settings"]["seeds"], only=set(args.only))
        keep = [r for r in old["rare_mode"] if r["label"] not in set(args.only)]
        data = dict(old, rare_mode=keep + new)
        data.setdefault("reruns", []).append(dict(labels=args.only, seconds=time.perf_counter() - t0, environment=environment("cpu")))
    else:
        data["rare_mode"] = run_rare(data["settings"]["particles"], data["settings"]["seeds"])
        data["tilted_target"] = run_tilted(args.quick)
        data["seconds"] = time.perf_counter() - t0
    atomic_write_json(args.out, data)
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
