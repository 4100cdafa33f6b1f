"""The classical-search paper's tables on the built-in digits model (tts_fast.zoo).

    python benchmarks/digits.py                       # everything (about 30 min on 2 CPU cores)
    python benchmarks/digits.py --seeds 2 --per-digit 1 --out /tmp/d.json   # a quick look
    python benchmarks/digits.py --tables              # the tables in docs/digits.md and README.md from the JSON

Setting (like the paper's ImageNet experiment, small): an unconditional diffusion model, the
'verifier' classifier as the reward log p(target | x0) for a target digit, and a held-out
'evaluator' classifier (never used by any search) to measure what was achieved. Every search
call holds all ten digits x ``per_digit`` prompt rows; every method gets the same model-NFE
budget per row (N x num_steps); the NFE columns are what the library counted. Methods run with
their presets' settings (tts_fast.search.presets) and local search with the paper's ImageNet
values (rho 0.2, mu 0.4, sigma 0.1, J 4): nothing was tuned on this model.

Tables (each cell: mean +- standard error over seeds; each seed = one search call over all rows):
1. main: methods x N in {2, 4, 8, 16}: BoN, FK, DAS w/o grad, SVDD, SoP, zero-order, BFS-best.
2. ablation: BFS at N = 8: resampling (BoN / multinomial / SSP), scoring (current / difference /
   max), temperature (increase / inf / constant); the other two axes at the best (increase, max, SSP).
3. joint: global only (BFS-best, N particles), local only (1 particle, R = N recurrences),
   global + local (BFS-best with N/2 particles and R = 2), at N x num_steps NFE (gradients from
   the verifier itself).
4. hacking: verifier accuracy vs held-out accuracy at N = 8, with and without dual verifiers.
Plus the sample quality of plain sampling (the evaluator's class histogram) and the classifiers'
accuracy on the 400 real test digits.

Writes benchmarks/results/digits.json atomically.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import torch

import digits_tables
from _common import RESULTS, ROOT, atomic_write_json as write_json, merge_results, write_tables
from tts_fast._user_errors import command  # noqa: E402

import tts_fast
from tts_fast.search import BFS, LocalSearch
from tts_fast.zoo import experiment as ex
from tts_fast.zoo.data import load_split

DEFAULT_OUT = str(RESULTS / "digits.json")
DOC = ROOT / "docs" / "digits.md"

MAIN_METHODS = ("bon", "fk", "das", "svdd", "sop", "zero_order", "bfs_best")
NS = (2, 4, 8, 16)
ABLATION_N = 8
# (axis, label, BFS fields or None for best-of-N)
ABLATION = [
    ("resampling", "BoN (no resampling)", None),
    ("resampling", "multinomial", dict(temperature="increase", scoring="max", resampling="multinomial")),
    ("resampling", "SSP", dict(temperature="increase", scoring="max", resampling="ssp")),
    ("scoring", "current", dict(temperature="increase", scoring="current", resampling="ssp")),
    ("scoring", "difference", dict(temperature="increase", scoring="difference", resampling="ssp")),
    ("scoring", "max", dict(temperature="increase", scoring="max", resampling="ssp")),
    ("temperature", "increase", dict(temperature="increase", scoring="max", resampling="ssp")),
    ("temperature", "inf", dict(temperature="inf", scoring="max", resampling="ssp")),
    ("temperature", "constant", dict(temperature="constant", scoring="max", resampling="ssp")),
]


def _bfs_spec(fields: dict) -> ex.Spec:
    return ex.Spec("BFS " + "/".join(fields.values()), lambda n, s, f=fields: BFS(**f))


def _local_only_spec() -> ex.Spec:
    # One particle, R = N recurrence rounds per level: N x num_steps NFE.
    return ex.Spec("local only", lambda n, s: LocalSearch(local_steps=n, **ex.PAPER_LOCAL), particles=lambda n: 1)


def run_config(zoo, key, spec, n, args, seed, log):
    ex.SPECS.setdefault(key, spec)
    r = ex.run(zoo, key, digits_=list(range(10)), per_digit=args.per_digit, n=n, num_steps=args.steps, seed=seed)
    r.pop("samples")
    r.pop("targets")
    log(f"  {key:28s} N={n:2d} seed={seed} NFE={r['nfe_per_row']:.0f} verifier_acc={r['verifier_acc']:.3f} "
        f"evaluator_acc={r['evaluator_acc']:.3f} ({r['seconds']:.1f}s)")
    return r


def summarise(runs: list[dict]) -> dict:
    out = {}
    for m in ("verifier_acc", "evaluator_acc", "guide_acc", "gap", "verifier_reward", "nfe_per_row", "nfe_grad_per_row", "seconds"):
        mean, se = ex.mean_se([r[m] for r in runs])
        out[m] = mean
        out[m + "_se"] = se
    out["seeds"] = len(runs)
    return out


@command("python benchmarks/digits.py")
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=5, help="number of seeds (0 .. seeds-1)")
    p.add_argument("--per-digit", type=int, default=4, help="prompt rows per digit in each search call")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--quality-samples", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", nargs="+", default=["quality", "main", "ablation", "joint", "hacking"])
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                   help="only merge the tables, runs and quality of these result files (parts run separately) into --out")
    p.add_argument("--tables", action="store_true", help="only rewrite the tables of docs/digits.md and README.md from --out")
    args = p.parse_args(argv)
    if args.merge:
        return merge_results(args.out, args.merge)
    if args.tables:
        return write_tables(args.out, DOC, "digits", digits_tables.available)
    torch.set_num_threads(args.threads)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    t0 = time.perf_counter()
    log = lambda s: print(s, flush=True)  # noqa: E731
    zoo = ex.Zoo("cpu")
    seeds = list(range(args.seeds))
    result = {
        "meta": {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "device": "cpu", "cpu": platform.processor() or platform.machine(), "threads": args.threads,
            "torch": str(torch.__version__), "cuda": torch.version.cuda, "tts_fast": tts_fast.__version__,
            "python": platform.python_version(),
            "settings": {"seeds": seeds, "per_digit": args.per_digit, "rows_per_call": 10 * args.per_digit,
                         "num_steps": args.steps, "digits": list(range(10)), "local": ex.PAPER_LOCAL},
            "command": "python benchmarks/digits.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        },
        "runs": {},
        "tables": {},
    }
    cache: dict = {}

    def get(key, spec, n):
        if (key, n) not in cache:
            cache[(key, n)] = [run_config(zoo, key, spec, n, args, s, log) for s in seeds]
            result["runs"][f"{key}@{n}"] = cache[(key, n)]
        return cache[(key, n)]

    if "quality" in args.only:
        log("sample quality")
        q = ex.sample_quality(zoo, n=args.quality_samples, num_steps=args.steps, seed=0)
        x_te, y_te = load_split("test")
        with torch.no_grad():
            q["classifier_test_accuracy"] = {k: float((net(x_te).argmax(1) == y_te).double().mean()) for k, net in zoo.nets.items()}
            ev = torch.softmax(zoo.nets["evaluator"](x_te), 1)
            q["real_test_evaluator_confident_fraction"] = float((ev.max(1).values > 0.9).double().mean())
            q["real_test_agreement_verifier_evaluator"] = float(
                (zoo.nets["verifier"](x_te).argmax(1) == ev.argmax(1)).double().mean())
        sizes = {}
        from tts_fast.zoo import weights_path, load_checkpoint

        for name in ("unet", "verifier", "guide", "evaluator"):
            path = weights_path(name)
            ck = load_checkpoint(path)
            sizes[name] = {"bytes": os.path.getsize(path), "params": sum(v.numel() for v in ck["state_dict"].values()),
                           "train_seconds": ck["meta"].get("seconds"), "steps": ck["meta"].get("steps")}
        q["weights"] = sizes
        baseline = get("baseline", ex.SPECS["baseline"], 1)
        q["plain_target_accuracy"] = summarise(baseline)
        result["quality"] = q
        log(f"  {q}")

    if "main" in args.only:
        log("table 1: methods x N")
        table = {}
        for key in MAIN_METHODS:
            table[key] = {str(n): summarise(get(key, ex.SPECS[key], n)) for n in NS}
        result["tables"]["main"] = table

    if "ablation" in args.only:
        log(f"table 2: BFS ablation at N = {ABLATION_N}")
        rows = []
        for axis, label, fields in ABLATION:
            if fields is None:
                key, spec = "bon", ex.SPECS["bon"]
            elif fields == dict(temperature="increase", scoring="max", resampling="ssp"):
                key, spec = "bfs_best", ex.SPECS["bfs_best"]  # the same configuration as the preset
            else:
                key = "bfs_" + "_".join(fields.values())
                spec = _bfs_spec(fields)
            rows.append({"axis": axis, "label": label, "key": key, **summarise(get(key, spec, ABLATION_N))})
        result["tables"]["ablation"] = rows

    if "joint" in args.only or "hacking" in args.only:
        log("joint scaling and dual verifiers")
        ex.SPECS.setdefault("local_only", _local_only_spec())
        curves = {}
        for curve, key in (("global only", "bfs_best"), ("local only", "local_only"), ("global + local", "bfs_local")):
            if "joint" not in args.only and key not in ("bfs_best",):
                continue
            curves[curve] = {str(n): summarise(get(key, ex.SPECS[key], n)) for n in NS}
        if "joint" in args.only:
            result["tables"]["joint"] = curves
        if "hacking" in args.only:
            rows = []
            for key in ("bon", "bfs_best", "local", "local_dual", "bfs_local", "bfs_local_dual"):
                rows.append({"key": key, "label": ex.SPECS[key].label, **summarise(get(key, ex.SPECS[key], ABLATION_N))})
            result["tables"]["hacking"] = rows

    result["meta"]["seconds"] = time.perf_counter() - t0
    write_json(args.out, result)
    log(f"wrote {args.out} ({result['meta']['seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
