"""The ops as dispatcher citizens: torch.library.opcheck on sample inputs of every op and device,
and every op inside torch.compile(fullgraph=True) gives the eager result."""

from __future__ import annotations

import pytest
import torch

from tts_fast import ops

from _ops_helpers import DEVICES, log_weights, rng_tensor, skip_unless_device, tempering_rows, uniforms, vp_tables


def _samples(device):
    """(op name, args in schema order) covering each op's optional arguments."""
    d = device
    lw = log_weights(4, 9, scale=2.0, special=0.1, seed=1).to(d)
    lw32 = lw.float()
    u = uniforms(4, 9, seed=2).to(d)
    alpha, sigma = vp_tables(20, d)
    x = torch.randn(3, 5, 7, device=d)
    xh = x.half()
    x0 = torch.randn(3, 5, 7, device=d)
    lf = torch.tensor([0, 3, 7], device=d)
    lt = torch.tensor([5, 9, 19], device=d)
    step = torch.tensor([0.1, 0.0, 0.02], device=d)
    rng = rng_tensor(5, 1, d)
    samples = [("resample", (lw, u, None, s)) for s in ops.SCHEMES]
    samples += [
        ("resample", (lw32, None, rng, "ssp")),
        ("resample", (lw32, u.float(), None, "systematic")),
        ("renoise", (x, lf, lt, alpha, sigma, torch.randn_like(x), None)),
        ("renoise", (xh, lf, lt, alpha, sigma, None, rng)),
        ("ddim_step", (x, x0, lt, lf, alpha, sigma, 0.5, None, rng)),
        ("ddim_step", (x, x0, lt, lf, alpha, sigma, 0.0, None, None)),
        ("langevin_step", (x, x0, step, torch.randn_like(x), None, None)),
        ("langevin_step", (x.double(), x0.double(), step.double(), None, rng, 1.0)),
        ("ess", (lw,)),
        ("ess", (lw32,)),
        ("normalize_log_weights", (lw,)),
        ("normalize_log_weights", (lw32.t().contiguous().t(),)),
        ("adaptive_increment", tempering_rows(9, 3, d)),
        ("adaptive_increment", tuple(t.t().contiguous().t() if t.dim() == 2 else t for t in tempering_rows(33, 4, d))),
    ]
    return samples


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    skip_unless_device(device)
    for name, args in _samples(device):
        torch.library.opcheck(getattr(torch.ops.tts_fast, name).default, args)


def _same(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape and a.device == b.device
    torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(ops.SCHEMAS))
def test_compiled_equals_eager(device, name):
    skip_unless_device(device)
    torch._dynamo.reset()
    op = getattr(torch.ops.tts_fast, name)
    for sample_name, args in _samples(device):
        if sample_name != name:
            continue
        compiled = torch.compile(lambda *a: op(*a), fullgraph=True, dynamic=False)
        with torch.no_grad():
            _same(compiled(*args), op(*args))


@pytest.mark.parametrize("device", [p for p in DEVICES if p != "cpu"])
def test_cuda_graph_replay_reads_current_rng(device):
    """A captured graph re-reads the device-side rng tensor at every replay (fresh numbers after
    Philox.take-style in-place advances), and matches eager calls with the same values."""
    skip_unless_device(device)
    lw = log_weights(64, 32, scale=2.0, seed=3).to(device)
    x = torch.randn(8, 100, device=device)
    alpha, sigma = vp_tables(20, device)
    lf, lt = torch.zeros(8, dtype=torch.int64, device=device), torch.full((8,), 10, device=device)
    state = rng_tensor(77, 0, device)

    def step():
        return ops.resample(lw, rng=state, scheme="ssp"), ops.renoise(x, lf, lt, alpha, sigma, rng=state)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        anc, xr = step()
    for offset in (0, 1000, 5):
        state[1] = offset
        graph.replay()
        want_anc = ops.resample(lw, rng=rng_tensor(77, offset, device), scheme="ssp")
        want_x = ops.renoise(x, lf, lt, alpha, sigma, rng=rng_tensor(77, offset, device))
        assert torch.equal(anc, want_anc) and torch.equal(xr, want_x)


@pytest.mark.parametrize("device", [p for p in DEVICES if p != "cpu"])
def test_reduce_overhead_compile(device):
    skip_unless_device(device)
    torch._dynamo.reset()
    lw = log_weights(16, 64, seed=4).to(device)
    u = uniforms(16, 64, seed=5).to(device)

    def f(lw, u):
        anc = torch.ops.tts_fast.resample(lw, u, None, "ssp")
        return anc, torch.ops.tts_fast.ess(lw)

    compiled = torch.compile(f, mode="reduce-overhead", fullgraph=True)
    for _ in range(3):
        got = compiled(lw, u)
        want = f(lw, u)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
