"""Offline RL on MuJoCo locomotion: a diffusion policy searched with a Q-function verifier.

    python benchmarks/locomotion.py --env halfcheetah --dataset medium   # results/locomotion_halfcheetah_medium.json
    python benchmarks/locomotion.py --env halfcheetah --dataset medium --max-steps 200   # ..._medium_200steps.json
    python benchmarks/locomotion.py --tables                             # README + docs/locomotion.md tables from the JSONs

Setting (the classical-search paper's locomotion experiment, §5.1 of our spec of its code, on our
shipped agents, tts_fast.rl): the behaviour diffusion policy of the dataset (15 sampling steps)
proposes actions; the verifier is the dataset's IQL twin-Q critic, Q(s, a) = min(Q1, Q2) on the
x0-prediction of the action. The paper's protocol: 5 seeds x 10 episodes (episode e of seed k
resets with seed k + 1001 + e), all live environments batched in one search call per step, D4RL
normalised scores (mean over a seed's episodes; mean +- standard error over the seeds).
Datasets are D4RL-like (v5, self-generated): scores are NOT comparable with the paper's numbers.

Methods (nothing tuned here; the paper's settings, presets or library defaults):
- plain: the behaviour policy (best-of-1);
- best-of-N: N actions, the one with the highest Q, N = 2, 4, 8;
- TFG: guidance without recurrence and without selection (one particle, R = 1) with the paper's
  per-dataset J, rho, mu;
- local search + best-of-N: the paper's method, its per-dataset (R, J, rho, mu), N = 2, 4, 8;
- DAS-style: tts.presets.das (tempered SMC, SSP, ESS-gated), lam = 1 per unit of Q, N = 2, 4, 8;
- BFS (bfs_best) and DFS (calibrated thresholds, a budget of 2 N x 15 NFE per action): our additions;
- distilled: one-step policies trained on a search's actions (tts_fast.rl.distill), 1 NFE: one per
  teacher in the agent file, the paper's local search + best-of-8 and BFS at N = 8;
- local_auto + best-of-N: the library's unit-free local search preset (tts.presets.local_auto:
  relative steps, R = 2, rho = mu = 0.01; chosen on PointMaze and digits, not here), N = 2, 4, 8.
NFE per action = model NFE counted by the library (res.nfe_per_prompt); local search also runs a
backward pass through the policy per NFE and J verifier gradients.
"""

from __future__ import annotations

import argparse
import sys
import glob
import json
import os
import time

import numpy as np

from _common import RESULTS, ROOT, atomic_write_json, environment, markdown_table, refresh_tables, save_figure
from tts_fast._user_errors import command  # noqa: E402

import tts_fast as tts
from tts_fast import _threads as threads
from tts_fast.rl import envs as rl_envs
from tts_fast.rl.evaluate import reset_seeds, stderr_over_resets

STEPS = 15
DOC = ROOT / "docs" / "locomotion.md"
PLOT = RESULTS / "locomotion.png"
NS = (2, 4, 8)
LABEL = "D4RL-like (v5, self-generated)"
DISTILLED = {"paper": "local + best-of-8", "bfs": "BFS-8"}  # teacher -> its label in the tables
LOCAL_AUTO = {k: v for k, v in vars(tts.presets.local_auto()).items() if k in ("step_scale", "local_steps", "rho", "mu", "iter_steps", "sigma")}


def configs(env: str, dataset: str) -> list[dict]:
    """The method x N grid of one dataset (the paper's methods first, our additions last)."""
    local = tts.rl.paper_local(env, dataset)
    tfg = {k: v for k, v in local.items() if k != "local_steps"}
    out = [dict(family="plain", method="bon", n=1, opts={})]
    out += [dict(family="best-of-N", method="bon", n=n, opts={}) for n in NS]
    out += [dict(family="TFG", method="local", n=1, opts=dict(tfg, local_steps=1))]
    out += [dict(family="local + best-of-N", method="bon", n=n, opts=dict(local)) for n in NS]
    out += [dict(family=f"distilled ({DISTILLED[t]})", method="distilled", teacher=t, n=1, opts={}) for t in DISTILLED]
    # the library's unit-free local search (gradients rescaled to unit RMS; one setting chosen on
    # PointMaze and digits, not here), for a local search whose step does not depend on Q's scale
    out += [dict(family="local_auto + best-of-N", method="bon", n=n, opts=dict(LOCAL_AUTO)) for n in NS]
    out += [dict(family="DAS-style", method="das", n=n, opts=dict(lam=1.0)) for n in NS]
    out += [dict(family="BFS", method="bfs_best", n=n, opts={}) for n in NS]
    out += [dict(family="DFS", method="dfs", n=n, opts={}, budget=2 * n * STEPS) for n in NS]
    return out


def actor_for(cfg, policy, q, seed):
    return tts.rl.search_actor(policy, q, cfg["method"], n_particles=cfg["n"], num_steps=STEPS, seed=seed,
                               budget_per_state=cfg.get("budget"), **cfg["opts"])


def run(env: str, dataset: str, seeds, episodes: int, out_path: str, families=None, ns=None, max_steps=None, log=print) -> dict:
    """Evaluate every method of ``configs`` (and the distilled policy) on (env, dataset); merge into ``out_path``."""
    probe = np.zeros((1, rl_envs.task(env).obs_dim), np.float32)
    policy = tts.rl.load_policy(env, dataset, probe, device="cpu")
    q = tts.rl.q_verifier(env, dataset, probe, device="cpu")
    ck = tts.rl.load_checkpoint(env, dataset)
    try:
        with open(out_path) as f:
            res = json.load(f)
    except FileNotFoundError:
        res = {"runs": []}
    res.update({"env": env, "dataset": dataset, "label": LABEL, "seeds": list(seeds), "episodes": episodes, "num_steps": STEPS,
                "environment": environment("cpu"), "dataset_fingerprint": ck["meta"]["dataset"],
                "local_search": tts.rl.paper_local(env, dataset), "max_steps": max_steps,
                "extrapolated": max_steps is not None})
    cfgs = configs(env, dataset)
    if families:
        cfgs = [c for c in cfgs if c["family"] in families]
    if ns:
        cfgs = [c for c in cfgs if c["n"] == 1 or c["n"] in ns]
    have = tts.rl.distilled_teachers(env, dataset)  # the teachers distilled into the agent file (tts_fast.rl.distill)
    cfgs = [c for c in cfgs if c["method"] != "distilled" or c["teacher"] in have]
    for cfg in cfgs:
        desc = f"{cfg['family']} N={cfg['n']}"
        t0 = time.perf_counter()
        if cfg["method"] == "distilled":
            act = tts.rl.distilled_actor(env, dataset, cfg["teacher"])
        else:
            act = actor_for(cfg, policy, q, seed=0)
        ev = tts.rl.evaluate_actor(env, act, seeds=seeds, episodes=episodes, max_steps=max_steps, extrapolate=max_steps is not None, desc=desc)
        row = {k: cfg[k] for k in ("family", "method", "n")}
        row.update(opts=cfg["opts"], budget_per_state=cfg.get("budget"), seed_scores=ev.seed_scores.tolist(), score=ev.score,
                   stderr=ev.stderr, episode_stderr=ev.episode_stderr, returns=ev.returns.tolist(), lengths=ev.lengths.tolist(),
                   resets=ev.resets.tolist(), nfe_per_action=ev.nfe_per_action, seconds=time.perf_counter() - t0,
                   env_steps=ev.steps, saturation=ev.saturation)
        res["runs"] = [r for r in res["runs"] if (r["family"], r["n"]) != (cfg["family"], cfg["n"])] + [row]
        atomic_write_json(out_path, res)
        log(f"{env}-{dataset} {desc}: score {ev.score:.1f} +- {ev.episode_stderr:.1f} (over initial states), episode length "
            f"{ev.length_mean:.0f} mean / {ev.length_max} max, {ev.nfe_per_action:.0f} NFE/action, {row['seconds']:.0f} s")
    return res


# ----------------------------------------------------------------------------------------------
# tables and plot

SE_NOTE = ("the official protocol's seed k resets episode e with seed k + 1001 + e, so its 5 seeds x 10 episodes share 14 initial "
           "states; episodes with the same one are averaged first, so a deterministic policy's repeated episodes are not counted as "
           "independent")
ORDER = ("plain", "best-of-N", "TFG", "local + best-of-N", *(f"distilled ({v})" for v in DISTILLED.values()), "local_auto + best-of-N",
         "DAS-style", "BFS", "DFS")


def _family_key(family: str, n: int) -> tuple:
    """Table order: the families as ORDER lists them (unknown ones last), then N."""
    return (ORDER.index(family) if family in ORDER else 99, n)


def episode_se(res, r) -> float:
    """A row's standard error over distinct initial states (tts_fast.rl.evaluate.stderr_over_resets), from its stored
    returns: rows stored before it was recorded get it from the returns and the official reset seeds."""
    if "episode_stderr" in r:
        return r["episode_stderr"]
    returns = np.asarray(r["returns"], dtype=np.float64)
    full = rl_envs.task(res["env"]).max_episode_steps
    scale = full / res["max_steps"] if res.get("extrapolated") and res.get("max_steps") else 1.0
    scores = rl_envs.normalized_score(res["env"], returns * scale)
    if abs(float(scores.mean()) - r["score"]) > 1e-6 * max(1.0, abs(r["score"])):
        raise ValueError(f"{_label(res)} {r['family']} N={r['n']}: stored returns do not give the stored score")
    return stderr_over_resets(scores, reset_seeds(res["seeds"], res["episodes"]))


def _length(r) -> str:
    """'mean / max' environment steps of a row's episodes ('—' for rows stored before lengths were recorded)."""
    if "lengths" not in r:
        return "—"
    lengths = np.asarray(r["lengths"])
    return f"{lengths.mean():.0f} / {lengths.max()}"


def _rows(res):
    return sorted(res["runs"], key=lambda r: _family_key(r["family"], r["n"]))


def _label(res) -> str:
    """A result's dataset, with its episode length when episodes were cut (scored return x 1000 / max_steps)."""
    cut = f", {res['max_steps']}-step episodes" if res.get("max_steps") else ""
    return f"{res['env']}-{res['dataset']}{cut}"


def table_main(all_res) -> str:
    headers = ["dataset", "method", "N", "normalised score", "episode length (mean / max)", "NFE / action", "actions at the box edge",
               "wall s (all episodes)"]
    rows = []
    for res in all_res:
        for r in _rows(res):
            sat = f"{100 * r['saturation']:.0f} %" if "saturation" in r else "—"  # rows run before it was recorded
            rows.append([_label(res), r["family"], r["n"], f"{r['score']:.1f} ± {episode_se(res, r):.1f}", _length(r),
                         f"{r['nfe_per_action']:.0f}", sat, f"{r['seconds']:.0f}"])
    protocols = sorted({(len(r["seeds"]), r["episodes"]) for r in all_res})
    runs = " or ".join(f"{s} seeds x {e} episodes" for s, e in protocols)
    cut = ("; a dataset marked with k-step episodes had its episodes cut at k steps and is scored by its return x 1000 / k "
           "(HalfCheetah never terminates); the others ran whole episodes (up to 1000 steps)" if any(r.get("max_steps") for r in all_res) else "")
    note = (f"\n\nScores: {LABEL}, D4RL-normalised, mean over {runs}{cut} ± standard error over the distinct initial states "
            f"({SE_NOTE}); not comparable with the paper's 86.1 (D4RL v2 datasets, other agents). Episode length: environment steps "
            "per episode, mean and max (— : run before lengths were recorded). Actions at the box edge: the share of action "
            "coordinates with |a| >= 0.99 over all actions taken.")
    return markdown_table(headers, rows) + note


def table_summary(all_res) -> str:
    """Method x dataset: each cell the score ± standard error and (in brackets) the model NFE per action."""
    keys = sorted({(r["family"], r["n"]) for res in all_res for r in res["runs"]}, key=lambda k: _family_key(*k))
    cells = {(_label(res), r["family"], r["n"]): f"{r['score']:.1f} ± {episode_se(res, r):.1f} ({r['nfe_per_action']:.0f})"
             for res in all_res for r in res["runs"]}
    labels = [_label(res) for res in all_res]
    rows = [[fam, n, *(cells.get((lab, fam, n), "—") for lab in labels)] for fam, n in keys]
    return (markdown_table(["method", "N", *labels], rows) + "\n\nEach cell: normalised score ± standard error over the distinct "
            f"initial states ({SE_NOTE}) (model NFE per action); {LABEL}, not comparable with the paper's 86.1; — = not run.")


def _sac_run(tr: dict) -> str:
    """'150,000 steps, 43.0 min', or for a run stopped by hand 'stopped at 120,000 of 150,000 steps, ...'."""
    launched = tr.get("launched_with", tr["recipe"])["sac_steps"]
    if tr.get("finished", True):
        return f"{launched:,} steps, {tr['seconds'] / 60:.1f} min"
    last = tr["checkpoints"][-1]
    return f"stopped at {last['step']:,} of {launched:,} steps, {last['seconds'] / 60:.1f} min"


def table_data(_all_res) -> str:
    """The regenerated datasets: recipe outcome and fingerprints (from results/rl_data_*.json)."""
    rows = []
    for p in sorted(glob.glob(str(RESULTS / "rl_data_*.json"))):
        g = json.load(open(p))
        tr = g["training"]
        for d, fp in g["datasets"].items():
            rows.append([fp["dataset_id"], f"{fp['transitions']:,}", fp["episodes"], f"{fp['return_mean']:.1f} ± {fp['return_std']:.1f}",
                         f"step {g['medium_checkpoint']['step']:,} ({g['medium_checkpoint']['return']:.0f})",
                         _sac_run(tr), f"`{fp['sha256']}`"])
    headers = ["dataset", "transitions", "episodes", "episode return", "medium checkpoint (its return)", "SAC run (1 thread, shared CPU)",
               "sha256"]
    return markdown_table(headers, rows)


def table_training(_all_res) -> str:
    """The shipped agents: sizes and measured training times (from the weight files' metadata)."""
    rows = []
    for env, dataset in tts.rl.trained_agents():
        ck = tts.rl.load_checkpoint(env, dataset)
        m = ck["meta"]
        n_pol = sum(v.numel() for v in ck["policy"].values())
        n_cr = sum(v.numel() for v in ck["critic"].values())
        size = tts.rl.weights.weights_path(env, dataset)
        dist = [(t, d["meta"]) for t, d in ck.get("distilled", {}).items()]
        rows.append([f"{env}-{dataset}", f"{n_pol:,}", f"{n_cr:,}",
                     f"{m['policy_training']['steps']:,} steps, {m['policy_training']['seconds'] / 60:.1f} min",
                     f"{m['critic_training']['steps']:,} steps, {m['critic_training']['seconds'] / 60:.1f} min",
                     f"{m['critic_training']['mean_q_on_data']:.1f}",
                     "; ".join(f"{DISTILLED.get(t, t)}: {m['states']:,} states, search {m['search_seconds'] / 60:.1f} min + {m['train_seconds']:.0f} s"
                               for t, m in dist) or "—",
                     f"{os.path.getsize(size) / 1e6:.2f} MB"])
    headers = ["agent", "policy params", "critic params", "policy training", "critic training", "mean Q on data", "distillation",
               "weight file"]
    return markdown_table(headers, rows)


def ordering(res) -> str:
    """The measured ordering of the families (best row of each), best first."""
    best = {}
    for r in res["runs"]:
        if r["family"] not in best or r["score"] > best[r["family"]]["score"]:
            best[r["family"]] = r
    fams = sorted(best.values(), key=lambda r: -r["score"])
    return " > ".join(f"{r['family']} ({r['score']:.1f})" for r in fams)


def table_ordering(all_res) -> str:
    return "\n".join(f"- {_label(res)}: {ordering(res)}" for res in all_res)


def plot(all_res, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(all_res))
    rows = -(-len(all_res) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4.5 * rows), squeeze=False)
    for ax in axes.flat[len(all_res):]:
        ax.set_visible(False)
    for j, res in enumerate(all_res):
        ax = axes.flat[j]
        for fam in ORDER:
            pts = sorted((r["nfe_per_action"], r["score"], episode_se(res, r)) for r in res["runs"] if r["family"] == fam)
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", capsize=2, label=fam,
                            color=f"C{ORDER.index(fam) % 10}")  # one colour per family in every panel
        ax.set_xscale("log", base=2)
        ax.set_xlabel("model NFE per action")
        ax.set_ylabel(f"normalised score ({LABEL})")
        ax.set_title(_label(res))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def write_tables(paths=None):
    paths = paths or sorted(glob.glob(str(RESULTS / "locomotion_*.json")))
    all_res = [json.load(open(p)) for p in paths]
    if not all_res:
        raise SystemExit("no benchmarks/results/locomotion_*.json: run `python benchmarks/locomotion.py --env halfcheetah --dataset medium` first")
    # tables and plot in a fixed order: env, then dataset as rl.envs.DATASETS, cut episodes first
    envs_order = sorted(rl_envs.TASKS)
    all_res.sort(key=lambda r: (envs_order.index(r["env"]), rl_envs.DATASETS.index(r["dataset"]), r.get("max_steps") is None))
    refresh_tables(DOC, "locomotion", (("summary", table_summary), ("main", table_main), ("ordering", table_ordering), ("data", table_data),
                                       ("training", table_training)), all_res)
    plot(all_res, PLOT)
    print(f"wrote the tables of {DOC}, README.md and {PLOT}")


@command("python benchmarks/locomotion.py")
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", choices=sorted(rl_envs.TASKS))
    p.add_argument("--dataset", choices=rl_envs.DATASETS)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--episodes", type=int, default=10, help="episodes per seed")
    p.add_argument("--max-steps", type=int, default=None,
                   help="cut episodes at this many steps and score return x 1000 / max-steps (HalfCheetah only: it never terminates)")
    p.add_argument("--families", nargs="*", default=None, help="run only these families, merged into the dataset's JSON")
    p.add_argument("--ns", nargs="*", type=int, default=None, help=f"run only these N of the searches over N (default {' '.join(map(str, NS))})")
    p.add_argument("--out", default=None)
    p.add_argument("--tables", action="store_true", help="write README + docs/locomotion.md tables and the plot from the JSONs")
    threads.add_argument(p)
    a = p.parse_args(argv)
    if a.seeds < 1 or a.episodes < 1:
        p.error("--seeds and --episodes must be >= 1")
    threads.apply(a.threads)
    if (a.env is None) != (a.dataset is None):
        p.error("give --env and --dataset together")
    if a.env:
        cut = f"_{a.max_steps}steps" if a.max_steps else ""  # cut episodes are another protocol: their own file
        out = a.out or str(RESULTS / f"locomotion_{a.env}_{a.dataset}{cut}.json")
        run(a.env, a.dataset, list(range(a.seeds)), a.episodes, out, families=a.families, ns=a.ns, max_steps=a.max_steps)
    if a.tables:
        write_tables()
    if not a.env and not a.tables:
        p.error("give --env ENV --dataset DATASET and/or --tables")


if __name__ == "__main__":
    sys.exit(main())
