"""Exact NFE accounting, budgets, determinism and result shapes."""

import math

import pytest
import torch

import tts_fast as tts

METHOD_OPTIONS = {
    "bon": {},
    "zero_order": {"iterations": 2},
    "search_over_paths": {},
    "bfs": {},
    "svdd": {},
    "das": {},
    "fk": {},
    "bfs_best": {},
    "dfs": {"threshold": -1.0},
    "local": {"rho": 0.5, "local_steps": 2},
}


def run(problem, method, **kw):
    model, verifier = problem
    kw = {**dict(n_particles=4, num_steps=12, batch_size=3, seed=0, progress=False), **kw}
    return tts.search(model, verifier, method, **kw)


def test_best_of_n_counts_exactly(rare_mode):
    b, n, s = 3, 5, 12
    r = run(rare_mode, "bon", n_particles=n, num_steps=s, batch_size=b)
    assert r.nfe.model == b * n * s
    assert r.nfe.verifier == b * n and r.nfe.model_grad == 0 and r.nfe.verifier_grad == 0
    assert r.nfe_per_prompt.tolist() == [n * s] * b
    assert r.nfe.total == b * n * s + b * n


def test_local_steps_and_gradients_are_counted(rare_mode):
    b, n, s, rr, k = 2, 3, 10, 3, 2
    r = run(rare_mode, "bon", n_particles=n, num_steps=s, batch_size=b, local_steps=rr, rho=0.3, sigma=0.1, mc_samples=k)
    assert r.nfe.model == b * n * s * rr and r.nfe.model_grad == b * n * s * rr
    # K smoothed verifier calls (forward + backward) per model call, plus the final scoring.
    assert r.nfe.verifier_grad == b * n * s * rr * k
    assert r.nfe.verifier == b * n * s * rr * k + b * n
    r = run(rare_mode, "bon", n_particles=n, num_steps=s, batch_size=b, local_steps=1, mu=0.2, iter_steps=3)
    assert r.nfe.model == b * n * s and r.nfe.model_grad == 0
    assert r.nfe.verifier_grad == b * n * s * 3


def test_bfs_and_search_over_paths_report_their_plan(rare_mode):
    r = run(rare_mode, "bfs", resample_at=(0.25, 0.5, 0.75))
    assert r.nfe.model == 3 * 4 * 12
    assert r.nfe.verifier == 3 * 4 * (3 + 1)  # three evaluation levels and the final scoring
    sop = tts.SearchOverPaths(width=3, delta_f=2, delta_b=4, start=4)
    start, rounds = sop.plan(12)
    assert (start, rounds) == (4, [(2, 6), (4, 8), (6, 10), (8, 12)])
    r = run(rare_mode, sop)
    assert r.nfe.model == 3 * (4 * 4 + sum(4 * 3 * (lt - lf) for lf, lt in rounds))


@pytest.mark.parametrize("method", sorted(METHOD_OPTIONS))
def test_no_method_exceeds_its_budget(rare_mode, method):
    opts = dict(METHOD_OPTIONS[method])
    b, s = 3, 12
    model, verifier = rare_mode
    # Find what the method spends, then give it exactly that budget and less.
    free = run(rare_mode, method, **opts)
    assert free.nfe.model > 0
    budget = free.nfe.model
    if method in ("dfs",):
        budget = b * 4 * s * 2  # adaptive: spends up to the budget
    r = run(rare_mode, method, budget=budget, **opts)
    assert r.nfe.model <= budget
    assert int(r.nfe_per_prompt.max()) <= budget // b


def test_fixed_plans_over_budget_are_refused(rare_mode):
    with pytest.raises(ValueError, match="budget"):
        run(rare_mode, "bfs", budget=3 * 4 * 12 - 1)
    with pytest.raises(ValueError, match="too small for one sample"):
        run(rare_mode, "bon", budget=3 * 12 - 1)
    with pytest.raises(ValueError, match="too small for one sample"):
        run(rare_mode, "bon", budget=3 * 12 * 2 - 1, local_steps=2)


def test_adaptive_methods_fill_but_never_exceed_the_budget(rare_mode):
    b, n, s = 3, 4, 12
    zo = run(rare_mode, "zero_order", budget=b * (s + 3 * n * s) + b * 5)
    assert zo.nfe.model == b * (s + 3 * n * s)  # three rounds fit, a fourth does not
    for budget in (b * n * s, b * n * s + b * 7, b * n * s * 3):
        r = run(rare_mode, "dfs", threshold=0.0, max_backtracks=None, budget=budget)  # threshold never met
        assert r.nfe.model <= budget
        assert budget - r.nfe.model < b * s  # it used what it could


def test_same_seed_same_result_and_seed_matters(rare_mode):
    for method, opts in METHOD_OPTIONS.items():
        a = run(rare_mode, method, seed=3, **opts)
        b = run(rare_mode, method, seed=3, **opts)
        assert torch.equal(a.samples, b.samples) and torch.equal(a.rewards, b.rewards), method
        assert a.nfe == b.nfe, method
    a = run(rare_mode, "bfs", seed=1)
    b = run(rare_mode, "bfs", seed=2)
    assert not torch.equal(a.samples, b.samples)


def test_result_shapes_and_normalised_weights(rare_mode):
    b, n = 3, 4
    r = run(rare_mode, "bfs", scoring="difference")
    assert r.samples.shape == (b, 2) and r.latents.shape == (b, 2) and r.rewards.shape == (b,)
    assert r.particles.shape == (b, n, 2) and r.particle_rewards.shape == (b, n)
    assert r.log_weights.shape == (b, n)
    assert torch.allclose(torch.logsumexp(r.log_weights, 1), torch.zeros(b, dtype=torch.float64), atol=1e-12)
    # samples are the best particle of each row
    assert torch.equal(r.rewards, r.particle_rewards.max(1).values)
    verifier = rare_mode[1]
    assert torch.allclose(verifier(r.samples), r.rewards)
    assert set(r.timings) >= {"model", "verifier", "search_ops", "total"}
    assert r.trace and all("ess" in row for row in r.trace)
    assert isinstance(r.method, tts.BFS)


def test_weighted_selection_draws_from_the_population(rare_mode):
    r = run(rare_mode, "bfs", scoring="difference", select="weighted", n_particles=8)
    hits = (r.particles == r.latents[:, None, :]).all(-1).any(1)
    assert bool(hits.all())


def test_prune_only_shrinks_the_population(rare_mode):
    n, s, b = 8, 12, 3
    r = run(rare_mode, "bfs", prune=True, lam=3.0, n_particles=n, num_steps=s, resample_at=(0.25, 0.5, 0.75))
    alive = [row["alive"] for row in r.trace]
    for before, after in zip(alive, alive[1:]):
        assert all(a <= bb for a, bb in zip(after, before))
    assert r.nfe.model < b * n * s
    # Spent exactly the live particles' steps: the full population up to the first evaluation
    # level, then after each prune its survivors, up to and including the next evaluation level.
    levels = tts.BFS(resample_at=(0.25, 0.5, 0.75)).levels(s)
    ends = levels[1:] + [s - 1]
    expected = b * n * (levels[0] + 1) + sum(sum(alive[k]) * (ends[k] - levels[k]) for k in range(len(levels)))
    assert r.nfe.model == expected
    assert bool(torch.isfinite(r.rewards).all())


@pytest.mark.parametrize("method,opts", [("bfs_best", {}), ("zero_order", {"iterations": 1}), ("search_over_paths", {}), ("bon", {})])
def test_local_steps_combine_with_global_methods(rare_mode, method, opts):
    """Joint scaling: R local rounds per level multiply a fixed plan's model NFE by R."""
    plain = run(rare_mode, method, **opts)
    joint = run(rare_mode, method, local_steps=3, rho=0.2, **opts)
    assert joint.nfe.model == 3 * plain.nfe.model == joint.nfe.model_grad
    assert joint.method.local.local_steps == 3


def test_dfs_with_local_search_respects_the_budget(rare_mode):
    budget = 3 * 4 * 12 * 2 * 2
    r = run(rare_mode, "dfs", threshold=-0.5, max_backtracks=None, budget=budget, local_steps=2, mu=0.1)
    assert r.nfe.model <= budget and r.nfe.model % 2 == 0


def test_dfs_walkers_share_batches_at_different_levels(rare_mode):
    model, verifier = rare_mode
    seen = []

    class Recording(tts.models.GaussianMixture):
        def forward(self, x_t, t, cond=None):
            seen.append(torch.unique(t).numel())
            return super().forward(x_t, t, cond)

    m = Recording(model.means, model.stds, model.weights)
    major = tts.verifiers.GaussianReward([-2.0, 0.0], 1.0)  # some walkers pass its checks, others backtrack
    tts.search(m, major, "dfs", n_particles=6, num_steps=20, batch_size=2, threshold=-0.1, progress=False)
    assert max(seen) > 1  # one model call held walkers at several levels


def test_dfs_best_so_far_fallback(rare_mode):
    """One check at the last level, one backtrack allowed, a threshold no sample meets: each walker
    continues from the better of its two attempts, so its final reward is the max of its checks."""
    model, verifier = rare_mode
    s = 10
    r = tts.search(model, verifier, "dfs", n_particles=5, num_steps=s, batch_size=2, threshold=1.0, start=s - 1,
                   backtrack=3, max_backtracks=1, eta=1.0, progress=False, seed=4)
    checks = [row for row in r.trace if row.get("walkers")]
    best = {}
    for row in checks:
        for w, rew in zip(row["walkers"], row["rewards"]):
            best.setdefault(w, []).append(rew)
    assert all(len(v) == 2 for v in best.values()) and len(best) == 10
    final = r.particle_rewards.reshape(-1)
    for w, rews in best.items():
        assert math.isclose(float(final[w]), max(rews), rel_tol=1e-9, abs_tol=1e-12)


def test_cfg_models_are_flagged(rare_mode):
    model, verifier = rare_mode

    class Guided(tts.models.GaussianMixture):
        cfg = True

    m = Guided(model.means, model.stds, model.weights)
    r = tts.search(m, verifier, "bon", n_particles=2, num_steps=5, progress=False)
    assert r.nfe.cfg and r.nfe.model == 10 and r.nfe.model_evaluations == 20


@pytest.mark.parametrize("method,opts", [("bon", {}), ("bfs", {}), ("dfs", {"threshold": -1.0}), ("zero_order", {"iterations": 1}), ("search_over_paths", {}), ("bfs", {"select": "weighted", "scoring": "difference"})])
def test_final_samples_and_rewards_use_the_full_decode(rare_mode, method, opts):
    """A cheap decoder may serve intermediate scores; returned samples and rewards use decode_full."""
    model, verifier = rare_mode

    class CheapDecode(tts.models.GaussianMixture):
        def decode(self, x0):
            return x0 + 100.0  # a deliberately bad preview

        def decode_full(self, x0):
            return x0

    m = CheapDecode(model.means, model.stds, model.weights)
    r = tts.search(m, verifier, method, n_particles=4, num_steps=10, batch_size=2, progress=False, **opts)
    assert torch.equal(r.samples, r.latents)
    assert torch.allclose(r.rewards, verifier(r.samples))


def test_rewards_come_back_in_the_verifiers_dtype(rare_mode):
    model = tts.models.GaussianMixture(rare_mode[0].means, rare_mode[0].stds, rare_mode[0].weights, dtype=torch.float32)
    for method in ("bon", "bfs", "dfs"):
        opts = {"threshold": -1.0} if method == "dfs" else {}
        r = tts.search(model, rare_mode[1], method, n_particles=4, num_steps=8, progress=False, **opts)
        assert r.rewards.dtype == r.particle_rewards.dtype == torch.float32, method


def test_calibrated_dfs_without_backtracks_is_best_of_n(rare_mode):
    """The first descent of calibrated DFS is the plain sampler: with no backtrack allowed it is best-of-N exactly."""
    bon = run(rare_mode, "bon")
    dfs = run(rare_mode, "dfs", calibrate=0.5, max_backtracks=0)
    assert torch.equal(dfs.particles, bon.particles) and dfs.nfe.model == bon.nfe.model


def test_calibrated_thresholds_are_pooled_quantiles_of_the_first_descent(rare_mode):
    """Thresholds = the q-quantile of all walkers' first-descent rewards per check level; exactly the
    walkers with a reward below it at some check go back, and each returns the better of its samples."""
    model, verifier = rare_mode
    q, s = 0.3, 12
    kw = dict(n_particles=8, num_steps=s, batch_size=3, seed=2, progress=False)
    r = tts.search(model, verifier, "dfs", calibrate=q, start=8, every=2, max_backtracks=None, budget=3 * 8 * s * 6, **kw)
    cal = next(row for row in r.trace if row["step"] == "calibration")
    rewards = torch.tensor(cal["rewards"], dtype=torch.float64)  # [checks, walkers]
    assert cal["levels"] == [8, 10] and rewards.shape == (2, 24)
    tau = torch.quantile(rewards, q, dim=1)
    assert torch.allclose(torch.tensor(cal["thresholds"], dtype=torch.float64), tau)
    failed = (rewards < tau[:, None]).any(0)
    sent = torch.tensor(next(row for row in r.trace if row["step"] == "calibration_backtracks")["sent_back"])
    assert torch.equal(sent, failed) and 0 < int(sent.sum()) < 24
    first = tts.search(model, verifier, "bon", **kw).particle_rewards.reshape(-1)
    assert bool((r.particle_rewards.reshape(-1) >= first).all())
    assert r.nfe.model <= 3 * 8 * s * 6


def test_calibrated_dfs_respects_the_budget_and_max_backtracks(rare_mode):
    budget = 3 * 4 * 12 * 2
    r = run(rare_mode, "dfs", calibrate=0.9, max_backtracks=None, budget=budget)
    assert budget - 3 * 12 < r.nfe.model <= budget  # a strict threshold spends (nearly) everything
    capped = run(rare_mode, "dfs", calibrate=0.9, max_backtracks=1)
    backs = torch.tensor(next(row for row in capped.trace if row["step"] == "final")["backtracks"])
    assert int(backs.max()) == 1


def test_fixed_slots_equal_compact_slots_when_no_walker_backtracks(rare_mode):
    """Same walkers, deterministic sampler (fixed slots also draw the unused backtrack noises, so
    their random stream differs): with every check passing, both ways of running DFS agree."""
    kw = dict(threshold=-1e9, eta=0.0)
    compact = run(rare_mode, "dfs", **kw)
    fixed = run(rare_mode, "dfs", slots="fixed", **kw)
    assert torch.allclose(fixed.particles, compact.particles, atol=1e-6) and fixed.nfe == compact.nfe


@pytest.mark.parametrize("opts", [dict(threshold=-0.5), dict(calibrate=0.5), dict(calibrate=0.5, local_steps=2, mu=0.1)])
def test_fixed_slots_count_only_working_slots_and_respect_the_budget(rare_mode, opts):
    budget = 3 * 4 * 12 * 3 * opts.get("local_steps", 1)
    r = run(rare_mode, "dfs", slots="fixed", max_backtracks=None, budget=budget, **opts)
    assert r.nfe.model <= budget and int(r.nfe_per_prompt.sum()) == r.nfe.model
    slots = next(row for row in r.trace if row["step"] == "slots")
    # every iteration evaluates all 12 slots (R times with local search); finished slots are not NFE
    assert slots["slot_evaluations"] >= slots["iterations"] * 12 * opts.get("local_steps", 1) > r.nfe.model


def test_masked_counts_stay_exact_integers_at_scale():
    """Fixed-slot counts accumulate on the device as int64: exact beyond float32's 2**24."""
    from tts_fast.search.counting import Counter

    c = Counter(batch_size=1, device="cpu")
    c.add_verifier(2**24 + 1, mask=torch.ones(1, dtype=torch.bool))
    c.add_verifier(2, grad=True, mask=torch.tensor([True, False]))
    nfe = c.settle()
    assert (nfe.verifier, nfe.verifier_grad) == (2**24 + 2, 1) and type(nfe.verifier) is int
    c.add_verifier(0, mask=torch.zeros(0, dtype=torch.bool))  # no slot at a check: nothing to count
    assert c.settle().verifier == 2**24 + 2
    # a verifier batch that is not whole samples per slot is a bug of the caller, never a silent full count
    with pytest.raises(RuntimeError, match=r"^internal error: slot mask \(2,\) for 3 verifier samples$"):
        c.add_verifier(3, mask=torch.ones(2, dtype=torch.bool))
