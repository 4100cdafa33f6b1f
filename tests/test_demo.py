"""`tts-fast demo` end to end on a reduced setting, its bad-input errors and atomic writes."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from tts_fast import cli
from tts_fast import _io
from tts_fast.cli import demo_report

ALL_DEMO = ["baseline", "bon", "bfs_best", "fk", "das", "svdd", "dfs", "local", "bfs_local", "local_dual", "bfs_local_dual"]
LABELS = ("plain sampling", "best-of-N", "BFS-best", "FK", "DAS w/o grad", "SVDD", "DFS", "local search", "BFS-best + local",
          "local search (dual)", "BFS-best + local (dual)")
needs_judge = pytest.mark.skipif(
    importlib.util.find_spec("ccexam") is None,
    reason="the demo's judge is ccexam's classifier: pip install --no-build-isolation 'tts_fast[demo]' torchvision==<yours>")


@pytest.fixture(autouse=True)
def _restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _check_end_to_end(out, text, model, steps, per_digit):
    for header in ("method", "NFE", "verifier reward", "verifier acc", "judge acc", "gap (verifier - judge)", "seconds", "±"):
        assert header in text
    for label in LABELS:
        assert label in text
    assert sorted(os.listdir(out)) == ["accuracy_vs_nfe.png", "results.json", "samples.png", "table.txt"]
    for png in ("samples.png", "accuracy_vs_nfe.png"):
        with open(out / png, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    res = json.loads((out / "results.json").read_text())
    st = res["settings"]
    assert st["model"] == model and st["digits"] == [0, 1] and st["budgets"] == [2, 4] and st["per_digit"] == per_digit
    assert st["steps"] == steps and st["threads"] == 1  # the thread policy's default (tts_fast._threads)
    summary = {(r["method"], r["n"]): r for r in res["summary"]}
    # Matched budgets: every method spends at most N x steps model NFE per sample, baseline one trajectory.
    assert summary[("baseline", 1)]["nfe_per_row"] == steps
    for (key, n), r in summary.items():
        if key != "baseline":
            assert r["nfe_per_row"] <= n * steps + 1e-9, key
        assert r["samples"] == 2 * per_digit  # digits 0 and 1, one seed
        assert r["gap"] == pytest.approx(r["verifier_acc"] - r["judge_acc"])
    assert summary[("bon", 4)]["nfe_per_row"] == 4 * steps
    assert summary[("local", 4)]["nfe_grad_per_row"] == 4 * steps  # 2 particles x 2 local steps x steps, all with gradients
    # every figure of the summary is the one of its run's per-sample results
    for run in res["runs"]:
        row = summary[(run["method"], run["n"])]
        assert len(run["judge_hit"]) == len(run["verifier_hit"]) == len(run["reward"]) == 2 * per_digit
        assert row["judge_acc"] == pytest.approx(sum(run["judge_hit"]) / len(run["judge_hit"]))
        assert row["verifier_reward"] == pytest.approx(sum(run["reward"]) / len(run["reward"]))
    return res


@needs_judge
def test_demo_end_to_end_reduced(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "demo"
    rc = cli.main(["demo", "--quick", "--steps", "4", "--out", str(out), "--no-progress", "--methods", *ALL_DEMO])
    assert rc == 0
    text = capsys.readouterr().out
    assert "ccexam" in text  # the judge is named
    res = _check_end_to_end(out, text, "mnist", 4, 2)
    assert "ccexam" in res["settings"]["judge"]


def test_demo_digits_end_to_end_reduced(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "demo"
    rc = cli.main(["demo", "--model", "digits", "--quick", "--steps", "10", "--out", str(out), "--no-progress", "--methods", *ALL_DEMO])
    assert rc == 0
    res = _check_end_to_end(out, capsys.readouterr().out, "digits", 10, 1)
    assert "evaluator" in res["settings"]["judge"]


def _run(method, n, seed, verifier, judge, reward, targets=None):
    return {"method": method, "label": method, "n": n, "seed": seed, "verifier_hit": verifier, "judge_hit": judge, "reward": reward,
            "nfe_per_row": 10.0 * n, "nfe_grad_per_row": 0.0, "seconds": 1.0 + seed,
            "targets": torch.tensor(targets if targets is not None else list(range(len(verifier)))), "samples": None}


def test_aggregate_pools_samples_of_every_seed():
    """Means and standard errors over the samples of all seeds; the gap's s.e. is the one of the per-sample differences."""
    runs = [_run("bon", 2, 0, [True, True], [True, False], [-1.0, -2.0]),
            _run("bon", 2, 1, [False, False], [True, False], [-3.0, -6.0]),
            _run("bon", 4, 0, [True, True], [True, True], [0.0, 0.0])]
    rows = {r["n"]: r for r in demo_report.aggregate(runs, ["bon"])}
    r = rows[2]
    assert (r["samples"], r["seeds"]) == (4, 2)
    assert r["verifier_acc"] == 0.5 and r["judge_acc"] == 0.5 and r["gap"] == 0.0
    # verifier hits 1,1,0,0: s.e. = sqrt(var / n) = sqrt((1/3) / 4); judge 1,0,1,0 likewise
    assert r["verifier_acc_se"] == pytest.approx(math.sqrt(1 / 12)) and r["judge_acc_se"] == pytest.approx(math.sqrt(1 / 12))
    # per-sample gaps 0, 1, -1, 0: variance 2/3 (a difference of means would have s.e. 0 here or the wrong one)
    assert r["gap_se"] == pytest.approx(math.sqrt(2 / 3 / 4))
    assert r["verifier_reward"] == -3.0 and r["verifier_reward_se"] == pytest.approx(math.sqrt(14 / 3 / 4))
    assert r["seconds"] == 1.5 and r["nfe_per_row"] == 20.0
    assert rows[4]["samples"] == 2 and rows[4]["judge_acc_se"] == 0.0  # all hits: no spread
    table = demo_report.format_table(demo_report.aggregate(runs, ["bon"]))
    assert "0.50 ±0.29" in table and "0.00 ±0.41" in table and "-3.00 ±1.08" in table


def test_samples_figure_frames_what_the_judge_rejects():
    assert demo_report.frame_of(True, True) is None and demo_report.frame_of(False, True) is None
    assert demo_report.frame_of(True, False) == "hacked" and demo_report.frame_of(False, False) == "missed"
    runs = [_run("bon", 4, 1, [True, True, True, True], [True, True, True, True], [0.0] * 4, targets=[3, 3, 7, 7]),
            _run("bon", 4, 0, [True, False, True, False], [True, True, False, False], [0.0] * 4, targets=[3, 3, 7, 7]),
            _run("bon", 2, 0, [False] * 4, [False] * 4, [0.0] * 4, targets=[3, 3, 7, 7]),
            _run("baseline", 1, 0, [False, True, False, False], [False, False, False, False], [0.0] * 4, targets=[3, 3, 7, 7])]
    picked = demo_report.picked_samples(runs, ["baseline", "bon"], 4)
    # the first seed's run at the largest budget; the first sample of each digit
    assert [(k, r["seed"], r["n"], first, marks) for k, r, first, marks in picked] == [
        ("baseline", 0, 1, [0, 2], ["missed", "missed"]), ("bon", 0, 4, [0, 2], [None, "hacked"])]


@needs_judge
def test_demo_judge_never_runs_inside_a_search(monkeypatch):
    """The judge's network is never called while tts.search runs: only the returned samples are judged."""
    from tts_fast.cli import demo_stages
    from tts_fast.zoo import experiment as ex

    stage = demo_stages.MnistStage("cpu")
    inside = {"search": False, "judged": 0}
    real_search = ex.search

    def watched_search(*a, **k):
        inside["search"] = True
        try:
            return real_search(*a, **k)
        finally:
            inside["search"] = False

    def hook(module, args):
        assert not inside["search"], "the judge ran inside a search call"
        inside["judged"] += 1

    monkeypatch.setattr(ex, "search", watched_search)
    handle = stage.judge.net.register_forward_pre_hook(hook)
    try:
        rec = stage.run(ex.SPECS["local_dual"], torch.tensor([3, 7]), n=2, num_steps=3, seed=0)
    finally:
        handle.remove()
    assert inside["judged"] == 1 and len(rec["judge_hit"]) == 2
    # the hits are the judge's and the verifier's own classifications of the returned samples
    targets = torch.tensor([3, 7])
    with torch.no_grad():
        assert rec["judge_hit"] == (stage.judge(rec["samples"]).argmax(1) == targets).tolist()
        assert rec["verifier_hit"] == (stage.stage.nets["verifier"](rec["samples"]).argmax(1) == targets).tolist()


def test_digits_stage_is_judged_by_the_evaluator():
    from tts_fast.cli import demo_stages
    from tts_fast.zoo import experiment as ex

    stage = demo_stages.DigitsStage("cpu")
    targets = torch.arange(10).repeat(2)
    rec = stage.run(ex.SPECS["bfs_best"], targets, n=2, num_steps=2, seed=0)  # 2 steps: rough samples the two disagree on
    nets = stage.zoo.nets
    with torch.no_grad():
        judge = (nets["evaluator"](rec["samples"]).argmax(1) == targets).tolist()
        verifier = (nets["verifier"](rec["samples"]).argmax(1) == targets).tolist()
    assert rec["judge_hit"] == judge and rec["verifier_hit"] == verifier and judge != verifier
    assert rec["nfe_per_row"] == 4 and rec["budget_per_row"] == 4


def test_demo_names_the_missing_judge(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    from tts_fast.zoo.real28 import judge

    judge.judge.cache_clear()
    monkeypatch.setitem(sys.modules, "ccexam", None)
    monkeypatch.setitem(sys.modules, "ccexam.models", None)
    monkeypatch.setattr(torch, "__version__", "2.13.0+cpu")
    try:
        with pytest.raises(SystemExit) as e:
            cli.main(["demo", "--quick", "--out", str(tmp_path), "--no-progress"])
    finally:
        judge.judge.cache_clear()
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "tts_fast[demo]" in err and "torchvision==0.28.*" in err and "--model digits" in err
    assert os.listdir(tmp_path) == []  # nothing written: the error comes before any search


def test_matching_torchvision(monkeypatch):
    from tts_fast.cli.demo_stages import matching_torchvision

    for torch_version, tv in (("2.13.0+cpu", "torchvision==0.28.*"), ("2.14.1", "torchvision==0.29.*"), ("2.5.1+cu121", "torchvision==0.20.*")):
        monkeypatch.setattr(torch, "__version__", torch_version)
        assert matching_torchvision() == tv


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
        assert cli.main(["demo", "--model", "digits", "--quick", "--steps", "6", "--out", str(out), "--no-progress", "--workers",
                         str(workers), "--methods", "bon", "bfs_best", "local"]) == 0
        outs[workers] = json.loads((out / "results.json").read_text())
    strip = [[{k: v for k, v in r.items() if k != "seconds"} for r in outs[w]["runs"]] for w in (1, 2)]
    assert strip[0] == strip[1] and len(strip[0]) == 6
