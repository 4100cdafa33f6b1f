"""Which launcher runs a ``tts-fast run``: one process, torchrun ranks or Ray, chosen in one place; and the
single-process launcher on its own."""

import json

import pytest

from tts_fast import cli
from tts_fast._user_errors import UserError
from tts_fast.distributed import launchers, local
from tts_fast.runs import parse_config, prepare

FAST = ["--particles", "2", "--steps", "3", "--device", "cpu", "--no-progress"]


def _config(tmp_path, *extra):
    return parse_config(["--model", "gmm", "--prompt", "[2, 0]", "--out", str(tmp_path / "o"), *FAST, *extra])


@pytest.mark.parametrize("extra, world, expected", [
    ([], 1, "single"), ([], 2, "torchrun"), ([], 8, "torchrun"), (["--ray", "auto"], 1, "ray"), (["--ray", "local"], 1, "ray"),
])
def test_the_launcher_follows_the_config_and_the_world_size(tmp_path, extra, world, expected):
    assert launchers.choose_launcher(_config(tmp_path, *extra), world) == expected


def test_ray_under_torchrun_is_refused(tmp_path):
    with pytest.raises(UserError, match="--ray starts its own workers"):
        launchers.choose_launcher(_config(tmp_path, "--ray", "auto"), 2)


@pytest.mark.parametrize("env, extra, expected", [
    ({}, [], "single"), ({"WORLD_SIZE": "1", "RANK": "0"}, [], "single"), ({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}, [], "torchrun"),
    ({}, ["--ray", "local"], "ray"),
])
def test_the_cli_runs_the_chosen_launcher(tmp_path, monkeypatch, env, extra, expected):
    from tts_fast.distributed import ray as on_ray
    from tts_fast.distributed import torchrun

    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    called = []
    for name, module in (("single", local), ("torchrun", torchrun), ("ray", on_ray)):
        monkeypatch.setattr(module, "execute", lambda job, name=name: called.append((name, job.config.out)) or 0)
    argv = ["run", "--model", "gmm", "--prompt", "[2, 0]", "--out", str(tmp_path / "o"), *FAST, *extra]
    assert cli.main(argv) == 0
    assert called == [(expected, str(tmp_path / "o"))]


def test_the_single_process_launcher_runs_and_resumes(tmp_path, capsys):
    job = prepare(_config(tmp_path, "--prompt", "[1, 1]"))
    assert local.execute(job) == 0
    recs = [json.loads((tmp_path / "o" / f"0000{i}.json").read_text()) for i in range(2)]
    assert {r["run"]["launcher"] for r in recs} == {"single"} and {r["run"]["world_size"] for r in recs} == {1}
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["ok"] == 2 and summary["this_run"]["launcher"] == "single"
    capsys.readouterr()
    assert local.execute(job) == 0
    assert "all 2 prompt(s) already done" in capsys.readouterr().out


def test_the_single_process_launcher_refuses_a_device_this_machine_lacks(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    job = prepare(parse_config(["--model", "gmm", "--prompt", "[2, 0]", "--out", str(tmp_path / "o"), "--device", "cuda"]))
    with pytest.raises(UserError, match="device 'cuda' requested but CUDA is not available"):
        local.execute(job)
    assert not (tmp_path / "o").exists()
