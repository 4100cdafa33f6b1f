"""The report of .ci/gpu_check.sh: OUT_DIR/gpu_check.json, rewritten after every step.

    python .ci/gpu_check_report.py env  --out OUT_DIR [--smoke]       # device, driver, versions (imports torch)
    python .ci/gpu_check_report.py step --out OUT_DIR --name NAME --rc RC --seconds S --limit L
                                        [--status ok|failed|timeout|skipped] [--note TEXT] [--log FILE]
    python .ci/gpu_check_report.py final --out OUT_DIR                # summary lines on stdout

Every call after ``env`` reads the JSON written so far, adds to it and replaces it atomically, so a
run cut at its limit still leaves a valid report of what it measured. Besides the steps (rc, wall
seconds, limit, status), the report holds every test outcome (OUT_DIR/tests.xml, pytest's JUnit
XML; or the pytest log when the XML was never written), the compute-sanitizer verdict, the
versions of the packages that matter, and headline numbers of the benchmark JSON files in OUT_DIR.
Only the standard library is used (and torch in ``env``).
"""

from __future__ import annotations

import argparse
import datetime
import glob
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

REPORT = "gpu_check.json"
PACKAGES = ("torch", "diffusers", "transformers", "huggingface_hub", "tokenizers", "safetensors", "accelerate", "numpy",
            "setuptools", "ninja", "pytest", "hypothesis", "tts_fast")


# ----------------------------------------------------------------------------------------------
# parsing (pure functions: tests/test_gpu_check_script.py runs them on small samples)


def parse_junit(text: str) -> dict:
    """pytest JUnit XML -> {"counts": {outcome: n}, "tests": [{id, outcome, seconds, message}]}.

    outcome: passed, failed, error, skipped. A test that failed and then errored in teardown
    appears once per testcase element, as pytest writes it; the nameless element pytest leaves
    for a test interrupted by Ctrl-C (a step cut at its limit) is dropped.
    """
    root = ET.fromstring(text)
    tests = []
    for case in root.iter("testcase"):
        if not case.get("name"):
            continue
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                message = (child.get("message") or child.text or "").strip()
                break
        name = case.get("name", "")
        classname = case.get("classname", "")
        tests.append(dict(id=f"{classname}::{name}" if classname else name, outcome=outcome,
                          seconds=round(float(case.get("time", 0) or 0), 3), message=message[:500]))
    return dict(counts=_counts(tests), tests=tests)


_PYTEST_LINE = re.compile(r"^(?P<id>\S+\.py::.+?) (?P<outcome>PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\b")


def parse_pytest_log(text: str) -> dict:
    """pytest -v output -> the same shape as parse_junit (for a run killed before it wrote its XML)."""
    tests, seen = [], set()
    for line in text.splitlines():
        m = _PYTEST_LINE.match(line.strip())
        if m and m.group("id") not in seen:
            seen.add(m.group("id"))
            tests.append(dict(id=m.group("id"), outcome=m.group("outcome").lower(), seconds=None, message=""))
    return dict(counts=_counts(tests), tests=tests, source="pytest log (no JUnit XML)")


def _counts(tests) -> dict:
    counts = {}
    for t in tests:
        counts[t["outcome"]] = counts.get(t["outcome"], 0) + 1
    return counts


_REFUSALS = ("Device not supported", "device not supported", "unknown error", "error 999", "Unable to find injection library",
             "Target application terminated before first instrumented API call", "is not supported on this")


def parse_sanitizer_log(text: str, rc) -> dict:
    """compute-sanitizer (memcheck) output -> {"verdict", "errors", "detail", "rc"}.

    verdict: 'clean' (ERROR SUMMARY: 0 errors), 'errors' (memory errors reported; also from a run
    cut before its summary), 'refused' (the tool could not instrument the device: some runtimes
    refuse it, e.g. "Device not supported" then error 999), 'incomplete' (cut at its limit before
    any summary or error).
    """
    lines = [ln for ln in text.splitlines() if ln.startswith("=========")]
    detail = "\n".join(lines[:40])
    summaries = re.findall(r"=+ ERROR SUMMARY: (\d+) errors?", text)
    memory_errors = sum(1 for ln in lines if re.match(r"=+ (Invalid|Out-of-range|Misaligned|Malloc/Free)", ln))
    refused = next((r for r in _REFUSALS if r in text), None)
    if refused and not memory_errors:
        return dict(verdict="refused", errors=int(summaries[-1]) if summaries else None, detail=detail or refused, rc=rc)
    if summaries:
        n = int(summaries[-1])
        return dict(verdict="clean" if n == 0 else "errors", errors=n, detail=detail, rc=rc)
    if memory_errors:
        return dict(verdict="errors", errors=memory_errors, detail=detail, rc=rc, incomplete=True)
    return dict(verdict="incomplete", errors=None, detail=detail, rc=rc)


def ops_headline(data: dict) -> dict:
    """The few numbers of an ops benchmark JSON worth reading first."""
    out = dict(device_name=data.get("device_name"), backend=data.get("backend"), complete=data.get("complete", False),
               copy_bandwidth_GBps=data.get("copy_bandwidth_GBps"))
    rows = data.get("elementwise", [])
    if rows:
        biggest = max(r["shape"][0] * r["shape"][1] for r in rows)
        out["elementwise_at_largest"] = [
            dict(op=r["op"], dtype=r["dtype"], source=r["source"], kernel_GBps=r["kernel_GBps"],
                 ratio_to_copy=r["ratio_to_copy"], speedup_vs_eager=r["speedup"])
            for r in rows if r["shape"][0] * r["shape"][1] == biggest
        ]
    out["resample"] = [dict(scheme=r["scheme"], kernel_us=r["kernel_us"], kernel_graph_us=r.get("kernel_graph_us"),
                            speedup_vs_reference=r["speedup_vs_reference"]) for r in data.get("resample", [])]
    return out


def throughput_headline(data: dict) -> dict:
    rows = [dict(setting=r["setting"], particles=r["particles"], nfe_per_s=round(r["nfe_per_s"], 2),
                 vs_peer=None if r.get("vs_peer") is None else round(r["vs_peer"], 3),
                 search_overhead=None if r.get("search_overhead") is None else round(r["search_overhead"], 4))
            if "skipped" not in r else dict(setting=r["setting"], particles=r["particles"], skipped=r["skipped"])
            for r in data.get("results", [])]
    return dict(arch=data.get("arch"), guidance=data.get("guidance"), steps=data.get("steps"), smoke=data.get("smoke"),
                complete=data.get("complete", False), rows=rows)


# ----------------------------------------------------------------------------------------------
# the report file


def _load(out_dir: str) -> dict:
    path = os.path.join(out_dir, REPORT)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    return dict(report="gpu_check", steps=[])


def _save(out_dir: str, report: dict) -> None:
    report["updated"] = _now()
    path = os.path.join(out_dir, REPORT)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _run(cmd) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return (r.stdout + r.stderr).strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unavailable ({type(exc).__name__}: {exc})"


def _versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def environment(smoke: bool) -> dict:
    import torch

    env = dict(python=platform.python_version(), python_executable=sys.executable, platform=platform.platform(),
               cpu_count=os.cpu_count(), torch=torch.__version__, torch_cuda=torch.version.cuda,
               cuda_available=torch.cuda.is_available(), smoke=smoke)
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env.update(device=torch.cuda.get_device_name(0), capability=f"{p.major}.{p.minor}",
                   multiprocessors=p.multi_processor_count, memory_GiB=round(p.total_memory / 2**30, 1))
    else:
        env.update(device=platform.processor() or platform.machine())
    if shutil.which("nvidia-smi"):
        env["nvidia_smi"] = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit",
                                  "--format=csv,noheader"])
        m = re.search(r"Driver Version: (\S+)", _run(["nvidia-smi"]))
        env["driver"] = m.group(1) if m else None
    env["nvcc"] = _run(["nvcc", "--version"]).splitlines()[-1] if shutil.which("nvcc") else None
    env["compute_sanitizer"] = _run(["compute-sanitizer", "--version"]).splitlines()[-1] if shutil.which("compute-sanitizer") else None
    commit = os.environ.get("GPU_CHECK_COMMIT") or _run(["git", "rev-parse", "--short", "HEAD"])
    env["git_commit"] = commit if re.fullmatch(r"[0-9a-f]{7,40}", commit or "") else None
    return env


def refresh(out_dir: str, report: dict) -> dict:
    """Re-read what the steps left in out_dir: test outcomes, benchmark headlines, versions."""
    xml = os.path.join(out_dir, "tests.xml")
    tests = None
    if os.path.exists(xml):
        try:
            with open(xml, encoding="utf-8") as f:
                tests = parse_junit(f.read())
            tests["source"] = "tests.xml"
        except ET.ParseError as exc:
            tests = dict(error=f"tests.xml unreadable: {exc}")
    log = report.get("logs", {}).get("tests")
    if (tests is None or "error" in tests) and log and os.path.exists(log):
        with open(log, encoding="utf-8", errors="replace") as f:
            tests = parse_pytest_log(f.read())
    if tests is not None:
        report["tests"] = tests
    results = {}
    for path in sorted(glob.glob(os.path.join(out_dir, "*.json"))):
        name = os.path.basename(path)
        if name == REPORT:
            continue
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as exc:
            results[name] = dict(error=f"unreadable: {exc}")
            continue
        if name.startswith("ops"):
            results[name] = ops_headline(data)
        elif name.startswith("throughput"):
            results[name] = throughput_headline(data)
    report["results"] = results
    report["versions"] = _versions()
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["env", "step", "final"])
    ap.add_argument("--out", required=True, help="the output folder of gpu_check.sh")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--name")
    ap.add_argument("--rc", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--status", default=None, choices=["ok", "failed", "timeout", "skipped"])
    ap.add_argument("--note", default="")
    ap.add_argument("--log", default=None, help="the step's own log (parsed for pytest and compute-sanitizer steps)")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    report = _load(args.out)
    if args.command == "env":
        report.update(started=_now(), environment=environment(args.smoke))
    elif args.command == "step":
        if not args.name:
            ap.error("step needs --name")
        status = args.status or ("ok" if args.rc == 0 else "timeout" if args.rc in (124, 137) else "failed")
        step = dict(name=args.name, status=status, rc=args.rc, seconds=args.seconds, limit_s=args.limit, note=args.note)
        report["steps"] = [s for s in report.get("steps", []) if s["name"] != args.name] + [step]
        if args.log:
            report.setdefault("logs", {})[args.name] = args.log
            if args.name == "sanitizer" and status != "skipped" and os.path.exists(args.log):
                with open(args.log, encoding="utf-8", errors="replace") as f:
                    report["sanitizer"] = parse_sanitizer_log(f.read(), args.rc)
    else:
        report["finished"] = _now()
    report = refresh(args.out, report)
    _save(args.out, report)
    if args.command == "final":
        for s in report.get("steps", []):
            print(f"  {s['name']:24s} {s['status']:8s} rc={s['rc']} {s['seconds']}s (limit {s['limit_s']}s) {s['note']}")
        if "tests" in report:
            print(f"  tests: {report['tests'].get('counts')}")
        if "sanitizer" in report:
            print(f"  compute-sanitizer: {report['sanitizer']['verdict']}")
        print(f"  wrote {os.path.join(args.out, REPORT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
