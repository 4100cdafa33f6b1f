"""The search loop never reads device values on the host (no .item(), bool(tensor), nonzero()),
but once: the deferred value checks (finite rewards) are read right after the first verifier call,
so that NaN rewards stop the run at its first scoring level.

On a GPU such reads block the host until the device catches up and break CUDA-graph capture.
The CPU stand-in: a dispatch mode records every aten op that reads tensor data on the host, and
the test asserts only that one happens in tts_fast's own code between the first and last model
call (the user's model and the verifier may do what they like; they run inside markers).
"""

import pytest
from torch.utils._python_dispatch import TorchDispatchMode

import tts_fast as tts

HOST_READS = {"_local_scalar_dense", "nonzero", "is_nonzero", "item", "equal"}


class HostReads(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.events = []
        self.inside_user_code = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in HOST_READS and not self.inside_user_code:
            self.events.append(("read", name))
        return func(*args, **(kwargs or {}))


class Marked:
    """Wrap a model or verifier: mark its calls so the reads inside them are not counted."""

    def __init__(self, inner, mode, kind):
        self.inner, self.mode, self.kind = inner, mode, kind

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, *args, **kwargs):
        self.mode.inside_user_code += 1
        try:
            if self.kind == "model":
                self.mode.events.append(("model", None))
            return self.inner(*args, **kwargs)
        finally:
            self.mode.inside_user_code -= 1


class MarkedVerifier(tts.Verifier):
    def __init__(self, inner, mode):
        self.inner, self.mode, self.differentiable = inner, mode, inner.differentiable

    def forward(self, x0, cond):
        self.mode.events.append(("verifier", None))
        self.mode.inside_user_code += 1
        try:
            return self.inner.forward(x0, cond)
        finally:
            self.mode.inside_user_code -= 1


def _reads_in_loop(events):
    models = [i for i, e in enumerate(events) if e[0] == "model"]
    return [e for e in events[models[0] : models[-1]] if e[0] == "read"]


def _first_score_read(events):
    """The host reads between the first verifier call and the next call of the model or verifier."""
    first = next(i for i, e in enumerate(events) if e[0] == "verifier")
    after = []
    for e in events[first + 1:]:
        if e[0] != "read":
            break
        after.append(e)
    return after


@pytest.mark.skipif(tts.ops.backend("cpu") == "reference", reason="the pure-PyTorch reference ops check levels on the host")
@pytest.mark.parametrize("method,opts", [
    ("bfs", dict(scoring="difference", resampling="ssp")),
    ("bfs", dict(temperature="inf", resample_at="every")),
    ("bfs_auto", {}),
    ("bfs", dict(temperature="adaptive", lam=3.0, scoring="max", ess_threshold=0.5, resample_at="every")),
    ("das", {}),
    ("das_guided", {}),
    ("fk", {}),
    ("bon", {}),
    ("zero_order", dict(iterations=2)),
    ("search_over_paths", {}),
    ("bfs_best", dict(local_steps=2, rho=0.5, mu=0.1, sigma=0.1, mc_samples=2)),
    ("local", dict(local_steps=3, rho=0.5, move="langevin")),
    ("local_auto", {}),
])
def test_search_loop_has_no_host_reads(rare_mode, method, opts):
    model, verifier = rare_mode
    mode = HostReads()
    m = Marked(model, mode, "model")
    v = MarkedVerifier(verifier, mode)
    with mode:
        tts.search(m, v, method, n_particles=4, num_steps=12, batch_size=3, seed=0, progress=False, **opts)
    assert sum(1 for e in mode.events if e[0] == "model") > 1
    reads = _reads_in_loop(mode.events)
    first = _first_score_read(mode.events)
    assert len(first) == 1  # the deferred checks, read once at the first scoring level
    if len(reads) != 0:  # methods that score only after their last model call read outside the loop
        assert reads == first


def test_the_detector_sees_host_reads(rare_mode):
    """Pruning and DFS need data-dependent shapes, so they do read the device; the detector notices."""
    model, verifier = rare_mode
    mode = HostReads()
    with mode:
        tts.search(Marked(model, mode, "model"), MarkedVerifier(verifier, mode), "bfs", prune=True, n_particles=4,
                   num_steps=12, batch_size=2, progress=False)
    assert _reads_in_loop(mode.events)


@pytest.mark.skipif(tts.ops.backend("cpu") == "reference", reason="the pure-PyTorch reference ops check levels on the host")
@pytest.mark.parametrize("opts", [
    dict(threshold=-0.5),
    dict(calibrate=0.5),
    dict(quantile=0.5, threshold=-0.5),
    dict(calibrate=0.5, local_steps=2, rho=0.5, mu=0.1),
])
def test_dfs_with_fixed_slots_reads_the_device_only_to_stop(rare_mode, opts):
    """Fixed slots: walkers at different levels, backtracks and the budget all stay on the device; the
    host asks whether every walker finished once every sync_every iterations, and nothing else."""
    model, verifier = rare_mode
    mode = HostReads()
    m, v = Marked(model, mode, "model"), MarkedVerifier(verifier, mode)
    s, sync_every = 12, 5
    with mode:
        r = tts.search(m, v, "dfs", slots="fixed", sync_every=sync_every, n_particles=4, num_steps=s, batch_size=3, seed=0,
                       budget=3 * 4 * s * 3 * opts.get("local_steps", 1), max_backtracks=None, progress=False, **opts)
    iterations = next(row for row in r.trace if row["step"] == "slots")["iterations"]
    reads = _reads_in_loop(mode.events)
    # the end check every sync_every iterations (the last one after the last model call), plus the
    # deferred checks read once at the first scoring level
    assert len(reads) == iterations // sync_every - 1 + 1
    assert len(_first_score_read(mode.events)) == 1
    assert iterations > s and r.nfe.model <= 3 * 4 * s * 3 * opts.get("local_steps", 1)  # walkers backtracked, within budget


@pytest.mark.skipif(tts.ops.backend("cpu") == "reference", reason="the pure-PyTorch reference ops check levels on the host")
@pytest.mark.parametrize("method", ["dts", "dts_star"])
def test_dts_with_fixed_slots_reads_the_device_only_to_stop(rare_mode, method):
    """Fixed slots: the trees, the selections, the backups and the budget all stay on the device; the
    host asks whether every slot is done once every sync_every iterations, and nothing else."""
    model, verifier = rare_mode
    mode = HostReads()
    m, v = Marked(model, mode, "model"), MarkedVerifier(verifier, mode)
    s, sync_every = 12, 5
    with mode:
        r = tts.search(m, v, method, slots="fixed", sync_every=sync_every, n_particles=4, num_steps=s, batch_size=3, seed=0,
                       budget=3 * s * 10, progress=False)
    iterations = r.trace[-1]["iterations"]
    reads = _reads_in_loop(mode.events)
    assert len(reads) == iterations // sync_every - 1 + 1
    assert len(_first_score_read(mode.events)) == 1
    assert sum(r.trace[-1]["rollouts"]) > 3 * 4 and r.nfe.model <= 3 * s * 10  # slots went on after their first rollouts
