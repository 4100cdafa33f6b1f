"""Fréchet distance between two sets of features, each fitted by a Gaussian (the FID formula).

    FD = |mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2))

computed in float64 with symmetric eigendecompositions only: tr (C_a C_b)^(1/2) is the sum of the
square roots of the eigenvalues of C_a^(1/2) C_b C_a^(1/2), which is symmetric positive
semi-definite (no complex matrix square root, no scipy). Feature sets of n samples give biased
estimates that fall as n grows, so compare sets of the same size, against a real-vs-real floor at
that size (see :func:`real_floor` in the experiment).
"""

from __future__ import annotations

import torch


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean [D] and covariance [D, D] (unbiased, float64) of features [n, D], n >= 2."""
    if not isinstance(features, torch.Tensor) or features.dim() != 2 or features.shape[0] < 2:
        got = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ValueError(f"features must be [n, D] with n >= 2 samples, got {got}")
    f = features.double()
    if not bool(torch.isfinite(f).all()):
        raise ValueError("features must be finite")
    return f.mean(0), torch.cov(f.T).reshape(f.shape[1], f.shape[1])


def _psd_sqrt(c: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh(c)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_distance(mu_a: torch.Tensor, cov_a: torch.Tensor, mu_b: torch.Tensor, cov_b: torch.Tensor) -> float:
    """The Fréchet distance between N(mu_a, cov_a) and N(mu_b, cov_b) (means [D], covariances [D, D])."""
    if mu_a.shape != mu_b.shape or cov_a.shape != cov_b.shape or cov_a.shape != (mu_a.numel(), mu_a.numel()):
        raise ValueError(f"means [D] and covariances [D, D] of one D, got {tuple(mu_a.shape)}, {tuple(cov_a.shape)}, "
                         f"{tuple(mu_b.shape)}, {tuple(cov_b.shape)}")
    mu_a, cov_a, mu_b, cov_b = (t.double() for t in (mu_a, cov_a, mu_b, cov_b))
    s = _psd_sqrt(cov_a)
    cross = torch.linalg.eigvalsh(s @ cov_b @ s).clamp_min(0).sqrt().sum()
    return float(((mu_a - mu_b) ** 2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * cross)


def frechet(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """The Fréchet distance between two feature sets [n_a, D] and [n_b, D]."""
    return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))
