"""Local search: training-free guidance plus recurrence, i.e. annealed Langevin MCMC.

Zhang et al. 2025 (Sec. 3.2), in their notation. At level i with x_i, for r = 1 .. R
(``local_steps``):

1. x0_hat = x0_theta(x_i). If rho != 0, the x_t-gradient Delta_t = rho_i * grad_{x_i} L(x0_hat(x_i))
   goes back through the denoiser, where L(x0) = log (1/K) sum_k f(x0 + sigma_i eps_k) is the
   verifier log-reward smoothed by K Monte-Carlo noises of scale sigma_i.
2. If mu != 0, J ascent steps in x0-space: x0 <- x0 + mu_i * grad L(x0); Delta_0 = x0^(J) - x0_hat.
3. x_{i+1} = DDIM(x_i, x0_hat) + Delta_t / a_i + alpha_{i+1} * Delta_0, with a_i = alpha_i/alpha_{i+1}.
4. Recurrence (r < R): re-noise x_{i+1} back to level i with the exact forward kernel and repeat.

Read as MCMC (Prop. 1 of the paper): one recurrence moves x_i by v_i grad log p_i + rho_i grad L
plus noise of variance 2 v_i (v_i = the variance of q(x_i | x_{i+1})), i.e. an unadjusted Langevin
step of size v_i on p_i(x) exp((rho_i / v_i) L(x0_hat(x))). With ``rho_schedule='langevin'``
(rho_i = rho * v_i) the tilt is exactly rho at every level, so many recurrences approach
p0 * f^rho at the end. ``move='langevin'`` replaces step-down-and-re-noise by the explicit
Langevin move x += v_i (score + (rho_i/v_i) grad L) + sqrt(2 v_i) z on x_i (tts_fast.ops.langevin_step),
with the Tweedie score (alpha_i x0_hat - x_i) / sigma_i^2; its last round is the guided step above.

Step sizes. In the paper's ``step_scale='absolute'`` mode rho_i and mu_i multiply the verifier's
gradient, so they are in the reward's units: a reward ten times larger takes ten times larger
steps. ``step_scale='relative'`` rescales each sample's gradient to unit root-mean-square per
coordinate, g * sqrt(D) / |g|, before either step: rho_i / a_i and mu_i are then step lengths in
the sample's own units per coordinate, the same on every verifier (multiplying the reward by
c > 0 changes nothing, bit for bit when c is a power of two, for sigma = 0 or K = 1 where the
smoothed log-reward scales with the reward). It is normalised gradient ascent, so the Langevin
reading above (a tilt of rho) no longer holds.

Gradients come from the *local* verifier (dual verifiers: ``search(..., local_verifier=...)``).
Costs per particle per level: R model NFE, R model_grad if rho != 0, and K (per gradient) verifier
forward+backward passes for each of the rho and mu gradients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from .. import ops
from ..schedules import SHAPES
from ._checks import check_choice, check_eta, check_float, check_int

RHO_SHAPES = SHAPES + ("langevin",)
SIGMA_SHAPES = ("decrease", "constant")
MOVES = ("recurrence", "langevin")
STEP_SCALES = ("absolute", "relative")


@dataclass
class LocalSearch:
    """Local search settings (also a method on its own: ``search(..., method='local')``).

    Attributes:
        local_steps: R, rounds per level (1 = guidance without recurrence).
        rho: strength of the x_t-gradient through the denoiser (0 disables it).
        mu: step of the x0-space ascent (0 disables it).
        sigma: Monte-Carlo smoothing scale of the verifier (0: no smoothing).
        mc_samples: K, noises of the smoothing estimate.
        iter_steps: J, x0-space ascent iterations per round.
        rho_schedule, mu_schedule: 'increase' (proportional to the per-step alpha_i, the paper's
            default), 'constant', 'decrease', or 'langevin' (rho_i = rho * v_i: rho is then the
            tilt exponent of the annealed Langevin chain).
        sigma_schedule: 'decrease' (sigma_i = sigma * sigma_level) or 'constant'.
        move: 'recurrence' (step down, re-noise up: the paper) or 'langevin' (explicit ULA move).
        max_grad_norm: clip each sample's verifier gradient to this norm (None: no clipping).
        step_scale: 'absolute' (rho, mu multiply the gradient: the paper) or 'relative' (each
            sample's gradient rescaled to unit RMS per coordinate first, so rho and mu are step
            lengths independent of the reward's units).
        eta: DDIM eta of the sampler when local search runs as a method by itself.
    """

    local_steps: int = 1
    rho: float = 0.0
    mu: float = 0.0
    sigma: float = 0.0
    mc_samples: int = 1
    iter_steps: int = 1
    rho_schedule: str = "increase"
    mu_schedule: str = "increase"
    sigma_schedule: str = "decrease"
    move: str = "recurrence"
    max_grad_norm: Optional[float] = None
    eta: float = 1.0
    step_scale: str = "absolute"

    name = "local"

    def __post_init__(self):
        check_int(self.local_steps, "local_steps", 1)
        check_int(self.mc_samples, "mc_samples", 1)
        check_int(self.iter_steps, "iter_steps", 1)
        check_float(self.rho, "rho")
        check_float(self.mu, "mu")
        check_float(self.sigma, "sigma", 0.0)
        check_choice(self.rho_schedule, "rho_schedule", RHO_SHAPES)
        check_choice(self.mu_schedule, "mu_schedule", SHAPES)
        check_choice(self.sigma_schedule, "sigma_schedule", SIGMA_SHAPES)
        check_choice(self.move, "move", MOVES)
        check_choice(self.step_scale, "step_scale", STEP_SCALES)
        if self.max_grad_norm is not None:
            check_float(self.max_grad_norm, "max_grad_norm", 0.0, low_open=True)
            if self.step_scale == "relative":
                raise ValueError("max_grad_norm clips the gradient's norm, which step_scale='relative' fixes to sqrt(D): it would never act")
        check_eta(self.eta)
        self._refuse_idle_options()

    def _refuse_idle_options(self) -> None:
        """Every option set away from its default must act: refused where the others make it idle."""
        idle = []
        if self.rho == 0 and self.mu == 0:  # no gradient step at all
            idle += [(n, "shapes the verifier's gradient steps, and rho = mu = 0 takes none")
                     for n, default in (("step_scale", "absolute"), ("max_grad_norm", None), ("sigma", 0.0), ("mc_samples", 1))
                     if getattr(self, n) != default]
        if self.rho == 0 and self.rho_schedule != "increase":
            idle.append(("rho_schedule", "shapes rho, which is 0"))
        if self.mu == 0:
            idle += [(n, "belongs to the x0-space ascent, and mu = 0 runs none")
                     for n, default in (("mu_schedule", "increase"), ("iter_steps", 1)) if getattr(self, n) != default]
        if self.sigma == 0 and (self.rho != 0 or self.mu != 0):
            idle += [(n, "belongs to the smoothing, and sigma = 0 smooths nothing")
                     for n, default in (("mc_samples", 1), ("sigma_schedule", "decrease")) if getattr(self, n) != default]
        if self.local_steps == 1 and self.move != "recurrence":
            idle.append(("move", "is the move of rounds 1 .. R-1, and local_steps = 1 runs no such round"))
        if idle:
            name, why = idle[0]
            raise ValueError(f"{name}={getattr(self, name)!r} would do nothing: it {why}")

    @property
    def acts(self) -> bool:
        """Whether running it at every level of a global method changes anything (R > 1 or a
        gradient step); a LocalSearch that does not is refused there."""
        return self.local_steps > 1 or self.rho != 0 or self.mu != 0

    @property
    def needs_gradient(self) -> bool:
        return self.rho != 0 or self.mu != 0

    # -- schedules ---------------------------------------------------------------------------------

    def tables(self, grid) -> dict:
        """Per-level rho_i, mu_i, sigma_i, v_i and a_i = alpha_i/alpha_{i+1} ([S] float64)."""
        v = grid.transition_variance()
        rho = self.rho * (v if self.rho_schedule == "langevin" else grid.shape(self.rho_schedule))
        return {
            "rho": rho,
            "mu": self.mu * grid.shape(self.mu_schedule),
            "sigma": self.sigma * (grid.sigma[:-1] if self.sigma_schedule == "decrease" else torch.ones_like(v)),
            "v": v,
            "a": grid.alpha[:-1] / grid.alpha[1:],
        }

    # -- one transition, in two halves ------------------------------------------------------------

    def prepare(self, ctx, x, level, cond):
        """Rounds 1 .. R-1 (recurrence or Langevin moves) and the last round's model call.

        Returns (x_i, x0_hat, aux): the particles at their level after the MCMC moves, their
        x0-prediction, and per-particle state the guided step needs (gathered on resampling).
        """
        tab, per_sample = self._tables_at(ctx, level, x)
        for _ in range(self.local_steps - 1):
            x0_hat, aux = self._evaluate(ctx, x, level, cond, tab)
            if self.move == "langevin":
                drift = (tab["alpha"] * x0_hat - x) / tab["sigma_level"] ** 2
                if aux["g"] is not None:
                    drift = drift + (tab["rho"] / tab["v"]) * aux["g"]
                with ctx.timers("search_ops", ctx.device):
                    x = ops.langevin_step(x, drift.to(x.dtype), per_sample["v"], noise=ctx.randn_like(x))
            else:
                # The inner step must be the ancestral one (eta = 1): step-down noise plus re-noise
                # noise gives the 2 v_i of a Langevin step; eta = 0 would target p_i^2 instead.
                x_next = self.advance(ctx, x, x0_hat, aux, level, cond, 1.0)
                x = ctx.renoise(x_next, level + 1, level)
        x0_hat, aux = self._evaluate(ctx, x, level, cond, tab)
        return x, x0_hat, aux

    def advance(self, ctx, x, x0_hat, aux, level, cond, eta: float):
        """The guided step: DDIM(x, x0_hat) + Delta_t / a_i + alpha_{i+1} * Delta_0."""
        tab, _ = self._tables_at(ctx, level, x)
        x_next = ctx.step(x, x0_hat, level, eta)
        if aux["g"] is not None:
            # Delta_t / a_i; a level with alpha_i = 0 (flow's pure noise) carries no signal to guide.
            a = tab["a"]
            shift = torch.where(a > 0, tab["rho"] * aux["g"] / torch.where(a > 0, a, torch.ones_like(a)), torch.zeros_like(a))
            x_next = x_next + shift.to(x.dtype)
        if self.mu != 0:
            x_next = x_next + (tab["alpha_next"] * self._ascend(ctx, x0_hat, cond, tab, aux["eps"])).to(x.dtype)
        return x_next

    def transition(self, ctx, x, level, cond, eta: float):
        """prepare + advance: (x at level+1, x0_hat at level)."""
        x, x0_hat, aux = self.prepare(ctx, x, level, cond)
        return self.advance(ctx, x, x0_hat, aux, level, cond, eta), x0_hat

    def _tables_at(self, ctx, level, x):
        if ctx._local_tables is None:
            ctx._local_tables = {k: v.to(ctx.device) for k, v in self.tables(ctx.grid).items()}
        per_sample = {k: v[level] for k, v in ctx._local_tables.items()}
        per_sample["alpha"] = ctx.grid.alpha[level]
        per_sample["sigma_level"] = ctx.grid.sigma[level]
        per_sample["alpha_next"] = ctx.grid.alpha[level + 1]
        return {k: _col(v, x) for k, v in per_sample.items()}, per_sample

    def _evaluate(self, ctx, x, level, cond, tab):
        """One model call; with rho != 0 also the gradient of the smoothed log-reward in x."""
        eps = self._mc_noise(ctx, x)
        if self.rho == 0:
            return ctx.denoise(x, level, cond), {"g": None, "eps": eps}
        objective = lambda x0: self._smoothed(ctx, x0, cond, tab["sigma"], eps)  # noqa: E731
        x0_hat, g = ctx.denoise_with_grad(x, level, cond, objective)
        return x0_hat, {"g": self._condition(g), "eps": eps}

    # -- pieces -----------------------------------------------------------------------------------

    def _mc_noise(self, ctx, x):
        if self.sigma == 0:
            return None
        return torch.randn((x.shape[0], self.mc_samples, *x.shape[1:]), generator=ctx.generator, device=x.device, dtype=x.dtype)

    def _smoothed(self, ctx, x0, cond, sig, eps):
        """L(x0) = log mean_k f(x0 + sigma_i eps_k) with the local verifier, differentiable: [n]."""
        if eps is None:
            return ctx.score(x0, cond, verifier=ctx.local_verifier, grad=True)
        n, k = eps.shape[:2]
        xs = (x0.unsqueeze(1) + sig.unsqueeze(1).to(x0.dtype) * eps).reshape(n * k, *x0.shape[1:])
        r = ctx.score(xs, cond.repeat_interleave(k), verifier=ctx.local_verifier, grad=True).reshape(n, k)
        return torch.logsumexp(r, dim=1) - math.log(k)

    def _ascend(self, ctx, x0_hat, cond, tab, eps):
        """Delta_0 after J ascent steps on the smoothed log-reward in x0-space."""
        x0 = x0_hat.detach()
        for _ in range(self.iter_steps):
            with torch.enable_grad():
                xg = x0.detach().requires_grad_(True)
                (g,) = torch.autograd.grad(self._smoothed(ctx, xg, cond, tab["sigma"], eps).sum(), xg)
            x0 = x0 + (tab["mu"] * self._condition(g)).to(x0.dtype)
        return x0 - x0_hat

    def _condition(self, g):
        """The gradient the steps use: rescaled to unit RMS ('relative'), clipped, or as it is."""
        if self.step_scale == "relative":
            norm = g.flatten(1).norm(dim=1)
            nonzero = norm > 0  # a zero gradient stays zero
            scale = torch.where(nonzero, math.sqrt(g[0].numel()) / torch.where(nonzero, norm, torch.ones_like(norm)), torch.zeros_like(norm))
            return g * _col(scale, g)
        if self.max_grad_norm is None:
            return g
        norm = g.flatten(1).norm(dim=1).clamp_min(1e-30)
        return g * _col((self.max_grad_norm / norm).clamp(max=1.0), g)


def _col(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-sample values [n] broadcast against x [n, ...]."""
    return v.reshape(-1, *([1] * (x.dim() - 1)))

