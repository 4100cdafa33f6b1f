"""CPU threads per process, one against all cores, on an idle machine and on a loaded one, side by side.

    python benchmarks/threads.py [--repeats 2] [--limit 120] [--out benchmarks/results/threads_cpu.json]
    python benchmarks/threads.py --tables          # docs/design.md's table from the stored results

Two commands a CPU user runs, each as its own process (so every run starts with the thread count
it is given): ``tts-fast run`` (digits, 2 prompts, bfs_best, 8 particles, 50 steps) and
``tts-fast profile`` (digits, bfs_best, 8 particles, 50 steps, one timed run). Each runs with
``--threads 1`` (the policy's default, tts_fast/_threads.py) and with ``--threads C``, C = the CPUs
of this process (torch's own default, one thread per core), in two conditions:
- ``idle``: nothing started by this script (other users of a shared machine are what they are:
  the load average before and after each run is recorded);
- ``loaded``: C busy processes started by this script (pure-Python loops, one per CPU), as when
  other jobs run.
Within a repeat the order is condition, command, then 1 and C threads back to back, so that a
change of load hits both alike. Recorded per run: wall seconds, CPU seconds of the process (user +
sys), the load averages; a run longer than ``--limit`` seconds is stopped and recorded as such.
Writes benchmarks/results/threads_cpu.json with the device and versions.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _common import RESULTS, ROOT, environment, markdown_table, measure_then_tables
from tts_fast._user_errors import command  # noqa: E402

DEFAULT_OUT = RESULTS / "threads_cpu.json"
DOC = ROOT / "docs" / "design.md"
COMMANDS = {
    "run": ["run", "--model", "digits", "--prompt", "3", "--prompt", "7", "--method", "bfs_best", "--particles", "8",
            "--steps", "50", "--device", "cpu", "--no-progress"],
    "profile": ["profile", "--model", "digits", "--method", "bfs_best", "--particles", "8", "--steps", "50", "--repeats", "1",
                "--warmup", "0", "--device", "cpu"],
}


def _spin(stop) -> None:
    # a busy process: what another user's job looks like to the scheduler
    x = 0
    while not stop.is_set():
        x += 1


def _once(name: str, threads: int, limit: float) -> dict:
    """One run of command ``name`` with ``--threads threads`` in a fresh process: wall and CPU seconds."""
    argv = COMMANDS[name] + ["--threads", str(threads)]
    with tempfile.TemporaryDirectory() as tmp:
        if name == "run":
            argv += ["--out", os.path.join(tmp, "out")]
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env.pop("OMP_NUM_THREADS", None)
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "tts_fast", *argv], cwd=tmp, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        try:
            out, _ = p.communicate(timeout=limit)
            timed_out = False
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
            timed_out = True
        wall = time.perf_counter() - t0
    if not timed_out and p.returncode != 0:
        raise SystemExit(f"tts-fast {' '.join(argv)} failed ({p.returncode}):\n{out}")
    return {"command": name, "threads": threads, "wall_seconds": wall, "timed_out": timed_out,
            "load_before": load_before, "load_after": os.getloadavg()[0]}


def _cpu_of(fn, *args) -> tuple:
    """fn(*args) and the CPU seconds (user + sys) its child processes used."""
    before = os.times()
    row = fn(*args)
    after = os.times()
    return row, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def measure(repeats: int, limit: float) -> dict:
    cpus = len(os.sched_getaffinity(0))
    counts = sorted({1, cpus})
    rows = []
    ctx = multiprocessing.get_context("spawn")
    for rep in range(repeats):
        for condition in ("idle", "loaded"):
            stop, busy = ctx.Event(), []
            if condition == "loaded":
                busy = [ctx.Process(target=_spin, args=(stop,), daemon=True) for _ in range(cpus)]
                for b in busy:
                    b.start()
                time.sleep(2.0)  # let the load settle in the scheduler (and the load average start to climb)
            try:
                for name in COMMANDS:
                    for threads in counts:
                        row, cpu = _cpu_of(_once, name, threads, limit)
                        row.update(condition=condition, repeat=rep, busy_processes=len(busy), cpu_seconds=cpu)
                        rows.append(row)
                        print(f"{condition:6s} {name:7s} threads {threads}: {row['wall_seconds']:7.1f} s wall, {cpu:6.1f} s CPU"
                              f"{' (stopped at the limit)' if row['timed_out'] else ''}, load {row['load_before']:.1f} -> "
                              f"{row['load_after']:.1f}", flush=True)
            finally:
                stop.set()
                for b in busy:
                    b.join()
    return {"environment": environment("cpu"), "cpus": cpus, "repeats": repeats, "limit_seconds": limit,
            "commands": {k: "tts-fast " + " ".join(v) for k, v in COMMANDS.items()}, "rows": rows}


def _cell(rows) -> str:
    walls = [r["wall_seconds"] for r in rows]
    cpu = statistics.median(r["cpu_seconds"] for r in rows)
    stopped = any(r["timed_out"] for r in rows)
    return f"{'> ' if stopped else ''}{statistics.median(walls):.1f} s ({cpu:.1f} s CPU)"


def table(results) -> str:
    rows = results["rows"]
    cpus = results["cpus"]
    counts = sorted({r["threads"] for r in rows})
    out = []
    for condition in ("idle", "loaded"):
        for name in results["commands"]:
            group = {t: [r for r in rows if r["condition"] == condition and r["command"] == name and r["threads"] == t] for t in counts}
            ratio = statistics.median(r["wall_seconds"] for r in group[counts[-1]]) / statistics.median(r["wall_seconds"] for r in group[1])
            loads = [r["load_before"] for t in counts for r in group[t]]
            label = "as found (no load added)" if condition == "idle" else f"{cpus} busy processes added"
            out.append([label, f"tts-fast {name}", *(_cell(group[t]) for t in counts), f"{ratio:.1f}x",
                        f"{min(loads):.1f}-{max(loads):.1f}"])
    headers = ["machine", "command", *(f"--threads {t}" + (" (torch's default)" if t == cpus and t > 1 else " (the default)") for t in counts),
               f"{counts[-1]} threads / 1 thread, wall", "load average before the runs"]
    env = results["environment"]
    note = (f"Median wall seconds (CPU seconds, user + sys) of {results['repeats']} runs each on a {cpus}-CPU "
            f"{env['device_name']} machine, torch {env['torch']}, each command in its own process. The machine is shared: the "
            "load average before the runs says what else ran (a load of 2 or more on 2 CPUs: no CPU was idle even 'as found'). "
            "`python benchmarks/threads.py`.")
    return markdown_table(headers, out) + "\n\n" + note


@command("python benchmarks/threads.py")
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=2, help="runs of each command, thread count and condition (default 2)")
    p.add_argument("--limit", type=float, default=120.0, help="seconds after which a run is stopped and recorded as such (default 120)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="results JSON (default benchmarks/results/threads_cpu.json)")
    p.add_argument("--tables", action="store_true", help="only rewrite docs/design.md's table from --out")
    a = p.parse_args(argv)
    if a.repeats < 1 or a.limit <= 0:
        p.error("--repeats must be >= 1 and --limit > 0")
    measure_then_tables(a.out, a.tables, lambda: measure(a.repeats, a.limit), DOC, "threads", [("cpu", table)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
