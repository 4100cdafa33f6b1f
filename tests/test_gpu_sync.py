"""On a GPU: the search loop issues no synchronising CUDA call (torch.cuda.set_sync_debug_mode).

The user's model and verifier may synchronise; the mode is switched off inside them. The one
intended read of the run (reward finiteness, once, after the loop) happens after the mode is reset.
"""

import pytest
import torch

import tts_fast as tts
from tts_fast.search import engine

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine (GPU test)")


class _Quiet:
    """Wrap a callable: no sync checking while it runs (user code)."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, *args, **kwargs):
        mode = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode(0)
        try:
            return self.inner(*args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode(mode)


class _QuietVerifier(tts.Verifier):
    def __init__(self, inner):
        self.inner, self.differentiable = inner, inner.differentiable
        self.call = _Quiet(inner.forward)

    def forward(self, x0, cond):
        return self.call(x0, cond)


@pytest.mark.parametrize("method,opts", [("bfs_best", {}), ("das", {}), ("fk", {}), ("bon", {}),
                                         ("bfs", dict(local_steps=2, rho=0.5, mu=0.1, sigma=0.1))])
def test_search_loop_does_not_synchronise(monkeypatch, method, opts):
    assert tts.ops.backend("cuda") == "cuda", "the CUDA kernels were not built"
    model = tts.models.GaussianMixture([[-2.0, 0.0], [2.0, 0.0]], [0.5, 0.5], [0.95, 0.05], dtype=torch.float32, device="cuda")
    verifier = tts.verifiers.GaussianReward([2.0, 0.0], 1.0)
    m, v = _Quiet(model), _QuietVerifier(verifier)
    kw = dict(n_particles=8, num_steps=20, batch_size=4, seed=0, progress=False, **opts)
    tts.search(m, v, method, **kw)  # warm-up (allocator, lazy initialisation)
    original = engine.Context.check_rewards

    def check_after_reset(self):
        torch.cuda.set_sync_debug_mode(0)
        return original(self)

    monkeypatch.setattr(engine.Context, "check_rewards", check_after_reset)
    torch.cuda.set_sync_debug_mode("error")
    try:
        r = tts.search(m, v, method, **kw)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert r.samples.is_cuda and r.nfe.model == 4 * 8 * 20 * (2 if "local_steps" in opts else 1)
