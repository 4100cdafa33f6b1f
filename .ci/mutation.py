"""Mutation testing of one package of tts_fast, on a seeded random sample of its mutants (mutmut 3.8).

    python .ci/mutation.py PACKAGE [--sample N] [--seed S] [--skip K] [--work DIR] [--json FILE]
    python .ci/mutation.py --list

A scratch copy of the checkout (tracked and untracked-not-ignored files, plus the C++ ops built in
place: the mutants run against the compiled ops) gets a ``[tool.mutmut]`` section naming the
package's files and the tests that exercise them; ``mutmut run`` first generates every mutant
and records which tests cover which function (the name "zzz" matches no mutant, so nothing else
runs), then runs the sample. The result: killed / survived / timeout per mutant and the kill rate
with its standard error, sqrt(p (1 - p) / n). Survivors are then read one by one
(``mutmut show NAME`` in the work folder): equivalent ones are listed in docs/testing.md, the
others get a test. Needs ``pip install mutmut==3.8.1`` and the test dependencies; hours of CPU for
a few hundred mutants on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# package -> (files mutated, mutant-name filter (regex on mutmut's names) or None, test files)
PACKAGES = {
    "runs": (["tts_fast/runs/*"], None, ["tests/test_cli_run.py", "tests/test_run_sets.py", "tests/test_run_config.py",
                                         "tests/test_runs_oracle.py", "tests/test_cli_help.py"]),
    "distributed": (["tts_fast/distributed/*"], None, ["tests/test_distributed.py", "tests/test_launchers.py",
                                                       "tests/test_runs_oracle.py", "tests/test_distributed_oracle.py"]),
    "rl": (["tts_fast/rl/*"], None, ["tests/test_rl.py", "tests/test_domain_arguments.py", "tests/test_rl_oracle.py", "tests/test_rl_fast_critic.py",
                                     "tests/test_rl_ranking.py", "tests/test_cli_help.py"]),
    "maze": (["tts_fast/maze/*"], None, ["tests/test_maze.py", "tests/test_domain_arguments.py", "tests/test_maze_oracle.py",
                                         "tests/test_cli_help.py"]),
    "verifiers": (["tts_fast/verifiers/*"], None, ["tests/test_verifiers.py", "tests/test_image_verifiers.py", "tests/test_chunking.py"]),
    "models": (["tts_fast/models/*"], None, ["tests/test_models.py", "tests/test_diffusers_models.py", "tests/test_chunking.py",
                                             "tests/test_edm.py", "tests/test_embeddings.py"]),
    # the tempering step's logic lives in the op's reference (search/tempering.py only re-exports it)
    "tempering": (["tts_fast/_reference.py"], r"adaptive|conditional_ess", ["tests/test_tempering_op.py", "tests/test_self_tuning.py"]),
    "philox": (["tts_fast/_philox.py"], None, ["tests/test_ops.py", "tests/test_ops_api.py", "tests/test_ops_reference.py",
                                               "tests/test_ops_stats.py", "tests/test_op_arguments.py"]),
    "io": (["tts_fast/_io.py"], None, ["tests/test_io.py", "tests/test_cli_run.py", "tests/test_profiling.py"]),
}


def _copy_checkout(work: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    for f in files:
        src = ROOT / f
        if src.is_file():
            dst = work / f
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def _pyproject(work: Path, mutate: list[str], tests: list[str]) -> None:
    text = (work / "pyproject.toml").read_text()
    section = "\n".join([
        "[tool.mutmut]",
        'source_paths = ["tts_fast/"]',
        # tests that read the docs (the CLI reference, the layout table, the test map) need them beside
        'also_copy = ["docs/", "benchmarks/", "README.md", ".ci/"]',
        f"only_mutate = {json.dumps(mutate)}",
        'process_isolation = "forkserver"',
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-x"]',
        f"pytest_add_cli_args_test_selection = {json.dumps([t for t in tests if (work / t).exists()])}",
        "",
    ])
    text = re.sub(r"\[tool\.mutmut\].*?(?=\n\[|\Z)", "", text, flags=re.S).rstrip() + "\n\n" + section
    (work / "pyproject.toml").write_text(text)


def _mutmut(work: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=work, capture_output=True, text=True)


def _statuses(work: Path) -> dict:
    out = _mutmut(work, "results", "--all", "true").stdout
    return {m.group(1): m.group(2) for m in re.finditer(r"(tts_fast\S*mutmut_\d+):\s*(\w+)", out)}


def run(package: str, sample: int, seed: int, work: Path, skip: int = 0) -> dict:
    mutate, name_filter, tests = PACKAGES[package]
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "tts_fast").exists():
        _copy_checkout(work)
        env = dict(os.environ, TTS_FAST_CUDA="0", MAX_JOBS=os.environ.get("MAX_JOBS", "2"))
        subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=work, env=env, check=True,
                       capture_output=True)
    _pyproject(work, mutate, tests)
    stats = _mutmut(work, "run", "zzz")  # generate the mutants and the per-test coverage; runs none of them
    if "failed to collect stats" in stats.stdout + stats.stderr:
        # the selected tests fail on the unmutated copy: every mutant would stay "not checked", counted as a survivor
        raise SystemExit(f"mutmut could not run the tests of {package} on the unmutated copy in {work} (failed to collect "
                         f"stats); run them there to see why: cd {work}/mutants && python -m pytest -x {' '.join(tests)}")
    names = sorted(_statuses(work))
    if name_filter:
        names = [n for n in names if re.search(name_filter, n)]
    random.Random(seed).shuffle(names)
    chosen = names[skip:skip + sample]
    if chosen:
        _mutmut(work, "run", *chosen)
    status = _statuses(work)
    got = {n: status.get(n, "not checked") for n in chosen}
    killed = sum(s in ("killed", "timeout") for s in got.values())
    n = len(got)
    p = killed / n if n else float("nan")
    return dict(package=package, mutants_in_package=len(names), sample=n, seed=seed, skip=skip, killed=killed,
                kill_rate=p, standard_error=math.sqrt(p * (1 - p) / n) if n else float("nan"),
                survivors=sorted(k for k, v in got.items() if v not in ("killed", "timeout")), statuses=got,
                tests=tests)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("package", nargs="?", choices=sorted(PACKAGES))
    p.add_argument("--list", action="store_true", help="the packages and their test files")
    p.add_argument("--sample", type=int, default=60, help="mutants drawn (seeded) from the package's (default 60)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip", type=int, default=0, help="start after this many of the shuffle (a fresh sample B: --skip 60)")
    p.add_argument("--work", default=None, help="work folder (default: a new temporary one; reuse it to rerun)")
    p.add_argument("--json", default=None, help="write the result here")
    a = p.parse_args(argv)
    if a.list:
        for name, (mutate, flt, tests) in PACKAGES.items():
            print(f"{name:12s} {' '.join(mutate)}{' (' + flt + ')' if flt else ''}  <-  {' '.join(tests)}")
        return 0
    if a.package is None:
        p.error("give a PACKAGE (or --list)")
    if a.sample < 1:
        p.error("--sample must be >= 1")
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix=f"tts_mutation_{a.package}_"))
    if a.skip < 0:
        p.error("--skip must be >= 0")
    res = run(a.package, a.sample, a.seed, work, a.skip)
    print(f"{a.package}: {res['killed']} of {res['sample']} killed ({100 * res['kill_rate']:.1f} % +- "
          f"{100 * res['standard_error']:.1f}); {res['mutants_in_package']} mutants in all; work folder {work}")
    for s in res["survivors"]:
        print(f"  survived: {s}")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
