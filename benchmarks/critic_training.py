"""IQL critic training speed: the reference loop against the batched trainer, side by side in one run.

    python benchmarks/critic_training.py [--rounds 3] [--steps 300] [--threads 1 2] [--out benchmarks/results/critic_training_cpu.json]
    python benchmarks/critic_training.py --tables   # docs/locomotion.md's table from the stored results

Data: 200,000 seeded random transitions of HalfCheetah's shape (17-d states, 6-d actions); the
speed of a step does not depend on the values. The networks are the shipped critics' (twin Q and
V, 256 x 2). Variants, each a fresh training run of ``--steps`` steps:
- ``reference``: tts_fast.rl.train.train_critic, one network at a time (how the shipped critics
  were trained), batch 256;
- ``fast``: tts_fast.rl.fast_critic.train_critic_fast, the same weights (tests/test_rl_fast_critic.py),
  batch 256, Mish;
- ``fast, relu``: the same with ReLU MLPs (IQL's own choice), batch 256;
- ``fast, relu, batch 1024``: transitions per second at a larger batch.
Rounds interleave the variants (a change of load hits all alike); per variant the median of the
rounds' steps per second is reported, with the ratio to the reference's median at the same thread
count. Also recorded: the arithmetic per step (multiply-adds of every matmul) and the rate of one
float32 matmul of the hidden layer's shape, which bound the steps per second any trainer reaches.
Writes benchmarks/results/critic_training_cpu.json with the device, versions and load averages.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

from _common import RESULTS, ROOT, environment, markdown_table, measure_then_tables
from tts_fast._user_errors import command  # noqa: E402
from tts_fast.rl.datasets import Transitions  # noqa: E402
from tts_fast.rl.fast_critic import train_critic_fast  # noqa: E402
from tts_fast.rl.train import train_critic  # noqa: E402

DEFAULT_OUT = RESULTS / "critic_training_cpu.json"
DOC = ROOT / "docs" / "locomotion.md"
OBS, ACT, WIDTH = 17, 6, 256
VARIANTS = (("reference", dict(batch=256)), ("fast", dict(batch=256)), ("fast, relu", dict(batch=256, activation="relu")),
            ("fast, relu, batch 1024", dict(batch=1024, activation="relu")))
SETTINGS = dict(lr=3e-4, gamma=0.99, tau=0.7, polyak=0.005, seed=0)


def _data(n: int = 200_000) -> Transitions:
    rng = np.random.default_rng(0)
    o = rng.normal(size=(n, OBS)).astype(np.float32)
    return Transitions(observations=o, actions=rng.uniform(-1, 1, (n, ACT)).astype(np.float32), rewards=rng.normal(size=n).astype(np.float32),
                       next_observations=(o + 0.1).astype(np.float32), terminals=(rng.uniform(size=n) < 0.01).astype(np.float32),
                       episode_returns=np.zeros(1))


def macs_per_transition() -> int:
    """Multiply-adds of one IQL step per transition: target twins forward; V forward + backward; V(s')
    forward; twins forward + backward (a backward costs two forwards: input and weight gradients)."""
    q = (OBS + ACT) * WIDTH + WIDTH * WIDTH + WIDTH
    v = OBS * WIDTH + WIDTH * WIDTH + WIDTH
    return 2 * q + 3 * v + v + 3 * 2 * q


def gemm_gflops(batch: int = 256, repeats: int = 300) -> float:
    """float32 GFLOP/s of [batch, 256] @ [256, 256], the hidden layer's matmul, on this thread count."""
    a, w = torch.randn(batch, WIDTH), torch.randn(WIDTH, WIDTH)
    for _ in range(20):
        a @ w
    t = time.perf_counter()
    for _ in range(repeats):
        a @ w
    return 2 * batch * WIDTH * WIDTH * repeats / (time.perf_counter() - t) / 1e9


def _run(name: str, opts: dict, tr, steps: int) -> float:
    opts = dict(opts)
    batch = opts.pop("batch")
    t = time.perf_counter()
    if name == "reference":
        train_critic(tr, steps, batch=batch, log=lambda *a: None, **SETTINGS)
    else:
        train_critic_fast(tr, steps, batch=batch, log=lambda *a: None, **SETTINGS, **opts)
    return steps / (time.perf_counter() - t)


def measure(rounds: int, steps: int, thread_counts: list) -> dict:
    tr = _data()
    rows = []
    for threads in thread_counts:
        torch.set_num_threads(threads)
        gflops = [gemm_gflops()]
        for r in range(rounds):
            for name, opts in VARIANTS:
                load = os.getloadavg()[0]
                sps = _run(name, opts, tr, steps if opts["batch"] == 256 else max(1, steps // 4))
                rows.append({"threads": threads, "round": r, "variant": name, "batch": opts["batch"], "steps_per_second": sps,
                             "load_before": load})
                print(f"threads {threads} round {r} {name:24s} {sps:7.1f} steps/s ({sps * opts['batch']:,.0f} transitions/s), load {load:.1f}",
                      flush=True)
            gflops.append(gemm_gflops())
        rows.append({"threads": threads, "gemm_gflops": statistics.median(gflops)})
    return {"environment": environment("cpu"), "cpus": len(os.sched_getaffinity(0)), "rounds": rounds, "steps": steps,
            "macs_per_transition": macs_per_transition(), "rows": rows,
            "command": f"python benchmarks/critic_training.py --rounds {rounds} --steps {steps} --threads {' '.join(map(str, thread_counts))}"}


def table(results) -> str:
    out = []
    macs = results["macs_per_transition"]
    for threads in sorted({r["threads"] for r in results["rows"]}):
        runs = [r for r in results["rows"] if r["threads"] == threads and "variant" in r]
        gflops = next(r["gemm_gflops"] for r in results["rows"] if r["threads"] == threads and "gemm_gflops" in r)
        ref = statistics.median(r["steps_per_second"] for r in runs if r["variant"] == "reference")
        for name, opts in VARIANTS:
            sps = statistics.median(r["steps_per_second"] for r in runs if r["variant"] == name)
            loads = [r["load_before"] for r in runs if r["variant"] == name]
            ceiling = gflops * 1e9 / (2 * macs * opts["batch"])
            out.append([str(threads), name, str(opts["batch"]), f"{sps:.1f}", f"{sps * opts['batch']:,.0f}", f"{sps * opts['batch'] / (ref * 256):.2f}x",
                        f"{sps / ceiling:.0%}", f"{min(loads):.1f}-{max(loads):.1f}"])
    env = results["environment"]
    note = (f"Median of {results['rounds']} interleaved rounds of {results['steps']} steps (batch 1024: a quarter as many) on a "
            f"{results['cpus']}-CPU {env['device_name']} machine (torch {env['torch']}, commit {env['git_commit']}); ratio = transitions/s "
            f"over the reference loop's at the same thread count (at batch 256: steps/s over its steps/s). One step costs {results['macs_per_transition']:,} multiply-adds per "
            "transition in matmuls; 'of the matmul bound' = steps/s over the rate a float32 matmul of the hidden layer's shape, "
            "measured in the same run, allows for that arithmetic. The machine is shared: the 1-minute load average before the "
            f"runs is in the last column. `{results['command']}`.")
    return markdown_table(["threads", "trainer", "batch", "steps/s", "transitions/s", "vs reference", "of the matmul bound",
                           "load before"], out) + "\n\n" + note


@command("python benchmarks/critic_training.py")
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every variant (default 3)")
    p.add_argument("--steps", type=int, default=300, help="training steps per run at batch 256 (default 300)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="CPU thread counts to measure (default 1 2)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="results JSON (default benchmarks/results/critic_training_cpu.json)")
    p.add_argument("--tables", action="store_true", help="only rewrite docs/locomotion.md's table from --out")
    a = p.parse_args(argv)
    if a.rounds < 1 or a.steps < 4 or min(a.threads) < 1:
        p.error("--rounds and --threads must be >= 1 and --steps >= 4")
    measure_then_tables(a.out, a.tables, lambda: measure(a.rounds, a.steps, a.threads), DOC, "locomotion", [("critic_speed", table)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
