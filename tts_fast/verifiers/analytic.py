"""Closed-form verifiers whose tilted targets are known exactly on the Gaussian-mixture model."""

from __future__ import annotations

import torch

from .base import Verifier


def _per_row(t: torch.Tensor, cond, n: int) -> torch.Tensor:
    """Broadcast a per-prompt parameter [P, ...] (or a shared one [...]) to [B, ...]."""
    if t.dim() >= 2 and t.shape[0] > 1:
        if cond is None:
            raise ValueError("this verifier has one parameter per prompt row: pass cond (prompt rows)")
        return t[cond.to(t.device)]
    return t.reshape(1, *t.shape[-1:]).expand(n, -1) if t.dim() >= 1 else t.expand(n)


class GaussianReward(Verifier):
    """log f(x) = -|x - center|^2 / (2 var): the log of an unnormalised Gaussian.

    Args:
        center: [D] or [P, D] (one centre per prompt row).
        var: positive variance (scalar or [P]).
    """

    differentiable = True

    def __init__(self, center, var: float = 1.0):
        self.center = torch.as_tensor(center, dtype=torch.float64)
        self.var = torch.as_tensor(var, dtype=torch.float64).reshape(-1)
        if self.center.dim() not in (1, 2) or not bool((self.var > 0).all()):
            raise ValueError("center must be [D] or [P, D] and var > 0")

    def forward(self, x0, cond):
        c = _per_row(self.center.to(x0.device, x0.dtype), cond, x0.shape[0])
        v = self.var.to(x0.device, x0.dtype)
        v = v[cond.to(v.device)] if v.numel() > 1 else v
        return -((x0 - c) ** 2).sum(-1) / (2 * v)


class MixtureReward(Verifier):
    """log f(x) = log sum_j a_j exp(-|x - c_j|^2 / (2 v_j)): the log of an unnormalised mixture.

    Args:
        centers: [J, D]. variances: [J] or scalar, > 0. weights: [J] or scalar, > 0.
    """

    differentiable = True

    def __init__(self, centers, variances=1.0, weights=1.0):
        self.centers = torch.as_tensor(centers, dtype=torch.float64)
        j = self.centers.shape[0]
        self.variances = torch.as_tensor(variances, dtype=torch.float64).expand(j).clone()
        self.weights = torch.as_tensor(weights, dtype=torch.float64).expand(j).clone()
        if self.centers.dim() != 2 or not bool((self.variances > 0).all()) or not bool((self.weights > 0).all()):
            raise ValueError("centers must be [J, D]; variances and weights > 0")

    def forward(self, x0, cond):
        c = self.centers.to(x0.device, x0.dtype)
        v = self.variances.to(x0.device, x0.dtype)
        a = self.weights.to(x0.device, x0.dtype)
        d2 = ((x0[:, None, :] - c[None]) ** 2).sum(-1)
        return torch.logsumexp(torch.log(a)[None] - d2 / (2 * v[None]), dim=1)
