"""dts, dts_star and das_guided by name in ``tts-fast run`` and ``tts-fast profile`` (the analytic model, seconds).

Broken variants these catch: a method registered in tts.search but missing from the commands'
choices, or a run whose records do not hold what the search spent."""

import json

import pytest

from tts_fast import cli


@pytest.mark.parametrize("method", ["dts", "dts_star", "das_guided"])
def test_run_and_profile_take_the_new_methods_by_name(tmp_path, method):
    out = tmp_path / "run"
    argv = ["run", "--model", "gmm", "--method", method, "--prompt", "[2, 0]", "--prompt", "[-2, 0]", "--particles", "2",
            "--steps", "5", "--budget", "40", "--out", str(out), "--no-progress"]
    assert cli.main(argv) == 0
    recs = [json.loads((out / f"{i:05d}.json").read_text()) for i in range(2)]
    assert all(r["status"] == "ok" and r["settings"]["method"] == method and 5 <= r["nfe_model"] <= 40 for r in recs)
    report = tmp_path / "profile.json"
    assert cli.main(["profile", "--model", "gmm", "--method", method, "--particles", "2", "--steps", "5", "--repeats", "1",
                     "--json", str(report)]) == 0
    rep = json.loads(report.read_text())
    assert rep["method"] == method and rep["nfe"]["model"] > 0
