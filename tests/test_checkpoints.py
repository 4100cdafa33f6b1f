"""One checkpoint loader and one device rule for the domain packages (zoo, maze, rl), and the --device check."""

import os
import pathlib
import re

import pytest
import torch

import tts_fast as tts
from tts_fast import _checkpoints
from tts_fast._devices import resolve_device
from tts_fast._user_errors import UserError, user_device

PACKAGE = pathlib.Path(tts.__file__).parent


class _Net(torch.nn.Module):
    def __init__(self, width: int = 3):
        super().__init__()
        self.lin = torch.nn.Linear(width, 1)


def _save(path, **ck):
    torch.save({"kind": "toy", "config": {"width": 3}, "state_dict": _Net().state_dict(), **ck}, path)
    return str(path)


CHECKED = []


def _check(ck, path):
    CHECKED.append(path)
    if not isinstance(ck["config"], dict):
        raise ValueError(f"{path}: bad config")


def _load(path, **kw):
    return _checkpoints.load_checkpoint(path, what="a toy checkpoint", expected="a dict", keys=("kind", "config", "state_dict"),
                                        kinds=kw.pop("kinds", ("toy",)), missing=f"no toy at {path}", check=_check, **kw)


def test_a_checkpoint_is_checked_once_per_file_version(tmp_path):
    path = _save(tmp_path / "a.pt")
    CHECKED.clear()
    first = _load(path)
    assert _load(path) is first and CHECKED == [path]  # cached: checked once
    _save(path, meta={"v": 2})
    os.utime(path, (os.path.getatime(path), os.path.getmtime(path) + 10))  # a new version of the file
    again = _load(path)
    assert again is not first and again["meta"] == {"v": 2} and CHECKED == [path, path]


def test_bad_checkpoints_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no toy at"):
        _load(str(tmp_path / "missing.pt"))
    other = _save(tmp_path / "other.pt", kind="unet")
    with pytest.raises(ValueError, match=re.escape(f"{other} is not a toy checkpoint: it holds kind='unet' (expected 'toy')")):
        _load(other)
    with pytest.raises(ValueError, match=r"\(expected one of toy, tiny\)"):
        _load(other, kinds=("toy", "tiny"))
    bad = tmp_path / "bad.pt"
    torch.save({"kind": "toy", "config": [3], "state_dict": {}}, bad)
    with pytest.raises(ValueError, match="bad config"):
        _load(str(bad))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="junk.pt is not a toy checkpoint: it could not be read"):
        _load(str(junk))


def test_a_network_is_built_in_eval_mode_or_the_file_is_named(tmp_path):
    path = _save(tmp_path / "n.pt")
    ck = _load(path)
    net = _checkpoints.build_network(_Net, ck["config"], ck["state_dict"], path)
    assert isinstance(net, _Net) and not net.training
    with pytest.raises(ValueError, match=r"n.pt does not hold a _Net \(RuntimeError"):
        _checkpoints.build_network(_Net, {"width": 4}, ck["state_dict"], path)
    with pytest.raises(ValueError, match=r"n.pt does not hold a toy network \(TypeError"):
        _checkpoints.build_network(_Net, {"depth": 4}, ck["state_dict"], path, what="toy network")


def test_the_domain_packages_use_the_one_loader():
    """zoo, maze and rl load through _checkpoints.load_checkpoint (no lru_cache or torch.load of their own)."""
    for rel in ("zoo/weights.py", "maze/weights.py", "rl/weights.py"):
        src = (PACKAGE / rel).read_text()
        assert "load_checkpoint as _load" in src and "lru_cache" not in src and "torch.load" not in src, rel
    assert tts.zoo.load_checkpoint(tts.zoo.weights_path("unet"))["kind"] == "unet"


# -- the device rule ---------------------------------------------------------------------------


def test_auto_means_cuda_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == resolve_device(None) == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device(None) == torch.device("cpu")
    assert resolve_device("cuda:1") == torch.device("cuda", 1) and resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="policy_device must be 'auto', None"):
        resolve_device("gpu0", argument="policy_device")


def test_the_rule_is_stated_once():
    """Only _devices.py spells out 'CUDA when available, else the CPU'."""
    pattern = re.compile(r"cuda\.is_available\(\)\s+else\s+\"cpu\"")
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == ["_devices.py"]


def test_the_loaders_follow_the_rule(monkeypatch):
    """zoo, maze and rl place their networks where resolve_device says ('auto' and None alike)."""
    seen = []
    import tts_fast.maze.weights as maze_weights
    import tts_fast.rl.weights as rl_weights
    import tts_fast.zoo.weights as zoo_weights

    for module in (zoo_weights, maze_weights, rl_weights):
        monkeypatch.setattr(module, "resolve_device", lambda d, seen=seen: seen.append(d) or torch.device("cpu"))
    assert tts.zoo.digits("auto").device == torch.device("cpu")
    tts.zoo.digits_classifier("verifier")
    tts.maze.load_planner("medium")
    states = torch.zeros(1, 17)
    tts.rl.load_policy("halfcheetah", "medium", states)
    tts.rl.q_verifier("halfcheetah", "medium", states, device="auto")
    assert seen == ["auto", None, None, None, "auto"]


def test_the_command_line_device_check(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert user_device("auto") == torch.device("cpu") and user_device("cpu") == torch.device("cpu")
    for name, match in (("tpu", "unknown device 'tpu'"), ("cuda:0", "requested but CUDA is not available"), ("meta", "not supported")):
        with pytest.raises(UserError, match=match):
            user_device(name)
