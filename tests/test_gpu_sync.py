"""On a GPU: the search loop issues no synchronising CUDA call (torch.cuda.set_sync_debug_mode).

The mode is set to 'warn' for the whole call and the warnings are recorded; markers written by the
wrapped model delimit the loop (from the first model call to the last), so set-up copies before
the loop and the reads after it (reward finiteness, the fixed-slot NFE count) are not counted. The
user's model and verifier may synchronise: the mode is off inside them.
"""

import warnings

import pytest
import torch

import tts_fast as tts

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine (GPU test)")

MODEL = "model call"
VERIFIER = "verifier call"


class _Quiet:
    """Wrap a callable: no sync checking while it runs (user code); optionally mark each call in ``log``."""

    def __init__(self, inner, log=None, mark=MODEL):
        self.inner, self.log, self.mark = inner, log, mark

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, *args, **kwargs):
        if self.log is not None:
            self.log.append(self.mark)
        mode = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode(0)
        try:
            return self.inner(*args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode(mode)


class _QuietVerifier(tts.Verifier):
    def __init__(self, inner, log=None):
        self.inner, self.differentiable = inner, inner.differentiable
        self.call = _Quiet(inner.forward, log, VERIFIER)

    def forward(self, x0, cond):
        return self.call(x0, cond)


def _problem():
    model = tts.models.GaussianMixture([[-2.0, 0.0], [2.0, 0.0]], [0.5, 0.5], [0.95, 0.05], dtype=torch.float32, device="cuda")
    return model, tts.verifiers.GaussianReward([2.0, 0.0], 1.0)


def _is_sync(e):
    return e is not MODEL and e is not VERIFIER and "synchroniz" in str(e.message)


def _syncs_in_loop(model, verifier, method, **kw):
    """(result, synchronising calls between the first and the last model call, except the ones
    right after the first verifier call, which must be at most one: the deferred value checks)."""
    assert tts.ops.backend("cuda") == "cuda", "the CUDA kernels were not built"
    tts.search(_Quiet(model), _QuietVerifier(verifier), method, **kw)  # warm-up (allocator, lazy initialisation)
    with warnings.catch_warnings(record=True) as log:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            r = tts.search(_Quiet(model, log), _QuietVerifier(verifier, log), method, **kw)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    first_score = log.index(VERIFIER)
    nxt = next((i for i in range(first_score + 1, len(log)) if log[i] is MODEL or log[i] is VERIFIER), len(log))
    checks = [e for e in log[first_score + 1 : nxt] if _is_sync(e)]
    assert len(checks) <= 1, [str(w.message) for w in checks]
    marks = [i for i, e in enumerate(log) if e is MODEL]
    inside = [e for i, e in enumerate(log) if marks[0] <= i < marks[-1] and not first_score < i < nxt]
    return r, [e for e in inside if _is_sync(e)]


@pytest.mark.parametrize("method,opts", [("bfs_best", {}), ("das", {}), ("fk", {}), ("bon", {}),
                                         ("bfs", dict(local_steps=2, rho=0.5, mu=0.1, sigma=0.1))])
def test_search_loop_does_not_synchronise(method, opts):
    model, verifier = _problem()
    r, syncs = _syncs_in_loop(model, verifier, method, n_particles=8, num_steps=20, batch_size=4, seed=0, progress=False, **opts)
    assert syncs == [], [str(w.message) for w in syncs]
    assert r.samples.is_cuda and r.nfe.model == 4 * 8 * 20 * (2 if "local_steps" in opts else 1)


@pytest.mark.parametrize("opts", [dict(threshold=-0.5), dict(calibrate=0.5)])
def test_dfs_with_fixed_slots_synchronises_only_to_stop(opts):
    """DFS with fixed slots: the one synchronising call is the end check, once every sync_every iterations."""
    model, verifier = _problem()
    s, sync_every = 20, 5
    r, syncs = _syncs_in_loop(model, verifier, "dfs", slots="fixed", sync_every=sync_every, n_particles=8, num_steps=s,
                              batch_size=4, seed=0, progress=False, max_backtracks=None, budget=4 * 8 * s * 3, **opts)
    iterations = next(row for row in r.trace if row["step"] == "slots")["iterations"]
    assert iterations > s and len(syncs) == iterations // sync_every - 1, [str(w.message) for w in syncs]
