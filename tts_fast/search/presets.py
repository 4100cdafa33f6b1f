"""Named settings: the methods that BFS subsumes with their papers' settings, DAS as published, DTS / DTS*.

Each preset returns a method object (:class:`~tts_fast.search.bfs.BFS`, ``DAS``, ``DTS``, ``LocalSearch``);
keyword arguments override any field.
The temperature ``lam`` multiplies the reward, so it depends on the reward's scale: the defaults
are the papers' values for their rewards (log-probabilities for the classical-search paper,
ImageReward for FK-steering); retune it for other verifiers, or use :func:`bfs_auto` and
:func:`local_auto`, whose settings do not depend on the reward's units (docs/self_tuning.md).
"""

from __future__ import annotations

from .bfs import BFS
from .das import DAS
from .dts import DTS
from .local import LocalSearch


def svdd(**overrides) -> BFS:
    """SVDD (Li et al. 2024): at every step keep the best-scoring candidates (argmax, alpha -> 0).

    In the BFS space: temperature 'inf', scoring 'current', every step. The N particles of a prompt
    are SVDD's M children; the look-ahead x0_hat is the one the next step computes anyway, so this
    costs N NFE per step instead of SVDD's M + 1.
    """
    return BFS(**{**dict(temperature="inf", scoring="current", resampling="multinomial", resample_at="every"), **overrides})


def das(**overrides) -> BFS:
    """DAS without gradient guidance (Kim et al. 2025): tempered SMC with SSP and ESS-gated resampling.

    Difference potentials (twist lam_i r(x0_hat), incremental weights), DAS's exponential tempering
    lam_i = lam * min((1 + g)^i - 1, 1) reaching lam at 87% of the steps, SSP resampling when the
    ESS drops below N/2, at every step. DAS sets lam = 1 / kl_coeff.
    """
    base = dict(temperature="exp", scoring="difference", resampling="ssp", resample_at="every", ess_threshold=0.5, lam=1.0)
    return BFS(**{**base, **overrides})


def das_guided(**overrides) -> DAS:
    """DAS as published (Kim et al. 2025): the same tempered SMC as :func:`das` with the proposal
    shifted up the reward's gradient (s_i^2 lam_{i+1} grad r(x0_hat)) and the weights corrected for it
    (das.py). Needs a differentiable verifier; one backward pass per particle and step."""
    return DAS(**overrides)


def fk(**overrides) -> BFS:
    """FK-steering (Singhal et al. 2025), its paper setting: max potential, lam = 10, multinomial
    resampling at 20/40/60/80% of the steps; the final weights divide out the intermediate potentials.
    """
    base = dict(temperature="constant", scoring="max", resampling="multinomial", lam=10.0, resample_at=(0.2, 0.4, 0.6, 0.8))
    return BFS(**{**base, **overrides})


def bfs_best(**overrides) -> BFS:
    """The classical-search paper's best BFS: increasing temperature, max scoring, SSP resampling,
    evaluated at 25/50/75% of the steps (their ImageNet setting, lam = 1 on log-probabilities).
    """
    base = dict(temperature="increase", scoring="max", resampling="ssp", lam=1.0, resample_at=(0.25, 0.5, 0.75))
    return BFS(**{**base, **overrides})


def bfs_auto(**overrides) -> BFS:
    """BFS that tunes itself: bfs_best's structure with adaptive tempering and a free final tilt.

    Every prompt row raises its temperature at each evaluation level by the increment that keeps
    the conditional ESS of its incremental weights at half its particles, and picks its final tilt
    by the same rule (lam=None): no setting is in the reward's units, and multiplying the reward by
    any c > 0 leaves the search unchanged. SSP resampling at 25/50/75 % of the steps (bfs_best's),
    'difference' scoring (tempered SMC's incremental weights lam_i r_i - lam_prev r_prev).
    """
    base = dict(temperature="adaptive", lam=None, target_ess=0.5, scoring="difference", resampling="ssp", resample_at=(0.25, 0.5, 0.75))
    return BFS(**{**base, **overrides})


def local_auto(**overrides) -> LocalSearch:
    """Local search with relative steps: gradients rescaled to unit RMS per coordinate, so that rho
    and mu are step lengths in the sample's units on every verifier (step_scale='relative').

    One setting for every task, chosen from a two-seed look at the medium and large PointMaze and
    then run unchanged on the digits model (docs/self_tuning.md): R = 2 rounds, rho = mu = 0.01
    (one ascent step), no smoothing.
    """
    base = dict(step_scale="relative", local_steps=2, rho=0.01, mu=0.01, iter_steps=1, sigma=0.0)
    return LocalSearch(**{**base, **overrides})


def dts(**overrides) -> DTS:
    """Diffusion Tree Sampling (Jain et al. 2025): Boltzmann selection on soft values, soft Bellman
    backup; the returned samples are draws of the tree, approximately p0 exp(lam r) (dts.py)."""
    return DTS(**{**dict(select="boltzmann"), **overrides})


def dts_star(**overrides) -> DTS:
    """Diffusion Tree Search, DTS* (Jain et al. 2025): DTS with greedy selection; returns the best leaf."""
    return DTS(**{**dict(select="greedy"), **overrides})


__all__ = ["svdd", "das", "das_guided", "fk", "bfs_best", "bfs_auto", "local_auto", "dts", "dts_star"]
