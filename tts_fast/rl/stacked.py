"""An ensemble of equal MLPs evaluated as one batched computation (stacked parameters).

E members of the critic's MLP shape (``layers`` hidden Linear + Mish layers of ``width``, then a
Linear to ``out``) hold their weights stacked, [E, d_in, d_out], so that one ``baddbmm`` per layer
evaluates every member on its own batch, or on one shared batch: the IQL critic's Q networks train
as one computation (:mod:`tts_fast.rl.fast_critic`) instead of one small matmul per network and
layer. :meth:`StackedMLP.from_mlps` and :meth:`StackedMLP.to_mlps` convert from and to the
``nn.Sequential`` MLPs of :func:`tts_fast.rl.critic.mlp` exactly (the same numbers, stacked), so a
critic trained stacked is saved and used as a plain :class:`tts_fast.rl.critic.TwinQ`.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from .._arguments import check_int
from .critic import ACTIVATIONS, check_activation


class StackedMLP(nn.Module):
    """E MLPs in_dim -> width (x layers, activation) -> out, as weights [E, d_in, d_out] and biases [E, 1, d_out].

    Args:
        members: E, the number of MLPs.
        in_dim, width, layers, out, activation: the shape of each (as :func:`tts_fast.rl.critic.mlp`).

    Initialised as ``nn.Linear`` initialises each layer (uniform in ±1/sqrt(fan_in)).
    """

    def __init__(self, members: int, in_dim: int, width: int, layers: int, out: int = 1, activation: str = "mish"):
        super().__init__()
        self.act = ACTIVATIONS[check_activation(activation)]()
        self.activation = activation
        for name, v in (("members", members), ("in_dim", in_dim), ("width", width), ("layers", layers), ("out", out)):
            check_int(v, name, 0 if name == "layers" else 1)
        self.members, self.in_dim, self.width, self.layers, self.out = members, in_dim, width, layers, out
        dims = [in_dim] + [width] * layers + [out]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            bound = 1.0 / d_in ** 0.5
            self.weights.append(nn.Parameter(torch.empty(members, d_in, d_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(members, 1, d_out).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, in_dim] (shared by every member) or [E, B, in_dim] (one batch each) -> [E, B, out]."""
        if x.dim() not in (2, 3) or x.shape[-1] != self.in_dim or (x.dim() == 3 and x.shape[0] != self.members):
            raise ValueError(f"x must be [B, {self.in_dim}] or [{self.members}, B, {self.in_dim}], got {tuple(x.shape)}")
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.members, -1, -1)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = self.act(x)
        return x

    @classmethod
    def from_mlps(cls, mlps: Sequence[nn.Sequential]) -> "StackedMLP":
        """The stacked copy of MLPs built by :func:`tts_fast.rl.critic.mlp` (all of one shape)."""
        linears = [[m for m in seq if isinstance(m, nn.Linear)] for seq in mlps]
        if not linears or any(len(ls) != len(linears[0]) for ls in linears) or not linears[0]:
            raise ValueError("from_mlps needs MLPs of one shape, each with at least one Linear layer")
        acts = {type(m) for seq in mlps for m in seq if not isinstance(m, nn.Linear)}
        named = {cls: name for name, cls in ACTIVATIONS.items()}
        if len(acts) > 1 or not acts <= set(named):
            raise ValueError(f"from_mlps needs MLPs with one activation, Mish or ReLU; got {sorted(a.__name__ for a in acts)}")
        first = linears[0]
        out = cls(len(mlps), first[0].in_features, first[0].out_features if len(first) > 1 else 1, len(first) - 1,
                  first[-1].out_features, activation=named[acts.pop()] if acts else "mish")
        with torch.no_grad():
            for i in range(len(first)):
                out.weights[i].copy_(torch.stack([ls[i].weight.t() for ls in linears]))
                out.biases[i].copy_(torch.stack([ls[i].bias[None, :] for ls in linears]))
        return out

    @torch.no_grad()
    def to_mlps(self, mlps: Sequence[nn.Sequential]) -> None:
        """Copy member e's weights into ``mlps[e]`` (built by :func:`tts_fast.rl.critic.mlp` with this shape)."""
        if len(mlps) != self.members:
            raise ValueError(f"to_mlps needs {self.members} MLPs, got {len(mlps)}")
        for e, seq in enumerate(mlps):
            linears = [m for m in seq if isinstance(m, nn.Linear)]
            if len(linears) != len(self.weights):
                raise ValueError(f"MLP {e} has {len(linears)} Linear layers, the stack {len(self.weights)}")
            for i, lin in enumerate(linears):
                lin.weight.copy_(self.weights[i][e].t())
                lin.bias.copy_(self.biases[i][e, 0])
