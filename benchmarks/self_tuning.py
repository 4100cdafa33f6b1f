"""Search that tunes itself, measured: the auto settings against the papers' tuned ones.

    python benchmarks/self_tuning.py                  # everything (about 20-30 min on 2 CPU cores)
    python benchmarks/self_tuning.py --parts units target   # the Gaussian-mixture parts only (~3 min)
    python benchmarks/self_tuning.py --tables         # docs/self_tuning.md + README tables from the JSON

Parts (every cell: mean +- standard error; the errors' sources are given per part):
- ``units`` (Gaussian mixture, the rare-mode problem of search_ablation.py): the returned rewards,
  in the reward's original units, of bfs_best (lam = 1) and FK (lam = 10) against bfs_auto when the
  verifier is multiplied by 0.01, 1 and 100; 256 rows x 2 seeds, N = 8, 50 steps. SE over rows.
- ``target`` (Gaussian mixture, a tilt exp(6 r) that the adaptive path approaches in several
  levels): the weighted population's mean against the plain sampler's tilted mean (from 200k
  best-of-N samples), as (error / its standard error) per coordinate, for the adaptive and the
  constant temperature at N = 64, 128, 256 and three scorings; 48 rows, rows averaged plainly and
  with their evidence estimates as weights.
- ``digits`` (the zoo): at matched model NFE (8 x 50 per row), bfs_best against bfs_auto, and the
  paper's local search (absolute steps, rho 0.2, mu 0.4, sigma 0.1, J 4; 4 particles x R 2) against
  local_auto (4 particles, R 2), with the verifier's log-probability multiplied by 0.01, 1 and 100;
  held-out evaluator accuracy and the verifier's log-probability (original units); 3 seeds x 30 rows,
  SE across seeds.
- ``maze`` (PointMaze medium and large, the shipped planners, 16 steps, executed in MuJoCo): bfs_best
  against bfs_auto at N = 4, and the paper's giant-maze local search (rho 0.04, mu 0.01), our
  quarter-step retune of it for large (rho 0.01, mu 0.0025) and local_auto at R = 4 (one plan);
  success rate and wall penalty; 3 seeds x 5 tasks x 4 episodes, SE across seeds.

Writes benchmarks/results/self_tuning.json atomically (after every part).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np
import torch

from _common import RESULTS, ROOT, atomic_write_json, environment, markdown_table, mean_se, refresh_tables
from tts_fast._user_errors import command  # noqa: E402

import tts_fast as tts

OUT = RESULTS / "self_tuning.json"
DOC = ROOT / "docs" / "self_tuning.md"
SCALES = (0.01, 1.0, 100.0)
PARTS = ("units", "target", "digits", "maze")


def scaled(verifier, c):
    """The same reward in other units: c * verifier."""
    return tts.verifiers.Function(lambda x, cond: c * verifier(x, cond), differentiable=verifier.differentiable,
                                  num_prompts=verifier.num_prompts)


# -- Gaussian mixture --------------------------------------------------------------------------


def part_units(log):
    model = tts.models.GaussianMixture([[-2.0, 0.0], [2.0, 0.0]], [0.5, 0.5], [0.95, 0.05])
    verifier = tts.verifiers.GaussianReward([2.0, 0.0], 1.0)
    rows = []
    for method in ("bfs_best", "fk", "bfs_auto"):
        for c in SCALES:
            rewards, rare = [], []
            for seed in (0, 1):
                r = tts.search(model, scaled(verifier, c), method, n_particles=8, num_steps=50, batch_size=256, seed=seed, progress=False)
                rewards.append(r.rewards.double() / c)
                rare.append((r.samples[:, 0] > 0).double())
            rw, rr = torch.cat(rewards), torch.cat(rare)
            se = float(rw.std()) / math.sqrt(rw.numel())
            rows.append(dict(method=method, scale=c, reward=float(rw.mean()), reward_se=se, rare=float(rr.mean()),
                             rare_se=float(rr.std()) / math.sqrt(rr.numel())))
            log(f"units {method:9s} x{c:<6} reward {rows[-1]['reward']:.4f} +- {se:.4f} rare {rows[-1]['rare']:.3f}")
    return dict(n_particles=8, num_steps=50, rows_per_seed=256, seeds=[0, 1], runs=rows)


def part_target(log):
    model = tts.models.GaussianMixture([[-2.0, 0.0], [2.0, 1.0]], [0.6, 0.6], [0.8, 0.2])
    verifier = tts.verifiers.GaussianReward([2.0, 1.0], 2.0)
    lam, steps, b = 6.0, 20, 48
    ref = tts.search(model, verifier, "bon", n_particles=200000, num_steps=steps, seed=99, progress=False)
    e = (lam * ref.particle_rewards.reshape(-1).double()).exp()
    x = ref.particles.reshape(-1, 2).double()
    mean = (e[:, None] * x).sum(0) / e.sum()
    mean_se = ((e[:, None] * (x - mean)) ** 2).sum(0).sqrt() / e.sum()
    runs = []
    for temperature in ("adaptive", "constant"):
        for scoring in ("difference", "current", "max"):
            for n in (64, 128, 256):
                r = tts.search(model, verifier, "bfs", temperature=temperature, lam=lam, scoring=scoring, resample_at=4,
                               n_particles=n, batch_size=b, num_steps=steps, seed=5, progress=False)
                m = (r.log_weights.exp()[..., None] * r.particles.double()).sum(1)
                plain, plain_se = m.mean(0), m.std(0) / math.sqrt(b)
                z = (r.log_evidence - r.log_evidence.max()).exp()
                ew = (z[:, None] * m).sum(0) / z.sum()
                ew_se = ((z[:, None] * (m - ew)) ** 2).sum(0).sqrt() / z.sum()
                zp = ((plain - mean) / torch.hypot(plain_se, mean_se)).tolist()
                ze = ((ew - mean) / torch.hypot(ew_se, mean_se)).tolist()
                below = float((r.temperatures[:, :-1] < lam).double().mean())
                runs.append(dict(temperature=temperature, scoring=scoring, n=n, z_plain=zp, z_evidence=ze, below_lam=below,
                                 final_ess=float(tts.ops.ess(r.log_weights).mean())))
                log(f"target {temperature:8s} {scoring:10s} N={n:3d} z plain {zp[0]:+.2f} {zp[1]:+.2f} "
                    f"z evidence {ze[0]:+.2f} {ze[1]:+.2f} below lam {below:.2f}")
    # Does the error shrink with N? 2048 particles x 32 rows, plain row averages, with each level's
    # smallest ESS (the intermediate degeneracy that SMC's O(1/N) bias grows with).
    large = []
    for temperature in ("constant", "adaptive"):
        for scoring in ("current", "difference"):
            r = tts.search(model, verifier, "bfs", temperature=temperature, scoring=scoring, lam=lam, resample_at=4,
                           n_particles=2048, batch_size=32, num_steps=steps, seed=5, progress=False)
            m = (r.log_weights.exp()[..., None] * r.particles.double()).sum(1)
            se = m.std(0) / math.sqrt(32)
            large.append(dict(temperature=temperature, scoring=scoring, n=2048, rows=32, mean=m.mean(0).tolist(), se=se.tolist(),
                              z=((m.mean(0) - mean) / torch.hypot(se, mean_se)).tolist(),
                              min_ess_per_level=[float(min(row["ess"])) for row in r.trace]))
            log(f"target N=2048 {temperature:8s} {scoring:10s} z {large[-1]['z'][0]:+.2f} {large[-1]['z'][1]:+.2f} "
                f"min ESS {[round(v) for v in large[-1]['min_ess_per_level']]}")
    return dict(lam=lam, num_steps=steps, rows=b, reference_n=200000, reference_mean=mean.tolist(),
                reference_se=mean_se.tolist(), resample_at=4, runs=runs, large_n=large)


# -- digits ------------------------------------------------------------------------------------


def part_digits(log):
    from tts_fast.zoo import experiment as ex

    torch.set_num_threads(1)
    zoo = ex.Zoo()
    targets = torch.tensor([d for d in range(10) for _ in range(3)])
    paper = dict(ex.PAPER_LOCAL, local_steps=2)
    configs = [("bfs_best", "bfs_best", 8, {}), ("bfs_auto", "bfs_auto", 8, {}),
               ("local (paper)", "local", 4, paper), ("local_auto", "local_auto", 4, {})]
    runs = []
    for label, method, n, opts in configs:
        for c in SCALES:
            acc, logp, secs = [], [], []
            for seed in (0, 1, 2):
                v = zoo.verifier(targets)
                t0 = time.perf_counter()
                r = tts.search(zoo.model, scaled(v, c), method, n_particles=n, num_steps=50, batch_size=len(targets), seed=seed,
                               budget=8 * 50 * len(targets), progress=False, **opts)
                secs.append(time.perf_counter() - t0)
                m = zoo.measure(r.samples, targets)
                acc.append(float(m["evaluator_hit"].double().mean()))
                logp.append(float(m["verifier_logp"].double().mean()))
            (a, a_se), (lp, lp_se) = mean_se(acc), mean_se(logp)
            runs.append(dict(label=label, method=method, scale=c, n_particles=n, evaluator_acc=a, evaluator_acc_se=a_se,
                             verifier_logp=lp, verifier_logp_se=lp_se, nfe_per_row=r.nfe.model / len(targets),
                             seconds=sum(secs) / len(secs)))
            log(f"digits {label:14s} x{c:<6} evaluator acc {a:.3f} +- {a_se:.3f} logp {lp:.3f} NFE {runs[-1]['nfe_per_row']:.0f}")
    return dict(rows=len(targets), seeds=[0, 1, 2], num_steps=50, nfe_budget_per_row=400, runs=runs)


# -- PointMaze ---------------------------------------------------------------------------------


def part_maze(log):
    import maze as mb  # benchmarks/maze.py: its episodes, settings and search call
    from tts_fast.maze import execute as ex
    from tts_fast.maze import load_planner
    from tts_fast.maze.envs import make_env
    from tts_fast.maze.verifiers import WallPenalty, plan_stats

    torch.set_num_threads(1)
    configs = [
        dict(label="bfs_best", method="bfs_best", n=4, r=1, opts={}),
        dict(label="bfs_auto", method="bfs_auto", n=4, r=1, opts={}),
        dict(label="local (paper)", method="local", n=1, r=4, opts=dict(mb.LOCAL)),
        dict(label="local (¼ step, retuned)", method="local", n=1, r=4, opts=dict(mb.LOCAL_Q)),
        dict(label="local_auto", method="local_auto", n=1, r=4, opts={}),
    ]
    out = {}
    for name in ("medium", "large"):
        base, verifier, env = load_planner(name, device="cpu"), WallPenalty(name), make_env(name)
        per = {c["label"]: dict(success=[], penalty=[], nfe=[]) for c in configs}
        for seed in (0, 1, 2):
            eps = mb.episodes_for(seed, 4)
            plan = base.with_tasks(ex.episode_tasks(name, eps, env))
            for cfg in configs:
                res, _ = mb.run_config(plan, verifier, cfg, seed)
                xy = res.samples.detach().double()
                res_ep = ex.evaluate(name, xy.numpy(), eps, plan.stride, env)
                d = per[cfg["label"]]
                d["success"].append(float(np.mean([o["success"] for o in res_ep])))
                d["penalty"].append(float(plan_stats(name, xy)["penalty"].mean()))
                d["nfe"].append(res.nfe.model / len(eps))
                log(f"maze {name} seed {seed} {cfg['label']:24s} success {d['success'][-1]:.3f} penalty {d['penalty'][-1]:.3f}")
        env.close()
        rows = []
        for cfg in configs:
            d = per[cfg["label"]]
            (s, s_se), (p, p_se) = mean_se(d["success"]), mean_se(d["penalty"])
            rows.append(dict(label=cfg["label"], n=cfg["n"], r=cfg["r"], success=s, success_se=s_se, penalty=p, penalty_se=p_se,
                             nfe_per_plan=sum(d["nfe"]) / len(d["nfe"])))
        out[name] = rows
    return dict(seeds=[0, 1, 2], episodes_per_task=4, tasks=5, steps=mb.STEPS, mazes=out)


# -- tables ------------------------------------------------------------------------------------


def _pm(m, se, digits=3):
    return f"{m:.{digits}f} ± {se:.{digits}f}"


def table_units(res):
    by = {(r["method"], r["scale"]): r for r in res["units"]["runs"]}
    rows = []
    for method in ("bfs_best", "fk", "bfs_auto"):
        rows.append([method] + [_pm(by[method, c]["reward"], by[method, c]["reward_se"]) + f" ({by[method, c]['rare']:.2f})"
                                for c in SCALES])
    return markdown_table(["method", *[f"reward × {c:g}" for c in SCALES]], rows)


def table_target(res):
    rows = []
    for r in res["target"]["runs"]:
        rows.append([r["temperature"], r["scoring"], r["n"], f"{r['below_lam']:.2f}",
                     " / ".join(f"{v:+.1f}" for v in r["z_evidence"]), " / ".join(f"{v:+.1f}" for v in r["z_plain"]),
                     f"{r['final_ess']:.0f}"])
    main = markdown_table(["temperature", "scoring", "N", "levels below lam", "z (evidence-weighted rows) x / y",
                           "z (plain row average) x / y", "final ESS"], rows)
    big = [[r["temperature"], r["scoring"], " / ".join(f"{v:+.1f}" for v in r["z"]), ", ".join(f"{v:.0f}" for v in r["min_ess_per_level"])]
           for r in res["target"].get("large_n", [])]
    if not big:
        return main
    return main + "\n\nN = 2048, 32 rows, plain row averages:\n\n" + markdown_table(
        ["temperature", "scoring", "z x / y", "smallest ESS of a row at each level (of 2048)"], big)


def table_digits(res):
    by = {(r["label"], r["scale"]): r for r in res["digits"]["runs"]}
    labels = list(dict.fromkeys(r["label"] for r in res["digits"]["runs"]))
    rows = [[lab, f"{by[lab, 1.0]['nfe_per_row']:.0f}"] + [_pm(by[lab, c]["evaluator_acc"], by[lab, c]["evaluator_acc_se"]) for c in SCALES]
            for lab in labels]
    return markdown_table(["method", "NFE / row", *[f"held-out acc., reward × {c:g}" for c in SCALES]], rows)


def table_maze(res):
    rows = []
    for name, runs in res["maze"]["mazes"].items():
        for r in runs:
            rows.append([name, r["label"], f"{r['nfe_per_plan']:.0f}", _pm(r["success"], r["success_se"]), _pm(r["penalty"], r["penalty_se"])])
    return markdown_table(["maze", "method", "NFE / plan", "success", "wall penalty"], rows)


TABLES = {"units": table_units, "target": table_target, "digits": table_digits, "maze": table_maze}


def write_tables(res):
    """The tables of the parts ``res`` holds, into docs/self_tuning.md (and README.md's digits and maze blocks)."""
    refresh_tables(DOC, "self_tuning", [(part, fn) for part, fn in TABLES.items() if part in res], res)


@command("python benchmarks/self_tuning.py")
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    p.add_argument("--tables", action="store_true", help="only rewrite the tables from the JSON")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    if args.tables:
        write_tables(json.load(open(args.out)))
        return 0
    res = json.load(open(args.out)) if OUT.exists() and args.out == str(OUT) else {}
    fns = {"units": part_units, "target": part_target, "digits": part_digits, "maze": part_maze}
    for part in args.parts:
        t0 = time.perf_counter()
        res[part] = fns[part](lambda s: print(s, flush=True))
        res[part]["seconds"] = time.perf_counter() - t0
        res["environment"] = environment("cpu")
        atomic_write_json(args.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
