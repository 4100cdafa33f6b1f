"""The state-conditioned action diffusion policy, as a :class:`tts_fast.Denoiser`.

The network (the official locomotion ScoreNet, smaller): an MLP with residual blocks over the
noisy action, conditioned on the (normalised) state and a sinusoidal embedding of the timestep;
it predicts the noise eps, and :class:`DiffusionPolicy` returns the x0-prediction of the action,
(a_t - sigma eps) / alpha, clamped to the action box [-1, 1] (the MuJoCo action limits).

Schedule: VP linear, beta from 0.1 to 20 in continuous time, i.e. DDPM's linear betas
(1e-4 .. 0.02) over 1000 train timesteps; sampled with 15 steps as in the paper.

**Prompt rows = environment states.** A :class:`DiffusionPolicy` holds P states; particle rows
carry ``cond`` = their state's index, so one ``tts.search(policy, q, ..., batch_size=P)`` call
proposes actions for all live environments at once. States change every environment step:
:meth:`DiffusionPolicy.with_states` gives the same network with new rows (cheap: no copy).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import schedules as _schedules
from .._device_checks import prompt_rows
from .._arguments import check_int
from .._embeddings import sinusoidal_embedding
from ..models.base import Denoiser, per_sample_timesteps

TRAIN_STEPS = 1000
SAMPLING_STEPS = 15


def policy_schedule() -> _schedules.VPSchedule:
    """VP linear (beta 0.1 -> 20 continuous = DDPM linear 1e-4 -> 0.02 over 1000 timesteps)."""
    return _schedules.ddpm_linear(TRAIN_STEPS)


class ResidualBlock(nn.Module):
    """x + W2 mish(W1 LayerNorm(x)): the pre-norm residual MLP block."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.l1, self.l2 = nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, x):
        return x + self.l2(F.mish(self.l1(self.norm(x))))


class StateNormalizer(nn.Module):
    """(s - mean) / std with the dataset's statistics, stored as buffers (they travel with the weights)."""

    def __init__(self, obs_dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(obs_dim))
        self.register_buffer("std", torch.ones(obs_dim))

    def set(self, mean, std) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-3))

    def forward(self, s):
        return (s - self.mean) / self.std


class ActionScoreNet(nn.Module):
    """eps-prediction eps(a_t, t, s): [B, act_dim] from a_t [B, act_dim], t [B], s [B, obs_dim] (raw states).

    Args:
        obs_dim, act_dim: sizes of states and actions.
        width: hidden width; blocks: residual blocks; temb: time-embedding size.
    """

    def __init__(self, obs_dim: int, act_dim: int, width: int = 256, blocks: int = 3, temb: int = 32):
        super().__init__()
        check_sizes(obs_dim=obs_dim, act_dim=act_dim, width=width)
        check_int(blocks, "blocks", 0)
        if not isinstance(temb, int) or isinstance(temb, bool) or temb < 2 or temb % 2:
            raise ValueError(f"temb must be an even integer >= 2 (sine and cosine halves), got {temb!r}")
        self.config = {"obs_dim": obs_dim, "act_dim": act_dim, "width": width, "blocks": blocks, "temb": temb}
        self.obs_dim, self.act_dim, self.temb = obs_dim, act_dim, temb
        self.normalizer = StateNormalizer(obs_dim)
        self.time = nn.Sequential(nn.Linear(temb, temb * 2), nn.Mish(), nn.Linear(temb * 2, temb))
        self.inp = nn.Linear(act_dim + obs_dim + temb, width)
        self.blocks = nn.Sequential(*[ResidualBlock(width) for _ in range(blocks)])
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, act_dim))

    def forward(self, a_t, t, s):
        e = self.time(sinusoidal_embedding(t, self.temb, layout="sin_first"))
        return self.out(self.blocks(self.inp(torch.cat([a_t, self.normalizer(s), e], dim=1))))


def check_sizes(**sizes) -> None:
    """Network sizes (obs_dim, act_dim, width, ...): integers >= 1, each named in the error."""
    for name, v in sizes.items():
        check_int(v, name, 1)


def as_states(states, obs_dim: int, device) -> torch.Tensor:
    """Validated float32 states [P, obs_dim] on ``device`` (a single [obs_dim] state becomes [1, obs_dim])."""
    try:
        # a list of numpy states goes through one array (torch warns that a list of arrays is slow)
        s = torch.as_tensor(states if isinstance(states, torch.Tensor) else np.asarray(states, dtype=np.float32),
                            dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"states must be numbers [P, {obs_dim}] (one environment state per prompt row), "
                         f"got {type(states).__name__}") from None
    if s.dim() == 1:
        s = s[None]
    if s.dim() != 2 or s.shape[1] != obs_dim or s.shape[0] < 1:
        raise ValueError(f"states must be [P, {obs_dim}] (one environment state per prompt row), got shape {tuple(s.shape)}")
    if not bool(torch.isfinite(s).all()):
        raise ValueError("states must be finite (an environment returned NaN or inf)")
    return s.to(device)


class DiffusionPolicy(Denoiser):
    """The action diffusion policy of one env as a :class:`tts_fast.Denoiser`.

    ``a0 = policy(a_t, t, cond)``: a_t [B, act_dim], t [B] train timesteps, cond [B] state rows.

    Args:
        net: a trained :class:`ActionScoreNet`.
        states: [P, obs_dim] environment states, one per prompt row.
        env: the env's short name (for messages and checks).
    """

    def __init__(self, net: ActionScoreNet, states, *, env: str = "", schedule: Optional[_schedules.Schedule] = None,
                 device="cpu", meta: Optional[dict] = None):
        self.device = torch.device(device)
        self.dtype = torch.float32
        self.net = net.to(self.device).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.env = env
        self.schedule = schedule if schedule is not None else policy_schedule()
        self.sample_shape = (net.act_dim,)
        self._alpha_bar = self.schedule.alpha_bar.to(self.device)
        self.states = as_states(states, net.obs_dim, self.device)
        self.num_prompts = int(self.states.shape[0])
        self.meta = dict(meta or {})

    def __repr__(self):
        n = sum(p.numel() for p in self.net.parameters())
        return f"DiffusionPolicy({self.env!r}, {self.num_prompts} states, act_dim={self.net.act_dim}, {n:,} params)"

    def with_states(self, states) -> "DiffusionPolicy":
        """The same network with other state rows (one per live environment)."""
        return DiffusionPolicy(self.net, states, env=self.env, schedule=self.schedule, device=self.device, meta=self.meta)

    def forward(self, x_t, t, cond=None):
        if x_t.dim() != 2 or x_t.shape[1:] != self.sample_shape:
            raise ValueError(f"x_t must be [B, {self.net.act_dim}] noisy actions, got {tuple(x_t.shape)}")
        t = per_sample_timesteps(t, x_t.shape[0], x_t.device)
        if cond is None and self.num_prompts != 1:
            raise ValueError(f"this policy holds {self.num_prompts} states: pass cond (the state row of each action)")
        rows = prompt_rows(cond, x_t.shape[0], self.num_prompts, self.device, f"this DiffusionPolicy's {self.num_prompts} states")
        ab = self._alpha_bar[t.round().long()].to(x_t.dtype)[:, None]  # indexed on the device: no host read
        alpha, sigma = ab.sqrt(), (1.0 - ab).sqrt()
        eps = self.net(x_t.float(), t.float(), self.states[rows]).to(x_t.dtype)
        return ((x_t - sigma * eps) / alpha).clamp(-1.0, 1.0)
