"""Oracles for the noise-search methods of Ma et al. 2025: best-of-N, zero-order search, search over paths.

Every test here was written against a broken variant of the method (named in its docstring) and
fails on it. Two tools make exact answers cheap:

- Data N(0, I). Its exact x0-prediction is alpha_t x_t (VP: alpha^2 + sigma^2 = 1), so one
  deterministic DDIM step (eta = 0) multiplies x by alpha_i alpha_{i+1} + sigma_i sigma_{i+1} and the
  sampler maps a noise z to gain * z (:func:`ode_gain`). A noise-space search can then be re-run by
  hand from the same seeded generator, and every x0-prediction of one level is the same multiple
  of the particle, so kept paths can be matched to the candidates the verifier scored.
- Recording spies around the model, the verifier and the engine's primitives (what was shown,
  at which level, what came back).

Statistical orderings use many prompt rows (independent replicates) and a margin of 4 standard
errors of the difference.
"""

import math

import pytest
import torch

import tts_fast as tts
from tts_fast.search import engine

K_SE = 4.0


def standard_normal(d: int = 2):
    """Data N(0, I_d) with the default VP schedule."""
    return tts.models.GaussianMixture([[0.0] * d], [1.0])


def ode_gain(model, num_steps: int) -> float:
    """The deterministic sampler's map z -> gain * z for data N(0, I):
    x0_hat = alpha x, eps_hat = sigma x, so x_{i+1} = (alpha_i alpha_{i+1} + sigma_i sigma_{i+1}) x_i."""
    g = model.schedule.grid(num_steps)
    return float(torch.prod(g.alpha[:-1] * g.alpha[1:] + g.sigma[:-1] * g.sigma[1:]))


def noises(seed: int, *shapes):
    """The standard normals a run's generator hands out first, in order (float64)."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]


class Recorder(tts.Verifier):
    """A verifier that remembers every batch it scored: (x0, cond, rewards)."""

    def __init__(self, fn, differentiable: bool = False):
        self.fn, self.differentiable, self.calls = fn, differentiable, []

    def forward(self, x0, cond):
        r = self.fn(x0, cond)
        self.calls.append((x0.detach().clone(), None if cond is None else cond.clone(), r.detach().clone()))
        return r


def row_centres(b: int, d: int = 2):
    """Distinct reward centres per prompt row, so that rows cannot be swapped unnoticed."""
    return torch.stack([torch.linspace(-1.0, 1.0, d) * (r + 1) * 0.7 for r in range(b)]).to(torch.float64)


def gaussian_rows(centres):
    def fn(x, cond):
        return -((x - centres[cond]) ** 2).sum(1)
    return fn


def mean_se(r):
    r = r.double().reshape(-1)
    return float(r.mean()), float(r.std()) / math.sqrt(r.numel())


def beats(a, b, k=K_SE):
    """a's mean exceeds b's by k standard errors of the difference (independent samples)."""
    (ma, sa), (mb, sb) = mean_se(a), mean_se(b)
    return ma - mb > k * math.hypot(sa, sb), (ma, mb, k * math.hypot(sa, sb))


@pytest.fixture
def spy_steps(monkeypatch):
    """The eta of every DDIM step the engine takes."""
    etas = []
    original = engine.Context.step

    def step(self, x, x0_hat, level, eta):
        etas.append(eta)
        return original(self, x, x0_hat, level, eta)

    monkeypatch.setattr(engine.Context, "step", step)
    return etas


# -- best-of-N -----------------------------------------------------------------------------------


def test_best_of_n_returns_each_rows_best_sample():
    """Broken variants: keep an arbitrary (first) sample; ignore eta = 0 (sample stochastically).

    With eta = 0 the N samples of each row are gain * z for the run's first B*N normals; the
    returned sample of each row is its highest-reward one, scored on the finished samples."""
    b, n, s, seed = 4, 6, 10, 3
    model = standard_normal()
    centres = row_centres(b)
    ver = Recorder(gaussian_rows(centres))
    r = tts.search(model, ver, tts.BestOfN(eta=0.0), n_particles=n, num_steps=s, batch_size=b, seed=seed, progress=False)
    (z,) = noises(seed, (b * n, 2))
    assert torch.allclose(r.particles.reshape(-1, 2), ode_gain(model, s) * z, rtol=1e-10, atol=1e-12)
    expected = gaussian_rows(centres)(r.particles.reshape(-1, 2), torch.arange(b).repeat_interleave(n)).reshape(b, n)
    assert torch.allclose(r.particle_rewards, expected)
    best = expected.argmax(1)
    assert torch.equal(r.latents, r.particles[torch.arange(b), best])
    assert torch.allclose(r.rewards, expected.max(1).values)
    assert len(ver.calls) == 1 and ver.calls[0][0].shape == (b * n, 2)  # one scoring of the finished samples


@pytest.mark.parametrize("method", [tts.BestOfN(eta=0.3), tts.ZeroOrder(eta=0.3, iterations=2),
                                    tts.SearchOverPaths(eta=0.3, delta_f=1, delta_b=3)], ids=lambda m: m.name)
def test_eta_reaches_every_step(rare_mode, spy_steps, method):
    """Broken variant: a method that ignores its eta (always its default)."""
    model, verifier = rare_mode
    tts.search(model, verifier, method, n_particles=3, num_steps=8, batch_size=2, progress=False)
    assert spy_steps and set(spy_steps) == {0.3}


def test_method_defaults():
    """The documented defaults: best-of-N ancestral, zero-order and search over paths deterministic."""
    assert tts.BestOfN().eta == 1.0 and tts.BestOfN().local is None
    zo = tts.ZeroOrder()
    assert (zo.lam, zo.iterations, zo.restart_on_stall, zo.eta, zo.local) == (0.5, None, False, 0.0, None)
    sop = tts.SearchOverPaths()
    assert (sop.width, sop.delta_f, sop.delta_b, sop.start, sop.eta, sop.local) == (2, None, None, None, 0.0, None)


# -- zero-order search ---------------------------------------------------------------------------


def zero_order_by_hand(fn, gain, seed, b, n, d, lam, iterations, restart):
    """Zero-order search in noise space, written from its definition, with the run's random stream:
    one pivot noise per row, then per round B*N neighbour noises (and, with restarts, B fresh pivots)."""
    gen = torch.Generator().manual_seed(seed)

    def draw(k):
        return torch.randn((k, d), generator=gen, dtype=torch.float64)

    pivot = draw(b)
    pivot_r = fn(gain * pivot, torch.arange(b))
    best_x, best_r = gain * pivot, pivot_r.clone()
    trace = []
    for _ in range(iterations):
        ys = math.sqrt(1.0 - lam**2) * pivot.repeat_interleave(n, dim=0) + lam * draw(b * n)
        r = fn(gain * ys, torch.arange(b).repeat_interleave(n)).reshape(b, n)
        accepted = []
        for row in range(b):
            j = int(r[row].argmax())
            top = r[row, j]
            accepted.append(bool(top > pivot_r[row]))  # strictly better only
            if accepted[-1]:
                pivot[row], pivot_r[row] = ys[row * n + j], top
            if top > best_r[row]:
                best_x[row], best_r[row] = gain * ys[row * n + j], top
        trace.append((pivot_r.clone(), accepted))
        if restart:
            fresh = draw(b)
            for row in range(b):
                if not accepted[row]:
                    pivot[row], pivot_r[row] = fresh[row], -math.inf
    return best_x, best_r, trace, gain * ys, r


def _quantised(x, cond):
    # Ties are common: only strict improvements may move the pivot.
    return torch.floor(2.0 * x[:, 0]) + 0.0 * cond


@pytest.mark.parametrize("lam,restart,reward", [
    (0.5, False, "smooth"), (0.3, True, "smooth"), (1.0, False, "smooth"), (0.5, False, "ties"), (0.6, True, "ties"),
])
def test_zero_order_is_the_algorithm_run_by_hand(lam, restart, reward):
    """Broken variants: neighbours not sqrt(1-lam^2) pivot + lam xi; the pivot never moving, moving
    to a worse or equal neighbour, or to another row's; restart ignored or restarting improved rows;
    returning the last pivot instead of the best sample ever seen."""
    b, n, s, seed, its = 3, 4, 6, 11, 6
    model = standard_normal()
    fn = gaussian_rows(row_centres(b)) if reward == "smooth" else _quantised
    r = tts.search(model, Recorder(fn), tts.ZeroOrder(lam=lam, iterations=its, restart_on_stall=restart),
                   n_particles=n, num_steps=s, batch_size=b, seed=seed, progress=False)
    best_x, best_r, trace, last_x, last_r = zero_order_by_hand(fn, ode_gain(model, s), seed, b, n, 2, lam, its, restart)
    assert len(r.trace) == its
    for k, (row, (pivot_r, accepted)) in enumerate(zip(r.trace, trace)):
        assert row["step"] == k and row["accepted"] == accepted
        assert torch.allclose(torch.tensor(row["pivot_reward"], dtype=torch.float64), pivot_r)
    assert torch.allclose(r.particles.reshape(-1, 2), last_x, rtol=1e-10, atol=1e-12)
    assert torch.allclose(r.particle_rewards, last_r)
    assert torch.allclose(r.latents, best_x, rtol=1e-10, atol=1e-12) and torch.allclose(r.rewards, best_r)
    assert r.nfe.model == b * (1 + its * n) * s


def test_zero_order_climbs_where_random_search_cannot():
    """Broken variant: a pivot that never moves (then it is random search around one noise).

    A linear reward on 8-D noise: each round moves the pivot by ~lam * E[max of N normals], so 30
    rounds of N = 4 climb far beyond the best of the same 121 samples drawn independently."""
    d, b, n, s, its = 8, 64, 4, 6, 30
    model = standard_normal(d)
    lin = tts.verifiers.Function(lambda x: x[:, 0])
    kw = dict(num_steps=s, batch_size=b, seed=0, progress=False)
    zo = tts.search(model, lin, "zero_order", n_particles=n, iterations=its, **kw)
    bon = tts.search(model, lin, "bon", n_particles=1 + its * n, eta=0.0, **kw)
    assert zo.nfe.model == bon.nfe.model
    ok, info = beats(zo.rewards, bon.rewards)
    assert ok, info
    pivot = torch.tensor([row["pivot_reward"] for row in zo.trace], dtype=torch.float64)  # [rounds, B]
    assert bool((pivot[1:] >= pivot[:-1]).all())  # without restarts the pivot only improves
    assert float((pivot[-1] - pivot[0]).mean()) > 1.0


def _trap(x):
    # A broad local maximum at x1 = 0.5 (reward 0) next to a narrow global one at x1 = -2 (reward 3).
    return torch.maximum(-(x[:, 0] - 0.5) ** 2, 3.0 - 10.0 * (x[:, 0] + 2.0) ** 2)


def test_restart_on_stall_escapes_a_local_maximum():
    """Broken variant: restart_on_stall ignored.

    Pivots climb to the broad local maximum and stall there; only fresh pivots drawn after a stall
    find the narrow global one, so restarts raise the returned reward. The trace shows the
    mechanism: a stalled round is followed by an accepted one (the fresh pivot has no reward yet),
    the pivot reward can drop, and the returned sample is the best ever seen."""
    b, n, s, its = 256, 4, 6, 30
    model = standard_normal()
    trap = tts.verifiers.Function(_trap)
    kw = dict(n_particles=n, num_steps=s, batch_size=b, seed=1, progress=False)
    stuck = tts.search(model, trap, tts.ZeroOrder(lam=0.3, iterations=its), **kw)
    restart = tts.search(model, trap, tts.ZeroOrder(lam=0.3, iterations=its, restart_on_stall=True), **kw)
    ok, info = beats(restart.rewards, stuck.rewards)
    assert ok, info
    acc = torch.tensor([row["accepted"] for row in restart.trace])  # [rounds, B]
    piv = torch.tensor([row["pivot_reward"] for row in restart.trace], dtype=torch.float64)
    assert bool(acc[1:][~acc[:-1]].all()) and bool((~acc).any())
    assert bool((piv[1:] < piv[:-1]).any())
    assert bool((restart.rewards >= piv.max(0).values).all())


@pytest.mark.parametrize("local_steps", [1, 2])
def test_zero_order_rounds_fill_the_budget(rare_mode, local_steps):
    """Broken variants: a wrong round count from the budget (off by one, ignoring the pivot's own
    trajectory or local_steps), or not 4 rounds without a budget."""
    b, n, s = 3, 4, 6
    model, verifier = rare_mode
    # local_steps=1 alone would join a local search that changes nothing (refused): give it only when it acts
    kw = dict(n_particles=n, num_steps=s, batch_size=b, progress=False, **({"local_steps": local_steps} if local_steps > 1 else {}))
    traj = s * local_steps
    r = tts.search(model, verifier, "zero_order", **kw)
    assert len(r.trace) == 4 and r.nfe.model == b * (1 + 4 * n) * traj
    for rounds in (1, 2, 3):
        for slack in (0, n * traj - 1):
            budget = b * ((1 + rounds * n) * traj + slack)
            r = tts.search(model, verifier, "zero_order", budget=budget, **kw)
            assert len(r.trace) == rounds and r.nfe.model == b * (1 + rounds * n) * traj, (rounds, slack)
    with pytest.raises(ValueError, match="budget"):  # not even one round fits
        tts.search(model, verifier, "zero_order", budget=b * (1 + n) * traj - 1, **kw)


def test_zero_order_and_search_over_paths_validate_their_fields():
    """Every bad field is refused with an error that names it and its range; the edges of the
    ranges are allowed."""
    lam = r"^lam must be a finite number > 0.0 and <= 1.0"
    eta = r"^eta must be a finite number >= 0.0 and <= 1.0"
    for kw, msg in [(dict(lam=0.0), lam), (dict(lam=1.01), lam), (dict(lam=float("nan")), lam),
                    (dict(iterations=0), r"^iterations must be an integer >= 1"), (dict(eta=1.5), eta), (dict(eta=-0.1), eta)]:
        with pytest.raises(ValueError, match=msg):
            tts.ZeroOrder(**kw)
    assert tts.ZeroOrder(lam=1.0, iterations=1, eta=1.0).lam == 1.0
    for kw, msg in [(dict(width=0), r"^width must be an integer >= 1"), (dict(delta_f=0), r"^delta_f must be an integer >= 1"),
                    (dict(delta_b=0), r"^delta_b must be an integer >= 1"), (dict(start=-1), r"^start must be an integer >= 0"),
                    (dict(eta=2.0), eta), (dict(width=1.5), r"^width must be an integer")]:
        with pytest.raises(ValueError, match=msg):
            tts.SearchOverPaths(**kw)
    assert tts.SearchOverPaths(width=1, delta_f=1, delta_b=2, start=1).plan(3) == (1, [(0, 2), (1, 3)])
    with pytest.raises(ValueError, match=r"^start must lie in \[delta_f=1, num_steps=10\], got 0$"):
        tts.SearchOverPaths(start=0).plan(10)  # start = 0 passes the field check, not the plan's
    with pytest.raises(ValueError, match=r"^start must lie in \[delta_f=2, num_steps=10\], got 1$"):
        tts.SearchOverPaths(delta_f=2, start=1).plan(10)
    with pytest.raises(ValueError, match=r"^start must lie in \[delta_f=1, num_steps=10\], got 11$"):
        tts.SearchOverPaths(start=11).plan(10)
    with pytest.raises(ValueError, match=r"^delta_b must be > delta_f, got delta_b=3, delta_f=3$"):
        tts.SearchOverPaths(delta_f=3, delta_b=3).plan(10)
    with pytest.raises(ValueError, match=r"^delta_b must be > delta_f, got delta_b=1, delta_f=1$"):
        tts.SearchOverPaths(delta_b=1).plan(10)  # against the default delta_f = 1


@pytest.mark.parametrize("method", [tts.BestOfN(), tts.ZeroOrder(iterations=2), tts.SearchOverPaths(width=3, delta_f=2, delta_b=3, start=3),
                                    tts.LocalSearch(rho=0.1)], ids=lambda m: m.name)
@pytest.mark.parametrize("local_steps", [1, 2])
def test_fixed_plans_cost_exactly_what_they_spend(rare_mode, method, local_steps):
    """Broken variant: a plan's cost formula off from its spending (then budgets are refused that
    would fit, or accepted that do not): the spent model NFE is accepted as budget, one less is not."""
    model, verifier = rare_mode
    if isinstance(method, tts.LocalSearch):
        method, opts = tts.LocalSearch(rho=0.1, local_steps=local_steps), {}
    else:
        opts = dict(local_steps=local_steps, rho=0.1)
    kw = dict(n_particles=3, num_steps=9, batch_size=2, progress=False, **opts)
    spent = tts.search(model, verifier, method, **kw).nfe.model
    assert tts.search(model, verifier, method, budget=spent, **kw).nfe.model == spent
    with pytest.raises(ValueError, match="too small for"):
        tts.search(model, verifier, method, budget=spent - 1, **kw)


@pytest.mark.parametrize("method,name", [(tts.BestOfN(), "bon"), (tts.ZeroOrder(iterations=2), "zero_order"),
                                         (tts.SearchOverPaths(), "search_over_paths"), (tts.LocalSearch(), "local")])
def test_plans_over_budget_are_refused_by_name(rare_mode, method, name):
    """The refusal of a fixed plan over budget names the method (its registry name)."""
    model, verifier = rare_mode
    assert method.name == name
    with pytest.raises(ValueError, match=rf"too small for {name} with n_particles=4, num_steps=10"):
        tts.search(model, verifier, method, n_particles=4, num_steps=10, batch_size=1, budget=39, progress=False)


# -- search over paths ---------------------------------------------------------------------------


@pytest.mark.parametrize("s,kw,expected", [
    (12, {}, (2, [(1, 3), (2, 4), (3, 5), (4, 6), (5, 7), (6, 8), (7, 9), (8, 10), (9, 11), (10, 12)])),
    (30, {}, (6, [(3, 9), (6, 12), (9, 15), (12, 18), (15, 21), (18, 24), (21, 27), (24, 30)])),
    (5, {}, (2, [(1, 3), (2, 4), (3, 5)])),
    (1, {}, (1, [])),
    (10, dict(delta_f=2, delta_b=5, start=5), (5, [(3, 8), (6, 10)])),
    (10, dict(delta_b=4), (4, [(3, 7), (6, 10)])),
    (10, dict(delta_f=2, start=2), (2, [(0, 4), (2, 6), (4, 8), (6, 10)])),
    (10, dict(start=10), (10, [])),
])
def test_search_over_paths_plans_its_rounds(s, kw, expected):
    """Broken variants: other defaults (delta_f = S // 10 at least 1, delta_b = 2 delta_f,
    start = min(delta_b, S)), rounds that do not chain (each starts delta_f below the last end)
    or that overshoot the clean level."""
    assert tts.SearchOverPaths(**kw).plan(s) == expected


def _level(lv) -> int:
    """The one level of a batch (an int, or a per-particle tensor holding one value)."""
    values = torch.as_tensor(lv).reshape(-1).unique()
    assert values.numel() == 1
    return int(values[0])


class _Spied:
    """Records the model's calls (level, batch), the engine's re-noisings and the verifier's scores."""

    def __init__(self, monkeypatch, grid):
        self.calls, self.renoised = [], []
        level_of = {float(t): i for i, t in enumerate(grid.timesteps)}
        spy = self

        class Model(tts.models.GaussianMixture):
            def forward(self, x_t, t, cond=None):
                spy.calls.append((sorted({level_of[float(v)] for v in t}), x_t.shape[0]))
                return super().forward(x_t, t, cond)

        self.model = Model([[0.0, 0.0]], [1.0])
        original = engine.Context.renoise

        def renoise(ctx, x, level_from, level_to):
            spy.renoised.append((x.clone(), level_from, level_to))
            return original(ctx, x, level_from, level_to)

        monkeypatch.setattr(engine.Context, "renoise", renoise)


def test_search_over_paths_keeps_the_best_paths_of_every_round(monkeypatch):
    """Broken variants: keeping arbitrary (or the worst) paths instead of the top N per row;
    keeping another row's paths; ignoring width, delta_f, delta_b or start; scoring the wrong thing.

    Data N(0, I): all x0-predictions of one level are the same multiple of the particles, so each
    path kept after a round is identified with the candidate the verifier scored. The kept paths
    (re-noised, width copies each, at the start of the next round; the final population after the
    last) must be the N best candidates of their row."""
    b, n, m, s = 3, 3, 3, 12
    sop = tts.SearchOverPaths(width=m, delta_f=2, delta_b=3, start=4)
    start, rounds = sop.plan(s)
    grid = tts.models.GaussianMixture([[0.0, 0.0]], [1.0]).schedule.grid(s)
    spy = _Spied(monkeypatch, grid)
    centres = row_centres(b)
    ver = Recorder(gaussian_rows(centres))
    r = tts.search(spy.model, ver, sop, n_particles=n, num_steps=s, batch_size=b, seed=0, progress=False)

    # The plan is what ran: N paths to `start`, then N * width candidates over each round's levels.
    expected_calls = [([i], b * n) for i in range(start)]
    for lf, lt in rounds:
        expected_calls += [([i], b * n * m) for i in range(lf, lt)]
    assert spy.calls == expected_calls
    assert [(_level(lf), _level(lt)) for _, lf, lt in spy.renoised] == [
        (start if k == 0 else rounds[k - 1][1], lf) for k, (lf, _) in enumerate(rounds)]
    assert len(ver.calls) == len(rounds)

    a, sg = grid.alpha, grid.sigma
    for k, (lf, lt) in enumerate(rounds):
        x0, cond, rew = ver.calls[k]
        assert x0.shape == (b * n * m, 2) and torch.equal(cond, torch.arange(b).repeat_interleave(n * m))
        if lt < s:  # scored on the x0-prediction of the last model call; kept: the particles at lt
            ratio = (a[lt - 1] * a[lt] + sg[lt - 1] * sg[lt]) / a[lt - 1]
            kept = spy.renoised[k + 1][0]
            assert torch.equal(kept, kept[::m].repeat_interleave(m, dim=0))  # width copies of each path
            kept = kept[::m]
        else:  # the last round scores the finished samples themselves
            ratio, kept = 1.0, r.particles.reshape(-1, 2)
        top = rew.reshape(b, n * m).topk(n, dim=1)
        for row in range(b):
            best = x0.reshape(b, n * m, 2)[row, top.indices[row]] * ratio
            got = kept.reshape(b, n, 2)[row]
            assert torch.allclose(got, best, rtol=1e-9, atol=1e-12), (k, row)
        assert r.trace[k]["step"] == k and r.trace[k]["level"] == lt
        assert torch.allclose(torch.tensor(r.trace[k]["best_reward"], dtype=torch.float64), top.values[:, 0])
    assert torch.allclose(r.particle_rewards, top.values)
    assert torch.allclose(r.rewards, top.values[:, 0]) and torch.allclose(r.latents, r.particles[:, 0])


def test_search_over_paths_previews_with_decode_and_finishes_with_decode_full(rare_mode):
    """Broken variant: intermediate candidates decoded at full quality (or finished ones previewed).

    A model whose cheap preview decode is distinguishable: intermediate rounds score x0-predictions
    through ``decode``, the last round scores the finished samples through ``decode_full``."""
    model, verifier = rare_mode
    used = []

    class TwoDecoders(tts.models.GaussianMixture):
        def decode(self, x0):
            used.append(("decode", x0.shape[0]))
            return x0

        def decode_full(self, x0):
            used.append(("full", x0.shape[0]))
            return x0

    m = TwoDecoders(model.means, model.stds, model.weights)
    sop = tts.SearchOverPaths(width=2, delta_f=2, delta_b=4, start=4)
    rounds = sop.plan(10)[1]
    tts.search(m, verifier, sop, n_particles=3, num_steps=10, batch_size=2, progress=False)
    scored = [("decode", 12)] * (len(rounds) - 1) + [("full", 12)]
    assert used == scored + [("full", 2)]  # then the returned samples


@pytest.mark.parametrize("method", [tts.BestOfN(), tts.ZeroOrder(iterations=2, restart_on_stall=True)], ids=lambda m: m.name)
def test_finished_samples_are_scored_with_decode_full(rare_mode, method):
    """Broken variant: best-of-N or zero-order scoring a finished sample (the initial pivot
    included) through the cheap preview decoder: both only ever score finished samples."""
    model, verifier = rare_mode
    used = []

    class TwoDecoders(tts.models.GaussianMixture):
        def decode(self, x0):
            used.append("decode")
            return x0 + 100.0

        def decode_full(self, x0):
            used.append("full")
            return x0

    m = TwoDecoders(model.means, model.stds, model.weights)
    r = tts.search(m, verifier, method, n_particles=3, num_steps=6, batch_size=2, progress=False)
    assert used and set(used) == {"full"}
    assert torch.allclose(r.rewards, verifier(r.samples))


def test_search_over_paths_without_rounds_is_deterministic_best_of_n(rare_mode):
    """Broken variant: the no-round case (start = S) scoring previews, or without the prompt rows.

    With no branching left, search over paths is N deterministic samples per row: exactly
    best-of-N with eta = 0, same noises, same rewards, scored by the full decoder with each
    row's own target."""
    model, _ = rare_mode

    class CheapDecode(tts.models.GaussianMixture):
        def decode(self, x0):
            return x0 + 100.0

        def decode_full(self, x0):
            return x0

    m = CheapDecode(model.means, model.stds, model.weights)
    verifier = tts.verifiers.GaussianReward(row_centres(3), 1.0)
    kw = dict(n_particles=5, num_steps=8, batch_size=3, seed=2, progress=False)
    sop = tts.search(m, verifier, tts.SearchOverPaths(start=8), **kw)
    bon = tts.search(m, verifier, tts.BestOfN(eta=0.0), **kw)
    assert torch.equal(sop.particles, bon.particles) and torch.allclose(sop.particle_rewards, bon.particle_rewards)
    assert torch.allclose(sop.rewards, verifier(sop.samples, torch.arange(3))) and sop.nfe == bon.nfe and sop.trace == []


def test_search_over_paths_beats_best_of_n_at_matched_nfe(rare_mode):
    """Broken variants: arbitrary or worst-first selection of the kept paths (the review's patch
    kept arbitrary paths: mean reward below best-of-N's).

    The rare mode is found early by some paths; keeping the best N multiplies them. Best-of-N gets
    at least as many model NFE per prompt."""
    model, verifier = rare_mode
    b, n, s = 128, 4, 20
    sop = tts.search(model, verifier, "search_over_paths", n_particles=n, num_steps=s, batch_size=b, seed=0, progress=False)
    nb = math.ceil(sop.nfe.model / (b * s))
    bon = tts.search(model, verifier, "bon", n_particles=nb, num_steps=s, batch_size=b, seed=0, progress=False)
    assert bon.nfe.model >= sop.nfe.model
    ok, info = beats(sop.rewards, bon.rewards)
    assert ok, info


def test_denoise_all_over_an_empty_range_returns_its_input(rare_mode):
    """denoise_all (the shared run-to-level helper) over no levels makes no model call and returns
    (x, x): the particles are their own latest prediction; over levels it is the chain of transitions."""
    from tts_fast.search.noise import denoise_all

    model, verifier = rare_mode
    ctx = engine.Context(model, verifier, None, model.schedule.grid(6), batch_size=1, n_particles=3, seed=0,
                         budget=None, progress=None)
    x, cond = ctx.init_noise(3), ctx.rows(3)
    out, x0 = denoise_all(ctx, x, cond, 0.0, 2, 2)
    assert out is x and x0 is x and ctx.counter.nfe.model == 0
    y, y0 = x, None
    for i in range(2, 6):
        y, y0 = ctx.transition(y, i, cond, 0.0)
    out, x0 = denoise_all(ctx, x, cond, 0.0, 2)
    assert torch.equal(out, y) and torch.equal(x0, y0)
