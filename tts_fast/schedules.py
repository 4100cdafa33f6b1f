"""Noise schedules, sampling grids and the step math, as pure functions (k-diffusion style).

Every schedule is a Gaussian path x_t = alpha(t) * x0 + sigma(t) * eps:
- VP (DDPM/DDIM, Stable Diffusion): alpha = sqrt(alpha_bar[t]), sigma = sqrt(1 - alpha_bar[t]) over
  discrete train timesteps t = 0 .. T-1.
- Flow matching / rectified flow (SD3, FLUX): alpha = 1 - t, sigma = t for t in [0, 1]; the model
  timestep is t * timestep_scale (1000 in diffusers).

A sampling run walks a :class:`Grid`: levels 0 .. S where level i < S is the i-th model call
(level 0 is the noisiest) and level S is clean data (alpha = 1, sigma = 0). Particles carry their
own level (an int64 tensor), so one batch may hold particles at different depths (DFS walkers,
re-noised branches). The steps below are thin wrappers of the fused ops in :mod:`tts_fast.ops`.

With eta > 0 the DDIM step on a flow grid is the stochastic sampler used for particle methods on
flow models (its marginals are the flow's marginals: it samples the Gaussian-path posterior
q(x_to | x_from, x0_hat)), which deterministic ODE solvers cannot provide.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from . import ops
from ._arguments import check_callable, check_choice, check_eta, check_float, check_int

__all__ = [
    "Schedule",
    "VPSchedule",
    "FlowSchedule",
    "Grid",
    "ddpm_linear",
    "scaled_linear",
    "cosine",
    "from_betas",
    "flow",
    "x0_from_eps",
    "eps_from_x0",
    "x0_from_v",
    "x0_from_velocity",
    "score_from_x0",
    "ddim_step",
    "ancestral_step",
    "renoise",
    "sample",
]

SHAPES = ("constant", "increase", "decrease")


@dataclass(frozen=True)
class Grid:
    """The levels of one sampling run.

    Attributes:
        timesteps: [S] float64 model timesteps of levels 0 .. S-1 (what the denoiser receives).
        alpha, sigma: [S+1] float64 signal and noise scales of levels 0 .. S (level S is clean).
        kind: 'vp' or 'flow'.
    """

    timesteps: torch.Tensor
    alpha: torch.Tensor
    sigma: torch.Tensor
    kind: str

    def __post_init__(self):
        check_choice(self.kind, "kind", ("vp", "flow"))
        for name in ("timesteps", "alpha", "sigma"):
            t = getattr(self, name)
            if not isinstance(t, torch.Tensor) or t.dtype != torch.float64 or t.dim() != 1:
                raise ValueError(f"{name} must be a 1-D float64 tensor, got "
                                 + (f"{t.dtype} {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__))
        s = self.timesteps.numel()
        if s < 1 or self.alpha.numel() != s + 1 or self.sigma.numel() != s + 1:
            raise ValueError(f"a grid of S >= 1 steps has timesteps [S] and alpha, sigma [S + 1]; got {self.timesteps.numel()}, "
                             f"{self.alpha.numel()} and {self.sigma.numel()}")
        if not (self.alpha.device == self.sigma.device == self.timesteps.device):
            raise ValueError("timesteps, alpha and sigma must share a device")

    @property
    def num_steps(self) -> int:
        return int(self.timesteps.numel())

    @property
    def device(self) -> torch.device:
        return self.alpha.device

    def to(self, device) -> "Grid":
        return Grid(self.timesteps.to(device), self.alpha.to(device), self.sigma.to(device), self.kind)

    def step_alpha(self) -> torch.Tensor:
        """Per-step alpha_i = (alpha_i / alpha_{i+1})^2 (VP: alpha_bar_i / alpha_bar_{i+1}): [S]."""
        return (self.alpha[:-1] / self.alpha[1:]) ** 2

    def transition_variance(self) -> torch.Tensor:
        """v_i = sigma_i^2 - (alpha_i/alpha_{i+1})^2 sigma_{i+1}^2, the variance of q(x_i | x_{i+1}): [S].

        It is the step size of the Langevin chain that one recurrence (step down, re-noise up)
        runs at level i (VP: beta_i = 1 - alpha_i).
        """
        r = self.alpha[:-1] / self.alpha[1:]
        return self.sigma[:-1] ** 2 - r * r * self.sigma[1:] ** 2

    def shape(self, kind: str) -> torch.Tensor:
        """A per-step multiplier normalised to mean 1 over the S steps (the paper's schedules).

        'constant': 1. 'increase': proportional to the per-step alpha_i (grows toward clean data).
        'decrease': proportional to 1 - alpha_i.
        """
        if kind not in SHAPES:
            raise ValueError(f"schedule shape must be one of {', '.join(SHAPES)}; got {kind!r}")
        if kind == "constant":
            return torch.ones_like(self.timesteps)
        s = self.step_alpha() if kind == "increase" else 1.0 - self.step_alpha()
        return s / s.mean()


class Schedule(ABC):
    """Base class of noise schedules. Subclasses give alpha/sigma of model timesteps and grids."""

    kind: str = ""

    @abstractmethod
    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Signal and noise scales at model timesteps ``t`` [B] (float64 results, t's device)."""

    @abstractmethod
    def grid(self, num_steps: int, device=None) -> Grid:
        """The sampling grid of ``num_steps`` model calls."""


class VPSchedule(Schedule):
    """Variance-preserving discrete schedule defined by betas over T train timesteps.

    Args:
        betas: [T] in (0, 1).
        spacing: how sampling grids pick timesteps: 'linspace' (from T-1 down to 0 inclusive,
            the default: the last model call is at the least noisy level), 'trailing' (T-1 down
            to T/S - 1) or 'leading' (diffusers' SD default, steps_offset + multiples of T // S).
        steps_offset: the offset of 'leading' grids (diffusers' scheduler config; 1 for SD 1.5/SDXL).
    """

    kind = "vp"

    def __init__(self, betas: torch.Tensor, spacing: str = "linspace", steps_offset: int = 1):
        try:
            betas = torch.as_tensor(betas, dtype=torch.float64, device="cpu").flatten()
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"betas must be a 1-D array of at least 2 values in (0, 1), got {type(betas).__name__}") from None
        if betas.numel() < 2 or not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("betas must be a 1-D array of at least 2 values in (0, 1)")
        if spacing not in ("trailing", "leading", "linspace"):
            raise ValueError(f"spacing must be 'trailing', 'leading' or 'linspace'; got {spacing!r}")
        # an integral float is taken (configs read from JSON may hold 1.0); 1.5 would be truncated: refused
        if isinstance(steps_offset, float) and steps_offset.is_integer():
            steps_offset = int(steps_offset)
        check_int(steps_offset, "steps_offset", 0)
        self.betas = betas
        self.alpha_bar = torch.cumprod(1.0 - betas, dim=0)
        self.num_train_timesteps = betas.numel()
        self.spacing = spacing
        self.steps_offset = int(steps_offset)

    def alpha_sigma(self, t):
        t = torch.as_tensor(t)
        if t.is_complex() or t.dtype == torch.bool:
            raise ValueError(f"t must hold integer train timesteps in [0, {self.num_train_timesteps}), got dtype {t.dtype}")
        idx = t.round().long()
        # Checked on the host only for CPU tensors (reading device values would sync).
        if t.device.type == "cpu" and bool(((idx != t) | (idx < 0) | (idx >= self.num_train_timesteps)).any()):
            raise ValueError(f"t must hold integer train timesteps in [0, {self.num_train_timesteps})")
        ab = self.alpha_bar.to(t.device)[idx]
        return ab.sqrt(), (1.0 - ab).sqrt()

    def timesteps(self, num_steps: int) -> torch.Tensor:
        """The ``num_steps`` train timesteps of a grid, noisiest first (int64)."""
        T = self.num_train_timesteps
        if not isinstance(num_steps, int) or isinstance(num_steps, bool) or not 1 <= num_steps <= T:
            raise ValueError(f"num_steps must lie in [1, {T}], got {num_steps!r}")
        if self.spacing == "trailing":
            ts = torch.round(torch.arange(T, 0, -T / num_steps, dtype=torch.float64)) - 1
        elif self.spacing == "leading":
            ts = torch.arange(num_steps, dtype=torch.float64).flip(0) * (T // num_steps) + self.steps_offset
            if int(ts[0]) >= T:
                raise ValueError(f"num_steps={num_steps} with steps_offset={self.steps_offset} puts the first timestep at {int(ts[0])} >= {T}")
        else:
            ts = torch.round(torch.linspace(T - 1, 0, num_steps, dtype=torch.float64))
        return ts[:num_steps].long()

    def grid(self, num_steps: int, device=None) -> Grid:
        ts = self.timesteps(num_steps)
        ab = torch.cat([self.alpha_bar[ts], torch.ones(1, dtype=torch.float64)])
        return Grid(ts.to(torch.float64), ab.sqrt(), (1.0 - ab).sqrt(), "vp").to(device or "cpu")


class FlowSchedule(Schedule):
    """Rectified-flow schedule: x_t = (1 - t) x0 + t eps, t in [0, 1].

    Args:
        shift: SD3/FLUX timestep shift; grid times t' = shift t / (1 + (shift - 1) t).
        timestep_scale: the model receives t * timestep_scale (diffusers uses 1000).
    """

    kind = "flow"

    def __init__(self, shift: float = 1.0, timestep_scale: float = 1000.0):
        check_float(shift, "shift", 0.0, low_open=True)
        check_float(timestep_scale, "timestep_scale", 0.0, low_open=True)
        self.shift = float(shift)
        self.timestep_scale = float(timestep_scale)

    def alpha_sigma(self, t):
        s = torch.as_tensor(t, dtype=torch.float64) / self.timestep_scale
        return 1.0 - s, s

    def grid(self, num_steps: int, device=None) -> Grid:
        check_int(num_steps, "num_steps", 1)
        t = torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64)
        t = self.shift * t / (1.0 + (self.shift - 1.0) * t)
        return Grid(t[:-1] * self.timestep_scale, 1.0 - t, t, "flow").to(device or "cpu")


def _check_linear(num_train_timesteps, beta_start, beta_end) -> None:
    check_int(num_train_timesteps, "num_train_timesteps", 2)
    check_float(beta_start, "beta_start", 0.0, 1.0, low_open=True, high_open=True)
    check_float(beta_end, "beta_end", 0.0, 1.0, low_open=True, high_open=True)


def ddpm_linear(num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02, **kw) -> VPSchedule:
    """DDPM's linear betas (Ho et al. 2020)."""
    _check_linear(num_train_timesteps, beta_start, beta_end)
    return VPSchedule(torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64), **kw)


def scaled_linear(num_train_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012, **kw) -> VPSchedule:
    """Stable Diffusion's 'scaled_linear' betas (linear in sqrt(beta))."""
    _check_linear(num_train_timesteps, beta_start, beta_end)
    b = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64) ** 2
    return VPSchedule(b, **kw)


def cosine(num_train_timesteps: int = 1000, s: float = 0.008, max_beta: float = 0.999, **kw) -> VPSchedule:
    """Nichol & Dhariwal's cosine schedule (betas clipped at max_beta)."""
    check_int(num_train_timesteps, "num_train_timesteps", 2)
    check_float(s, "s", 0.0)
    check_float(max_beta, "max_beta", 0.0, 1.0, low_open=True, high_open=True)
    T = num_train_timesteps
    f = lambda u: math.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    b = [min(1 - f(i + 1) / f(i), max_beta) for i in range(T)]
    return VPSchedule(torch.tensor(b, dtype=torch.float64), **kw)


def from_betas(betas, **kw) -> VPSchedule:
    """A VP schedule from any betas array (e.g. a diffusers scheduler's ``betas``)."""
    return VPSchedule(torch.as_tensor(betas, dtype=torch.float64), **kw)


def flow(shift: float = 1.0, timestep_scale: float = 1000.0) -> FlowSchedule:
    """A rectified-flow schedule (see :class:`FlowSchedule`)."""
    return FlowSchedule(shift, timestep_scale)


# ----------------------------------------------------------------------------------------------
# parameterisation conversions (alpha, sigma broadcast against x)


def x0_from_eps(x, eps, alpha, sigma):
    """Clean-data prediction from an epsilon prediction: (x - sigma eps) / alpha."""
    return (x - sigma * eps) / alpha


def eps_from_x0(x, x0, alpha, sigma):
    """Noise prediction from an x0 prediction: (x - alpha x0) / sigma."""
    return (x - alpha * x0) / sigma


def x0_from_v(x, v, alpha, sigma):
    """x0 from a VP v-prediction (v = alpha eps - sigma x0, alpha^2 + sigma^2 = 1): alpha x - sigma v."""
    return alpha * x - sigma * v


def x0_from_velocity(x, u, t):
    """x0 from a rectified-flow velocity u = eps - x0 at time t: x - t u."""
    return x - t * u


def score_from_x0(x, x0, alpha, sigma):
    """Score of the noised marginal by Tweedie: (alpha x0 - x) / sigma^2."""
    return (alpha * x0 - x) / sigma**2


# ----------------------------------------------------------------------------------------------
# steps with per-sample levels


def _levels(level, n: int, device, name: str) -> torch.Tensor:
    if isinstance(level, bool) or not isinstance(level, (int, torch.Tensor)):
        raise ValueError(f"{name} must be an int or an int64 tensor [B] of levels, got {type(level).__name__}")
    if isinstance(level, int):
        return torch.full((n,), level, dtype=torch.int64, device=device)
    return level


def _check_sources(noise, generator, eta: float) -> None:
    """At most one random source, and none when eta = 0 (it would be ignored)."""
    if noise is not None and generator is not None:
        raise ValueError("pass either noise or generator, not both")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if eta == 0 and (noise is not None or generator is not None):
        raise ValueError("eta = 0 draws no noise: pass neither noise nor generator")


def _noise(x, noise, generator, eta: float = 1.0) -> Optional[torch.Tensor]:
    """The step's normals: ``noise``, or drawn from ``generator``; none when eta = 0."""
    _check_sources(noise, generator, eta)
    if eta == 0:
        return None
    if noise is None:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return noise


def ddim_step(x, x0_hat, level_from, level_to, grid: Grid, *, eta: float = 1.0, noise=None, generator=None):
    """DDIM step with per-sample levels (see :func:`tts_fast.ops.ddim_step`).

    Args:
        x, x0_hat: [B, ...]. level_from, level_to: [B] int64 or int. grid: the run's Grid (on
        x's device). eta in [0, 1]; noise drawn from ``generator`` unless given.
    """
    check_eta(eta)
    lf = _levels(level_from, x.shape[0], x.device, "level_from")
    lt = _levels(level_to, x.shape[0], x.device, "level_to")
    return ops.ddim_step(x, x0_hat, lf, lt, grid.alpha, grid.sigma, eta=eta, noise=_noise(x, noise, generator, eta))


def ancestral_step(x, x0_hat, level_from, level_to, grid: Grid, *, noise=None, generator=None):
    """The ancestral step (DDPM posterior / Euler-ancestral): :func:`ddim_step` with eta = 1."""
    return ddim_step(x, x0_hat, level_from, level_to, grid, eta=1.0, noise=noise, generator=generator)


def renoise(x, level_from, level_to, grid: Grid, *, noise=None, generator=None):
    """Exact forward move q(x_to | x_from) to a noisier level (see :func:`tts_fast.ops.renoise`)."""
    lf = _levels(level_from, x.shape[0], x.device, "level_from")
    lt = _levels(level_to, x.shape[0], x.device, "level_to")
    return ops.renoise(x, lf, lt, grid.alpha, grid.sigma, noise=_noise(x, noise, generator))


@torch.no_grad()
def sample(
    model,
    x: torch.Tensor,
    grid: Grid,
    cond: Optional[torch.Tensor] = None,
    *,
    eta: float = 1.0,
    generator: Optional[torch.Generator] = None,
    callback: Optional[Callable[[dict], None]] = None,
) -> torch.Tensor:
    """Plain sampling from level 0 to clean data with DDIM(eta) steps.

    Args:
        model: x0 = model(x_t, t, cond) with per-sample t [B].
        x: [B, ...] noise at level 0. cond: [B] prompt rows or None.
        callback: called each step with {'x', 'i', 'x0_hat', 'level'}.

    Returns:
        [B, ...] samples.
    """
    check_callable(model, "model", optional=False)
    check_callable(callback, "callback")
    check_eta(eta)
    if not isinstance(grid, Grid):
        raise ValueError(f"grid must be a tts_fast.schedules.Grid, got {type(grid).__name__}")
    if not isinstance(x, torch.Tensor) or x.dim() < 1:
        raise ValueError("x must be a tensor [B, ...] of level-0 noise")
    _check_sources(None, generator, eta)  # a generator that eta = 0 would ignore is refused before any model call
    n = x.shape[0]
    for i in range(grid.num_steps):
        t = grid.timesteps[i].expand(n).to(x.device)
        x0_hat = model(x, t, cond)
        if callback is not None:
            callback({"x": x, "i": i, "x0_hat": x0_hat, "level": i})
        x = ddim_step(x, x0_hat, i, i + 1, grid, eta=eta, generator=generator)
    return x
