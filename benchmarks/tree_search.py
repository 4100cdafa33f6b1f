"""Where tree search stands: DTS / DTS* against BFS, DFS and best-of-N at matched NFE, DAS as published,
and DFS's reference thresholds over a prompt set searched one prompt per call.

    python benchmarks/tree_search.py                       # every part (about 40 min on 2 shared CPU cores)
    python benchmarks/tree_search.py --only convergence    # one part (merged into the existing JSON)
    python benchmarks/tree_search.py --das-peer FILE       # merge the numbers of DAS's own code (see docs)
    python benchmarks/tree_search.py --tables              # docs/tree_search.md + README tables and the figure

Parts (CPU, one thread, seeded; nothing tuned toward a ranking; every budget is model NFE per prompt,
never exceeded, and the NFE columns are what the library counted):
- convergence: the overlapping 2-D mixture (modes (-2, 0) 80 % and (2, 1) 20 %, std 0.6; reward
  -|x - (2, 1)|^2 / 4, lam = 0.7, 10 steps). The target is the plain 10-step sampler tilted by
  exp(lam r), computed from 200 000 weighted plain samples. DTS (2 slots, max_children 2) draws one
  sample per tree for 256 trees at 4 .. 512 rollouts; the error of the draws' right-mode mass and
  mean reward against the target, with standard errors. Next to it SMC (BFS, constant lam,
  difference scoring, resampling every step, a draw from the final weights) at the same NFE.
- rare: the README's rare-mode mixture (95 % / 5 %, reward -|x - (2, 0)|^2 / 2), 50 steps, 256 rows
  x 2 seeds, at N x 50 NFE for N = 4, 16, 64: best-of-N, bfs_best, fk, svdd, das, dfs (calibrated),
  dts, dts_star (4 slots), das_guided (+ one backward pass per NFE).
- ripples: N(0, I) data, reward cos 5x + cos 5y - 0.1 |x|^2 (narrow peaks that x0-predictions,
  posterior means, smooth over), 10 steps, 256 rows x 2 seeds, N = 8, 32, 64.
- digits: the zoo's digits model and classifier verifier (tts_fast.zoo.experiment), 10 digits x 4
  rows per call, 50 steps, N = 4, 8, 16, 2 seeds; held-out evaluator accuracy.
- maze: the medium PointMaze (tts_fast.maze, 16 steps, the wall-penalty verifier, plans executed
  in MuJoCo), 5 tasks x 2 episodes x 2 seeds, N = 4, 8: best-of-N, bfs_best, DFS (calibrated, the
  structure of benchmarks/maze.py), dts_star, dts.
- das: DAS's own setting on the rare-mode mixture with diffusers' 'leading' DDPM grid (50 steps,
  8 particles, 256 prompts, lam = 1 = 1 / kl_coeff, tempering to lam at 87 %, SSP at ESS < 4):
  das (no gradient) and das_guided with each way of returning a sample.
- dfs_mixed: prompt sets of mixed difficulty searched one prompt per call, DFS with 4 walkers and a
  budget of 4 x 4 x 50 NFE: gmm (8 easy centres (-2, 0), 8 hard (2, 0)) and digits (0-9, 2 each).
  DFS with the set's reference thresholds (search/calibration.py, fitted once on the set) against
  DFS's per-call calibration; NFE per prompt, hard against easy.

Writes benchmarks/results/tree_search.json and benchmarks/results/tree_search_convergence.png.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import torch

from _common import RESULTS, ROOT, atomic_write_json, environment, markdown_table, mean_se, refresh_tables, save_figure
from tts_fast._user_errors import command  # noqa: E402

import tts_fast as tts
from tts_fast.search.calibration import fit_dfs_reference

OUT = RESULTS / "tree_search.json"
PLOT = RESULTS / "tree_search_convergence.png"
DOC = ROOT / "docs" / "tree_search.md"
PARTS = ("convergence", "rare", "ripples", "digits", "maze", "das", "dfs_mixed")


def _stat(values):
    m, se = mean_se(values)
    return {"mean": m, "se": se}


# -- convergence to the tilted target ------------------------------------------------------------------

CONV_STEPS, CONV_LAM, CONV_ROWS = 10, 0.7, 256
CONV_ROLLOUTS = (4, 16, 64, 256, 512)


def _overlapping():
    model = tts.models.GaussianMixture([[-2.0, 0.0], [2.0, 1.0]], [0.6, 0.6], [0.8, 0.2])
    return model, tts.verifiers.GaussianReward([2.0, 1.0], 2.0)


def part_convergence(log):
    model, verifier = _overlapping()
    ref = tts.search(model, verifier, "bon", n_particles=200000, num_steps=CONV_STEPS, seed=123, progress=False)
    r = ref.particle_rewards.reshape(-1).double()
    w = (CONV_LAM * r).exp()
    w = w / w.sum()
    right = (ref.particles.reshape(-1, 2)[:, 0] > 0).double()
    target = {}
    for name, f in (("right", right), ("reward", r)):
        m = float((w * f).sum())
        target[name] = {"mean": m, "se": float(((w * (f - m)) ** 2).sum().sqrt())}
    log(f"target {target}")

    def errors(res):
        out = {"nfe_per_prompt": res.nfe.model / CONV_ROWS}
        for name, f in (("right", (res.samples[:, 0] > 0).double()), ("reward", res.rewards.double())):
            m, se = float(f.mean()), float(f.std()) / math.sqrt(f.numel())
            out[name] = {"mean": m, "se": se, "error": m - target[name]["mean"], "error_se": math.hypot(se, target[name]["se"])}
        return out

    rows = []
    for m in CONV_ROLLOUTS:
        t0 = time.perf_counter()
        res = tts.search(model, verifier, "dts", n_particles=2, num_steps=CONV_STEPS, batch_size=CONV_ROWS, seed=0, lam=CONV_LAM,
                         rollouts=m, progress=False)
        row = dict(method="DTS", rollouts=m, seconds=time.perf_counter() - t0, **errors(res))
        rows.append(row)
        log(f"  DTS rollouts={m}: NFE {row['nfe_per_prompt']:.0f} right err {row['right']['error']:+.3f} ± {row['right']['error_se']:.3f} "
            f"reward err {row['reward']['error']:+.3f} ± {row['reward']['error_se']:.3f} ({row['seconds']:.1f}s)")
        n = max(2, round(row["nfe_per_prompt"] / CONV_STEPS))
        t0 = time.perf_counter()
        res = tts.search(model, verifier, "bfs", n_particles=n, num_steps=CONV_STEPS, batch_size=CONV_ROWS, seed=0, lam=CONV_LAM,
                         temperature="constant", scoring="difference", resample_at="every", select="weighted", progress=False)
        row = dict(method="SMC (BFS, weighted draw)", particles=n, seconds=time.perf_counter() - t0, **errors(res))
        rows.append(row)
        log(f"  SMC N={n}: NFE {row['nfe_per_prompt']:.0f} right err {row['right']['error']:+.3f} ± {row['right']['error_se']:.3f}")
    return {"target": target, "rows": rows, "steps": CONV_STEPS, "lam": CONV_LAM, "trees": CONV_ROWS}


# -- matched NFE on the analytic problems ------------------------------------------------------------------


def _rare_mode(schedule=None):
    model = tts.models.GaussianMixture([[-2.0, 0.0], [2.0, 0.0]], [0.5, 0.5], [0.95, 0.05], schedule=schedule)
    return model, tts.verifiers.GaussianReward([2.0, 0.0], 1.0)


def _ripples():
    model = tts.models.GaussianMixture([[0.0, 0.0]], [1.0], [1.0])
    f = tts.verifiers.Function(lambda x: torch.cos(5 * x[:, 0]) + torch.cos(5 * x[:, 1]) - 0.1 * (x**2).sum(1))
    return model, f


MATCHED = [  # (label, method, particles(n), options)
    ("best-of-N", "bon", lambda n: n, {}),
    ("bfs_best", "bfs_best", lambda n: n, {}),
    ("fk", "fk", lambda n: n, {}),
    ("svdd", "svdd", lambda n: n, {}),
    ("das (no gradient)", "das", lambda n: n, {}),
    ("dfs (calibrated)", "dfs", lambda n: max(2, n // 2), dict(max_backtracks=None)),
    ("dts", "dts", lambda n: min(n, 4), {}),
    ("dts_star", "dts_star", lambda n: min(n, 4), {}),
    ("das_guided (+grad)", "das_guided", lambda n: n, {}),
]


def _matched(problem, steps, ns, seeds, rows, labels, log, hit=None):
    model, verifier = problem
    out = []
    for n in ns:
        for label, method, particles, opts in MATCHED:
            if label not in labels:
                continue
            rewards, hits, nfe, grad, secs = [], [], [], [], []
            for seed in seeds:
                t0 = time.perf_counter()
                res = tts.search(model, verifier, method, n_particles=particles(n), num_steps=steps, batch_size=rows, seed=seed,
                                 budget=n * steps * rows, progress=False, **opts)
                secs.append(time.perf_counter() - t0)
                rewards += res.rewards.double().tolist()
                if hit is not None:
                    hits += hit(res.samples).double().tolist()
                nfe.append(res.nfe.model / rows)
                grad.append(res.nfe.model_grad / rows)
            row = dict(label=label, n=n, budget=n * steps, reward=_stat(rewards), nfe=sum(nfe) / len(nfe), grad=sum(grad) / len(grad),
                       seconds=sum(secs) / len(secs))
            if hit is not None:
                row["hit"] = _stat(hits)
            out.append(row)
            log(f"  N={n:3d} {label:20s} reward {row['reward']['mean']:.3f} ± {row['reward']['se']:.3f} NFE {row['nfe']:.0f}"
                f"{' +%.0fg' % row['grad'] if row['grad'] else ''} ({row['seconds']:.1f}s)")
    return out


def part_rare(log):
    labels = [m[0] for m in MATCHED]
    return {"steps": 50, "rows": 256, "seeds": [0, 1],
            "rows_by_method": _matched(_rare_mode(), 50, (4, 16, 64), (0, 1), 256, labels, log, hit=lambda x: x[:, 0] > 0)}


def part_ripples(log):
    labels = ["best-of-N", "bfs_best", "fk", "svdd", "dts", "dts_star"]
    return {"steps": 10, "rows": 256, "seeds": [0, 1], "rows_by_method": _matched(_ripples(), 10, (8, 32, 64), (0, 1), 256, labels, log)}


# -- digits ------------------------------------------------------------------------------------------------


def part_digits(log):
    from tts_fast.zoo import experiment as ex

    zoo = ex.Zoo("cpu")
    out = []
    for n in (4, 8, 16):
        for key in ("bon", "bfs_best", "svdd", "dfs", "dts", "dts_star"):
            runs = [ex.run(zoo, key, digits_=list(range(10)), per_digit=4, n=n, num_steps=50, seed=s) for s in (0, 1)]
            row = {"key": key, "label": ex.SPECS[key].label, "n": n}
            for m in ("verifier_reward", "verifier_acc", "evaluator_acc", "nfe_per_row", "seconds"):
                row[m] = _stat([r[m] for r in runs])
            out.append(row)
            log(f"  N={n:2d} {key:10s} evaluator acc {row['evaluator_acc']['mean']:.3f} ± {row['evaluator_acc']['se']:.3f} "
                f"reward {row['verifier_reward']['mean']:.3f} NFE {row['nfe_per_row']['mean']:.0f}")
    return {"steps": 50, "rows_per_call": 40, "seeds": [0, 1], "rows": out}


# -- PointMaze ---------------------------------------------------------------------------------------------


def part_maze(log):
    import numpy as np

    from tts_fast.maze import execute as mx
    from tts_fast.maze import planner as load_planner
    from tts_fast.maze.envs import make_env
    from tts_fast.maze.verifiers import WallPenalty, plan_stats

    name, steps = "medium", 16
    base, verifier, env = load_planner(name, device="cpu"), WallPenalty(name), make_env(name)
    dfs = dict(start=12, backtrack=12, every=1, calibrate=0.5, max_backtracks=None)
    methods = [("best-of-N", "bon", lambda n: n, {}), ("bfs_best", "bfs_best", lambda n: n, {}),
               ("DFS (calibrated)", "dfs", lambda n: max(1, n // 4), dfs), ("dts_star", "dts_star", lambda n: min(n, 4), {}),
               ("dts", "dts", lambda n: min(n, 4), {})]
    out = []
    for n in (4, 8):
        for label, method, particles, opts in methods:
            succ, pen, nfe = [], [], []
            for seed in (0, 1):
                eps = [(k, 1000 * seed + e) for k in range(1, 6) for e in range(2)]
                plan = base.with_tasks(mx.episode_tasks(name, eps, env))
                rows = plan.num_prompts
                res = tts.search(plan, verifier, method, n_particles=particles(n), num_steps=steps, batch_size=rows, seed=seed,
                                 budget=n * steps * rows, progress=False, **opts)
                xy = res.samples.detach().double()
                succ.append(float(np.mean([o["success"] for o in mx.evaluate(name, xy.numpy(), eps, plan.stride, env)])))
                pen.append(float(plan_stats(name, xy)["penalty"].mean()))
                nfe.append(res.nfe.model / rows)
            row = dict(label=label, n=n, budget=n * steps, success=_stat(succ), penalty=_stat(pen), nfe=sum(nfe) / len(nfe))
            out.append(row)
            log(f"  N={n} {label:18s} success {row['success']['mean']:.3f} ± {row['success']['se']:.3f} penalty "
                f"{row['penalty']['mean']:.3f} NFE {row['nfe']:.0f}")
    env.close()
    return {"maze": name, "steps": steps, "episodes": "5 tasks x 2 episodes x 2 seeds", "rows": out}


# -- DAS as published ----------------------------------------------------------------------------------------


def part_das(log):
    problem = _rare_mode(tts.schedules.ddpm_linear(spacing="leading", steps_offset=1))
    out = []
    for label, method, opts in (("das (no gradient), best", "das", {}), ("das (no gradient), weighted draw", "das", dict(select="weighted")),
                                ("das_guided, best", "das_guided", {}), ("das_guided, max weight (DAS's output)", "das_guided",
                                                                          dict(select="max_weight")),
                                ("das_guided, weighted draw", "das_guided", dict(select="weighted"))):
        model, verifier = problem
        t0 = time.perf_counter()
        res = tts.search(model, verifier, method, n_particles=8, num_steps=50, batch_size=256, seed=0, progress=False, **opts)
        row = dict(label=label, reward=_stat(res.rewards.double().tolist()), hit=_stat((res.samples[:, 0] > 0).double().tolist()),
                   nfe=res.nfe.model / 256, grad=res.nfe.model_grad / 256, seconds=time.perf_counter() - t0)
        out.append(row)
        log(f"  {label:40s} reward {row['reward']['mean']:.4f} ± {row['reward']['se']:.4f} rare {row['hit']['mean']:.3f}")
    # the exact tilted target of the continuous model, lam = 1: its mean reward and rare-mode mass
    model, _ = problem
    t = model.tilted([2.0, 0.0], 1.0, 1.0)
    comp_r = -0.5 * (((t.means - torch.tensor([2.0, 0.0], dtype=t.dtype)) ** 2).sum(1) + 2 * t.stds**2)
    target = {"reward": float((t.weights * comp_r).sum()), "rare": float(t.weights[1])}
    return {"setting": "rare-mode mixture, DDPM linear 'leading' grid (steps_offset 1), 50 steps, 8 particles, 256 prompts, lam 1",
            "rows": out, "target": target}


# -- DFS over a prompt set, one prompt per call ------------------------------------------------------------------

MIX_STEPS, MIX_WALKERS = 50, 4


def _one_per_call(sources, options):
    """(model NFE, reward) of each prompt searched alone; sources: (model, verifier, seed) per prompt."""
    out = []
    for model, verifier, seed in sources:
        r = tts.search(model, verifier, "dfs", n_particles=MIX_WALKERS, num_steps=MIX_STEPS, seed=seed, max_backtracks=None,
                       budget=4 * MIX_WALKERS * MIX_STEPS, progress=False, **options)
        out.append((int(r.nfe_per_prompt[0]), float(r.rewards[0])))
    return out


def part_dfs_mixed(log):
    sets = {}
    model, _ = _rare_mode()
    gmm = [(f"[{c[0]:g}, {c[1]:g}]", (model, tts.verifiers.GaussianReward([c], 1.0), 100 + i))
           for i, c in enumerate([[-2.0, 0.0]] * 8 + [[2.0, 0.0]] * 8)]
    sets["gmm"] = gmm
    from tts_fast.zoo import digits, digits_verifier

    dm = digits("cpu")
    sets["digits"] = [(str(d), (dm, digits_verifier([d]), 200 + 2 * d + j)) for d in range(10) for j in range(2)]
    out = {}
    for name, items in sets.items():
        sources = [s for _, s in items]
        t0 = time.perf_counter()
        ref = fit_dfs_reference([(m, v, s + 10_000) for m, v, s in sources], n_particles=MIX_WALKERS, num_steps=MIX_STEPS)
        fit_s = time.perf_counter() - t0
        # hard / easy: the half of the set whose walkers scored lowest / highest at the reference's last check
        last = ref.meta["last_check_mean_reward"]
        order = sorted(range(len(items)), key=lambda i: last[i])
        tag = {i: ("hard" if k < len(items) // 2 else "easy") for k, i in enumerate(order)}
        res = {}
        for mode, opts in (("reference", ref.options()), ("per-call calibration", {})):
            rows = _one_per_call(sources, opts)
            groups = {"easy": [], "hard": [], "all": []}
            for i, (nfe, rew) in enumerate(rows):
                groups[tag[i]].append((nfe, rew))
                groups["all"].append((nfe, rew))
            res[mode] = {t: {"nfe": _stat([a for a, _ in g]), "reward": _stat([b for _, b in g])} for t, g in groups.items()}
            res[mode]["per_prompt"] = [{"prompt": items[i][0], "tag": tag[i], "nfe": rows[i][0], "reward": rows[i][1]} for i in range(len(items))]
            log(f"  {name} {mode}: " + ", ".join(f"{t} NFE {res[mode][t]['nfe']['mean']:.0f}" for t in ("easy", "hard", "all")))
        out[name] = {"reference": ref.to_dict(), "fit_seconds": fit_s, "by_mode": res,
                     "hard_prompts": sorted({items[i][0] for i in tag if tag[i] == "hard"})}
    return {"steps": MIX_STEPS, "walkers": MIX_WALKERS, "budget": 4 * MIX_WALKERS * MIX_STEPS, "sets": out}


# -- tables and figure ----------------------------------------------------------------------------------------


def _pm(d, digits=2):
    return f"{d['mean']:.{digits}f} ± {d['se']:.{digits}f}"


def table_convergence(res):
    c = res["convergence"]
    body = []
    for r in c["rows"]:
        setting = f"{r['rollouts']} rollouts" if r["method"] == "DTS" else f"N={r['particles']}"
        body.append([r["method"], setting, f"{r['nfe_per_prompt']:.0f}", f"{r['right']['mean']:.3f}", f"{r['right']['error']:+.3f} ± {r['right']['error_se']:.3f}",
                     f"{r['reward']['error']:+.3f} ± {r['reward']['error_se']:.3f}"])
    head = (f"Target (plain {c['steps']}-step sampler tilted by exp({c['lam']} r)): right-mode mass "
            f"{c['target']['right']['mean']:.3f}, mean reward {c['target']['reward']['mean']:.3f}; {c['trees']} trees / rows, one draw each.\n\n")
    return head + markdown_table(["method", "setting", "model NFE per prompt", "right-mode mass", "mass error", "mean-reward error"], body)


def _matched_table(rows, hit):
    ns = sorted({r["n"] for r in rows})
    labels = list(dict.fromkeys(r["label"] for r in rows))
    body = []
    for lab in labels:
        cells = [lab]
        for n in ns:
            r = next(x for x in rows if x["label"] == lab and x["n"] == n)
            cell = _pm(r["reward"], 3)
            if hit:
                cell += f" ({r['hit']['mean']:.2f})"
            cell += f" [{r['nfe']:.0f}{'+%.0fg' % r['grad'] if r['grad'] else ''}]"
            cells.append(cell)
        body.append(cells)
    return markdown_table(["method"] + [f"{n} x steps NFE" for n in ns], body)


def table_rare(res):
    return _matched_table(res["rare"]["rows_by_method"], hit=True)


def table_ripples(res):
    return _matched_table(res["ripples"]["rows_by_method"], hit=False)


def table_digits(res):
    rows = res["digits"]["rows"]
    ns = sorted({r["n"] for r in rows})
    body = []
    for key in dict.fromkeys(r["key"] for r in rows):
        cells = [next(r["label"] for r in rows if r["key"] == key)]
        for n in ns:
            r = next(x for x in rows if x["key"] == key and x["n"] == n)
            cells.append(f"{_pm(r['evaluator_acc'], 3)} ({r['verifier_acc']['mean']:.3f}) [{r['nfe_per_row']['mean']:.0f}]")
        body.append(cells)
    return markdown_table(["method"] + [f"N={n} ({n * 50} NFE)" for n in ns], body)


def table_maze(res):
    rows = res["maze"]["rows"]
    body = [[r["label"], f"N={r['n']}", f"{r['nfe']:.0f}", _pm(r["success"]), _pm(r["penalty"], 3)] for r in rows]
    return markdown_table(["method", "budget", "model NFE per plan", "success rate", "wall penalty"], body)


def table_das(res):
    d = res["das"]
    body = [[r["label"], _pm(r["reward"], 3), f"{r['hit']['mean']:.3f}", f"{r['nfe']:.0f}" + (f" + {r['grad']:.0f}g" if r["grad"] else "")]
            for r in d["rows"]]
    for key, label in (("das_own_guided", "DAS's own code (guided)"), ("das_own_guided_fixed", "DAS's own code (guided), re-indexing fixed"),
                       ("das_own_unguided", "DAS's own code (gradient zeroed)"),
                       ("das_own_unguided_fixed", "DAS's own code (gradient zeroed), re-indexing fixed")):
        peer = res.get("das_peer", {}).get(key)
        if peer:
            body.append([label + ", max weight", f"{peer['reward']:.3f} ± {peer['se']:.3f}", f"{peer['hit']:.3f}", "400 + 400g" if "unguided" not in key else "400 + 400g (zero)"])
    t = d["target"]
    return (markdown_table(["method, returned sample", "reward", "rare-mode rate", "model NFE per prompt"], body)
            + f"\n\nThe exact tilted target p0 exp(r) (continuous model): mean reward {t['reward']:.3f}, rare-mode mass {t['rare']:.3f}.")


def table_dfs_mixed(res):
    d = res["dfs_mixed"]
    body = []
    for name, s in d["sets"].items():
        for mode, g in s["by_mode"].items():
            body.append([name, mode, *(f"{g[t]['nfe']['mean']:.0f} ± {g[t]['nfe']['se']:.0f}" for t in ("easy", "hard", "all")),
                         _pm(g["easy"]["reward"]) + " / " + _pm(g["hard"]["reward"])])
    hard = "; ".join(f"{name}: {', '.join(s['hard_prompts'])}" for name, s in d["sets"].items())
    return (markdown_table(["prompt set", "DFS thresholds", "NFE per prompt: easy half", "hard half", "all", "reward: easy / hard"], body)
            + f"\n\nHard half (lowest reference reward at the last check): {hard}.")


TABLES = (("convergence", table_convergence), ("rare", table_rare), ("ripples", table_ripples), ("digits", table_digits),
          ("maze", table_maze), ("das", table_das), ("dfs_mixed", table_dfs_mixed))


def plot(res):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = res["convergence"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key, title in ((axes[0], "right", "right-mode mass"), (axes[1], "reward", "mean reward")):
        for method, marker in (("DTS", "o"), ("SMC (BFS, weighted draw)", "s")):
            rows = [r for r in c["rows"] if r["method"] == method]
            ax.errorbar([r["nfe_per_prompt"] for r in rows], [r[key]["error"] for r in rows], yerr=[r[key]["error_se"] for r in rows],
                        marker=marker, capsize=3, label=method)
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("model NFE per prompt")
        ax.set_ylabel(f"error of the {title}")
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"DTS draws against the exact tilted target (± 1 se, {c['trees']} trees)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, PLOT, dpi=110)
    plt.close(fig)


@command("python benchmarks/tree_search.py")
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    p.add_argument("--das-peer", default=None, metavar="JSON", help="merge the numbers of DAS's own code (a local harness's JSON)")
    p.add_argument("--tables", action="store_true", help="only rewrite the doc / README tables and the figure from the JSON")
    args = p.parse_args(argv)
    res = json.loads(OUT.read_text()) if OUT.exists() else {}
    if args.das_peer:
        peer = json.loads(open(args.das_peer).read())
        res.setdefault("das_peer", {}).update({k: v for k, v in peer.items() if k.startswith("das_own")})
        res["das_peer"]["meta"] = {k: v for k, v in peer.items() if not k.startswith("das_own")}
        atomic_write_json(OUT, res)
        return 0
    if not args.tables:
        torch.set_num_threads(1)
        log = lambda s: print(s, flush=True)  # noqa: E731
        for part in args.only:
            log(part)
            t0 = time.perf_counter()
            res[part] = globals()[f"part_{part}"](log)
            res[part]["seconds"] = time.perf_counter() - t0
            res.setdefault("environment", {})[part] = environment("cpu")
            res.setdefault("commands", {})[part] = "python benchmarks/tree_search.py " + " ".join(argv if argv is not None else sys.argv[1:])
            atomic_write_json(OUT, res)  # after every part: an interrupted run keeps what it has
    if "convergence" in res:
        plot(res)
    refresh_tables(DOC, "tree", [(n, f) for n, f in TABLES if n in res], res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
