"""The twin-Q critic and the Q-function verifier.

The critic is trained in-sample with IQL's expectile regression (Kostrikov et al. 2022; see
:mod:`tts_fast.rl.train`): two Q networks and a value network V(s), MLPs on the normalised state
(and action). The verifier is the paper's ``log f(a) = Q(s, a) = min(Q1, Q2)(s, a)`` on the
x0-prediction of the action, with no temperature; it is differentiable in the action, so local
search (guidance + recurrence) can ascend it.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from .._device_checks import prompt_rows
from ..verifiers.base import Verifier
from .policy import StateNormalizer, as_states, check_sizes


ACTIVATIONS = {"mish": nn.Mish, "relu": nn.ReLU}  # the shipped critics use Mish; ReLU is IQL's own (and cheaper on a CPU)


def check_activation(activation: str) -> str:
    """``activation`` if it is a key of :data:`ACTIVATIONS`; else a ValueError naming the argument."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}")
    return activation


def mlp(inp: int, width: int, layers: int, out: int = 1, activation: str = "mish") -> nn.Sequential:
    """``layers`` hidden Linear + activation layers of ``width`` then a Linear to ``out``."""
    act = ACTIVATIONS[check_activation(activation)]
    mods, d = [], inp
    for _ in range(layers):
        mods += [nn.Linear(d, width), act()]
        d = width
    return nn.Sequential(*mods, nn.Linear(d, out))


class TwinQ(nn.Module):
    """Q1, Q2 (s, a) and V(s): [B] each, from raw states s [B, obs_dim] and actions a [B, act_dim].

    Each an MLP of ``layers`` hidden layers of ``width`` with ``activation`` ('mish' or 'relu').
    """

    def __init__(self, obs_dim: int, act_dim: int, width: int = 256, layers: int = 2, activation: str = "mish"):
        super().__init__()
        check_sizes(obs_dim=obs_dim, act_dim=act_dim, width=width, layers=layers)
        check_activation(activation)
        self.config = {"obs_dim": obs_dim, "act_dim": act_dim, "width": width, "layers": layers}
        if activation != "mish":  # files written before the option have no key and mean Mish
            self.config["activation"] = activation
        self.obs_dim, self.act_dim, self.activation = obs_dim, act_dim, activation
        self.normalizer = StateNormalizer(obs_dim)
        self.q1 = mlp(obs_dim + act_dim, width, layers, activation=activation)
        self.q2 = mlp(obs_dim + act_dim, width, layers, activation=activation)
        self.v = mlp(obs_dim, width, layers, activation=activation)

    def qs(self, s, a) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([self.normalizer(s), a], dim=1)
        return self.q1(x).squeeze(1), self.q2(x).squeeze(1)

    def q(self, s, a) -> torch.Tensor:
        """min(Q1, Q2)(s, a) [B]."""
        q1, q2 = self.qs(s, a)
        return torch.minimum(q1, q2)

    def value(self, s) -> torch.Tensor:
        return self.v(self.normalizer(s)).squeeze(1)


class QVerifier(Verifier):
    """``reward = min(Q1, Q2)(s_row, a0)``: the Q-function verifier of the states a policy holds.

    Args:
        critic: a trained :class:`TwinQ`.
        states: [P, obs_dim] environment states, one per prompt row (the policy's rows).
    """

    differentiable = True

    def __init__(self, critic: TwinQ, states, *, device="cpu", batch_size: Optional[int] = None):
        self.device = torch.device(device)
        self.critic = critic.to(self.device).eval()
        for p in self.critic.parameters():
            p.requires_grad_(False)
        self.states = as_states(states, critic.obs_dim, self.device)
        self.num_prompts = int(self.states.shape[0])
        self.batch_size = batch_size

    def with_states(self, states) -> "QVerifier":
        """The same critic with other state rows."""
        return QVerifier(self.critic, states, device=self.device, batch_size=self.batch_size)

    def forward(self, x0, cond):
        if x0.dim() != 2 or x0.shape[1] != self.critic.act_dim:
            raise ValueError(f"x0 must be [B, {self.critic.act_dim}] actions, got {tuple(x0.shape)}")
        if cond is None and self.num_prompts != 1:
            raise ValueError(f"this QVerifier holds {self.num_prompts} states: pass cond (the state row of each action)")
        rows = prompt_rows(cond, x0.shape[0], self.num_prompts, self.device, f"this QVerifier's {self.num_prompts} states")
        dtype = next(self.critic.parameters()).dtype  # float32 weights; float64 for gradient checks
        return self.critic.q(self.states[rows].to(dtype), x0.to(dtype)).to(x0.dtype)
