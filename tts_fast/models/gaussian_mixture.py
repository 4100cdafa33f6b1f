"""An analytic diffusion model: isotropic Gaussian-mixture data, exact at every noise level.

Data: p0 = sum_k w_k N(m_k, s_k^2 I) in D dimensions. At a level with scales (alpha, sigma) the
marginal is p_t = sum_k w_k N(alpha m_k, (alpha^2 s_k^2 + sigma^2) I), and the exact
x0-prediction (the posterior mean, i.e. what a perfectly trained denoiser returns) is

    E[x0 | x_t] = sum_k gamma_k(x_t) [m_k + alpha s_k^2 / (alpha^2 s_k^2 + sigma^2) (x_t - alpha m_k)]

with responsibilities gamma_k proportional to w_k N(x_t; alpha m_k, (alpha^2 s_k^2 + sigma^2) I).
For a verifier that is the log of an unnormalised Gaussian f(x) = exp(-|x - c|^2 / (2 v)), the
tilted target p0 f^lam is again a Gaussian mixture (:meth:`GaussianMixture.tilted`), which is what
the search tests compare against.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from .. import schedules as _schedules
from .base import Denoiser


class GaussianMixture(Denoiser):
    """Exact denoiser of a Gaussian mixture.

    Args:
        means: [K, D] component means.
        stds: [K] (or scalar) component standard deviations (isotropic), > 0.
        weights: [K] non-negative mixture weights (normalised here).
        schedule: noise schedule; default DDPM linear with 1000 levels.
        dtype: float dtype of the model's computations (float64 by default for exactness).
    """

    num_prompts = None

    def __init__(self, means, stds, weights=None, schedule: Optional[_schedules.Schedule] = None, dtype=torch.float64, device="cpu"):
        means = torch.as_tensor(means, dtype=dtype, device=device)
        if means.dim() != 2 or means.shape[0] < 1:
            raise ValueError(f"means must be [K, D] with K >= 1, got shape {tuple(means.shape)}")
        k, d = means.shape
        stds = torch.as_tensor(stds, dtype=dtype, device=device).expand(k).clone()
        if not bool((stds > 0).all()):
            raise ValueError("stds must be > 0")
        weights = torch.full((k,), 1.0 / k, dtype=dtype, device=device) if weights is None else torch.as_tensor(weights, dtype=dtype, device=device)
        if weights.shape != (k,) or bool((weights < 0).any()) or not float(weights.sum()) > 0:
            raise ValueError(f"weights must be [K] = [{k}] non-negative with a positive sum")
        self.means, self.stds, self.weights = means, stds, weights / weights.sum()
        self.schedule = schedule if schedule is not None else _schedules.ddpm_linear()
        self.sample_shape = (d,)
        self.dtype = dtype
        self.device = torch.device(device)

    @property
    def dim(self) -> int:
        return self.sample_shape[0]

    # -- the exact model -------------------------------------------------------------------------

    def _responsibilities(self, x, alpha, sigma):
        """log gamma_k [B, K] and the per-component marginal variances [B, K]."""
        var = alpha[:, None] ** 2 * self.stds[None] ** 2 + sigma[:, None] ** 2
        diff2 = ((x[:, None, :] - alpha[:, None, None] * self.means[None]) ** 2).sum(-1)
        logp = torch.log(self.weights)[None] - 0.5 * diff2 / var - 0.5 * self.dim * torch.log(2 * math.pi * var)
        return logp, var

    def forward(self, x_t, t, cond=None):
        alpha, sigma = (v.to(x_t.dtype) for v in self.schedule.alpha_sigma(t))
        logp, var = self._responsibilities(x_t, alpha, sigma)
        gamma = torch.softmax(logp, dim=1)
        gain = alpha[:, None] * self.stds[None] ** 2 / var  # [B, K]
        comp = self.means[None] + gain[..., None] * (x_t[:, None, :] - alpha[:, None, None] * self.means[None])
        return (gamma[..., None] * comp).sum(1)

    def score(self, x_t, t):
        """Exact score grad log p_t(x_t) at model timesteps t [B]."""
        alpha, sigma = (v.to(x_t.dtype) for v in self.schedule.alpha_sigma(t))
        x0 = self.forward(x_t, t)
        return _schedules.score_from_x0(x_t, x0, alpha[:, None], sigma[:, None])

    # -- the distribution ------------------------------------------------------------------------

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log density of the data distribution at x [B, D]."""
        one = torch.ones(x.shape[0], dtype=x.dtype, device=x.device)
        logp, _ = self._responsibilities(x, one, torch.zeros_like(one))
        return torch.logsumexp(logp, dim=1)

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """n exact samples of the data distribution: [n, D]."""
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, generator=generator, dtype=self.dtype, device=self.device)
        return self.means[comp] + self.stds[comp, None] * eps

    def mean(self) -> torch.Tensor:
        """Mean of the data distribution [D]."""
        return (self.weights[:, None] * self.means).sum(0)

    def covariance(self) -> torch.Tensor:
        """Covariance of the data distribution [D, D]."""
        mu = self.mean()
        second = (self.weights[:, None, None] * (self.means[:, :, None] * self.means[:, None, :])).sum(0)
        second = second + torch.eye(self.dim, dtype=self.dtype, device=self.device) * (self.weights * self.stds**2).sum()
        return second - mu[:, None] * mu[None, :]

    def tilted(self, center, var: float, lam: float = 1.0) -> "GaussianMixture":
        """The exact tilted target p0(x) f(x)^lam for f(x) = exp(-|x - center|^2 / (2 var)).

        Each component N(m, s^2) times exp(-lam |x - c|^2 / (2 var)) is a Gaussian with precision
        1/s^2 + lam/var and weight w N(m; c, (s^2 + var/lam) I) up to a common constant.
        """
        c = torch.as_tensor(center, dtype=self.dtype, device=self.device).reshape(1, -1)
        if c.shape[1] != self.dim or not var > 0 or not lam >= 0:
            raise ValueError("center must be [D], var > 0 and lam >= 0")
        if lam == 0:
            return GaussianMixture(self.means, self.stds, self.weights, self.schedule, self.dtype, self.device)
        prec = 1.0 / self.stds**2 + lam / var
        means = (self.means / self.stds[:, None] ** 2 + lam * c / var) / prec[:, None]
        s2 = self.stds**2 + var / lam
        logw = torch.log(self.weights) - 0.5 * ((self.means - c) ** 2).sum(1) / s2 - 0.5 * self.dim * torch.log(s2)
        return GaussianMixture(means, prec.rsqrt(), torch.softmax(logw, 0), self.schedule, self.dtype, self.device)

    def tilted_by_mixture(self, centers, variances, weights) -> "GaussianMixture":
        """Exact p0(x) f(x) (lam = 1) for an unnormalised mixture f = sum_j a_j exp(-|x - c_j|^2 / (2 v_j))."""
        centers = torch.as_tensor(centers, dtype=self.dtype, device=self.device)
        variances = torch.as_tensor(variances, dtype=self.dtype, device=self.device).expand(centers.shape[0])
        weights = torch.as_tensor(weights, dtype=self.dtype, device=self.device).expand(centers.shape[0])
        parts = []
        for c, v, a in zip(centers, variances, weights):
            g = self.tilted(c, float(v), 1.0)
            # Evidence of component k under exp(-|x-c|^2/(2v)): w_k (v/(s_k^2+v))^(D/2) exp(-|m_k-c|^2/(2(s_k^2+v))).
            s2 = self.stds**2 + v
            logz = torch.log(self.weights) + 0.5 * self.dim * torch.log(v / s2) - 0.5 * ((self.means - c) ** 2).sum(1) / s2
            parts.append((g.means, g.stds, torch.log(a) + logz))
        means = torch.cat([p[0] for p in parts])
        stds = torch.cat([p[1] for p in parts])
        logw = torch.cat([p[2] for p in parts])
        return GaussianMixture(means, stds, torch.softmax(logw, 0), self.schedule, self.dtype, self.device)
