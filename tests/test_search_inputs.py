"""Inconsistent input to search() is refused before any work, with an error naming the argument;
the deferred value checks (finite rewards, prompt rows) stop a run early."""

import math

import pytest
import torch

import tts_fast as tts
from tts_fast._device_checks import Collector, collect, prompt_rows, require


class Counting(tts.models.GaussianMixture):
    """The mixture, counting its model calls (particles evaluated)."""

    calls = 0

    def forward(self, x_t, t, cond=None):
        self.calls += x_t.shape[0]
        return super().forward(x_t, t, cond)


class Prompts(Counting):
    num_prompts = 3


def _mixture(cls=Counting):
    return cls([[-2.0, 0.0], [2.0, 0.0]], [0.5, 0.5], [0.9, 0.1])


KW = dict(n_particles=4, num_steps=10, seed=0, progress=False)


def test_per_row_verifier_sets_the_batch_and_every_row_is_searched():
    """A verifier with 3 targets on an unconditional model: 3 rows, each pulled to its own target."""
    centers = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [-2.0, 0.0]])
    r = tts.search(_mixture(), tts.verifiers.GaussianReward(centers, 0.5), "bfs_best", **dict(KW, n_particles=16))
    assert r.samples.shape == (3, 2)
    # each row's best sample sits in the mode of its own target (left, right, left)
    assert r.samples[:, 0].sign().tolist() == [-1.0, 1.0, -1.0]


@pytest.mark.parametrize("where", ["verifier", "local_verifier"])
@pytest.mark.parametrize("rows", [2, 4])
def test_prompt_counts_must_agree(where, rows):
    model = _mixture(Prompts)
    other = tts.verifiers.GaussianReward(torch.zeros(rows, 2), 1.0)
    shared = tts.verifiers.GaussianReward([0.0, 0.0], 1.0)
    kw = dict(KW, rho=0.5) if where == "local_verifier" else KW
    verifier, local = (other, None) if where == "verifier" else (shared, other)
    with pytest.raises(ValueError, match=rf"the model holds 3 prompt rows but the {where} holds {rows}"):
        tts.search(model, verifier, "bfs", local_verifier=local, **kw)
    assert model.calls == 0


def test_batch_size_must_cover_every_prompt_row():
    model = _mixture(Prompts)
    v = tts.verifiers.GaussianReward([0.0, 0.0], 1.0)
    for b in (1, 2, 4):
        with pytest.raises(ValueError, match=rf"batch_size={b} but the model holds 3 prompt rows"):
            tts.search(model, v, "bon", batch_size=b, **KW)
    assert model.calls == 0
    assert tts.search(model, v, "bon", **KW).samples.shape[0] == 3
    # with no holder of prompts, batch_size is the number of independent rows
    assert tts.search(_mixture(), v, "bon", batch_size=5, **KW).samples.shape[0] == 5


def test_verifier_of_the_wrong_dimension():
    model = _mixture()
    with pytest.raises(ValueError, match=r"GaussianReward scores samples \[B, 1\].*x0 of shape \(\d+, 2\)"):
        tts.search(model, tts.verifiers.GaussianReward([0.0], 1.0), "bon", **KW)
    with pytest.raises(ValueError, match=r"MixtureReward scores samples \[B, 3\]"):
        tts.search(model, tts.verifiers.MixtureReward([[0.0, 0.0, 0.0]]), "bon", **KW)


@pytest.mark.parametrize("kwargs,match", [
    (dict(center=[[0.0, 0.0], [1.0, 1.0]], var=[1.0, 1.0, 1.0]), "center has 2 rows but var has 3"),
    (dict(center=[0.0, math.nan]), "center must be a finite"),
    (dict(center=[0.0, 0.0], var=math.nan), "var must be finite"),
    (dict(center=[0.0, 0.0], var=0.0), "var must be finite and > 0"),
    (dict(center=torch.zeros(2, 2, 2)), "center must be a finite"),
])
def test_gaussian_reward_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tts.verifiers.GaussianReward(**kwargs)


def test_gaussian_reward_prompt_rows():
    v = tts.verifiers.GaussianReward([[0.0, 0.0], [1.0, 0.0]], [1.0, 2.0])
    assert v.num_prompts == 2 and tts.verifiers.GaussianReward([0.0, 0.0], 1.0).num_prompts is None
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    assert torch.equal(v(x, torch.tensor([0, 1])), torch.tensor([-0.5, 0.0], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"cond holds prompt rows outside \[0, 2\)"):
        v(x, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="cond .* is required"):
        v(x, None)


@pytest.mark.parametrize("kwargs,match", [
    (dict(centers=[[0.0, 0.0]], variances=[1.0, 2.0]), "variances must be finite and > 0, a scalar or one per component"),
    (dict(centers=[[0.0, 0.0]], weights=-1.0), "weights must be"),
    (dict(centers=[0.0, 0.0]), "centers must be a finite"),
])
def test_mixture_reward_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tts.verifiers.MixtureReward(**kwargs)


def test_function_verifier_num_prompts():
    assert tts.verifiers.Function(lambda x: x.sum(1), num_prompts=3).num_prompts == 3
    with pytest.raises(ValueError, match="num_prompts"):
        tts.verifiers.Function(lambda x: x.sum(1), num_prompts=0)
    model = _mixture(Prompts)
    with pytest.raises(ValueError, match="holds 3 prompt rows but the verifier holds 2"):
        tts.search(model, tts.verifiers.Function(lambda x: x.sum(1), num_prompts=2), "bon", **KW)


def test_classifier_targets():
    net = torch.nn.Linear(2, 3)
    assert tts.verifiers.Classifier(net, [0, 2, 1]).num_prompts == 3
    assert tts.verifiers.Classifier(net, 1).num_prompts is None
    with pytest.raises(ValueError, match="target classes must be >= 0"):
        tts.verifiers.Classifier(net, [0, -1])


@pytest.mark.parametrize("options,match", [
    (dict(resample_at=100), r"resample_at=100 .* no evaluation level .* num_steps=10"),
    (dict(resample_at=10), r"resample_at=10 "),
    (dict(resample_at=[3, 10]), r"resample_at steps \[10\]"),
])
def test_bfs_plan_outside_the_run_is_refused_before_work(options, match):
    model = _mixture()
    with pytest.raises(ValueError, match=match):
        tts.search(model, tts.verifiers.GaussianReward([2.0, 0.0], 1.0), "bfs", **KW, **options)
    assert model.calls == 0
    # one step less is a real plan: an evaluation at step 9
    assert tts.BFS(resample_at=9).levels(10) == [9]


@pytest.mark.parametrize("make,match", [
    (lambda: tts.BFS(prune=True, ess_threshold=0.5), "ess_threshold gates resampling"),
    (lambda: tts.BFS(temperature="inf", select="weighted"), "select='weighted'"),
    (lambda: tts.BFS(temperature="inf", lam=5.0), "lam=5.0 would do nothing"),
    (lambda: tts.presets.svdd(lam=0.5), "lam=0.5 would do nothing"),
    (lambda: tts.DFS(threshold=math.nan), "threshold must be a finite number"),
    (lambda: tts.DFS(threshold=[0.0, math.nan]), r"threshold\[1\] must be a finite number"),
    (lambda: tts.DFS(threshold=[]), "threshold must be a number or a non-empty sequence"),
    (lambda: tts.DFS(threshold_schedule="increase"), "threshold_schedule='increase' shapes the absolute threshold"),
    (lambda: tts.DFS(threshold=-1.0, history=8), "history is the quantile's window"),
    (lambda: tts.DFS(history=0, quantile=0.5), "history must be an integer >= 1"),
    (lambda: tts.DFS(sync_every=4), "sync_every paces the end checks of slots='fixed'"),
    (lambda: tts.DFS(sync_every=0, slots="fixed"), "sync_every must be an integer >= 1"),
])
def test_options_that_would_be_ignored_or_meaningless(make, match):
    with pytest.raises(ValueError, match="^" + match):
        make()


def test_dfs_threshold_list_is_checked_against_the_run_before_work():
    model = _mixture()
    with pytest.raises(ValueError, match="threshold must be a float or a sequence of num_steps=10 values, got 3"):
        tts.search(model, tts.verifiers.GaussianReward([2.0, 0.0], 1.0), "dfs", threshold=[0.0, 0.0, 0.0], **KW)
    assert model.calls == 0


@pytest.mark.parametrize("options", [{}, dict(local_steps=2), dict(local_steps=2, rho=0.0, mu=0.0)])
def test_local_verifier_without_gradients_is_refused(options):
    model = _mixture()
    v = tts.verifiers.GaussianReward([2.0, 0.0], 1.0)
    with pytest.raises(ValueError, match="local_verifier supplies the gradients of local search"):
        tts.search(model, v, "bfs_best", local_verifier=v, **KW, **options)
    assert model.calls == 0


def test_dfs_runs_by_its_name_alone_with_calibrated_thresholds():
    model, v = _mixture(), tts.verifiers.GaussianReward([2.0, 0.0], 1.0)
    by_name = tts.search(model, v, "dfs", budget=4 * 10 * 3, **KW)
    explicit = tts.search(model, v, tts.DFS(calibrate=0.5), budget=4 * 10 * 3, **KW)
    assert by_name.method.calibrate == 0.5
    assert torch.equal(by_name.samples, explicit.samples) and by_name.nfe == explicit.nfe
    assert any(row["step"] == "calibration" for row in by_name.trace)


class NaNAt:
    """A reward that is NaN for one particle on every call; counts calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        r = -(x - 2.0).pow(2).sum(1)
        return torch.where(torch.arange(x.shape[0]) == 1, torch.nan, r)


@pytest.mark.parametrize("method,options,calls", [
    ("bfs", dict(resample_at=[3, 6, 8]), 4 * 4),  # levels 0..3 of 4 particles, scored at 3
    ("dfs", dict(threshold=-1.0, start=4, every=2), 5 * 4),
    ("dfs", dict(calibrate=0.5, start=4, every=2, slots="fixed"), 5 * 4),
    # local search scores (for its gradient) inside the first model call's round
    ("bfs_best", dict(local_steps=2, rho=0.5), 4),
])
def test_nan_rewards_stop_the_run_at_the_first_scoring_level(method, options, calls):
    """The error comes before the model is called beyond the first scored level (not after the budget)."""
    model = _mixture()
    fn = NaNAt()
    with pytest.raises(ValueError, match=r"the verifier \(Function\) returned NaN or inf rewards"):
        tts.search(model, tts.verifiers.Function(fn, differentiable=True), method, budget=4 * 10 * 4, **KW, **options)
    assert model.calls == calls
    assert fn.calls == 1


def test_nan_from_the_local_verifier_is_named():
    model = _mixture()
    bad = tts.verifiers.Function(NaNAt(), differentiable=True)
    with pytest.raises(ValueError, match=r"the local_verifier \(Function\) returned NaN"):
        tts.search(model, tts.verifiers.GaussianReward([2.0, 0.0], 1.0), "bfs", rho=0.5, local_verifier=bad, **KW)
    assert model.calls == 4


def test_inf_rewards_at_the_end_are_an_error():
    """Methods that score only finished samples read the checks there."""
    model = _mixture()
    v = tts.verifiers.Function(lambda x: torch.full((x.shape[0],), math.inf))
    with pytest.raises(ValueError, match="returned NaN or inf"):
        tts.search(model, v, "bon", **KW)


# -- the deferred checks themselves -------------------------------------------------------------


def test_require_is_immediate_outside_a_run_and_deferred_inside():
    with pytest.raises(ValueError, match="bad rows"):
        require(torch.tensor(False), "bad rows")
    require(torch.tensor(True), "fine")
    c = Collector()
    with collect(c):
        require(torch.tensor(True), "first")
        require(torch.tensor(False), "second")
        require(torch.tensor(True), "second")  # combined with the earlier flag of the same message: still failed
        require(torch.tensor(False), "third")
    with pytest.raises(ValueError, match="^second$"):
        c.check()
    c.check()  # the flags were read: nothing pending
    with collect(c):
        require(torch.tensor(True), "fourth")
    c.check()


def test_prompt_rows():
    rows = torch.tensor([0, 2, 1])
    assert torch.equal(prompt_rows(rows, 3, 3, "cpu", "it"), rows)
    assert torch.equal(prompt_rows(None, 2, 1, "cpu", "it"), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="cond .prompt rows. is required: it holds 3 prompts"):
        prompt_rows(None, 2, 3, "cpu", "it")
    with pytest.raises(ValueError, match=r"cond must be an int64 tensor \[B\] = \[3\]"):
        prompt_rows(rows.float(), 3, 3, "cpu", "it")
    with pytest.raises(ValueError, match=r"cond must be an int64 tensor \[B\] = \[2\]"):
        prompt_rows(rows, 2, 3, "cpu", "it")
    for bad in ([0, 3, 1], [0, -1, 1]):
        with pytest.raises(ValueError, match=r"cond holds prompt rows outside \[0, 3\) \(it\)"):
            prompt_rows(torch.tensor(bad), 3, 3, "cpu", "it")
    # inside a run the check waits for the run's read, and the rows stay in bounds meanwhile
    c = Collector()
    with collect(c):
        out = prompt_rows(torch.tensor([0, 5, -2]), 3, 3, "cpu", "it")
    assert out.tolist() == [0, 2, 0]
    with pytest.raises(ValueError, match="outside"):
        c.check()


@pytest.mark.parametrize("seed", [-1, 2**63, 1.0, True])
def test_seed_must_fit_the_generator(seed):
    model = _mixture()
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*63\)"):
        tts.search(model, tts.verifiers.GaussianReward([0.0, 0.0], 1.0), "bon", **dict(KW, seed=seed))
    assert model.calls == 0


@pytest.mark.parametrize("batch_size", [0, True, 2.0])
def test_function_verifier_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1 or None"):
        tts.verifiers.Function(lambda x: x.sum(1), batch_size=batch_size)
