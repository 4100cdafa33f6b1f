"""The training step shared by the built-in models' scripts (zoo digits, maze planners)."""

from __future__ import annotations

import torch


def train_step(net: torch.nn.Module, ema: torch.nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor, step: int,
               ema_decay: float, max_grad_norm: float = 1.0) -> None:
    """Backward, clip the gradient norm, step the optimizer, then update the EMA copy.

    The EMA decay warms up as min(ema_decay, (1 + step) / (10 + step)), so early weights are not
    frozen into the average.
    """
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), max_grad_norm)
    opt.step()
    decay = min(ema_decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for pe, p in zip(ema.parameters(), net.parameters()):
            pe.lerp_(p, 1 - decay)
