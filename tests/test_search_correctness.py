"""Search methods against exact answers on the Gaussian-mixture model.

Tolerances: a weighted-population estimate per prompt row is one independent replicate, so the
standard error comes from the spread across rows; self-normalised importance weights add a bias
of order sd / ESS, which shrinks as N grows.
"""

import math

import pytest
import torch

import tts_fast as tts


def _weighted_moments(result):
    w = result.log_weights.exp()  # [B, N], rows sum to 1
    x = result.particles  # [B, N, D]
    mean = (w[..., None] * x).sum(1)
    var = (w[..., None] * (x - mean[:, None]) ** 2).sum(1)
    ess = 1.0 / (w**2).sum(1)
    return mean, var, ess


def _check_target(result, target, k=4.0):
    mean, var, ess = _weighted_moments(result)
    b = mean.shape[0]
    t_mean, t_var = target.mean(), torch.diag(target.covariance())
    sd = t_var.sqrt()
    n_eff = float(ess.mean())
    tol_mean = k * mean.std(0) / math.sqrt(b) + sd / n_eff
    tol_var = k * var.std(0) / math.sqrt(b) + 2 * t_var / n_eff
    assert bool(((mean.mean(0) - t_mean).abs() < tol_mean).all()), (mean.mean(0), t_mean, tol_mean)
    assert bool(((var.mean(0) - t_var).abs() < tol_var).all()), (var.mean(0), t_var, tol_var)
    return (mean.mean(0) - t_mean).abs()


@pytest.mark.parametrize("temperature", ["constant", "increase"])
def test_bfs_difference_targets_the_tilted_distribution(temperature):
    """FK-steering's theory: difference potentials + final correction target p0 exp(lam r)."""
    model = tts.models.GaussianMixture([[-2.0, 0.0], [2.0, 1.0]], [0.6, 0.6], [0.8, 0.2])
    verifier = tts.verifiers.GaussianReward([2.0, 1.0], 2.0)
    target = model.tilted([2.0, 1.0], 2.0, 1.0)
    common = dict(scoring="difference", temperature=temperature, lam=1.0, resampling="ssp", num_steps=1000, seed=0, progress=False)
    big = tts.search(model, verifier, "bfs", n_particles=256, batch_size=32, **common)
    err_big = _check_target(big, target)
    small = tts.search(model, verifier, "bfs", n_particles=16, batch_size=512, **common)
    err_small = (_weighted_moments(small)[0].mean(0) - target.mean()).abs()
    # As N grows the self-normalised bias shrinks: the large population is closer on the first axis.
    assert float(err_big[0]) < float(err_small[0])


def test_bfs_difference_on_a_flow_model():
    """Particle search on a rectified-flow model through its stochastic (SDE) sampler."""
    model = tts.models.GaussianMixture([[-2.0, 0.0], [2.0, 1.0]], [0.6, 0.6], [0.8, 0.2], schedule=tts.schedules.flow())
    verifier = tts.verifiers.GaussianReward([2.0, 1.0], 2.0)
    r = tts.search(model, verifier, "bfs", n_particles=256, batch_size=32, num_steps=400, seed=1, progress=False,
                   scoring="difference", temperature="constant", lam=1.0, resampling="systematic")
    _check_target(r, model.tilted([2.0, 1.0], 2.0, 1.0))


def test_annealed_langevin_local_search_approaches_the_tilted_target(overlapping):
    """Prop. 1: many MCMC steps per level with tilt rho -> samples from p0 f^rho (no global search)."""
    model, verifier = overlapping
    target = model.tilted([1.5, 1.0], 2.0, 1.0)
    n = 4096
    common = dict(n_particles=n, num_steps=50, seed=0, progress=False, rho=1.0, rho_schedule="langevin", move="langevin")
    one = tts.search(model, verifier, "local", local_steps=1, **common).particles.reshape(-1, 2)
    many = tts.search(model, verifier, "local", local_steps=32, **common).particles.reshape(-1, 2)
    t_mean, t_var = target.mean(), torch.diag(target.covariance())
    se = (t_var / n).sqrt()
    # The unadjusted Langevin chain has an O(step) bias: allow 0.03 beyond 4 standard errors.
    assert bool(((many.mean(0) - t_mean).abs() < 4 * se + 0.03).all()), (many.mean(0), t_mean)
    assert bool(((many.var(0) / t_var - 1).abs() < 4 * math.sqrt(2 / n) + 0.05).all()), (many.var(0), t_var)
    assert bool(((one.mean(0) - t_mean).abs() > 8 * se).any())  # without the chain it is far off


def test_recurrence_moves_the_mean_toward_the_tilted_target(overlapping):
    """The paper's move (step down, re-noise up): more rounds bring the mean closer.

    (Its variance is not tested: the DDPM posterior step ignores the uncertainty of x0, and repeated
    rounds compound that; benchmarks/search_ablation.py reports it.)
    """
    model, verifier = overlapping
    target_mean = model.tilted([1.5, 1.0], 2.0, 1.0).mean()
    common = dict(n_particles=4096, num_steps=50, seed=0, progress=False, rho=1.0, rho_schedule="langevin")
    err = {}
    for r in (1, 8):
        x = tts.search(model, verifier, "local", local_steps=r, **common).particles.reshape(-1, 2)
        err[r] = float((x.mean(0) - target_mean).norm())
    assert err[8] < err[1] / 2, err
