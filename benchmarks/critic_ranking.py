"""Does the critic rank a state's candidate actions as their returns do? The shipped critics, and critics over training.

    python benchmarks/critic_ranking.py --env halfcheetah --dataset medium                  # the shipped critic
    python benchmarks/critic_ranking.py --env halfcheetah --dataset medium --data ~/rl_data/minari \\
        --recipes mish relu --steps 100000 --every 10000                                    # + critics trained here, over training
    python benchmarks/critic_ranking.py --tables                                            # docs/locomotion.md's table

The measure is tts_fast.rl.ranking (its docstring: states from episodes of the shipped policy,
``--candidates`` policy actions per state, ``--continuations`` rollouts after each with common noise
across the candidates, the discounted return read at each of ``--horizons``). The states, candidates and returns are computed once
per dataset; every critic is then scored on the same ones (Q of the candidates only), the shipped
one and each recipe's at every ``--every`` steps of its training (the fast trainer, batch 256,
the shipped settings otherwise). Recipes: ``mish`` (the shipped critic's recipe, trained longer),
``relu`` (ReLU MLPs), ``relu-tau0.9`` (ReLU, expectile 0.9). Writes
benchmarks/results/critic_ranking_{env}_{dataset}.json with device, versions, settings and the
dataset fingerprint.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import time

import numpy as np

from _common import RESULTS, ROOT, atomic_write_json, environment, markdown_table, refresh_tables
from tts_fast import _threads as threads  # noqa: E402
from tts_fast._user_errors import command  # noqa: E402
from tts_fast.rl import envs as rl_envs  # noqa: E402
from tts_fast.rl import ranking  # noqa: E402

DOC = ROOT / "docs" / "locomotion.md"
RECIPES = {"mish": dict(activation="mish"), "relu": dict(activation="relu"), "relu-tau0.9": dict(activation="relu", tau=0.9)}
FIGURES = ("spearman", "pairwise", "selection_gain", "oracle_gain", "reliability")
CHOOSE_AT = 10  # the horizon whose Spearman picks a recipe's best step (reliable, and more than one step's reward)


def _figures(out: dict) -> dict:
    """{horizon (str): the figures at it} and 'size': Q's rank correlation with |a|, JSON-ready."""
    keep = [*FIGURES, *(f + "_se" for f in FIGURES), "ties", "mean_return", "gamma_horizon"]
    by = {str(h): {k: f[k] for k in keep if k in f} for h, f in out["by_horizon"].items()}
    return {**by, "size": {"spearman": out["q_vs_action_size"], "spearman_se": out["q_vs_action_size_se"]}}


def run(a) -> dict:
    from tts_fast.rl.weights import load_checkpoint, load_critic, load_policy

    env, ds = a.env, a.dataset
    obs_dim = rl_envs.task(env).obs_dim
    policy = load_policy(env, ds, np.zeros((1, obs_dim), np.float32))
    t0 = time.perf_counter()
    first = ranking.ranking_measure(env, policy, load_critic(env, ds), states=a.states, candidates=a.candidates,
                                    continuations=a.continuations, horizons=a.horizons, seed=a.seed)
    data = first.pop("data")
    print(f"{env}-{ds}: states, candidates and returns in {time.perf_counter() - t0:.0f} s; shipped critic: "
          + "; ".join(f"h={h}: spearman {f['spearman']:.3f} ± {f['spearman_se']:.3f} (reliability {f['reliability']:.2f})"
                      for h, f in first["by_horizon"].items()), flush=True)
    res = {"environment": environment("cpu"), "env": env, "dataset": ds,
           "settings": {k: getattr(a, k) for k in ("states", "candidates", "continuations", "horizons", "seed")},
           "measure_seconds": time.perf_counter() - t0, "shipped": _figures(first), "episode_steps": [int(s["step"]) for s in data["snaps"]],
           "shipped_training": load_checkpoint(env, ds)["meta"]["critic_training"].get("steps"), "recipes": {},
           "command": " ".join(["python benchmarks/critic_ranking.py", *sys.argv[1:]])}
    if a.recipes:
        from tts_fast.rl.datasets import fingerprint, load, transitions
        from tts_fast.rl.fast_critic import train_critic_fast
        from tts_fast.rl.train import CRITIC, DEFAULTS

        d = load(env, ds, path=a.data)
        tr = transitions(d)
        res["dataset_fingerprint"] = fingerprint(d)
        for name in a.recipes:
            opts = {k: DEFAULTS[k] for k in ("batch", "lr", "gamma", "tau", "polyak", "seed")}
            opts.update({k: v for k, v in RECIPES[name].items() if k != "activation"})

            def score(step, critic, name=name):
                f = _figures(ranking.ranking_measure(env, policy, critic, snaps=data["snaps"], candidate_actions=data["candidate_actions"],
                                                     returns=data["returns"], horizons=a.horizons))
                print(f"  {name} step {step}: " + "; ".join(f"h={h}: spearman {v['spearman']:.3f} ± {v['spearman_se']:.3f}"
                                                          for h, v in f.items() if h != "size"), flush=True)
                return {"ranking": f}

            _, log = train_critic_fast(tr, a.steps, log=lambda *x: None, log_every=a.every, callback=score,
                                       activation=RECIPES[name]["activation"], **CRITIC, **opts)
            res["recipes"][name] = {"settings": {**opts, **RECIPES[name]}, "curve": log["losses"],
                                    "seconds": log["seconds"], "steps_per_second": log["steps_per_second"]}
            atomic_write_json(a.out, res)  # a long run keeps what it has
    atomic_write_json(a.out, res)
    print(f"wrote {a.out}")
    return res


def _cell(f: dict, key: str, digits: int = 3) -> str:
    return f"{f[key]:.{digits}f} ± {f[key + '_se']:.{digits}f}"


def table(results: list) -> str:
    out = []
    for r in results:
        name = f"{r['env']}-{r['dataset']}"
        rows = [("shipped", r["shipped_training"], r["shipped"])]
        for rec, v in r["recipes"].items():
            key = str(CHOOSE_AT) if str(CHOOSE_AT) in v["curve"][-1]["ranking"] else str(max(int(h) for h in v["curve"][-1]["ranking"]
                                                                                                   if h != "size"))
            best = max(v["curve"], key=lambda p: p["ranking"][key]["spearman"])
            last = v["curve"][-1]
            rows.append((f"{rec}, last", last["step"], last["ranking"]))
            if best is not last:
                rows.append((f"{rec}, best at h = {key}", best["step"], best["ranking"]))
        for label, steps, by in rows:
            size = _cell(by["size"], "spearman") if "size" in by else "—"
            for h, f in sorted(((h, f) for h, f in by.items() if h != "size"), key=lambda kv: int(kv[0])):
                out.append([name, label, f"{steps:,}" if steps else "?", h, _cell(f, "spearman"), _cell(f, "pairwise"),
                            _cell(f, "selection_gain", 2), _cell(f, "oracle_gain", 2), _cell(f, "reliability"), size])
    s = results[0]["settings"]
    note = (f"{s['states']} states × {s['candidates']} candidates × {s['continuations']} continuations, the discounted return "
            f"(γ = 0.99, no bootstrap) read at each horizon h; seed {s['seed']}; mean ± s.e. over states. Spearman and pairwise: how Q "
            "orders a state's candidates against their returns (0 and 0.5: no signal); selection gain: return of Q's favourite minus "
            "the candidates' mean (what best-of-N by Q gains), oracle gain: the same for the truly best candidate (both in return "
            "units over h steps); reliability: rank correlation of the returns from the even and odd continuations (the ceiling the "
            "measure sees at h); Q vs action size: rank correlation of Q with the candidates' size within a state (— : not recorded). "
            "`python benchmarks/critic_ranking.py`.")
    return note + "\n\n" + markdown_table(["dataset", "critic", "training steps", "h", "Spearman", "pairwise", "selection gain",
                                          "oracle gain", "reliability", "Q vs action size"], out)


def write_tables():
    paths = sorted(glob.glob(str(RESULTS / "critic_ranking_*.json")))
    if not paths:
        raise SystemExit("no benchmarks/results/critic_ranking_*.json: run python benchmarks/critic_ranking.py --env ... first")
    refresh_tables(DOC, "locomotion", [("ranking", table)], [json.load(open(p)) for p in paths])
    print(f"wrote the ranking table of {DOC}")


@command("python benchmarks/critic_ranking.py")
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", choices=sorted(rl_envs.TASKS))
    p.add_argument("--dataset", choices=rl_envs.DATASETS)
    p.add_argument("--data", default=None, metavar="DIR", help="the local Minari data folder (needed with --recipes)")
    p.add_argument("--recipes", nargs="*", default=[], choices=sorted(RECIPES), help="critics to train and score over training")
    p.add_argument("--steps", type=int, default=100_000, help="training steps of each recipe (default 100000)")
    p.add_argument("--every", type=int, default=10_000, help="steps between scores (default 10000)")
    p.add_argument("--states", type=int, default=32)
    p.add_argument("--candidates", type=int, default=8)
    p.add_argument("--continuations", type=int, default=16)
    p.add_argument("--horizons", type=int, nargs="+", default=[1, 3, 10, 30], help="horizons of the returns (default 1 3 10 30)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    p.add_argument("--tables", action="store_true")
    threads.add_argument(p)
    a = p.parse_args(argv)
    threads.apply(a.threads)
    if (a.env is None) != (a.dataset is None):
        p.error("give --env and --dataset together")
    if a.recipes and not a.data:
        p.error("--recipes trains critics: give --data (the local Minari data folder)")
    if min(a.steps, a.every, a.states, a.continuations) < 1 or a.candidates < 2:
        p.error("--steps, --every, --states and --continuations must be >= 1, --candidates >= 2")
    if sorted(set(a.horizons)) != a.horizons or a.horizons[0] < 1:
        p.error("--horizons must be increasing integers >= 1")
    if a.env:
        a.out = a.out or str(RESULTS / f"critic_ranking_{a.env}_{a.dataset}.json")
        run(a)
    if a.tables:
        write_tables()
    if not a.env and not a.tables:
        p.error("give --env ENV --dataset DATASET and/or --tables")
    return 0


if __name__ == "__main__":
    sys.exit(main())
