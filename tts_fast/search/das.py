"""DAS as published: tempered SMC whose proposal is guided by the reward's gradient (the twist).

Kim, Kim, Jang, Lee & Ahn 2025, "Test-time Alignment of Diffusion Models without Reward
Over-optimization" (ICLR 2025, arXiv 2501.05803). The target is p0(x) exp(lam r(x)) (DAS writes
lam = 1 / alpha, alpha its kl_coeff). N particles per prompt walk down the levels; each carries a
*twist*, the tempered look-ahead reward of its x0-prediction, and moves by a proposal shifted up
the twist's gradient; the weights correct for both, so the weighted population targets
p0 exp(lam r) whatever the shift. (presets.das() is DAS without the gradient: BFS with the same
tempering, difference potentials and ESS-gated SSP.)

Symbols (grid level i = 0 .. S, 0 the noisiest, S clean):

    x_i            a particle at level i
    x0_hat(x_i)    the model's x0-prediction
    lam_i          DAS's tempering lam * min((1 + gamma)^i - 1, 1) for i < S, lam_S = lam
    psi_i          the log twist lam_i r(x0_hat(x_i))
    g_i            grad_{x_i} r(x0_hat(x_i)), through the denoiser (one backward pass per particle
                   and level, one verifier backward pass)
    mu_i, s_i^2    mean and variance of the model's DDIM(eta) step p(x_{i+1} | x_i) = N(mu_i, s_i^2 I)
    q              the twisted proposal N(mu_i + s_i^2 lam_{i+1} g_i, s_i^2 I)
    w              log-weights, incremented at level i + 1 by
                   log p(x_{i+1} | x_i) - log q(x_{i+1} | x_i) + psi_{i+1} - psi_i,
                   where log p - log q = -lam_{i+1} (s_i^2 lam_{i+1} |g_i|^2 / 2 + s_i g_i . z), z the
                   step's standard normal; at the end psi_S = lam r(x_S)

A row is resampled when its ESS falls below ``ess_threshold`` * N (SSP by default), and then every
per-particle quantity follows its ancestor: x_i, x0_hat, g_i and psi_i. DAS's own pipeline moves
the latents and noise predictions to their ancestors but not the twist or the guidance, so its
next weight subtracts the twist of whichever particle used to occupy the slot, and the slot is
pushed along that particle's gradient. Here both follow the particle (tests/test_oracle_das.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .. import ops
from .._reference import ddim_coefficients
from ..ops import SCHEMES
from ._checks import check_choice, check_float
from .local import LocalSearch
from .smc import exp_tempering, gated_resample, log_mean_exp

SELECTIONS = ("best", "weighted", "max_weight")


@dataclass
class DAS:
    """DAS with its twisted, gradient-guided proposal (``tts.search(..., "das_guided")``).

    Attributes:
        lam: the target tilt lam > 0 (1 / DAS's kl_coeff): the weighted population targets
            p0 exp(lam r).
        gamma: tempering rate of lam_i = lam * min((1 + gamma)^i - 1, 1); None: reach lam at 87 %
            of the steps (DAS's 0.008 over 100 steps, carried to num_steps).
        resampling: 'multinomial', 'stratified', 'systematic', 'residual' or 'ssp' (DAS's default).
        ess_threshold: resample a row when its ESS < ess_threshold * N (DAS: 0.5); None: every level.
        eta: DDIM eta of the proposal, in (0, 1] (the weights need a step with noise).
        select: the returned sample per prompt: 'best' (highest reward), 'weighted' (a draw from
            the final weights) or 'max_weight' (the largest final weight, what DAS returns).
        local: not supported (the proposal is DAS's own guided step); must be None.

    Cost per particle and level: 1 model NFE + 1 backward pass through the model, 1 verifier
    evaluation + 1 backward pass; plus one verifier evaluation per particle at the end.
    """

    lam: float = 1.0
    gamma: Optional[float] = None
    resampling: str = "ssp"
    ess_threshold: Optional[float] = 0.5
    eta: float = 1.0
    select: str = "best"
    local: Optional[LocalSearch] = None

    name = "das_guided"

    def __post_init__(self):
        check_float(self.lam, "lam", 0.0, low_open=True)
        if self.gamma is not None:
            check_float(self.gamma, "gamma", 0.0, low_open=True)
        check_choice(self.resampling, "resampling", SCHEMES)
        if self.ess_threshold is not None:
            check_float(self.ess_threshold, "ess_threshold", 0.0, 1.0, low_open=True)
        check_float(self.eta, "eta", 0.0, 1.0, low_open=True)
        check_choice(self.select, "select", SELECTIONS)
        if self.local is not None:
            raise ValueError("das_guided takes no local-search options: its proposal is DAS's own guided step")

    def lambdas(self, num_steps: int) -> torch.Tensor:
        """lam_0 .. lam_S ([S + 1] float64): the tempering at each level and lam at the end."""
        return torch.cat([exp_tempering(num_steps, self.lam, self.gamma), torch.tensor([self.lam], dtype=torch.float64)])

    def cost(self, ctx) -> int:
        """Model NFE per prompt: N * S (each with a backward pass); refuses a verifier without gradients."""
        if not ctx.verifier.differentiable:
            raise ValueError(f"das_guided's proposal follows the reward's gradient, but {type(ctx.verifier).__name__} is not "
                             "differentiable; use a differentiable verifier, or 'das' (the same SMC without the gradient)")
        return ctx.n_particles * ctx.num_steps

    def run(self, ctx):
        b, n, s = ctx.batch_size, ctx.n_particles, ctx.num_steps
        rows = ctx.rows(n)
        dev = ctx.device
        lam = self.lambdas(s).tolist()  # host floats: the loop reads no tensor
        levels = torch.arange(s, device=dev)
        # s_i: the standard deviation of the DDIM(eta) step from level i (0 where it lands on clean data)
        _, _, c_z = ddim_coefficients(levels, levels + 1, ctx.grid.alpha, ctx.grid.sigma, self.eta)
        c_z = c_z.tolist()
        x = ctx.init_noise(b * n)
        log_w = torch.zeros(b, n, dtype=torch.float64, device=dev)
        log_z = torch.zeros(b, dtype=torch.float64, device=dev)
        psi_prev = torch.zeros(b, n, dtype=torch.float64, device=dev)  # the twist the next increment subtracts
        corr = torch.zeros(b, n, dtype=torch.float64, device=dev)  # log p - log q of the last proposal
        for i in range(s):
            x0_hat, g, r = self._twist(ctx, x, i, rows)
            psi = lam[i] * r.view(b, n)
            log_w = log_w + corr + psi - psi_prev
            anc, resampled, log_w, dz, ess = gated_resample(ctx, log_w, self.resampling, self.ess_threshold)
            log_z = log_z + dz
            x, x0_hat, g, psi_prev = self._reindex(anc, x, x0_hat, g, psi)
            ctx.trace.add(step=i, ess=ess, resampled=resampled, lam=lam[i], reward_mean=r.view(b, n).mean(1),
                          ancestors=anc, twist=psi_prev)
            x, corr = self._propose(ctx, x, x0_hat, g, i, rows, lam[i + 1], c_z[i])
            corr = corr.view(b, n)
        r_raw = ctx.score(x, rows, final=True)
        log_w = log_w + corr + lam[s] * r_raw.to(torch.float64).view(b, n) - psi_prev
        log_z = log_z + log_mean_exp(log_w)
        result = ctx.finish(x, r_raw, n, log_weights=log_w)
        result.log_evidence = log_z
        result.temperatures = torch.tensor(lam, dtype=torch.float64, device=dev).expand(b, s + 1)
        if self.select != "best":
            pick = ctx.resample(result.log_weights, "multinomial")[:, 0] if self.select == "weighted" else log_w.argmax(1)
            flat = pick + torch.arange(b, device=dev) * n
            result.latents, result.rewards = x[flat], r_raw[flat]
            result.samples = ctx.decode_full(result.latents)
        return result

    @staticmethod
    def _reindex(anc, x, x0_hat, g, psi):
        """After resampling every per-particle quantity follows its ancestor: the state, its
        x0-prediction, the gradient that shifts its proposal and the twist its next weight subtracts."""
        return tuple(ops.gather_particles(v, anc) for v in (x, x0_hat, g, psi))

    def _twist(self, ctx, x, i, rows):
        """x0_hat(x_i), g_i = grad_{x_i} r(x0_hat(x_i)) and r(x0_hat(x_i)) (float64) in one model call."""
        seen = {}

        def reward(x0):
            seen["r"] = ctx.score(x0, rows, grad=True)
            return seen["r"]

        x0_hat, g = ctx.denoise_with_grad(x, i, rows, reward)
        return x0_hat, g, seen["r"].detach().to(torch.float64)

    def _propose(self, ctx, x, x0_hat, g, i, rows, lam_next, s_i):
        """x_{i+1} ~ N(mu_i + s_i^2 lam_next g_i, s_i^2 I) and log p(x_{i+1} | x_i) - log q(x_{i+1} | x_i) [B * N]."""
        z = ctx.randn_like(x)
        shift = (s_i * s_i * lam_next) * g
        x_next = ctx.step(x, x0_hat, i, self.eta, noise=z) + shift.to(x.dtype)
        g64 = g.to(torch.float64).flatten(1)
        corr = -lam_next * (0.5 * s_i * s_i * lam_next * (g64 * g64).sum(1) + s_i * (g64 * z.to(torch.float64).flatten(1)).sum(1))
        return x_next, corr
