"""Every numeric option of the search methods at its bounds: the last legal value is taken, the
first illegal one is refused at construction with the exact message (name, bound, value).

Each row pins one bound, so a check whose bound moves, opens or closes, or whose message loses the
argument's name, fails here (mutation testing found such changes passing the older tests)."""

import math
import re

import pytest

import tts_fast as tts

# (constructor, field, legal values, refused value, the whole message for the refused one)
BOUNDS = [
    (tts.BFS, "lam", [1e-12, 1e6], 0.0, "lam must be a finite number > 0.0, got 0.0"),
    (tts.BFS, "lam", [], math.inf, "lam must be a finite number > 0.0, got inf"),
    (tts.BFS, "ess_threshold", [1e-12, 1.0], 0.0, "ess_threshold must be a finite number > 0.0 and <= 1.0, got 0.0"),
    (tts.BFS, "ess_threshold", [], 1.0 + 1e-9, "ess_threshold must be a finite number > 0.0 and <= 1.0, got 1.000000001"),
    (tts.BFS, "eta", [0.0, 1.0], 1.5, "eta must be a finite number >= 0.0 and <= 1.0, got 1.5"),
    (tts.BFS, "target_ess", [1e-12, 1.0 - 1e-12], 0.0, "target_ess must be a finite number > 0.0 and <= 1.0, got 0.0"),
    (tts.BFS, "target_ess", [], 1.0, "target_ess must be < 1: an ESS of N allows no increment, so the temperature would never rise"),
    (tts.BFS, "eta", [], -1e-9, "eta must be a finite number >= 0.0 and <= 1.0, got -1e-09"),
    (tts.BestOfN, "eta", [0.0, 1.0], 1.0 + 1e-9, "eta must be a finite number >= 0.0 and <= 1.0, got 1.000000001"),
    (tts.ZeroOrder, "lam", [1e-12, 1.0], 0.0, "lam must be a finite number > 0.0 and <= 1.0, got 0.0"),
    (tts.ZeroOrder, "lam", [], 1.5, "lam must be a finite number > 0.0 and <= 1.0, got 1.5"),
    (tts.ZeroOrder, "iterations", [1, 7], 0, "iterations must be an integer >= 1, got 0"),
    (tts.ZeroOrder, "eta", [0.0, 1.0], 2.0, "eta must be a finite number >= 0.0 and <= 1.0, got 2.0"),
    (tts.SearchOverPaths, "width", [1, 5], 0, "width must be an integer >= 1, got 0"),
    (tts.SearchOverPaths, "delta_f", [1], 0, "delta_f must be an integer >= 1, got 0"),
    (tts.SearchOverPaths, "delta_b", [2], 0, "delta_b must be an integer >= 1, got 0"),
    (tts.SearchOverPaths, "start", [0, 3], -1, "start must be an integer >= 0, got -1"),
    (tts.SearchOverPaths, "eta", [0.0, 1.0], -0.5, "eta must be a finite number >= 0.0 and <= 1.0, got -0.5"),
    (tts.DFS, "calibrate", [1e-12, 1.0], 0.0, "calibrate must be a finite number > 0.0 and <= 1.0, got 0.0"),
    (tts.DFS, "calibrate", [], 1.5, "calibrate must be a finite number > 0.0 and <= 1.0, got 1.5"),
    (tts.DFS, "quantile", [1e-12, 1.0], 0.0, "quantile must be a finite number > 0.0 and <= 1.0, got 0.0"),
    (tts.DFS, "quantile", [], 1.0 + 1e-9, "quantile must be a finite number > 0.0 and <= 1.0, got 1.000000001"),
    (tts.DFS, "threshold", [-1e300, 1e300], math.inf, "threshold must be a finite number >= -inf, got inf"),
    (tts.DFS, "backtrack", [1, 9], 0, "backtrack must be an integer >= 1, got 0"),
    (tts.DFS, "start", [0, 4], -1, "start must be an integer >= 0, got -1"),
    (tts.DFS, "every", [1, 3], 0, "every must be an integer >= 1, got 0"),
    (tts.DFS, "max_backtracks", [0, 5], -1, "max_backtracks must be an integer >= 0, got -1"),
    (tts.DFS, "eta", [0.0, 1.0], 1.5, "eta must be a finite number >= 0.0 and <= 1.0, got 1.5"),
    (tts.DTS, "lam", [1e-12, 1e6], 0.0, "lam must be a finite number > 0.0, got 0.0"),
    (tts.DTS, "max_children", [2, 9], 1, "max_children must be an integer >= 2, got 1"),
    (tts.DTS, "rollouts", [1, 50], 0, "rollouts must be an integer >= 1, got 0"),
    (tts.DTS, "eta", [1e-12, 1.0], 0.0, "eta must be a finite number > 0.0 and <= 1.0, got 0.0"),
    (tts.DTS, "eta", [], 1.0 + 1e-9, "eta must be a finite number > 0.0 and <= 1.0, got 1.000000001"),
    (tts.DTS, "sync_every", [1, 7], 0, "sync_every must be an integer >= 1, got 0"),
    (tts.DAS, "lam", [1e-12, 1e6], 0.0, "lam must be a finite number > 0.0, got 0.0"),
    (tts.DAS, "gamma", [1e-12, 10.0], 0.0, "gamma must be a finite number > 0.0, got 0.0"),
    (tts.DAS, "ess_threshold", [1e-12, 1.0], 0.0, "ess_threshold must be a finite number > 0.0 and <= 1.0, got 0.0"),
    (tts.DAS, "eta", [1e-12, 1.0], 0.0, "eta must be a finite number > 0.0 and <= 1.0, got 0.0"),
    (tts.LocalSearch, "local_steps", [1, 4], 0, "local_steps must be an integer >= 1, got 0"),
    (tts.LocalSearch, "mc_samples", [1, 4], 0, "mc_samples must be an integer >= 1, got 0"),
    (tts.LocalSearch, "iter_steps", [1, 4], 0, "iter_steps must be an integer >= 1, got 0"),
    (tts.LocalSearch, "rho", [-1e300, 0.0, 1e300], math.nan, "rho must be a finite number >= -inf, got nan"),
    (tts.LocalSearch, "mu", [-1e300, 0.0, 1e300], -math.inf, "mu must be a finite number >= -inf, got -inf"),
    (tts.LocalSearch, "sigma", [0.0, 3.0], -1e-9, "sigma must be a finite number >= 0.0, got -1e-09"),
    (tts.LocalSearch, "max_grad_norm", [1e-12, 1e6], 0.0, "max_grad_norm must be a finite number > 0.0, got 0.0"),
    (tts.LocalSearch, "eta", [0.0, 1.0], 1.5, "eta must be a finite number >= 0.0 and <= 1.0, got 1.5"),
]

# what a field needs beside it to be constructible at all
COMPANIONS = {
    (tts.DFS, "quantile"): dict(calibrate=None),
    (tts.SearchOverPaths, "delta_b"): dict(delta_f=1),
    (tts.BFS, "target_ess"): dict(temperature="adaptive"),
    # the local-search options act only next to a gradient step (and the K noises with smoothing)
    (tts.LocalSearch, "mc_samples"): dict(mu=0.1, sigma=0.1),
    (tts.LocalSearch, "iter_steps"): dict(mu=0.1),
    (tts.LocalSearch, "sigma"): dict(rho=0.1),
    (tts.LocalSearch, "max_grad_norm"): dict(rho=0.1),
    (tts.DTS, "sync_every"): dict(slots="fixed"),
}


@pytest.mark.parametrize("make,field,legal,refused,message", BOUNDS, ids=lambda v: getattr(v, "__name__", None))
def test_each_bound_is_where_the_docs_put_it(make, field, legal, refused, message):
    extra = COMPANIONS.get((make, field), {})
    for v in legal:
        assert getattr(make(**{field: v}, **extra), field) == v
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        make(**{field: refused}, **extra)


@pytest.mark.parametrize("make,field", [(tts.BFS, "ess_threshold"), (tts.DFS, "history"), (tts.DFS, "every"),
                                        (tts.SearchOverPaths, "width"), (tts.LocalSearch, "local_steps")])
def test_a_bool_is_not_a_number(make, field):
    extra = dict(quantile=0.5, calibrate=None) if field == "history" else {}
    with pytest.raises(ValueError, match=f"^{field} must be"):
        make(**{field: True}, **extra)


@pytest.mark.parametrize("resample_at,ok", [
    ("every", True), (1, True), (3, True), ([0], True), ([0, 4, 9], True), ([0.5], True), ((0.01, 0.99), True),
    (0, False), (True, False), ([], False), (None, False), ("half", False), ([1.5], False), ([0.0], False),
    ([1.0], False), ([0.5, 2], False), ([-1], False), ([True], False), (2.5, False),
])
def test_resample_at_forms(resample_at, ok):
    if ok:
        assert tts.BFS(resample_at=resample_at).resample_at == resample_at
    else:
        with pytest.raises(ValueError, match=r"^resample_at must be 'every', an int k >= 1, a list of step indices, "
                                             r"or a list of fractions in \(0, 1\); got "):
            tts.BFS(resample_at=resample_at)


def test_dfs_messages_name_the_rule():
    with pytest.raises(ValueError, match="^DFS takes quantile or calibrate, not both$"):
        tts.DFS(quantile=0.5, calibrate=0.5)
    with pytest.raises(ValueError, match=r"^threshold must be a number or a non-empty sequence of one number per step$"):
        tts.DFS(threshold=())


def test_dfs_run_time_refusals_are_worded_exactly(rare_mode):
    model, verifier = rare_mode
    kw = dict(n_particles=1, num_steps=6, batch_size=2, seed=0, progress=False)
    with pytest.raises(ValueError, match="^DFS with only a quantile threshold compares the walkers of a prompt: "
                                         "use n_particles >= 2 or give an absolute threshold$"):
        tts.search(model, verifier, "dfs", quantile=0.5, **kw)
    with pytest.raises(ValueError, match=r"^DFS with max_backtracks=None needs a budget, or it may never stop$"):
        tts.search(model, verifier, "dfs", threshold=0.0, max_backtracks=None, **kw)


@pytest.mark.parametrize("make,field", [(tts.BFS, "prune"), (tts.ZeroOrder, "restart_on_stall")])
def test_switches_must_be_bools(make, field):
    with pytest.raises(ValueError, match=f"^{field} must be True or False, got 1$"):
        make(**{field: 1})
