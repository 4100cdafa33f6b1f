"""The exact law of local search's chain on Gaussian data with a Gaussian reward (for oracles).

On data N(m0, s0^2 I) with log f = -|x - c|^2 / (2 vr) every round of local search (guided DDIM
step, re-noising, Langevin move, x0-space ascent) is an affine map of x plus Gaussian noise, so the
final samples are Gaussian with moments that can be computed exactly, bias of the discretised and
annealed chain included. The per-level strengths are written out from their definitions
(Zhang et al. 2025), independently of :meth:`tts_fast.LocalSearch.tables`.
"""

import torch


def shape(grid, kind):
    """The paper's per-step multipliers, mean 1 over the S steps: constant, increase (proportional
    to the per-step alpha_i = (alpha_i / alpha_{i+1})^2), decrease (proportional to 1 - alpha_i)."""
    step_alpha = (grid.alpha[:-1] / grid.alpha[1:]) ** 2
    if kind == "constant":
        return torch.ones_like(step_alpha)
    s = step_alpha if kind == "increase" else 1.0 - step_alpha
    return s / s.mean()


def schedule_tables(grid, rho=0.0, mu=0.0, sigma=0.0, rho_schedule="increase", mu_schedule="increase",
                    sigma_schedule="decrease"):
    """Per-level rho_i, mu_i, sigma_i, v_i (variance of q(x_i | x_{i+1})) and a_i = alpha_i / alpha_{i+1}."""
    a = grid.alpha[:-1] / grid.alpha[1:]
    v = grid.sigma[:-1] ** 2 - a**2 * grid.sigma[1:] ** 2
    return {
        "rho": rho * (v if rho_schedule == "langevin" else shape(grid, rho_schedule)),
        "mu": mu * shape(grid, mu_schedule),
        "sigma": sigma * (grid.sigma[:-1] if sigma_schedule == "decrease" else torch.ones_like(v)),
        "v": v,
        "a": a,
    }


def exact_law(grid, m0, s0, c, vr, *, local_steps=1, rho=0.0, mu=0.0, iter_steps=1, rho_schedule="increase",
              mu_schedule="increase", move="recurrence", eta=1.0):
    """Mean [D] and per-coordinate variance of local search's final samples (method 'local'), exactly.

    No smoothing (sigma = 0), no clipping; chains start at N(0, I). At level i the x0-prediction is
    affine, x0_hat = A x + (1 - A alpha) m0 with A = alpha s0^2 / (alpha^2 s0^2 + sigma^2); so are
    the x_t-gradient A (c - x0_hat) / vr, the ascent's Delta_0 = (1 - q^J)(c - x0_hat) with
    q = 1 - mu_i / vr, the DDIM(eta) step (noise variance eta^2 sigma_{i+1}^2 v_i / sigma_i^2), the
    re-noising (x <- a_i x + sqrt(v_i) z) and the Langevin move (x <- x + v_i drift + sqrt(2 v_i) z).
    Each maps N(mean, var) to N(P mean + Q, P^2 var + W).
    """
    m0, c = torch.as_tensor(m0, dtype=torch.float64), torch.as_tensor(c, dtype=torch.float64)
    tab = schedule_tables(grid, rho, mu, 0.0, rho_schedule, mu_schedule)
    mean, var = torch.zeros_like(m0), torch.tensor(1.0, dtype=torch.float64)
    for i in range(grid.num_steps):
        al, sg, al1, sg1 = grid.alpha[i], grid.sigma[i], grid.alpha[i + 1], grid.sigma[i + 1]
        v, a, rho_i = tab["v"][i], tab["a"][i], tab["rho"][i]
        A = al * s0**2 / (al**2 * s0**2 + sg**2)
        x0 = (A, (1 - A * al) * m0)  # (P, Q) of x0_hat = P x + Q
        g = (-A * A / vr, A * (c - x0[1]) / vr) if rho != 0 else (0.0, 0.0 * m0)
        qj = (1 - tab["mu"][i] / vr) ** iter_steps
        d0 = (-(1 - qj) * A, (1 - qj) * (c - x0[1])) if mu != 0 else (0.0, 0.0 * m0)

        def advance(e):
            w = e**2 * sg1**2 * v / sg**2
            k = (sg1**2 - w).clamp_min(0.0).sqrt()
            p = al1 * x0[0] + k * (1 - al * x0[0]) / sg + rho_i * g[0] / a + al1 * d0[0]
            q = al1 * x0[1] - k * al * x0[1] / sg + rho_i * g[1] / a + al1 * d0[1]
            return p, q, w

        def apply(p, q, w):
            nonlocal mean, var
            mean, var = p * mean + q, p * p * var + w

        for _ in range(local_steps - 1):
            if move == "langevin":
                pd = (al * x0[0] - 1) / sg**2 + (rho_i / v) * g[0]
                qd = al * x0[1] / sg**2 + (rho_i / v) * g[1]
                apply(1 + v * pd, v * qd, 2 * v)
            else:
                apply(*advance(1.0))
                apply(a, 0.0 * m0, v)
        apply(*advance(eta))
    return mean, var


def gaussian_bias(m0, s0, c, vr, num_steps, **opts):
    """(mean - target mean [D], var / target var - 1), signed, of the chain's exact law against
    p0 f^rho for data N(m0, s0^2 I) (rho = opts['rho']: the tilt when rho_schedule='langevin')."""
    from tts_fast.models import GaussianMixture

    model = GaussianMixture([list(m0)], [s0])
    target = model.tilted(c, vr, opts.get("rho", 0.0))
    mean, var = exact_law(model.schedule.grid(num_steps), m0, s0, c, vr, **opts)
    return mean - target.mean(), float(var) / float(target.covariance()[0, 0]) - 1
