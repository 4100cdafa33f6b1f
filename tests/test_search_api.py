"""Bad input to the public entry point gets a clear error naming the argument."""


import pytest
import torch

import tts_fast as tts


def search(problem, method="bfs", **kw):
    model, verifier = problem
    kw = {**dict(n_particles=4, num_steps=10, batch_size=2, seed=0, progress=False), **kw}
    return tts.search(model, verifier, method, **kw)


def test_unknown_method_and_options(rare_mode):
    with pytest.raises(ValueError, match="method must be one of"):
        search(rare_mode, "beam")
    with pytest.raises(ValueError, match=r"unknown option.*'temprature'.*allowed"):
        search(rare_mode, "bfs", temprature="inf")
    with pytest.raises(ValueError, match="temperature must be one of"):
        search(rare_mode, "bfs", temperature="hot")
    with pytest.raises(ValueError, match="scoring"):
        tts.BFS(scoring="sum")
    with pytest.raises(ValueError, match="resampling"):
        tts.BFS(resampling="tournament")
    with pytest.raises(ValueError, match="resample_at"):
        tts.BFS(resample_at=[0.5, 3])
    with pytest.raises(ValueError, match="resample_at steps"):
        search(rare_mode, "bfs", resample_at=[2, 20])
    with pytest.raises(ValueError, match="lam"):
        tts.BFS(lam=-1.0)
    with pytest.raises(ValueError, match="eta"):
        tts.BestOfN(eta=1.5)
    assert tts.DFS().calibrate == 0.5 and tts.DFS(threshold=-1.0).calibrate is None  # the unit-free default
    with pytest.raises(ValueError, match="calibrate must be"):
        tts.DFS(calibrate=1.5)
    with pytest.raises(ValueError, match="quantile or calibrate"):
        tts.DFS(quantile=0.5, calibrate=0.5)
    with pytest.raises(ValueError, match="delta_b"):
        search(rare_mode, "search_over_paths", delta_f=3, delta_b=2)
    with pytest.raises(ValueError, match="local_steps"):
        search(rare_mode, "bon", local_steps=0)
    with pytest.raises(ValueError, match="local search"):
        search(rare_mode, tts.BFS(), lam=2.0)
    with pytest.raises(TypeError, match="method"):
        search(rare_mode, 42)


@pytest.mark.parametrize("name,value", [("n_particles", 0), ("num_steps", 0), ("batch_size", 0), ("budget", 0), ("n_particles", 2.5)])
def test_bad_sizes(rare_mode, name, value):
    with pytest.raises(ValueError, match=name):
        search(rare_mode, **{name: value})


def test_bad_model_and_verifier(rare_mode):
    model, verifier = rare_mode
    with pytest.raises(TypeError, match="Verifier"):
        tts.search(model, lambda x, c: x.sum(1), "bon", n_particles=2, num_steps=5, progress=False)
    with pytest.raises(TypeError, match="Denoiser"):
        tts.search(object(), verifier, "bon", n_particles=2, num_steps=5, progress=False)


def test_nan_rewards_are_an_error(rare_mode):
    model, _ = rare_mode
    bad = tts.verifiers.Function(lambda x: torch.where(torch.arange(x.shape[0]) == 1, torch.nan, 0.0))
    with pytest.raises(ValueError, match="NaN"):
        tts.search(model, bad, "bfs", n_particles=8, num_steps=10, progress=False)


def test_gradient_methods_need_a_differentiable_verifier(rare_mode):
    model, _ = rare_mode
    v = tts.verifiers.Function(lambda x: -x.pow(2).sum(1))
    with pytest.raises(ValueError, match="differentiable"):
        tts.search(model, v, "local", rho=1.0, n_particles=2, num_steps=5, progress=False)
    # A differentiable local verifier fixes it (dual verifiers: gradients from it, selection from v).
    r = tts.search(model, v, "local", rho=1.0, n_particles=2, num_steps=5, progress=False,
                   local_verifier=tts.verifiers.GaussianReward([0.0, 0.0], 1.0))
    assert r.nfe.model_grad == 2 * 5


def test_dual_verifiers_split_gradient_and_selection(rare_mode):
    """Gradients come from local_verifier, the final pick from verifier."""
    model, verifier = rare_mode
    calls = {"select": 0}

    def select(x):
        calls["select"] += x.shape[0]
        return -x.pow(2).sum(1)

    guide = tts.verifiers.GaussianReward([2.0, 0.0], 1.0)
    r = tts.search(model, tts.verifiers.Function(select), "local", rho=1.0, n_particles=3, num_steps=6, batch_size=2,
                   progress=False, local_verifier=guide)
    assert calls["select"] == 2 * 3  # the selection verifier only scored the final samples
    assert torch.allclose(r.rewards, -r.samples.pow(2).sum(1))


def test_batch_size_beyond_the_models_prompts(rare_mode):
    class TwoPrompts(tts.models.GaussianMixture):
        num_prompts = 2

    m = TwoPrompts([[0.0, 0.0]], 1.0)
    with pytest.raises(ValueError, match="batch_size"):
        tts.search(m, rare_mode[1], "bon", n_particles=2, num_steps=5, batch_size=3, progress=False)
    assert tts.search(m, rare_mode[1], "bon", n_particles=2, num_steps=5, progress=False).samples.shape[0] == 2


def test_model_returning_the_wrong_shape(rare_mode):
    model, verifier = rare_mode

    class Broken(tts.models.GaussianMixture):
        def forward(self, x_t, t, cond=None):
            return super().forward(x_t, t, cond)[:, :1]

    with pytest.raises(ValueError, match="must return x0 like x_t"):
        tts.search(Broken(model.means, model.stds, model.weights), verifier, "bon", n_particles=2, num_steps=4, progress=False)


def test_dfs_quantile_needs_several_walkers(rare_mode):
    with pytest.raises(ValueError, match="n_particles >= 2"):
        search(rare_mode, "dfs", quantile=0.5, n_particles=1)
    assert search(rare_mode, "dfs", quantile=0.5, threshold=-1.0, n_particles=1).samples.shape == (2, 2)
    # calibrate pools every prompt's walkers, so one walker per prompt is enough
    assert search(rare_mode, "dfs", calibrate=0.5, n_particles=1).samples.shape == (2, 2)


def test_messages_name_the_argument_exactly(rare_mode):
    model, verifier = rare_mode
    with pytest.raises(TypeError, match=r"^method must be a name \(bon, zero_order, search_over_paths, bfs, "):
        search(rare_mode, 42)
    with pytest.raises(TypeError, match=r"^local_verifier must be a tts_fast.Verifier or None$"):
        search(rare_mode, local_verifier=lambda x, c: x.sum(1))
    for name in ("n_particles", "num_steps", "batch_size", "budget"):
        with pytest.raises(ValueError, match=f"^{name} must be an integer >= 1, got 0$"):
            search(rare_mode, **{name: 0})
    with pytest.raises(ValueError, match=r"is not differentiable; pass a differentiable local_verifier$"):
        tts.search(model, tts.verifiers.Function(lambda x, c: x.sum(1)), "local", rho=0.5, n_particles=2, num_steps=4,
                   progress=False)


def test_a_budget_of_exactly_one_trajectory_per_prompt_runs(rare_mode):
    b, s = 2, 10
    r = search(rare_mode, "bon", n_particles=1, budget=b * s)
    assert r.nfe.model == b * s
    with pytest.raises(ValueError, match=rf"^budget={b * s - 1} is too small for one sample per prompt: one trajectory "
                                         rf"costs {s} model NFE \(num_steps x local_steps\) for each of {b} prompts"):
        search(rare_mode, "bon", n_particles=1, budget=b * s - 1)


def test_the_progress_bar_counts_nfe_and_does_not_stay():
    from tts_fast.search.api import _progress_bar

    assert _progress_bar(False, 10) is None
    bar = _progress_bar(True, 10)
    try:
        assert (bar.total, bar.unit, bar.desc, bar.leave) == (10, "nfe", "search", False)
    finally:
        bar.close()


def test_the_trace_keeps_no_autograd_graph():
    """Traced tensors are detached: a guided run's trace must not hold the graph (and its memory)."""
    from tts_fast.search.counting import Trace

    t = Trace()
    x = torch.ones(3, requires_grad=True)
    t.add(step=0, rewards=x * 2, n=3)
    assert not t.rows[0]["rewards"].requires_grad and t.rows[0]["n"] == 3
    assert t.finalize() == [{"step": 0, "rewards": [2.0, 2.0, 2.0], "n": 3}]


class _Bar:
    """A progress bar that records what the search tells it (tqdm's interface: n, total, update, refresh, close)."""

    def __init__(self, total, log):
        self.total, self.n, self.closed, self.highest = total, 0, False, 0
        self.first_total = total
        log.append(self)

    def update(self, n):
        self.n += n
        self.highest = max(self.highest, self.n)

    def refresh(self):
        pass

    def close(self):
        self.closed = True


@pytest.mark.parametrize("method,opts", [
    ("bon", {}), ("bfs_best", {}), ("bfs_best", dict(rho=0.3, local_steps=2)),
    ("bfs", dict(prune=True)), ("zero_order", {}), ("search_over_paths", {}),
    ("dfs", dict(budget=4 * 2 * 10 * 2)),
    ("dfs", dict(slots="fixed", sync_every=3, budget=4 * 2 * 10 * 2)),
    ("dfs", dict(slots="fixed", sync_every=3, budget=4 * 2 * 10 * 3, rho=0.3, local_steps=2)),
])
def test_the_progress_bar_counts_the_model_nfe_spent_and_ends_at_them(rare_mode, monkeypatch, method, opts):
    """The bar counts what the counter counts (model NFE; fixed DFS slots that finished are not
    counted), never runs past its total (the plan, or the budget), and ends at the NFE spent."""
    import importlib

    api = importlib.import_module("tts_fast.search.api")  # tts_fast.search is also the function
    bars = []
    monkeypatch.setattr(api, "_progress_bar", lambda enabled, total: _Bar(total, bars) if enabled else None)
    r = search(rare_mode, method, progress=True, **opts)
    (bar,) = bars
    assert bar.n == bar.total == r.nfe.model and bar.closed
    if bar.first_total is not None:
        assert bar.highest <= bar.first_total
    if opts.get("slots") == "fixed":
        slots = next(row for row in r.trace if row["step"] == "slots")["slot_evaluations"]
        assert slots > r.nfe.model  # finished walkers kept computing in their slots: the bar did not count them


def test_the_progress_bar_of_fixed_dfs_slots_moves_during_the_run(rare_mode, monkeypatch):
    """Fixed slots count on the device: the bar learns the count at each end check, not only at the end."""
    import importlib

    api = importlib.import_module("tts_fast.search.api")
    seen = []

    class Watching(_Bar):
        def update(self, n):
            super().update(n)
            seen.append(self.n)

    bars = []
    monkeypatch.setattr(api, "_progress_bar", lambda enabled, total: Watching(total, bars) if enabled else None)
    r = search(rare_mode, "dfs", progress=True, slots="fixed", sync_every=2, budget=4 * 2 * 10 * 2)
    assert len([v for v in seen if 0 < v < r.nfe.model]) >= 2 and seen[-1] == r.nfe.model


def test_the_result_names_the_method_with_its_local_search(rare_mode):
    r = search(rare_mode, "bfs_best", rho=0.3, local_steps=2)
    assert r.method.local == tts.LocalSearch(rho=0.3, local_steps=2) and r.method.name == "bfs"
    assert search(rare_mode, "bfs_best").method.local is None
    # a method object with local-search options: the result's method carries them too
    r = search(rare_mode, tts.BFS(), rho=0.3, local_steps=2)
    assert r.method == tts.BFS(local=tts.LocalSearch(rho=0.3, local_steps=2))


def test_a_model_returning_no_tensor_is_named():
    class NotATensor(tts.models.GaussianMixture):
        def forward(self, x_t, t, cond=None):
            return super().forward(x_t, t, cond).tolist()

    model = NotATensor([[0.0, 0.0]], [1.0], [1.0])
    with pytest.raises(ValueError, match=r"^NotATensor returned list for x_t of shape \(2, 2\); a Denoiser must return x0 like x_t$"):
        tts.search(model, tts.verifiers.GaussianReward([0.0, 0.0], 1.0), "bon", n_particles=2, num_steps=3, progress=False)
