"""Closed-form verifiers whose tilted targets are known exactly on the Gaussian-mixture model."""

from __future__ import annotations

import torch

from .._device_checks import prompt_rows
from .base import Verifier


def _dims(x0: torch.Tensor, d: int, who: str) -> None:
    if x0.dim() != 2 or x0.shape[1] != d:
        raise ValueError(f"{who} scores samples [B, {d}] (its centres have dimension {d}), got x0 of shape {tuple(x0.shape)}")


class GaussianReward(Verifier):
    """log f(x) = -|x - center|^2 / (2 var): the log of an unnormalised Gaussian.

    Args:
        center: [D] (shared by every prompt row) or [P, D] (one centre per prompt row).
        var: positive variance, a scalar or [P] (one per prompt row).
    """

    differentiable = True

    def __init__(self, center, var: float = 1.0):
        self.center = torch.as_tensor(center, dtype=torch.float64)
        self.var = torch.as_tensor(var, dtype=torch.float64).reshape(-1)
        if self.center.dim() not in (1, 2) or self.center.shape[-1] < 1 or not bool(torch.isfinite(self.center).all()):
            raise ValueError(f"center must be a finite [D] or [P, D] tensor, got shape {tuple(self.center.shape)}")
        if self.var.numel() < 1 or not bool((self.var > 0).all()) or not bool(torch.isfinite(self.var).all()):
            raise ValueError(f"var must be finite and > 0 (a scalar or one per prompt row), got {self.var.tolist()}")
        rows = {self.center.shape[0] if self.center.dim() == 2 and self.center.shape[0] > 1 else None,
                self.var.numel() if self.var.numel() > 1 else None} - {None}
        if len(rows) > 1:
            raise ValueError(f"center has {self.center.shape[0]} rows but var has {self.var.numel()} values: give one per prompt row")
        self.num_prompts = rows.pop() if rows else None

    def forward(self, x0, cond):
        _dims(x0, self.center.shape[-1], "GaussianReward")
        n = x0.shape[0]
        rows = None if self.num_prompts is None else prompt_rows(cond, n, self.num_prompts, x0.device, "this GaussianReward")
        c = self.center.to(x0.device, x0.dtype).reshape(-1, self.center.shape[-1])
        c = c[rows] if c.shape[0] > 1 else c.expand(n, -1)
        v = self.var.to(x0.device, x0.dtype)
        v = v[rows] if v.numel() > 1 else v
        return -((x0 - c) ** 2).sum(-1) / (2 * v)


class MixtureReward(Verifier):
    """log f(x) = log sum_j a_j exp(-|x - c_j|^2 / (2 v_j)): the log of an unnormalised mixture.

    Args:
        centers: [J, D]. variances: [J] or scalar, > 0. weights: [J] or scalar, > 0.
    """

    differentiable = True

    def __init__(self, centers, variances=1.0, weights=1.0):
        self.centers = torch.as_tensor(centers, dtype=torch.float64)
        if self.centers.dim() != 2 or self.centers.shape[0] < 1 or not bool(torch.isfinite(self.centers).all()):
            raise ValueError(f"centers must be a finite [J, D] tensor, got shape {tuple(self.centers.shape)}")
        j = self.centers.shape[0]
        self.variances = _per_component(variances, j, "variances")
        self.weights = _per_component(weights, j, "weights")

    def forward(self, x0, cond):
        _dims(x0, self.centers.shape[1], "MixtureReward")
        c = self.centers.to(x0.device, x0.dtype)
        v = self.variances.to(x0.device, x0.dtype)
        a = self.weights.to(x0.device, x0.dtype)
        d2 = ((x0[:, None, :] - c[None]) ** 2).sum(-1)
        return torch.logsumexp(torch.log(a)[None] - d2 / (2 * v[None]), dim=1)


def _per_component(v, j: int, name: str) -> torch.Tensor:
    t = torch.as_tensor(v, dtype=torch.float64).reshape(-1)
    if t.numel() not in (1, j) or not bool((t > 0).all()) or not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite and > 0, a scalar or one per component ({j}), got {t.tolist()}")
    return t.expand(j).clone()
