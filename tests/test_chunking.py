"""Automatic chunking: out-of-memory halves the chunk, results are unchanged, the size is remembered."""

import pytest
import torch

import tts_fast as tts
from tts_fast._chunking import AdaptiveChunks, is_out_of_memory


def _limited(limit, calls):
    def fn(s, e):
        calls.append(e - s)
        if e - s > limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return torch.arange(s, e)
    return fn


def test_halves_on_out_of_memory_and_remembers():
    chunks, calls = AdaptiveChunks(), []
    out = chunks.run(64, _limited(20, calls))
    assert torch.equal(out, torch.arange(64))
    assert calls[:3] == [64, 32, 16] and chunks.fits == 16
    calls.clear()
    chunks.run(40, _limited(20, calls))
    assert calls == [16, 16, 8]  # starts from what fits


def test_respects_a_cap_and_multiples_and_reraises_other_errors():
    calls = []
    AdaptiveChunks(cap=10).run(25, _limited(100, calls))
    assert calls == [10, 10, 5]
    calls = []
    AdaptiveChunks(multiple=4).run(24, _limited(9, calls))
    assert all(c % 4 == 0 for c in calls[1:])
    with pytest.raises(ValueError):
        AdaptiveChunks().run(4, lambda s, e: (_ for _ in ()).throw(ValueError("not memory")))
    with pytest.raises(torch.cuda.OutOfMemoryError):
        AdaptiveChunks().run(4, _limited(0, []))  # nothing fits: the error surfaces
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate"))


def test_verifiers_chunk_automatically():
    seen = []

    def reward(x):
        seen.append(x.shape[0])
        if x.shape[0] > 8:
            raise torch.cuda.OutOfMemoryError("out of memory")
        return x.sum(1)

    v = tts.verifiers.Function(reward)
    x = torch.randn(30, 3)
    assert torch.allclose(v(x), x.sum(1))
    assert max(seen[-4:]) <= 8
    # the next call starts from what fits (broken variant: the learnt size forgotten between calls,
    # so every call pays the failed whole-batch attempt again)
    seen.clear()
    assert torch.allclose(v(x), x.sum(1))
    assert max(seen) <= 8 and sum(seen) == 30


def test_diffusers_model_chunks_its_network_automatically():
    architectures = pytest.importorskip("tts_fast.models.architectures")
    pytest.importorskip("diffusers")
    model = architectures.random_model("sd15", 1, smoke=True)
    x = torch.randn(12, *model.sample_shape)
    t = torch.full((12,), 500.0)
    c = torch.zeros(12, dtype=torch.int64)
    with torch.no_grad():
        whole = model(x, t, c)
    runner = model._runner

    def limited(xin, tin, ctx):
        if xin.shape[0] > 8:  # 4 particles x CFG pair
            raise torch.cuda.OutOfMemoryError("out of memory")
        return runner(xin, tin, ctx)

    model._runner = limited
    with torch.no_grad():
        chunked = model(x, t, c)
    # Kernels pick batch-size-dependent algorithms: equal to float rounding, not bit for bit.
    assert torch.allclose(chunked, whole, rtol=1e-4, atol=1e-4) and model._net_chunks.fits <= 4
