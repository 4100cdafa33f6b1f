"""Oracles for local search (Zhang et al. 2025, Sec. 3.2): training-free guidance + recurrence.

Every test here was written against a broken variant (named in its docstring) and fails on it.

- :func:`test_every_round_is_the_papers_update` re-derives each round of every level from the
  recorded model calls, verifier calls and the engine's DDIM steps / re-noisings / Langevin moves:
  x_{i+1} = DDIM(x_i, x0_hat) + rho_i grad_x L(x0_hat(x_i)) / a_i + alpha_{i+1} Delta_0, with
  L(x0) = log mean_k f(x0 + sigma_i eps_k) from the *local* verifier, Delta_0 after J ascent
  steps x0 += mu_i grad L(x0), gradients clipped per sample, and the per-level rho_i, mu_i,
  sigma_i, a_i written out from their definitions (tests/_chain_law.py: schedule_tables).
- On Gaussian data with a Gaussian reward every round is an affine map plus Gaussian noise, so
  the law of the final samples is Gaussian with moments computed exactly (_chain_law.exact_law); the
  samples must match it within 4 standard errors of n independent chains, with no allowance for
  bias (the bias of the chain is in the exact law).
"""

import math

import pytest
import torch

import tts_fast as tts
from _chain_law import exact_law, schedule_tables
from tts_fast.search import engine

K_SE = 4.0


# -- the definitions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["vp", "flow"])
def test_tables_follow_the_schedule_formulas(schedule):
    """Broken variants: a schedule made constant (or swapped), sigma_i not sigma * sigma_level,
    rho_i not rho * v_i for 'langevin'."""
    sched = tts.schedules.flow() if schedule == "flow" else tts.schedules.ddpm_linear()
    grid = sched.grid(12)
    for rho_s in ("constant", "increase", "decrease", "langevin"):
        for mu_s in ("constant", "increase", "decrease"):
            for sig_s in ("decrease", "constant"):
                opts = dict(rho=0.7, mu=0.3, sigma=0.2, rho_schedule=rho_s, mu_schedule=mu_s, sigma_schedule=sig_s)
                got = tts.LocalSearch(**opts).tables(grid)
                want = schedule_tables(grid, **opts)
                assert set(got) == set(want)
                for key in want:
                    assert torch.allclose(got[key], want[key], rtol=1e-12, atol=0), (opts, key)
    # The shapes differ: each schedule shapes the per-level strength differently.
    rho = {s: tts.LocalSearch(rho=1.0, rho_schedule=s).tables(grid)["rho"] for s in ("constant", "increase", "decrease", "langevin")}
    assert all(not torch.allclose(rho[p], rho[q]) for p in rho for q in rho if p < q)


def test_local_search_validates_its_fields():
    """Every bad field is refused with an error naming it and its allowed values; mu has no
    'langevin' schedule."""
    bad = [(dict(local_steps=0), r"^local_steps must be an integer >= 1"), (dict(mc_samples=0), r"^mc_samples must be an integer >= 1"),
           (dict(iter_steps=0), r"^iter_steps must be an integer >= 1"), (dict(local_steps=2.0), r"^local_steps must be an integer"),
           (dict(rho=float("nan")), r"^rho must be a finite number >= -inf"), (dict(mu=float("inf")), r"^mu must be a finite number >= -inf"),
           (dict(sigma=-0.1), r"^sigma must be a finite number >= 0.0"),
           (dict(rho_schedule="fast"), r"^rho_schedule must be one of 'constant', 'increase', 'decrease', 'langevin'; got 'fast'"),
           (dict(mu_schedule="langevin"), r"^mu_schedule must be one of 'constant', 'increase', 'decrease'; got 'langevin'"),
           (dict(sigma_schedule="increase"), r"^sigma_schedule must be one of 'decrease', 'constant'; got 'increase'"),
           (dict(move="hmc"), r"^move must be one of 'recurrence', 'langevin'; got 'hmc'"),
           (dict(max_grad_norm=0.0), r"^max_grad_norm must be a finite number > 0.0"), (dict(eta=1.5), r"^eta must be a finite number")]
    for kw, msg in bad:
        with pytest.raises(ValueError, match=msg):
            tts.LocalSearch(**kw)
    ok = tts.LocalSearch(local_steps=2, rho=-1.0, mu=-0.5, sigma=0.0, max_grad_norm=1e-3, eta=0.0, rho_schedule="langevin", move="langevin")
    assert ok.needs_gradient and tts.LocalSearch(mu=0.1).needs_gradient and not tts.LocalSearch().needs_gradient
    d = tts.LocalSearch()
    assert (d.local_steps, d.rho, d.mu, d.sigma, d.mc_samples, d.iter_steps, d.rho_schedule, d.mu_schedule,
            d.sigma_schedule, d.move, d.max_grad_norm, d.eta) == (1, 0.0, 0.0, 0.0, 1, 1, "increase", "increase",
                                                                  "decrease", "recurrence", None, 1.0)


def test_options_that_would_do_nothing_are_refused(rare_mode):
    """Every option set away from its default acts, or is refused naming it. Broken variant: the
    paper's step_scale='relative' on a preset without local steps, accepted and ignored."""
    idle = [(dict(step_scale="relative"), "step_scale"), (dict(max_grad_norm=1.0), "max_grad_norm"),
            (dict(sigma=0.1), "sigma"), (dict(mc_samples=4), "mc_samples"), (dict(rho_schedule="constant", mu=0.1), "rho_schedule"),
            (dict(rho=0.1, mu_schedule="constant"), "mu_schedule"), (dict(rho=0.1, iter_steps=3), "iter_steps"),
            (dict(rho=0.1, mc_samples=4), "mc_samples"), (dict(mu=0.1, sigma_schedule="constant"), "sigma_schedule"),
            (dict(rho=0.1, move="langevin"), "move")]
    for kw, name in idle:
        with pytest.raises(ValueError, match=rf"^{name}=.* would do nothing"):
            tts.LocalSearch(**kw)
    # the same options acting: accepted
    for kw in (dict(rho=0.1, step_scale="relative"), dict(mu=0.1, sigma=0.1, mc_samples=4, sigma_schedule="constant"),
               dict(mu=0.1, iter_steps=3, mu_schedule="constant"), dict(local_steps=2, move="langevin")):
        tts.LocalSearch(**kw)
    model, verifier = rare_mode
    kw = dict(n_particles=2, num_steps=4, progress=False)
    with pytest.raises(ValueError, match="step_scale='relative' would do nothing"):
        tts.search(model, verifier, "bfs_best", step_scale="relative", **kw)
    with pytest.raises(ValueError, match="local_steps = 1 and rho = mu = 0 changes nothing"):
        tts.search(model, verifier, "bfs_best", local_steps=1, **kw)
    with pytest.raises(ValueError, match="local_steps = 1 and rho = mu = 0 changes nothing"):
        tts.search(model, verifier, tts.BFS(local=tts.LocalSearch()), **kw)
    with pytest.raises(ValueError, match="eta=0.5 of the local search"):
        tts.search(model, verifier, tts.DFS(local=tts.LocalSearch(local_steps=2, eta=0.5)), **kw)
    tts.search(model, verifier, "bfs_best", local_steps=2, **kw)  # recurrence alone acts
    tts.search(model, verifier, "local", **kw)  # the method alone, at its defaults, is plain sampling: allowed


def test_mu_alone_needs_a_differentiable_verifier(rare_mode):
    """Broken variant: needs_gradient ignoring mu (the ascent would then fail deep inside)."""
    model, _ = rare_mode
    v = tts.verifiers.Function(lambda x: -x.pow(2).sum(1))
    with pytest.raises(ValueError, match="differentiable"):
        tts.search(model, v, "local", mu=0.1, n_particles=2, num_steps=4, progress=False)


# -- recording harness ----------------------------------------------------------------------------


def _level(lv) -> int:
    values = torch.as_tensor(lv).reshape(-1).unique()
    assert values.numel() == 1
    return int(values[0])


class Recorder(tts.Verifier):
    """A verifier that remembers what it scored: (x0, cond, rewards, with grad)."""

    def __init__(self, fn, differentiable=True):
        self.fn, self.differentiable, self.calls = fn, differentiable, []

    def forward(self, x0, cond):
        r = self.fn(x0, cond)
        self.calls.append((x0.detach().clone(), cond.clone(), r.detach().clone(), torch.is_grad_enabled() and x0.requires_grad))
        return r


class Traced(tts.models.GaussianMixture):
    """The mixture denoiser, recording each call's (x_t, t, x0_hat).

    ``leak`` adds leak * x_t to the exact x0-prediction: a learned flow model's x0 = x_t - t v
    depends on x_t even at pure noise (alpha = 0), where the exact one does not."""

    def __init__(self, *args, leak=0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls, self.leak = [], leak

    def forward(self, x_t, t, cond=None):
        out = self.plain(x_t, t)
        self.calls.append((x_t.detach().clone(), t.clone(), out.detach().clone()))
        return out

    def plain(self, x_t, t):
        return tts.models.GaussianMixture.forward(self, x_t, t) + self.leak * x_t


@pytest.fixture
def spies(monkeypatch):
    """Records the engine's DDIM steps and re-noisings and the Langevin moves (inputs and outputs)."""
    rec = {"step": [], "renoise": [], "langevin": []}
    step0, renoise0, langevin0 = engine.Context.step, engine.Context.renoise, tts.ops.langevin_step

    def step(ctx, x, x0_hat, level, eta):
        out = step0(ctx, x, x0_hat, level, eta)
        rec["step"].append(dict(x=x.clone(), x0=x0_hat.clone(), level=_level(level), eta=eta, out=out.clone()))
        return out

    def renoise(ctx, x, level_from, level_to):
        out = renoise0(ctx, x, level_from, level_to)
        rec["renoise"].append(dict(x=x.clone(), frm=_level(level_from), to=_level(level_to), out=out.clone()))
        return out

    def langevin(x, grad, step_size, **kw):
        out = langevin0(x, grad, step_size, **kw)
        rec["langevin"].append(dict(x=x.clone(), grad=grad.clone(), step=step_size.clone(), kw=kw, out=out.clone()))
        return out

    monkeypatch.setattr(engine.Context, "step", step)
    monkeypatch.setattr(engine.Context, "renoise", renoise)
    monkeypatch.setattr(tts.ops, "langevin_step", langevin)
    return rec


def gaussian_rows(centres, var):
    def fn(x, cond):
        return -((x - centres[cond]) ** 2).sum(1) / (2 * var)
    return fn


def _condition(g, ls):
    """The gradient a step uses: unit RMS per coordinate (relative steps), clipped, or as it is."""
    if ls.step_scale == "relative":
        return g * math.sqrt(g.shape[1]) / g.norm(dim=1, keepdim=True)
    if ls.max_grad_norm is None:
        return g
    return g * (ls.max_grad_norm / g.norm(dim=1, keepdim=True).clamp_min(1e-300)).clamp(max=1.0)


def _close(a, b):
    return torch.allclose(a, b, rtol=1e-8, atol=1e-10)


HARNESS = {
    "rho": dict(rho=0.7),
    "mu-J3-decrease": dict(mu=0.4, iter_steps=3, mu_schedule="decrease"),
    "smoothed": dict(rho=0.5, rho_schedule="constant", mu=0.3, sigma=0.2, mc_samples=4, iter_steps=2),
    "clipped": dict(rho=2.0, rho_schedule="decrease", mu=0.6, sigma=0.3, sigma_schedule="constant", mc_samples=3, max_grad_norm=0.3),
    "recurrence": dict(local_steps=3, rho=0.5, mu=0.2, sigma=0.1, mc_samples=2, eta=0.4),
    "langevin": dict(local_steps=3, move="langevin", rho=1.0, rho_schedule="langevin", mu=0.2, sigma=0.1, mc_samples=2),
    "flow": dict(local_steps=2, rho=0.5, rho_schedule="constant", mu=0.2, eta=1.0, schedule="flow"),
    "flow-langevin": dict(local_steps=2, rho=0.5, rho_schedule="langevin", move="langevin", schedule="flow"),
    "relative": dict(local_steps=2, rho=0.3, mu=0.2, iter_steps=2, sigma=0.1, mc_samples=2, step_scale="relative"),
    "relative-langevin": dict(local_steps=3, move="langevin", rho=0.4, mu=0.1, step_scale="relative"),
}


@pytest.mark.parametrize("name", sorted(HARNESS))
def test_every_round_is_the_papers_update(spies, name):
    """Broken variants: a sign flipped (rho or mu descending), a schedule ignored or made constant,
    sigma or mc_samples ignored, J ascent steps not J, gradients not clipped (or all clipped),
    gradients from the selecting verifier, relative steps not rescaled to unit RMS (or rescaled
    in absolute mode), inner recurrence steps not ancestral (eta = 1), the
    wrong re-noising levels, the Langevin move without the Tweedie score or the tilt, a Delta_t
    shift at a level with alpha = 0 (flow's pure noise)."""
    opts = dict(HARNESS[name])
    flow = opts.pop("schedule", "vp") == "flow"
    b, n, s = 2, 8, 6
    model = Traced([[-1.0, 0.0], [1.0, 0.5]], [0.9, 0.6], [0.7, 0.3], schedule=tts.schedules.flow() if flow else None,
                   leak=0.1 if flow else 0.0)
    centres = torch.tensor([[1.5, 1.0], [-0.5, 2.0]], dtype=torch.float64)
    fn = gaussian_rows(centres, 0.8)
    guide = Recorder(fn)
    select = Recorder(lambda x, cond: -x.pow(2).sum(1), differentiable=False)
    ls = tts.LocalSearch(**opts)
    r = tts.search(model, select, ls, n_particles=n, num_steps=s, batch_size=b, seed=4, progress=False, local_verifier=guide)

    grid = model.schedule.grid(s)
    tab = schedule_tables(grid, ls.rho, ls.mu, ls.sigma, ls.rho_schedule, ls.mu_schedule, ls.sigma_schedule)
    R, J, K = ls.local_steps, ls.iter_steps, ls.mc_samples
    rows = torch.arange(b).repeat_interleave(n)
    calls, vcalls = iter(model.calls), iter(guide.calls)
    steps, renoises, moves = iter(spies["step"]), iter(spies["renoise"]), iter(spies["langevin"])
    nxt = next(calls)
    clipped, grads_at_level0 = [], 0.0
    for i in range(s):
        a0, s0, a1 = grid.alpha[i], grid.sigma[i], grid.alpha[i + 1]
        rho_i, mu_i, sig_i, v_i, a_i = (tab[k][i] for k in ("rho", "mu", "sigma", "v", "a"))
        for rnd in range(R):
            x, t, x0 = nxt
            assert torch.equal(t, grid.timesteps[torch.full((b * n,), i)])
            d = None  # the smoothing noises sigma_i eps_k of this round, read off the verifier's input

            def smoothed(z):
                if d is None:
                    return fn(z, rows)
                zz = (z[:, None] + d).reshape(-1, 2)
                return torch.logsumexp(fn(zz, rows.repeat_interleave(K)).reshape(-1, K), 1) - math.log(K)

            g = torch.zeros_like(x)
            if ls.rho != 0:
                xs, cond, _, with_grad = next(vcalls)
                assert with_grad and xs.shape[0] == b * n * (K if ls.sigma > 0 else 1)
                if ls.sigma > 0:
                    d = xs.reshape(b * n, K, 2) - x0[:, None]
                with torch.enable_grad():
                    xg = x.clone().requires_grad_(True)
                    (g,) = torch.autograd.grad(smoothed(model.plain(xg, t)).sum(), xg)
                clipped.append(g.norm(dim=1) > (ls.max_grad_norm or math.inf))
                g = _condition(g, ls)
                if i == 0:
                    grads_at_level0 = g.norm()
            # Delta_t / a_i: no shift where alpha_i = 0 (nothing to guide at pure noise)
            shift = rho_i * g / a_i if a_i > 0 else torch.zeros_like(x)

            def ascent():
                nonlocal d
                if ls.mu == 0:
                    return 0.0
                z = x0.clone()
                for _ in range(J):
                    xs, _, _, with_grad = next(vcalls)
                    if d is None and ls.sigma > 0:
                        d = xs.reshape(b * n, K, 2) - z[:, None]
                    assert with_grad and _close(xs, z if d is None else (z[:, None] + d).reshape(-1, 2))
                    with torch.enable_grad():
                        zg = z.clone().requires_grad_(True)
                        (g0,) = torch.autograd.grad(smoothed(zg).sum(), zg)
                    z = z + mu_i * _condition(g0, ls)
                return a1 * (z - x0)

            last = rnd == R - 1
            if not last and ls.move == "langevin":
                mv = next(moves)
                drift = (a0 * x0 - x) / s0**2 + (rho_i / v_i) * g  # Tweedie score + tilt rho_i / v_i
                assert _close(mv["x"], x) and _close(mv["grad"], drift) and _close(mv["step"], v_i.expand(b * n))
                nxt = next(calls)
                assert _close(nxt[0], mv["out"])
                continue
            st = next(steps)
            assert _close(st["x"], x) and _close(st["x0"], x0) and st["level"] == i
            assert st["eta"] == (ls.eta if last else 1.0)  # inner rounds: the ancestral step
            if ls.sigma > 0 and d is not None:  # the smoothing scale is sigma_i
                rms = float(d.pow(2).mean().sqrt())
                assert abs(rms / float(sig_i) - 1) < K_SE / math.sqrt(2 * d.numel()), (i, rms, float(sig_i))
            x_next = st["out"] + shift + ascent()
            if not last:
                rn = next(renoises)
                assert _close(rn["x"], x_next) and (rn["frm"], rn["to"]) == (i + 1, i)
                x_next = rn["out"]
            nxt = next(calls, None)
            got = nxt[0] if nxt is not None else r.particles.reshape(-1, 2)
            assert _close(got, x_next), (i, rnd)
    if flow:  # at pure noise the gradient is not zero, yet no Delta_t shift is applied there
        assert float(grads_at_level0) > 0
    assert nxt is None and next(vcalls, None) is None and next(steps, None) is None and next(moves, None) is None
    if ls.max_grad_norm is not None:  # the clip bit on some gradients and not on others
        c = torch.cat(clipped)
        assert bool(c.any()) and not bool(c.all())
    # selection by the selecting verifier only, once, on the finished samples
    assert len(select.calls) == 1 and not select.calls[0][3]
    final = -r.particles.pow(2).sum(-1)
    assert torch.allclose(r.particle_rewards, final) and torch.allclose(r.rewards, final.max(1).values)


def test_local_search_transition_is_prepare_then_advance():
    """LocalSearch.transition (the public one-step helper) equals the engine's transition."""
    model = tts.models.GaussianMixture([[-1.0, 0.0], [1.0, 0.5]], [0.9, 0.6], [0.7, 0.3])
    guide = tts.verifiers.GaussianReward([1.5, 1.0], 0.8)
    ls = tts.LocalSearch(local_steps=2, rho=0.5, mu=0.2, sigma=0.1, mc_samples=2)
    outs = []
    for use_method in (False, True):
        ctx = engine.Context(model, guide, None, model.schedule.grid(6), batch_size=1, n_particles=4, seed=1,
                             budget=None, progress=None, local=ls)
        x, cond = ctx.init_noise(4), ctx.rows(4)
        for i in range(3):
            x, x0 = ls.transition(ctx, x, ctx.levels(i, 4), cond, 0.5) if use_method else ctx.transition(x, i, cond, 0.5)
        outs.append((x, x0))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def test_zero_gradients_stay_finite_under_clipping(rare_mode):
    """Broken variant: the clip dividing by a zero gradient norm (NaN samples)."""
    model, _ = rare_mode
    flat = tts.verifiers.Function(lambda x: 0.0 * x.sum(1), differentiable=True)
    kw = dict(n_particles=4, num_steps=6, seed=0, progress=False, eta=0.0)
    plain = tts.search(model, flat, "bon", **kw)
    r = tts.search(model, flat, "local", rho=1.0, mu=1.0, max_grad_norm=0.5, **kw)
    assert torch.equal(r.particles, plain.particles)


# -- the exact law of the chain on Gaussian data ------------------------------------------------------


M0, S0, C, VR = [-0.4, 0.2], 0.9, [1.5, 1.0], 2.0

LAWS = {
    "langevin": dict(local_steps=4, rho=1.0, rho_schedule="langevin", move="langevin"),
    "recurrence": dict(local_steps=3, rho=0.5, rho_schedule="increase"),
    "ascent": dict(local_steps=2, mu=0.3, iter_steps=2, mu_schedule="decrease", eta=0.0),
    "both": dict(local_steps=3, rho=0.8, rho_schedule="decrease", mu=0.2, mu_schedule="constant", move="langevin", eta=0.5),
    "plain": dict(local_steps=2),
}


@pytest.mark.parametrize("name", sorted(LAWS))
def test_local_search_samples_follow_the_exact_law_of_its_chain(name):
    """Broken variants: anything that changes the chain's law (signs, schedules, eta, step sizes,
    number of rounds, the move), including its variance, which no other test pins down.

    Tolerances: n independent chains; the sample mean has standard error sqrt(var / n) and the
    variance ratio sqrt(2 / (n - 1)) (Gaussian samples); 4 standard errors each, nothing else."""
    opts = LAWS[name]
    n, s = 2048, 20
    model = tts.models.GaussianMixture([M0], [S0])
    verifier = tts.verifiers.GaussianReward(C, VR)
    x = tts.search(model, verifier, "local", n_particles=n, num_steps=s, seed=0, progress=False, **opts).particles.reshape(n, 2)
    mean, var = exact_law(model.schedule.grid(s), M0, S0, C, VR, **opts)
    assert bool(((x.mean(0) - mean).abs() < K_SE * (var / n).sqrt()).all()), (x.mean(0), mean)
    assert bool(((x.var(0) / var - 1).abs() < K_SE * math.sqrt(2 / (n - 1))).all()), (x.var(0), var)


def test_the_annealed_langevin_chain_approaches_the_tilted_target_exactly():
    """Prop. 1, on the exact laws: with rho_schedule='langevin' the chain's final law tends to
    p0 f^rho as the rounds per level grow; its bias is the annealing lag (shrinking ~1/R) plus
    the ULA discretisation bias (shrinking with the step sizes v_i, i.e. with more levels)."""
    model = tts.models.GaussianMixture([M0], [S0])
    target = model.tilted(C, VR, 1.0)
    t_mean, t_var = target.mean(), float(target.covariance()[0, 0])

    def bias(s, r):
        mean, var = exact_law(model.schedule.grid(s), M0, S0, C, VR, local_steps=r, rho=1.0, rho_schedule="langevin", move="langevin")
        return float((mean - t_mean).abs().max()), abs(float(var) / t_var - 1)

    b1, b8, b32, b32_fine = bias(50, 1), bias(50, 8), bias(50, 32), bias(100, 32)
    for k in range(2):
        assert b32[k] < b8[k] / 2 < b1[k] / 4  # more rounds: closer
        assert b32_fine[k] < b32[k]  # smaller steps: closer
    # at 50 levels x 32 rounds (tests/test_search_correctness.py's setting) the bias is below one
    # standard error of 4096 samples: there it needs no allowance beyond the sampling error
    assert b32[0] < math.sqrt(t_var / 4096) and b32[1] < math.sqrt(2 / 4095)


# -- behaviour: direction of the guidance, dual verifiers, joint search -------------------------------


@pytest.mark.parametrize("opts", [dict(rho=0.5), dict(mu=0.5), dict(rho=1.0, rho_schedule="langevin", local_steps=3, move="langevin")],
                         ids=["rho", "mu", "langevin"])
def test_guidance_ascends_the_reward(rare_mode, opts):
    """Broken variants: a sign flipped (descending the reward), the strength ignored.

    Same seed and deterministic sampling (eta = 0), so each guided chain starts from the noise of
    a plain one: the paired reward gain is positive by 4 standard errors; the mirror strength
    (rho -> -rho, mu -> -mu) loses reward by as much."""
    model, verifier = rare_mode
    kw = dict(n_particles=256, num_steps=12, seed=0, progress=False, eta=0.0)
    plain = tts.search(model, verifier, "local", **kw).particle_rewards.reshape(-1)
    up = tts.search(model, verifier, "local", **kw, **opts).particle_rewards.reshape(-1)
    neg = {k: (-v if k in ("rho", "mu") else v) for k, v in opts.items()}
    down = tts.search(model, verifier, "local", **kw, **neg).particle_rewards.reshape(-1)
    for d in (up - plain, plain - down):
        assert float(d.mean()) > K_SE * float(d.std()) / math.sqrt(d.numel()), float(d.mean())


GLOBAL = {
    "bon": ("bon", {}),
    "zero_order": ("zero_order", dict(iterations=2, lam=0.5)),
    "search_over_paths": ("search_over_paths", dict(delta_f=2, delta_b=4)),
    "bfs": ("bfs", {}),
}


@pytest.mark.parametrize("method", sorted(GLOBAL))
def test_dual_verifiers_guide_toward_one_and_select_by_the_other(method):
    """Broken variants: gradients taken from the selecting verifier, selection by the local one,
    local search not reaching a global method's steps.

    The local verifier points at (2, 2), the selecting one at (-2, -2). With local search the
    final population moves toward (2, 2) (its mean reward under the local verifier rises by 4
    standard errors over prompt rows); the returned sample of each row is still the best under
    the selecting verifier."""
    name, opts = GLOBAL[method]
    model = tts.models.GaussianMixture([[-1.0, 0.0], [1.0, 0.5]], [0.9, 0.9], [0.5, 0.5])
    guide = tts.verifiers.GaussianReward([2.0, 2.0], 1.0)
    select = tts.verifiers.Function(lambda x: -((x + 2.0) ** 2).sum(1))  # not differentiable: never guides
    b, n = 32, 4
    kw = dict(n_particles=n, num_steps=10, batch_size=b, seed=0, progress=False, **opts)
    plain = tts.search(model, select, name, **kw)
    dual = tts.search(model, select, name, local_verifier=guide, rho=1.0, rho_schedule="langevin", local_steps=2, move="langevin", **kw)
    row = lambda res: guide(res.particles.reshape(-1, 2)).reshape(b, n).mean(1)  # noqa: E731
    d = row(dual) - row(plain)
    assert float(d.mean()) > K_SE * float(d.std()) / math.sqrt(b), float(d.mean())
    assert torch.allclose(dual.rewards, select(dual.samples))
    if name != "zero_order":  # zero-order returns the best sample ever seen, not one of its last neighbours
        assert torch.allclose(dual.rewards, select(dual.particles.reshape(-1, 2)).reshape(b, n).max(1).values)


def test_mc_samples_only_matter_with_smoothing(rare_mode):
    """Broken variant: smoothing noises drawn (and K copies scored) when sigma = 0.

    Without smoothing K is irrelevant: same seed, same samples, one verifier pass per gradient;
    with sigma > 0 each gradient scores K noisy copies."""
    model, verifier = rare_mode
    b, n, s = 2, 3, 5
    kw = dict(n_particles=n, num_steps=s, batch_size=b, seed=1, progress=False, rho=0.3, mu=0.2, eta=1.0)
    one = tts.search(model, verifier, "local", mc_samples=1, **kw)
    with pytest.raises(ValueError, match="mc_samples=3 would do nothing"):  # the constructor refuses it ...
        tts.search(model, verifier, "local", mc_samples=3, **kw)
    idle = tts.LocalSearch(rho=0.3, mu=0.2, eta=1.0)
    idle.mc_samples = 3  # ... so set it behind the checks, to show the loop really ignores it
    three = tts.search(model, verifier, idle, n_particles=n, num_steps=s, batch_size=b, seed=1, progress=False)
    assert torch.equal(one.particles, three.particles)
    assert three.nfe.verifier_grad == b * n * s * 2  # one rho and one mu gradient per particle per level
    smooth = tts.search(model, verifier, "local", mc_samples=3, sigma=0.1, **kw)
    assert smooth.nfe.verifier_grad == b * n * s * 2 * 3


@pytest.mark.parametrize("move", ["recurrence", "langevin"])
def test_a_float32_model_sees_and_feeds_float32_only(move):
    """Broken variant: float64 schedule tables promoting the particles, the ascent or the smoothed
    copies to float64 (a half- or single-precision verifier or denoiser would then fail or slow).

    Every tensor the model and the local verifier receive, and the final samples, keep the model's
    dtype."""
    seen = []

    class Float32Model(tts.models.GaussianMixture):
        def forward(self, x_t, t, cond=None):
            seen.append(("model", x_t.dtype))
            return super().forward(x_t, t, cond)

    def reward(x):
        seen.append(("verifier", x.dtype))
        return -((x - 1.0) ** 2).sum(1)

    model = Float32Model([[-1.0, 0.0], [1.0, 0.5]], [0.9, 0.6], [0.7, 0.3], dtype=torch.float32)
    guide = tts.verifiers.Function(reward, differentiable=True)
    r = tts.search(model, guide, "local", n_particles=4, num_steps=5, progress=False, local_steps=2, move=move,
                   rho=0.5, mu=0.3, iter_steps=2, sigma=0.1, mc_samples=2, max_grad_norm=1.0)
    assert r.particles.dtype == torch.float32 and r.rewards.dtype == torch.float32
    assert {d for _, d in seen} == {torch.float32} and {w for w, _ in seen} == {"model", "verifier"}


def test_langevin_moves_are_timed_as_search_ops(rare_mode, monkeypatch):
    """Broken variants: the Langevin move's time charged to a stage that is not reported, or timed
    without its device (profile mode could then not synchronise around it on a GPU)."""
    from tts_fast.search import counting

    stages = []
    original = counting.Timers.__call__

    def call(self, stage, device=None):
        stages.append((stage, device))
        return original(self, stage, device)

    monkeypatch.setattr(counting.Timers, "__call__", call)
    model, verifier = rare_mode
    r = tts.search(model, verifier, "local", n_particles=4, num_steps=4, progress=False, rho=0.5, local_steps=3, move="langevin")
    assert set(r.timings) == {"model", "decode", "verifier", "search_ops", "total"}
    assert stages and {d for _, d in stages} == {torch.device("cpu")}
