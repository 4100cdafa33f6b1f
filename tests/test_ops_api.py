"""The Python layer of tts_fast.ops: defaults of the wrappers, gather_particles, Philox, backend /
build_info, how the extension is loaded (every outcome of _load_extension, with the imports faked),
and the fake (meta) kernels that torch.compile traces through."""

from __future__ import annotations

import importlib
import re
import types

import pytest
import torch

from tts_fast import _philox, ops
from tts_fast import _reference as ref

from _ops_helpers import DEVICES, log_weights, require_compiled_ops, rng_tensor, skip_unless_device, uniforms, vp_tables

# ------------------------------------------------------------------------------------------------
# wrappers: defaults and argument forwarding


def test_resample_defaults_to_systematic():
    lw, u = log_weights(6, 11, scale=2.0, seed=1), uniforms(6, 11, seed=2)
    got = ops.resample(lw, u)
    assert torch.equal(got, ref.resample(lw, u, None, "systematic"))
    assert not torch.equal(got, ref.resample(lw, u, None, "multinomial"))  # the inputs tell schemes apart
    rng = rng_tensor(3, 4)
    assert torch.equal(ops.resample(lw, rng=rng, scheme="ssp"), ref.resample(lw, None, rng, "ssp"))


def test_ddim_step_defaults_to_eta_one():
    alpha, sigma = vp_tables(20)
    g = torch.Generator().manual_seed(0)
    x, x0, z = (torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in range(3))
    lf, lt = torch.tensor([9, 5, 12, 1]), torch.tensor([8, 2, 11, 0])
    got = ops.ddim_step(x, x0, lf, lt, alpha, sigma, noise=z)
    torch.testing.assert_close(got, ref.ddim_step(x, x0, lf, lt, alpha, sigma, 1.0, z), rtol=1e-12, atol=1e-12)
    assert not torch.allclose(got, ref.ddim_step(x, x0, lf, lt, alpha, sigma, 0.5, z))


def test_wrappers_forward_every_argument():
    """renoise / langevin_step / ess / normalize_log_weights call the op with their arguments."""
    alpha, sigma = vp_tables(20)
    g = torch.Generator().manual_seed(1)
    x, grad, z = (torch.randn(3, 5, generator=g, dtype=torch.float64) for _ in range(3))
    lf, lt = torch.tensor([0, 4, 7]), torch.tensor([3, 9, 19])
    torch.testing.assert_close(ops.renoise(x, lf, lt, alpha, sigma, noise=z), ref.renoise(x, lf, lt, alpha, sigma, z),
                               rtol=1e-12, atol=1e-12)
    rng = rng_tensor(5, 6)
    torch.testing.assert_close(ops.renoise(x, lf, lt, alpha, sigma, rng=rng),
                               ref.renoise(x, lf, lt, alpha, sigma, None, rng), rtol=1e-6, atol=1e-6)
    step = torch.tensor([0.1, 0.0, 0.3], dtype=torch.float64)
    for max_norm in (None, 0.5):
        torch.testing.assert_close(ops.langevin_step(x, grad, step, noise=z, max_norm=max_norm),
                                   ref.langevin_step(x, grad, step, z, None, max_norm), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ops.langevin_step(x, grad, step, rng=rng), ref.langevin_step(x, grad, step, None, rng),
                               rtol=1e-6, atol=1e-6)
    assert not torch.allclose(ops.langevin_step(x, grad, step, noise=z, max_norm=0.5),
                              ops.langevin_step(x, grad, step, noise=z))  # max_norm reaches the op
    lw = log_weights(4, 7, seed=3, row_kinds=False)
    torch.testing.assert_close(ops.ess(lw), ref.ess(lw), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ops.normalize_log_weights(lw), ref.normalize_log_weights(lw), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------------
# gather_particles


def test_gather_particles_both_layouts():
    anc = torch.tensor([[2, 2, 0], [1, 0, 0]])
    state = torch.arange(2 * 3 * 2).reshape(2, 3, 2)  # [B, N, D]
    want = torch.stack([state[0, [2, 2, 0]], state[1, [1, 0, 0]]])
    assert torch.equal(ops.gather_particles(state, anc), want)
    flat = state.reshape(6, 2)  # [B*N, D] stays flat
    assert torch.equal(ops.gather_particles(flat, anc), want.reshape(6, 2))
    rewards = torch.tensor([[10.0, 11.0, 12.0], [20.0, 21.0, 22.0]])  # [B, N]
    assert torch.equal(ops.gather_particles(rewards, anc), torch.tensor([[12.0, 12.0, 10.0], [21.0, 20.0, 20.0]]))
    assert torch.equal(ops.gather_particles(rewards.reshape(6), anc), torch.tensor([12.0, 12.0, 10.0, 21.0, 20.0, 20.0]))


def test_gather_particles_stays_on_the_ancestors_device():
    """The row offsets are made on the ancestors' device (meta tensors here: a CPU offset would
    not mix with them, as it would not with CUDA ones)."""
    anc = torch.empty(2, 3, dtype=torch.int64, device="meta")
    out = ops.gather_particles(torch.empty(2, 3, 4, device="meta"), anc)
    assert out.shape == (2, 3, 4) and out.device.type == "meta"
    assert ops.gather_particles(torch.empty(6, device="meta"), anc).shape == (6,)


def test_gather_particles_bad_state():
    anc = torch.zeros(2, 3, dtype=torch.int64)
    for bad in (torch.zeros(5), torch.zeros(3, 2, 4)):
        with pytest.raises(ValueError, match=re.escape(f"state must be [B, N, ...] = [2, 3, ...] or [B*N, ...], got {tuple(bad.shape)}")):
            ops.gather_particles(bad, anc)


# ------------------------------------------------------------------------------------------------
# Philox counter


@pytest.mark.parametrize("device", DEVICES)
def test_philox_take_advances_by_blocks(device):
    skip_unless_device(device)
    gen = ops.Philox(2**40 + 3, device)
    assert gen.state.dtype == torch.int64 and gen.state.device.type == device
    taken = [gen.take(n).cpu().tolist() for n in (5, 8, 0, 1)]
    assert taken == [[2**40 + 3, 0], [2**40 + 3, 2], [2**40 + 3, 4], [2**40 + 3, 4]]
    assert gen.state.cpu().tolist() == [2**40 + 3, 5]
    snapshot = gen.take(4)
    snapshot[1] += 100  # the returned tensor is a copy
    assert gen.state.cpu().tolist() == [2**40 + 3, 6]
    assert [_philox.blocks_for(n) for n in (0, 1, 4, 5, 8, 9)] == [0, 1, 1, 2, 2, 3]


def test_philox_device():
    assert ops.Philox(1).state.device == torch.device("cpu")
    meta = ops.Philox(1, "meta")
    assert meta.state.device.type == "meta" and meta.take(3).device.type == "meta"


# ------------------------------------------------------------------------------------------------
# backend and build_info


def test_backend_names():
    assert ops.backend() == ops.backend("cpu") == ops.backend(torch.device("cpu")) == ops._BACKENDS["cpu"]
    assert ops.backend("cuda:0") == ops._BACKENDS["cuda"]
    with pytest.raises(ValueError, match=re.escape("device must be a cpu or cuda device, got 'meta'")):
        ops.backend("meta")


def test_build_info_compiled():
    require_compiled_ops()
    assert ops.build_info() == dict(ops._C.build_info(), backend="compiled")
    assert ops.backend("cpu") == "cpp"


def test_build_info_without_the_extension(monkeypatch):
    monkeypatch.setattr(ops, "_C", None)
    assert ops.build_info() == {"backend": "reference", "cpu": False, "cuda": False, "torch_version": torch.__version__}


def _fake_imports(monkeypatch, modules: dict):
    """Serve importlib.import_module from ``modules``: name -> module, or an exception to raise."""
    calls = []

    def fake(name, *args, **kwargs):
        calls.append(name)
        item = modules.get(name, ModuleNotFoundError(f"No module named {name!r}"))
        if isinstance(item, BaseException):
            raise item
        return item

    monkeypatch.setattr(importlib, "import_module", fake)
    return calls


def _info(torch_version, cuda_version=None, min_torch="2.10"):
    return types.SimpleNamespace(TORCH_VERSION=torch_version, CUDA_VERSION=cuda_version, MIN_TORCH=min_torch)


@pytest.mark.parametrize("value", ["reference", "Reference", "REFERENCE"])
def test_load_extension_reference_by_env(monkeypatch, value):
    monkeypatch.setenv("TTS_FAST_BACKEND", value)
    calls = _fake_imports(monkeypatch, {"tts_fast._C": object()})
    assert ops._load_extension() is None and calls == []


def test_load_extension_loads_a_matching_build(monkeypatch):
    monkeypatch.delenv("TTS_FAST_BACKEND", raising=False)
    c = types.ModuleType("tts_fast._C")
    calls = _fake_imports(monkeypatch, {"tts_fast._build_info": _info(torch.__version__), "tts_fast._C": c})
    assert ops._load_extension() is c
    assert calls == ["tts_fast._build_info", "tts_fast._C"]
    monkeypatch.setenv("TTS_FAST_BACKEND", "cpp")  # any other value loads the extension too
    assert ops._load_extension() is c


def test_load_extension_never_built(monkeypatch):
    monkeypatch.setenv("TTS_FAST_BACKEND", "")
    _fake_imports(monkeypatch, {})
    assert ops._load_extension() is None


def test_load_extension_any_torch_from_the_minimum_on(monkeypatch):
    """The stable-ABI ops built against one torch load in every torch >= their minimum."""
    monkeypatch.setenv("TTS_FAST_BACKEND", "")
    c = types.ModuleType("tts_fast._C")
    _fake_imports(monkeypatch, {"tts_fast._build_info": _info("1.13.0+fake", min_torch="2.10"), "tts_fast._C": c})
    for installed in ("2.10.0", "2.11.0+cu130", "2.14.1", "3.0.0a0"):
        monkeypatch.setattr(torch, "__version__", installed)
        assert ops._load_extension() is c, installed


@pytest.mark.parametrize("installed", ["2.9.1", "2.9.0+cu128", "1.13.0"])
def test_load_extension_torch_below_the_minimum(monkeypatch, installed):
    monkeypatch.setenv("TTS_FAST_BACKEND", "")
    _fake_imports(monkeypatch, {"tts_fast._build_info": _info("2.13.0", min_torch="2.10"), "tts_fast._C": object()})
    monkeypatch.setattr(torch, "__version__", installed)
    want = (
        f"tts_fast's compiled ops need torch >= 2.10 (they use the LibTorch stable ABI of torch 2.10), but torch "
        f"{installed} is installed. Upgrade torch (`pip install 'torch>=2.10'`), or set TTS_FAST_BACKEND=reference "
        "to use the pure-PyTorch ops."
    )
    with pytest.raises(ImportError, match=f"^{re.escape(want)}$"):
        ops._load_extension()


def test_release_parses_torch_versions():
    assert ops._release("2.14.1+cu130") == (2, 14, 1)
    assert ops._release("2.10.0a0+git1234") == (2, 10, 0)
    assert ops._release("2.10") == (2, 10)
    assert ops._release("2.9.1") < ops._release("2.10") <= ops._release("2.10.0")


def test_op_library_that_fails_to_load_names_its_path(monkeypatch, tmp_path):
    missing = str(tmp_path / "_ops.abi3.so")
    monkeypatch.setattr(ops, "_library_path", lambda name: missing)
    with pytest.raises(ImportError, match=re.escape(f"tts_fast's op library {missing} failed to load")) as err:
        ops._load_op_libraries(with_cuda=False)
    assert isinstance(err.value.__cause__, OSError)


@pytest.mark.parametrize("has_info", [False, True])
def test_load_extension_broken_build(monkeypatch, has_info):
    """A _C that fails to load (or is missing although its build info exists) is an error, not the
    reference fallback."""
    monkeypatch.setenv("TTS_FAST_BACKEND", "")
    modules = {"tts_fast._C": ImportError("undefined symbol: _ZN5torch3fooEv")}
    if has_info:
        modules = {"tts_fast._build_info": _info(torch.__version__, "13.0"),
                   "tts_fast._C": ModuleNotFoundError("No module named 'tts_fast._C'")}
    _fake_imports(monkeypatch, modules)
    cause = str(modules["tts_fast._C"])
    built = f"{torch.__version__} (CUDA 13.0)" if has_info else "? (CUDA None)"
    want = (
        f"tts_fast._C failed to load ({cause}). It was built against torch {built}; installed torch is "
        f"{torch.__version__}. Rebuild with `pip install --no-build-isolation --force-reinstall --no-deps .`."
    )
    with pytest.raises(ImportError, match=f"^{re.escape(want)}$") as err:
        ops._load_extension()
    assert err.value.__cause__ is modules["tts_fast._C"]


# ------------------------------------------------------------------------------------------------
# fake kernels


def _meta(*shape, dtype=torch.float32):
    return torch.empty(*shape, dtype=dtype, device="meta")


def test_fake_kernels_shapes_and_dtypes():
    lw = _meta(3, 5, dtype=torch.float64)
    out = ops._resample_fake(lw, _meta(3, 5), None, "ssp")
    assert out.shape == (3, 5) and out.dtype == torch.int64 and out.device.type == "meta"
    x = _meta(4, 2, 3, dtype=torch.float16).transpose(1, 2)
    lv = _meta(4, dtype=torch.int64)
    tab = _meta(10, dtype=torch.float64)
    for out in (ops._renoise_fake(x, lv, lv, tab, tab, None, None),
                ops._ddim_step_fake(x, x, lv, lv, tab, tab, 0.5, None, None),
                ops._langevin_step_fake(x, x, _meta(4), None, None, None)):
        assert out.shape == x.shape and out.dtype == x.dtype and out.stride() == x.stride()
    e = ops._ess_fake(lw)
    assert e.shape == (3,) and e.dtype == torch.float64
    nl = ops._normalize_fake(lw.t())
    assert nl.shape == (5, 3) and nl.stride() == lw.t().stride() and nl.dtype == torch.float64


def test_fake_kernels_check_shapes():
    with pytest.raises(RuntimeError, match=r"^log_weights must be 2-D \[B, N\]$"):
        ops._resample_fake(_meta(3), None, None, "ssp")
    x = _meta(4, 2)
    lv, tab = _meta(4, dtype=torch.int64), _meta(10, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="^x0_hat must match x$"):
        ops._ddim_step_fake(x, _meta(4, 3), lv, lv, tab, tab, 0.5, None, None)
    with pytest.raises(RuntimeError, match="^grad must match x$"):
        ops._langevin_step_fake(x, _meta(4, 3), _meta(4), None, None, None)
