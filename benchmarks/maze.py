"""Long-horizon planning on the real PointMaze: success rate and wall penalty against NFE.

    python benchmarks/maze.py --maze medium --out /tmp/maze_medium.json   # one maze (about 10-15 min on one CPU core)
    python benchmarks/maze.py --maze large --overwrite                       # replace the shipped results
    python benchmarks/maze.py --tables               # docs/maze.md tables + the plot from the JSONs
    python benchmarks/maze.py --generator            # dataset generator speed (simulator steps/s) -> maze_generator.json

Setting (the classical-search paper's PointMaze experiment, §5.2 of our spec of its code, on our
planner): the shipped trajectory diffusion planner of each maze (tts_fast.maze), the paper's wall
penalty as the verifier (reward = -sum of squared wall depths of the waypoints; start and goal
fixed by inpainting), 16 sampling steps (the paper's), plans executed open loop in the MuJoCo
simulator of ogbench by the paper's tracking controller (action = clip(5 (target - obs), -1, 1));
success = the ball within 1.0 of the goal within the 1000-step limit.

Episodes: each of the maze's 5 tasks x ``--episodes`` episodes (ogbench's start/goal noise, seeded)
per seed; one search call holds all of them as prompt rows. Each seed draws new episodes and a new
search seed. Cells: mean over seeds +- standard error across the seeds.

Methods (nothing was tuned on these mazes; settings are presets, library defaults or the paper's):
- best-of-N (N plans, the least wall penalty) at N = 1 (the plain planner), 2, 4, 8, 16;
- BFS: bfs_best (increase / max / SSP at 25/50/75 % of the steps, lam = 1) at N = 2, 4, 8, 16;
- DFS: n walkers per task, checks at every step from 12 of 16 with backtracks of 12 steps (the
  paper's PointMaze structure), a budget of 4 x n x 16 model NFE per task (never exceeded; DFS
  spends what its checks ask for), at n = 1, 2, 4, 8, with thresholds calibrated on the run
  (``calibrate=0.5``: the median of all episodes' first-descent rewards at each check level; no
  reward units, nothing per maze) -- the main DFS rows;
- DFS with the absolute threshold WallPenalty.threshold() (one waypoint up to a ball radius deep:
  a tolerance in cell units, the same for every maze), the first run's DFS, kept for comparison,
  and its tolerance sensitivity;
- local search alone: one plan, R = 1, 2, 4, 8 recurrence rounds per step, the paper's giant-maze
  guidance (rho 0.04, mu 0.01, sigma 0);
- joint: BFS (N = 2, 4, 8) and DFS (n = 1, 2, 4, calibrated thresholds) with that local search at R = 2.
NFE = model NFE per task (plan); local search also runs as many backward passes through the model.
"""

from __future__ import annotations

import argparse
import sys
import glob
import json
import math
import os
import time

import numpy as np
import torch

from _common import RESULTS, ROOT, atomic_write_json, environment, markdown_table, mean_se, refresh_tables, save_figure
from tts_fast._user_errors import command  # noqa: E402

import tts_fast as tts
from tts_fast import _threads as threads
from tts_fast.maze import execute as ex
from tts_fast.maze import load_planner
from tts_fast.maze.envs import make_env, maze as get_maze
from tts_fast.maze.verifiers import WallPenalty, plan_stats

STEPS = 16
LOCAL = dict(rho=0.04, mu=0.01, sigma=0.0)
# A quarter of the paper's steps: NOT a preset. Chosen after the main run showed the paper's steps
# overshooting on large (waypoints thrown across walls), from a one-seed look at large only
# (docs/maze.md); reported as separate families so that the paper's values stay the main result.
LOCAL_Q = dict(rho=0.01, mu=0.0025, sigma=0.0)
DFS_TOL = None  # WallPenalty.threshold's default: one waypoint up to a ball radius (0.175 cells) deep
# Calibrated thresholds (tts.DFS.calibrate): retry the walkers below the median of the first descent
# at a check level, pooled over the call's episodes. Fixed before any maze run with it.
DFS_CALIBRATE = 0.5
DFS_ABS = "DFS (ball-radius threshold)"
# The paper's PointMaze DFS structure (giant: start = backtrack depth = 12 of 16 steps, a check at
# every step from there): x0-predictions before ~3/4 of the run say little about the final plan.
DFS = dict(start=12, backtrack=12, every=1)
SENSITIVITY_TOLS = (0.35, 0.5, 1.0)
DOC = ROOT / "docs" / "maze.md"
PLOT = RESULTS / "maze.png"


def configs():
    out = []
    for n in (1, 2, 4, 8, 16):
        out.append(dict(family="best-of-N", method="bon", n=n, r=1, opts={}))
    for n in (2, 4, 8, 16):
        out.append(dict(family="BFS", method="bfs_best", n=n, r=1, opts={}))
    for n in (1, 2, 4, 8):
        out.append(dict(family="DFS", method="dfs", n=n, r=1, opts=dict(DFS, calibrate=DFS_CALIBRATE), budget=4))
    for n in (1, 2, 4, 8):
        out.append(dict(family=DFS_ABS, method="dfs", n=n, r=1, opts=dict(DFS), budget=4, tol=DFS_TOL))
    for r in (1, 2, 4, 8):
        out.append(dict(family="local", method="local", n=1, r=r, opts=dict(LOCAL)))
    for n in (2, 4, 8):
        out.append(dict(family="BFS + local", method="bfs_best", n=n, r=2, opts=dict(LOCAL)))
    for n in (1, 2, 4):
        out.append(dict(family="DFS + local", method="dfs", n=n, r=2, opts=dict(LOCAL, **DFS, calibrate=DFS_CALIBRATE), budget=4))
    for r in (1, 2, 4, 8):
        out.append(dict(family="local (¼ step)", method="local", n=1, r=r, opts=dict(LOCAL_Q)))
    for n in (2, 4, 8):
        out.append(dict(family="BFS + local (¼ step)", method="bfs_best", n=n, r=2, opts=dict(LOCAL_Q)))
    for n in (1, 2, 4):
        out.append(dict(family="DFS + local (¼ step)", method="dfs", n=n, r=2, opts=dict(LOCAL_Q, **DFS, calibrate=DFS_CALIBRATE),
                        budget=4))
    # sensitivity of DFS to its one setting, the tolerance (cells): reported apart, not in the main table
    for tol in SENSITIVITY_TOLS:
        for n in (1, 2, 4):
            out.append(dict(family=f"DFS tol={tol}", method="dfs", n=n, r=1, opts=dict(DFS), budget=4, tol=tol))
    return out


def run_config(plan, verifier, cfg, seed):
    rows = plan.num_prompts
    opts = dict(cfg["opts"])
    if cfg["method"] == "dfs" and "calibrate" not in opts:
        opts["threshold"] = verifier.threshold(cfg.get("tol", DFS_TOL))
    if cfg["r"] > 1 or cfg["method"] == "local":
        opts["local_steps"] = cfg["r"]
    budget = None
    if "budget" in cfg:
        budget = cfg["budget"] * cfg["n"] * STEPS * cfg["r"] * rows
    t0 = time.perf_counter()
    res = tts.search(plan, verifier, cfg["method"], n_particles=cfg["n"], num_steps=STEPS, batch_size=rows, seed=seed,
                     budget=budget, progress=False, **opts)
    return res, time.perf_counter() - t0


def episodes_for(seed, per_task):
    return [(k, 1000 * seed + e) for k in range(1, 6) for e in range(per_task)]


def run_maze(name, seeds, per_task, out_path, families=None, log=print):
    base = load_planner(name, device="cpu")
    verifier = WallPenalty(name)
    env = make_env(name)
    m = get_maze(name)
    results = {"maze": name, "planner": {**base.meta, "horizon": base.horizon, "stride": base.stride},
               "task_cell_distance": m.task_distances(), "episodes_per_task": per_task, "seeds": list(seeds),
               "steps": STEPS, "dfs_threshold": verifier.threshold(DFS_TOL), "runs": []}
    if families:
        # add (or redo) only these families in an existing results file
        old = json.load(open(out_path))
        if old["seeds"] != list(seeds) or old["episodes_per_task"] != per_task:
            raise SystemExit(f"{out_path} was made with seeds {old['seeds']} x {old['episodes_per_task']} episodes; use the same")
        old["runs"] = [r for r in old["runs"] if r["family"] not in families]
        results = old
    t_all = time.perf_counter()
    for seed in seeds:
        eps = episodes_for(seed, per_task)
        tasks = ex.episode_tasks(name, eps, env)
        plan = base.with_tasks(tasks)
        task_of = np.array([k for k, _ in eps])
        # reference plans (no search): the cell-graph shortest path and a straight line
        for label, fn in (() if families else (("oracle (shortest cell path)", ex.oracle_plan), ("straight line", None))):
            xy = np.stack([fn(name, s, g, plan.horizon) if fn else ex.straight_line(s, g, plan.horizon) for s, g in tasks])
            out = ex.evaluate(name, xy, eps, plan.stride, env)
            st = plan_stats(name, torch.as_tensor(xy))
            results["runs"].append(dict(family="reference", label=label, seed=seed, n=0, r=0,
                                        success=[o["success"] for o in out], penalty=st["penalty"].tolist(),
                                        nfe=[0] * len(eps), nfe_grad=[0] * len(eps), task=task_of.tolist(), seconds=0.0))
        for cfg in configs():
            if families and cfg["family"] not in families:
                continue
            res, secs = run_config(plan, verifier, cfg, seed)
            xy = res.samples.detach().double()
            t1 = time.perf_counter()
            out = ex.evaluate(name, xy.numpy(), eps, plan.stride, env)
            st = plan_stats(name, xy)
            nfe = res.nfe_per_prompt.tolist()
            grad_ratio = res.nfe.model_grad / max(res.nfe.model, 1)
            run = dict(family=cfg["family"], label=f"{cfg['family']} n={cfg['n']} R={cfg['r']}", seed=seed, n=cfg["n"], r=cfg["r"],
                       success=[o["success"] for o in out], penalty=st["penalty"].tolist(), nfe=nfe,
                       nfe_grad=[x * grad_ratio for x in nfe], task=task_of.tolist(), seconds=secs,
                       rollout_seconds=time.perf_counter() - t1, verifier_calls=res.nfe.verifier,
                       steps_to_goal=[o["steps"] for o in out])
            results["runs"].append(run)
            log(f"[{name} seed {seed}] {run['label']:<22} success {np.mean(run['success']):.3f} "
                f"penalty {np.mean(run['penalty']):7.3f} NFE {np.mean(nfe):7.1f} ({secs:.1f}s search, {run['rollout_seconds']:.1f}s rollouts)")
        results["environment"] = environment("cpu")
        results.setdefault("seconds_by_part", {})[",".join(families) if families else "main"] = time.perf_counter() - t_all
        atomic_write_json(out_path, results)  # after every seed: an interrupted run keeps what it has
    env.close()
    return results


# ----------------------------------------------------------------------------------------------
# dataset generator speed


GENERATOR_JSON = RESULTS / "maze_generator.json"


def generator_rate(mazes=("medium",), episodes=5, steps=1000, repeats=3, out_path=GENERATOR_JSON, log=print):
    """Simulator steps per second of the dataset generator (tts_fast.maze.data.generate), one CPU thread.

    Per maze: ``repeats`` calls of generate(maze, episodes, steps); the median of the rollout-loop
    rate (generate's own ``steps_per_second``) and of the whole call (simulator creation included).
    Written with the environment record to ``out_path``. (Formerly an assertion of > 1000 steps/s
    in tests/test_maze.py; a timing belongs here, not in a unit test.)
    """
    from tts_fast.maze import data

    rows = []
    for name in mazes:
        loop, whole = [], []
        for r in range(repeats):
            t0 = time.perf_counter()
            d = data.generate(name, episodes, steps, seed=r)
            whole.append(episodes * steps / (time.perf_counter() - t0))
            loop.append(float(d["_meta"]["steps_per_second"]))
        row = dict(maze=name, episodes=episodes, steps=steps, repeats=repeats, steps_per_second=float(np.median(loop)),
                   steps_per_second_with_setup=float(np.median(whole)), runs_steps_per_second=loop)
        rows.append(row)
        log(f"{name}: {row['steps_per_second']:,.0f} simulator steps/s (rollout loop), "
            f"{row['steps_per_second_with_setup']:,.0f} with simulator creation; median of {repeats}")
    atomic_write_json(out_path, {"benchmark": "maze dataset generator", "environment": environment("cpu"), "threads": torch.get_num_threads(), "results": rows})
    log(f"wrote {out_path}")
    return rows


# ----------------------------------------------------------------------------------------------
# tables and plot


def summarize(res):
    """Per (family, n, r): per-seed means, then mean +- se over seeds."""
    groups = {}
    for run in res["runs"]:
        groups.setdefault((run["family"], run["n"], run["r"], run["label"].split(" n=")[0] if run["family"] != "reference" else run["label"]), []).append(run)
    rows = []
    for (fam, n, r, label), runs in groups.items():
        s = mean_se([np.mean(x["success"]) for x in runs])
        p = mean_se([np.mean(x["penalty"]) for x in runs])
        f = mean_se([np.mean(x["nfe"]) for x in runs])
        g = float(np.mean([np.mean(x["nfe_grad"]) for x in runs]))
        rows.append(dict(family=fam, label=label, n=n, r=r, success=s, penalty=p, nfe=f, nfe_grad=g,
                         episodes=sum(len(x["success"]) for x in runs)))
    return rows


def _fmt(ms, d=2):
    m, s = ms
    return f"{m:.{d}f} ± {s:.{d}f}" if not math.isnan(s) else f"{m:.{d}f}"


def table_main(all_res):
    lines = []
    for res in all_res:
        rows = [r for r in summarize(res) if not r["family"].startswith("DFS tol=")]
        body = []
        for row in rows:
            fam = row["family"]
            setting = "—" if fam == "reference" else (f"N={row['n']}" if fam in ("best-of-N", "BFS") else
                      f"n={row['n']} walkers" if fam in ("DFS", DFS_ABS) else f"R={row['r']}" if fam.startswith("local") else
                      f"N={row['n']}, R={row['r']}" if fam.startswith("BFS + local") else f"n={row['n']}, R={row['r']}")
            nfe = "0" if row["family"] == "reference" else f"{row['nfe'][0]:.0f}" + (f" + {row['nfe_grad']:.0f}g" if row["nfe_grad"] else "")
            name = row["label"] if row["family"] == "reference" else ("plain planner" if row["family"] == "best-of-N" and row["n"] == 1 else row["family"])
            body.append([name, setting, nfe, _fmt(row["success"]), _fmt(row["penalty"])])
        lines.append(f"**{res['maze']}** (horizon {res['planner']['horizon']} waypoints × stride {res['planner']['stride']} = "
                     f"{(res['planner']['horizon'] - 1) * res['planner']['stride']} steps; {len(res['seeds'])} seeds × 5 tasks × "
                     f"{res['episodes_per_task']} episodes)\n")
        lines.append(markdown_table(["method", "setting", "model NFE per plan", "success rate", "wall penalty"], body))
        lines.append("")
    return "\n".join(lines)


def table_dfs_tasks(all_res):
    lines = []
    for res in all_res:
        plain = [r for r in res["runs"] if r["family"] == "best-of-N" and r["n"] == 1]
        dfs = {n: [r for r in res["runs"] if r["family"] == "DFS" and r["n"] == n] for n in (1, 2, 4, 8)}
        header = ["task", "cell distance", "plain success", "plain wall penalty"] + [f"DFS n={n} NFE (success)" for n in dfs if dfs[n]]
        body = []
        for k in range(1, 6):
            def per_task(runs, key):
                return [float(np.mean([v for v, t in zip(r[key], r["task"]) if t == k])) for r in runs]
            row = [str(k), str(res["task_cell_distance"][k - 1]), _fmt(mean_se(per_task(plain, "success"))),
                   _fmt(mean_se(per_task(plain, "penalty")), 1)]
            for n, runs in dfs.items():
                if runs:
                    row.append(f"{mean_se(per_task(runs, 'nfe'))[0]:.0f} ± {mean_se(per_task(runs, 'nfe'))[1]:.0f} "
                               f"({mean_se(per_task(runs, 'success'))[0]:.2f})")
            body.append(row)
        lines.append(f"**{res['maze']}** (DFS budget cap = 4 × n × 16 NFE per task; minimum n × 16)\n")
        lines.append(markdown_table(header, body))
        # Does DFS's spending follow the tasks' difficulty? Rank correlation over the 5 tasks between
        # its NFE and the plain planner's wall penalty (what DFS sees) and failure rate (what it does not).
        plain_pen = [float(np.mean([_task_mean(r, "penalty", k) for r in plain])) for k in range(1, 6)]
        plain_fail = [1.0 - float(np.mean([_task_mean(r, "success", k) for r in plain])) for k in range(1, 6)]
        corr = []
        for n, runs in dfs.items():
            if runs:
                nfe = [_task_nfe(runs, k) for k in range(1, 6)]
                corr.append(f"n={n}: {_spearman(nfe, plain_pen):+.2f} / {_spearman(nfe, plain_fail):+.2f}")
        lines.append("\nRank correlation of DFS's NFE per task with the plain planner's wall penalty / failure rate: "
                     + "; ".join(corr) + ".")
        lines.append("")
    return "\n".join(lines)


def _interp_nfe(curve, target, higher_better=True):
    """NFE at which a (nfe, value) curve, linearly interpolated, first reaches target.

    Returns (nfe, bound): bound '<=' when the curve's cheapest point already reaches it, None
    when no point does.
    """
    pts = sorted(curve)
    ok = (lambda v: v >= target) if higher_better else (lambda v: v <= target)  # noqa: E731
    if not pts:
        return None, None
    if ok(pts[0][1]):
        return pts[0][0], "≤"
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if not ok(y0) and ok(y1):
            return x0 + (target - y0) * (x1 - x0) / (y1 - y0), ""
    return None, None


def _nfe_cell(x):
    v, bound = x
    return "not reached" if v is None else f"{bound}{v:.0f}"


def table_saving(all_res):
    body = []
    for res in all_res:
        rows = summarize(res)
        fam = lambda f, k: [(r["nfe"][0], r[k][0]) for r in rows if r["family"] == f]  # noqa: E731
        for r in sorted((r for r in rows if r["family"] == "BFS"), key=lambda r: r["nfe"][0]):
            s_b, p_b, nfe_b = r["success"][0], r["penalty"][0], r["nfe"][0]
            ds = _interp_nfe(fam("DFS", "success"), s_b)
            dp = _interp_nfe(fam("DFS", "penalty"), p_b, higher_better=False)
            bs = _interp_nfe(fam("best-of-N", "success"), s_b)
            ratio = lambda d: "—" if d[0] is None else f"{d[1]}{nfe_b / d[0]:.2f}×".replace("≤", "≥")  # noqa: E731
            body.append([res["maze"], f"N={r['n']}", f"{nfe_b:.0f}", f"{s_b:.3f}", _nfe_cell(ds), ratio(ds), f"{p_b:.2f}",
                         _nfe_cell(dp), ratio(dp), _nfe_cell(bs)])
    return markdown_table(["maze", "BFS", "BFS NFE", "BFS success", "DFS NFE, same success", "BFS / DFS NFE",
                           "BFS wall penalty", "DFS NFE, same penalty", "BFS / DFS NFE", "best-of-N NFE, same success"], body)


def _task_mean(run, key, k):
    return float(np.mean([v for v, t in zip(run[key], run["task"]) if t == k]))


def _spearman(a, b):
    """Spearman rank correlation (average ranks for ties)."""
    def ranks(v):
        v = np.asarray(v, dtype=float)
        order = v.argsort()
        r = np.empty(len(v))
        r[order] = np.arange(len(v), dtype=float)
        for x in np.unique(v):
            r[v == x] = r[v == x].mean()
        return r
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _task_nfe(runs, k):
    return float(np.mean([np.mean([v for v, t in zip(r["nfe"], r["task"]) if t == k]) for r in runs]))


def table_dfs_threshold(all_res):
    body = []
    for res in all_res:
        default_tol = -res["dfs_threshold"]
        fams = [(DFS_ABS, default_tol ** 0.5 / 4.0)] + sorted(
            ((f, float(f.split("=")[1])) for f in {r["family"] for r in res["runs"]} if f.startswith("DFS tol=")), key=lambda x: x[1])
        for fam, tol in fams:
            for n in (1, 2, 4):
                runs = [r for r in res["runs"] if r["family"] == fam and r["n"] == n]
                if not runs:
                    continue
                per_task = [_task_nfe(runs, k) for k in range(1, 6)]
                body.append([res["maze"], f"{tol:.3g}", f"{-(tol * 4.0) ** 2:.2f}", str(n),
                             _fmt(mean_se([np.mean(r["nfe"]) for r in runs]), 0), _fmt(mean_se([np.mean(r["success"]) for r in runs])),
                             _fmt(mean_se([np.mean(r["penalty"]) for r in runs])),
                             " / ".join(f"{v:.0f}" for v in per_task), f"{min(per_task):.0f}–{max(per_task):.0f} (cap {64 * n})"])
    return markdown_table(["maze", "tolerance (cells)", "threshold", "walkers n", "NFE per plan", "success", "wall penalty",
                           "NFE on tasks 1 / 2 / 3 / 4 / 5", "task range"], body)


def table_setup(all_res):
    body = []
    for res in all_res:
        p = res["planner"]
        body.append([res["maze"], f"{p['train_transitions']:,}", f"{p['params']:,}", f"{p['horizon']} × {p['stride']}",
                     f"{p['steps']:,} × {p['batch']}", f"{p['seconds'] / 60:.1f} min", f"{p['val_loss']:.4f}"])
    return markdown_table(["maze", "dataset transitions (regenerated)", "planner parameters", "plan: waypoints × stride",
                           "training steps × batch", "training time (CPU, 1 thread)", "validation x0-MSE"], body)


COLORS = {"best-of-N": "tab:gray", "BFS": "tab:blue", "DFS": "tab:red", DFS_ABS: "tab:pink", "local": "tab:green",
          "BFS + local": "tab:purple", "DFS + local": "tab:orange",
          "local (¼ step)": "tab:green", "BFS + local (¼ step)": "tab:purple", "DFS + local (¼ step)": "tab:orange"}


def plot(all_res, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(all_res), figsize=(5.5 * len(all_res), 8), squeeze=False)
    for j, res in enumerate(all_res):
        rows = summarize(res)
        for fam, color in COLORS.items():
            pts = sorted((r["nfe"][0], r["success"], r["penalty"]) for r in rows if r["family"] == fam)
            if not pts:
                continue
            x = [p[0] for p in pts]
            ls = "--" if "¼" in fam else "-"
            mk = "s" if "¼" in fam else "o"
            axes[0, j].errorbar(x, [p[1][0] for p in pts], yerr=[p[1][1] for p in pts], marker=mk, ls=ls, color=color, label=fam, capsize=2)
            axes[1, j].errorbar(x, [p[2][0] for p in pts], yerr=[p[2][1] for p in pts], marker=mk, ls=ls, color=color, label=fam, capsize=2)
        for r in rows:
            if r["family"] == "reference" and r["label"].startswith("oracle"):
                axes[0, j].axhline(r["success"][0], color="k", ls=":", lw=1, label="oracle cell path")
        axes[0, j].set_title(f"PointMaze {res['maze']}: success vs NFE")
        axes[1, j].set_title(f"PointMaze {res['maze']}: wall penalty vs NFE")
        for i in range(2):
            axes[i, j].set_xscale("log", base=2)
            axes[i, j].set_xlabel("model NFE per plan (local search: + as many backward passes)")
            axes[i, j].grid(alpha=0.3)
        axes[0, j].set_ylabel("success rate (executed in MuJoCo)")
        axes[1, j].set_ylabel("sum of squared wall depths (lower is better)")
        axes[1, j].set_yscale("symlog", linthresh=0.01)
        axes[1, j].set_ylim(bottom=0)
        axes[0, j].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def write_tables(paths=None):
    paths = paths or sorted(glob.glob(str(RESULTS / "maze_*.json")))
    order = {"medium": 0, "large": 1, "giant": 2, "ultra": 3}
    all_res = sorted((json.load(open(p)) for p in paths), key=lambda r: order.get(r["maze"], 9))
    if not all_res:
        raise SystemExit("no benchmarks/results/maze_*.json: run `python benchmarks/maze.py --maze medium --out benchmarks/results/maze_medium.json` first")
    refresh_tables(DOC, "maze", (("setup", table_setup), ("main", table_main), ("dfs_tasks", table_dfs_tasks),
                                 ("saving", table_saving), ("dfs_threshold", table_dfs_threshold)), all_res)
    plot(all_res, PLOT)
    print(f"wrote the tables of {DOC} and {PLOT}")


@command("python benchmarks/maze.py")
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--maze", choices=("medium", "large", "giant"), help="run the benchmark on this maze")
    p.add_argument("--seeds", type=int, default=3, help="seeds, each drawing new episodes and a new search seed (default 3, the protocol's)")
    p.add_argument("--episodes", type=int, default=10, help="episodes per task per seed (default 10, the protocol's and the shipped results')")
    p.add_argument("--out", default=None, help="results JSON (default benchmarks/results/maze_MAZE.json, the shipped results: "
                   "replaced only with --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace the results file if it exists")
    p.add_argument("--families", nargs="*", default=None, help="run only these method families and merge them into the maze's JSON")
    threads.add_argument(p)
    p.add_argument("--tables", action="store_true", help="write docs/maze.md tables and the plot from the JSONs")
    p.add_argument("--generator", action="store_true", help=f"measure the dataset generator's simulator steps/s -> {GENERATOR_JSON.name}")
    p.add_argument("--generator-mazes", nargs="+", default=["medium"], choices=("medium", "large", "giant"))
    args = p.parse_args(argv)
    if args.seeds < 1 or args.episodes < 1:
        p.error("--seeds and --episodes must be >= 1")
    threads.apply(args.threads)
    if args.maze:
        out = args.out or str(RESULTS / f"maze_{args.maze}.json")
        if os.path.exists(out) and not args.overwrite and not args.families:
            p.error(f"{out} exists (the shipped results, unless --out says otherwise): give --out NEW.json, "
                    "or --overwrite to replace it, or --families to redo some families in it")
        run_maze(args.maze, list(range(args.seeds)), args.episodes, out, families=args.families)
    if args.tables:
        write_tables()
    if args.generator:
        generator_rate(args.generator_mazes)
    if not args.maze and not args.tables and not args.generator:
        p.error("give --maze NAME, --tables and/or --generator")


if __name__ == "__main__":
    sys.exit(main())
