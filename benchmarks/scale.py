"""Prompts per second against the number of torchrun ranks, measured side by side in one run.

    python benchmarks/scale.py [--ranks 1 2] [--prompts 40] [--repeats 2] [--particles 4] [--steps 50]

Each repeat launches ``torchrun --standalone --nproc-per-node k -m tts_fast run --model digits``
for every k (alternating, so that a change of machine load hits every k alike) over the same
prompt set into a fresh folder, one CPU thread per rank, and records two rates:
- ``in_run``: prompts / wall seconds inside the run (rank 0's clock, from the first record check
  to the gathered counts: model loads included, interpreter and process-group start excluded),
  as ``tts-fast run`` reports it;
- ``end_to_end``: prompts / seconds of the whole command (torchrun, Python and torch imports
  included), what a user waits for.
It also checks that every k wrote the same records (minus their "run" fields) and PNGs.
Writes benchmarks/results/scale_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS, ROOT, atomic_write_json, environment, mean_se
from tts_fast._user_errors import command  # noqa: E402

from tts_fast.runs import comparable


def _launch(k: int, prompts: str, out: str, args) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={k}", "-m", "tts_fast", "run",
           "--model", "digits", "--method", args.method, "--particles", str(args.particles), "--steps", str(args.steps),
           "--threads", "1", "--device", args.device, "--no-progress", "--prompts-file", prompts, "--out", out]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    seconds = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"torchrun with {k} rank(s) failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    run = json.loads((Path(out) / "summary.json").read_text())["this_run"]
    return {"ranks": k, "end_to_end_seconds": seconds, "end_to_end_prompts_per_second": args.prompts / seconds,
            "in_run_seconds": run["wall_seconds"], "in_run_prompts_per_second": run["prompts_per_second"],
            "nfe_per_second": run["nfe_per_second"], "per_rank": run["ranks"]}


def _same(a: str, b: str, n: int) -> bool:
    for i in range(n):
        ra, rb = (json.loads((Path(d) / f"{i:05d}.json").read_text()) for d in (a, b))
        if comparable(ra) != comparable(rb) or (Path(a) / f"{i:05d}.png").read_bytes() != (Path(b) / f"{i:05d}.png").read_bytes():
            return False
    return True


@command("python benchmarks/scale.py")
def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--prompts", type=int, default=40)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--particles", type=int, default=4)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--method", default="bfs_best")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        prompts = os.path.join(tmp, "digits.txt")
        Path(prompts).write_text("".join(f"{i % 10}\n" for i in range(args.prompts)))
        first = {}
        for rep in range(args.repeats):
            for k in args.ranks:
                out = os.path.join(tmp, f"r{rep}_k{k}")
                r = _launch(k, prompts, out, args)
                r["repeat"] = rep
                first.setdefault(k, out)
                r["same_records_as_first_k"] = _same(first[args.ranks[0]], out, args.prompts)
                runs.append(r)
                print(f"repeat {rep}, {k} rank(s): {r['in_run_prompts_per_second']:.2f} prompts/s in the run, "
                      f"{r['end_to_end_prompts_per_second']:.2f} end to end, same records: {r['same_records_as_first_k']}", flush=True)
    summary = {}
    for k in args.ranks:
        rs = [r for r in runs if r["ranks"] == k]
        m, se = mean_se([r["in_run_prompts_per_second"] for r in rs])
        e, ese = mean_se([r["end_to_end_prompts_per_second"] for r in rs])
        summary[str(k)] = {"in_run_prompts_per_second": m, "in_run_se": se, "end_to_end_prompts_per_second": e, "end_to_end_se": ese}
    base = summary[str(args.ranks[0])]
    for k in args.ranks:
        s = summary[str(k)]
        s["speedup_in_run"] = s["in_run_prompts_per_second"] / base["in_run_prompts_per_second"]
        s["speedup_end_to_end"] = s["end_to_end_prompts_per_second"] / base["end_to_end_prompts_per_second"]
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    result = {"benchmark": "scale", "environment": environment(args.device), "load_average_at_end": load,
              "settings": {"model": "digits", "method": args.method, "prompts": args.prompts, "particles": args.particles,
                           "steps": args.steps, "threads_per_rank": 1, "repeats": args.repeats, "ranks": args.ranks},
              "summary": summary, "runs": runs}
    path = RESULTS / f"scale_{args.device}.json"
    atomic_write_json(path, result)
    for k in args.ranks:
        s = summary[str(k)]
        print(f"{k} rank(s): {s['in_run_prompts_per_second']:.2f} prompts/s in the run (x{s['speedup_in_run']:.2f}), "
              f"{s['end_to_end_prompts_per_second']:.2f} end to end (x{s['speedup_end_to_end']:.2f})")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
