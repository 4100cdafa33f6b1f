""".ci/gpu_check.sh and its report writer, cheaply: the scripts parse, the report's parsers
read small JUnit / pytest / compute-sanitizer samples, and the report CLI turns a folder of
results into gpu_check.json. (The whole --smoke run takes minutes; .ci/gpu_check.sh
--smoke is run by hand before a GPU call, see docs/gpu.md.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CI = os.path.join(ROOT, ".ci")  # the device-check tooling lives with the CI scripts
RESULTS = os.path.join(ROOT, "benchmarks", "results")
sys.path.insert(0, CI)

import gpu_check_report as report  # noqa: E402

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5">
<testcase classname="tests.test_gpu_device" name="test_renoise_bitwise[vp-noise-(8, 4, 64, 64)-torch.float16]" time="0.125" />
<testcase classname="tests.test_gpu_device" name="test_philox_normals_bit_for_bit" time="1.5">
  <failure message="AssertionError: Philox normals: 3 of 400003 elements differ">traceback</failure></testcase>
<testcase classname="tests.test_ops" name="test_opcheck[cuda]" time="0.01"><error message="fixture failed">tb</error></testcase>
<testcase classname="tests.test_ops" name="test_resample_empty_batch[cuda]" time="0.0">
  <skipped type="pytest.skip" message="no CUDA device">skip</skipped></testcase>
<testcase time="0.000" />
</testsuite></testsuites>
"""

PYTEST_LOG = """tests/test_gpu_device.py::test_renoise_bitwise[vp-noise-(8, 4, 64, 64)-torch.float16] PASSED [  1%]
tests/test_gpu_device.py::test_philox_normals_bit_for_bit FAILED [  2%]
tests/test_ops.py::test_resample_empty_batch[cuda] SKIPPED (no CUDA device) [  3%]
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!! KeyboardInterrupt !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
"""


def test_scripts_parse():
    for name in ("gpu_check.sh", "gpu_wheels.sh"):
        r = subprocess.run(["bash", "-n", os.path.join(CI, name)], capture_output=True, text=True)
        assert r.returncode == 0, (name, r.stderr)


def test_gpu_check_needs_an_output_folder():
    r = subprocess.run(["bash", os.path.join(CI, "gpu_check.sh")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "usage" in r.stderr


def test_the_device_call_is_written_down_and_the_wheels_are_ignored():
    with open(os.path.join(CI, "gpu_check.sh"), encoding="utf-8") as f:
        head = f.read(4000)
    assert 'run(command="bash .ci/gpu_check.sh $OUT", carry=[".gpu_wheels"]' in head
    with open(os.path.join(ROOT, ".gitignore"), encoding="utf-8") as f:
        assert "/.gpu_wheels/" in f.read().split()


def test_parse_junit():
    got = report.parse_junit(JUNIT)
    assert got["counts"] == {"passed": 1, "failed": 1, "error": 1, "skipped": 1}  # the nameless element is dropped
    first, failed = got["tests"][0], got["tests"][1]
    assert first == dict(id="tests.test_gpu_device::test_renoise_bitwise[vp-noise-(8, 4, 64, 64)-torch.float16]",
                         outcome="passed", seconds=0.125, message="")
    assert failed["outcome"] == "failed" and "3 of 400003" in failed["message"]
    assert got["tests"][3]["message"] == "no CUDA device"


def test_parse_pytest_log():
    got = report.parse_pytest_log(PYTEST_LOG)
    assert got["counts"] == {"passed": 1, "failed": 1, "skipped": 1}
    assert got["tests"][0]["id"] == "tests/test_gpu_device.py::test_renoise_bitwise[vp-noise-(8, 4, 64, 64)-torch.float16]"


@pytest.mark.parametrize("text,rc,verdict,errors", [
    ("========= COMPUTE-SANITIZER\n... 12 passed in 40s\n========= ERROR SUMMARY: 0 errors\n", 0, "clean", 0),
    ("========= Invalid __global__ read of size 4 bytes\n=========     at renoise\n========= ERROR SUMMARY: 2 errors\n", 99,
     "errors", 2),
    ("========= COMPUTE-SANITIZER\n========= Error: Device not supported\n"
     "========= Program hit unknown error (error 999) on CUDA API call to cudaMalloc.\n========= ERROR SUMMARY: 1 error\n",
     99, "refused", 1),
    ("========= COMPUTE-SANITIZER\ntests/test_ops.py ....\n", 124, "incomplete", None),
    ("========= Invalid __global__ write of size 8 bytes\n=========     at resample_kernel\n", 124, "errors", 1),
])
def test_parse_sanitizer_log(text, rc, verdict, errors):
    got = report.parse_sanitizer_log(text, rc)
    assert got["verdict"] == verdict and got["errors"] == errors and got["rc"] == rc


def test_report_cli_builds_the_json(tmp_path):
    """step / final on a folder holding tests.xml and benchmark JSON files (the committed CPU
    results, so the headline readers follow the benchmarks' real schema); no torch import."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "tests.xml").write_text(JUNIT)
    shutil.copy(os.path.join(RESULTS, "ops_cpu.json"), out / "ops_cpu.json")
    shutil.copy(os.path.join(RESULTS, "throughput_sd15_cpu.json"), out / "throughput_sd15_n8_g7.5.json")
    log = tmp_path / "sanitizer.log"
    log.write_text("========= ERROR SUMMARY: 0 errors\n")
    cli = [sys.executable, os.path.join(CI, "gpu_check_report.py")]
    steps = [["step", "--name", "build", "--rc", "0", "--seconds", "61.5", "--limit", "150"],
             ["step", "--name", "tests", "--rc", "124", "--seconds", "120.2", "--limit", "120"],
             ["step", "--name", "sanitizer", "--rc", "0", "--seconds", "30", "--limit", "60", "--log", str(log)],
             ["step", "--name", "throughput_n16_g7.5", "--rc", "-1", "--seconds", "0", "--limit", "20", "--status", "skipped",
              "--note", "no time left"],
             ["final"]]
    for args in steps:
        r = subprocess.run(cli + args + ["--out", str(out)], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, PYTHONPATH=""))
        assert r.returncode == 0, (args, r.stderr)
    assert "tests" in r.stdout and "gpu_check.json" in r.stdout
    data = json.loads((out / "gpu_check.json").read_text())
    assert [(s["name"], s["status"]) for s in data["steps"]] == [
        ("build", "ok"), ("tests", "timeout"), ("sanitizer", "ok"), ("throughput_n16_g7.5", "skipped")]
    assert data["tests"]["counts"]["failed"] == 1 and data["tests"]["source"] == "tests.xml"
    assert data["sanitizer"]["verdict"] == "clean"
    assert data["results"]["ops_cpu.json"]["copy_bandwidth_GBps"] > 0
    assert data["results"]["ops_cpu.json"]["elementwise_at_largest"]
    rows = data["results"]["throughput_sd15_n8_g7.5.json"]["rows"]
    assert rows and all("setting" in row for row in rows)
    assert "finished" in data and "versions" in data
