"""What `tts-fast demo` shows and how long it takes, in one process and in two, measured side by side (docs/demo.md).

    python benchmarks/demo.py [--repeats 2] [--workers 1 2] [--out benchmarks/results/demo_cpu.json]
    python benchmarks/demo.py --tables            # docs/demo.md's and README's tables from the stored results

Each repeat runs the default demo (the real-MNIST model and its judge; 10 digits x 3 samples, the
default methods, budgets N = 2, 4, 8, 10 steps) once per ``--workers`` value, back to back, each as
its own command (``python -m tts_fast demo --workers W --no-progress``, one thread per process),
and records the wall seconds a user waits (Python and torch imports included), the CPU seconds of
the command and its workers (user + sys), and the load average before and after. It checks that
every run printed the same table (all columns but seconds): where a search runs does not change
what the demo shows. It keeps that table (the demo's summary rows) and the first run's two figures
(benchmarks/results/demo_samples.png, demo_accuracy_vs_nfe.png). Writes
benchmarks/results/demo_cpu.json with the device and versions.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from _common import RESULTS, ROOT, environment, markdown_table, measure_then_tables
from tts_fast._user_errors import command  # noqa: E402

DEFAULT_OUT = RESULTS / "demo_cpu.json"
DOC = ROOT / "docs" / "demo.md"
FIGURES = ("samples.png", "accuracy_vs_nfe.png")  # kept as benchmarks/results/demo_<name>


def _table_of(out_dir: str) -> list:
    """The demo's summary rows without their seconds: what the demo shows."""
    with open(os.path.join(out_dir, "results.json"), encoding="utf-8") as f:
        res = json.load(f)
    return [{k: v for k, v in r.items() if k not in ("seconds", "seconds_se")} for r in res["summary"]]


def _settings_of(out_dir: str) -> dict:
    with open(os.path.join(out_dir, "results.json"), encoding="utf-8") as f:
        return json.load(f)["settings"]


def _once(workers: int, keep_figures: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env.pop("OMP_NUM_THREADS", None)
        load_before = os.getloadavg()
        cpu0 = os.times()
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "tts_fast", "demo", "--workers", str(workers), "--no-progress", "--out", tmp],
                           cwd=tmp, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        cpu1 = os.times()
        if p.returncode != 0:
            raise SystemExit(f"tts-fast demo --workers {workers} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        inside = float(re.search(r"results\.json \(([\d.]+)s\)", p.stdout).group(1))
        if keep_figures:
            for name in FIGURES:
                shutil.copyfile(os.path.join(tmp, name), RESULTS / f"demo_{name}")
        return {"workers": workers, "wall_seconds": wall, "demo_seconds": inside,
                "cpu_seconds": (cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system),
                "load_before": list(load_before), "load_after": list(os.getloadavg()), "table": _table_of(tmp),
                "settings": _settings_of(tmp)}


def measure(repeats: int, workers: list) -> dict:
    rows = []
    for rep in range(repeats):
        for w in workers:
            row = dict(_once(w, keep_figures=not rows), repeat=rep)
            rows.append(row)
            print(f"workers {w}: {row['wall_seconds']:.1f} s wall ({row['demo_seconds']:.1f} s in the demo), {row['cpu_seconds']:.1f} s CPU, "
                  f"load {row['load_before'][0]:.1f} -> {row['load_after'][0]:.1f}", flush=True)
    same = all(r["table"] == rows[0]["table"] for r in rows)
    if not same:
        raise SystemExit("the demo's table differed between runs: where a search runs must not change what it shows")
    summary, settings = rows[0]["table"], rows[0]["settings"]
    for r in rows:
        del r["table"], r["settings"]
    return {"environment": environment("cpu"), "cpus": len(os.sched_getaffinity(0)), "repeats": repeats,
            "command": "python -m tts_fast demo --workers W --no-progress", "same_table": same, "rows": rows,
            "settings": {k: v for k, v in settings.items() if k not in ("threads",)}, "summary": summary}


def shown(results) -> str:
    """The demo's table as it printed it (mean ± s.e. over the samples), as markdown."""
    st = results["settings"]
    out = []
    for r in results["summary"]:
        out.append([r["label"], str(r["n"]), f"{r['nfe_per_row']:.0f}", f"{r['nfe_grad_per_row']:.0f}",
                    f"{r['verifier_acc']:.2f} ± {r['verifier_acc_se']:.2f}", f"{r['judge_acc']:.2f} ± {r['judge_acc_se']:.2f}",
                    f"{r['gap']:.2f} ± {r['gap_se']:.2f}"])
    env = results["environment"]
    note = (f"`tts-fast demo` with its defaults: model {st['model']}, digits 0-9 x {st['per_digit']} samples = "
            f"{len(st['digits']) * st['per_digit']} samples per cell, {st['steps']} steps, seed {', '.join(map(str, st['seeds']))}; "
            f"mean ± one standard error over the samples; the judge: {st['judge']}. Gap = verifier − judge accuracy per sample "
            f"(> 0: the search fooled its verifier). Torch {env['torch']}, commit {env['git_commit']}; `python benchmarks/demo.py`.")
    return note + "\n\n" + markdown_table(["method", "N", "model NFE", "grad NFE", "verifier accuracy", "judge accuracy", "gap"], out)


def table(results) -> str:
    out = []
    for w in sorted({r["workers"] for r in results["rows"]}):
        rs = [r for r in results["rows"] if r["workers"] == w]
        loads = [r["load_before"][0] for r in rs]
        out.append([str(w), f"{statistics.median(r['wall_seconds'] for r in rs):.1f} s",
                    f"{statistics.median(r['demo_seconds'] for r in rs):.1f} s", f"{statistics.median(r['cpu_seconds'] for r in rs):.1f} s",
                    f"{min(loads):.1f}-{max(loads):.1f}"])
    env = results["environment"]
    note = (f"Median of {results['repeats']} runs each, back to back, on a {results['cpus']}-CPU {env['device_name']} machine "
            f"(torch {env['torch']}, commit {env['git_commit']}); wall = what a user waits (imports included), CPU = user + sys "
            "of the command and its workers. The machine is shared: the 1-minute load average before each run says how idle it was "
            "(on a {cpus}-CPU machine, a load of {cpus} or more means no CPU was free). Every run printed the same table. "
            "`python benchmarks/demo.py`.").replace("{cpus}", str(results["cpus"]))
    return markdown_table(["--workers", "wall", "inside the demo", "CPU", "load average before"], out) + "\n\n" + note


@command("python benchmarks/demo.py")
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=2, help="runs of each --workers value (default 2)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="--workers values of the demo to compare (default 1 2)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="results JSON (default benchmarks/results/demo_cpu.json)")
    p.add_argument("--tables", action="store_true", help="only rewrite docs/demo.md's (and README's) tables from --out")
    a = p.parse_args(argv)
    if a.repeats < 1 or min(a.workers) < 1:
        p.error("--repeats and --workers must be >= 1")
    measure_then_tables(a.out, a.tables, lambda: measure(a.repeats, a.workers), DOC, "demo", [("time", table), ("table", shown)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
