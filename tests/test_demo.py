"""`tts-fast demo` end to end on a reduced setting, its bad-input errors and atomic writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from tts_fast import cli
from tts_fast import _io
from tts_fast.cli import demo_report

ALL_DEMO = ["baseline", "bon", "bfs_best", "fk", "das", "svdd", "dfs", "local", "bfs_local", "bfs_local_dual"]


@pytest.fixture(autouse=True)
def _restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_demo_end_to_end_reduced(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "demo"
    rc = cli.main(["demo", "--quick", "--steps", "10", "--out", str(out), "--no-progress", "--methods", *ALL_DEMO])
    assert rc == 0
    text = capsys.readouterr().out
    for header in ("method", "NFE", "verifier reward", "evaluator acc", "seconds"):
        assert header in text
    for label in ("plain sampling", "best-of-N", "BFS-best", "FK", "DAS w/o grad", "SVDD", "DFS", "local search",
                  "BFS-best + local", "BFS-best + local (dual)"):
        assert label in text
    assert sorted(os.listdir(out)) == ["accuracy_vs_nfe.png", "results.json", "samples.png", "table.txt"]
    for png in ("samples.png", "accuracy_vs_nfe.png"):
        with open(out / png, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    res = json.loads((out / "results.json").read_text())
    assert res["settings"]["digits"] == [0, 1] and res["settings"]["budgets"] == [2, 4]
    assert res["settings"]["threads"] == 1  # the thread policy's default (tts_fast._threads)
    summary = {(r["method"], r["n"]): r for r in res["summary"]}
    # Matched budgets: every method spends at most N x steps model NFE per sample, baseline one trajectory.
    assert summary[("baseline", 1)]["nfe_per_row"] == 10
    for (key, n), r in summary.items():
        if key != "baseline":
            assert r["nfe_per_row"] <= n * 10 + 1e-9, key
        assert 0.0 <= r["evaluator_acc"] <= 1.0
    assert summary[("bon", 4)]["nfe_per_row"] == 40
    assert summary[("local", 4)]["nfe_grad_per_row"] == 40  # 2 particles x 2 local steps x 10 steps, all with gradients


def test_demo_unknown_digit(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["demo", "--digits", "3", "12"])
    assert e.value.code == 2
    assert "unknown digit 12" in capsys.readouterr().err


def test_demo_unknown_method(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["demo", "--methods", "bon", "beam_search", "--out", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown method(s) ['beam_search']" in err and "bfs_best" in err


def test_demo_unwritable_out(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    for out in (blocker, blocker / "sub"):
        with pytest.raises(SystemExit) as e:
            cli.main(["demo", "--quick", "--out", str(out)])
        assert e.value.code == 2
        assert "output folder" in capsys.readouterr().err


def test_demo_unwritable_out_permissions(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        with pytest.raises(SystemExit) as e:
            cli.main(["demo", "--quick", "--out", str(ro)])
        assert e.value.code == 2 and "cannot write to output folder" in capsys.readouterr().err
    finally:
        ro.chmod(0o700)


def test_demo_needs_matplotlib(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SystemExit) as e:
        cli.main(["demo", "--quick", "--out", str(tmp_path)])
    assert e.value.code == 2
    assert "tts_fast[demo]" in capsys.readouterr().err


def test_bad_device(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    with pytest.raises(SystemExit) as e:
        cli.main(["demo", "--quick", "--out", str(tmp_path), "--device", "tpu"])
    assert e.value.code == 2
    assert "device" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_python_dash_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "tts_fast", "demo", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--n-particles" in r.stdout


def test_atomic_writes_leave_old_file_on_failure(tmp_path):
    path = tmp_path / "r.json"
    _io.atomic_write_json(str(path), {"a": 1})
    with pytest.raises(TypeError):
        _io.atomic_write_json(str(path), {"a": object()})  # fails half way through serialising
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["r.json"]  # no temporary file left behind

    class Interrupting:
        def savefig(self, f, **kw):
            with open(f, "wb") as fh:
                fh.write(b"\x89PNG half")
            raise KeyboardInterrupt

    png = tmp_path / "p.png"
    png.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        demo_report.save_png(Interrupting(), str(png))
    assert png.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["p.png", "r.json"]


def test_demo_workers_give_the_results_of_one_process(tmp_path):
    """The searches spread over 2 worker processes give the runs of one process bit for bit (all but
    their seconds), in the same order: each run is seeded by itself and searches on one thread."""
    pytest.importorskip("matplotlib")
    outs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        assert cli.main(["demo", "--quick", "--steps", "6", "--out", str(out), "--no-progress", "--workers", str(workers),
                         "--methods", "bon", "bfs_best", "local"]) == 0
        outs[workers] = json.loads((out / "results.json").read_text())
    strip = [[{k: v for k, v in r.items() if k != "seconds"} for r in outs[w]["runs"]] for w in (1, 2)]
    assert strip[0] == strip[1] and len(strip[0]) == 6
