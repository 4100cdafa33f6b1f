"""What the built-in models' training scripts share (zoo digits, zoo 28x28 models, maze planners):
the learning-rate shape, the optimiser step with EMA, the classifier and diffusion loops, image
augmentation, and the atomic save of a checkpoint."""

from __future__ import annotations

import copy
import math
import os
import time
from typing import Callable

import torch
import torch.nn.functional as F

from ._io import atomic_path


def warmup_cosine_lr(step: int, total: int, peak: float, warmup: int, floor: float) -> float:
    """Learning rate at ``step`` of ``total``: linear warm-up over ``warmup`` steps to ``peak``, then a
    cosine decay to ``floor * peak`` at the last step."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))))


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


def augment_images(x: torch.Tensor, gen: torch.Generator, *, noise: float = 0.4, max_shift: int = 1,
                   background: float = -1.0) -> torch.Tensor:
    """Classifier augmentation: random shifts and Gaussian pixel noise on half of the batch.

    Args:
        x: images [n, 1, H, W] in [-1, 1].
        gen: the generator every draw comes from (shifts, then noise scales, masks and noise).
        noise: the largest noise std (each image draws its std uniformly below it).
        max_shift: shifts of up to this many pixels in each direction (the border is ``background``).
    """
    n, _, h, w = x.shape
    s = max_shift
    padded = F.pad(x, (s, s, s, s), value=background)
    dx = torch.randint(0, 2 * s + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * s + 1, (n,), generator=gen)
    rows = dy[:, None] + torch.arange(h)[None]  # [n, h]
    cols = dx[:, None] + torch.arange(w)[None]
    out = padded[:, 0][torch.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]][:, None]
    scale = noise * torch.rand(n, 1, 1, 1, generator=gen) * (torch.rand(n, 1, 1, 1, generator=gen) < 0.5)
    return out + scale * torch.randn(out.shape, generator=gen)


def fit_classifier(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int, gen: torch.Generator, batch: int,
                   augment: Callable, lr: float = 2e-3, weight_decay: float = 1e-4, name: str = "classifier",
                   log=print) -> tuple[torch.nn.Module, float]:
    """Cross-entropy training of ``net`` on augmented minibatches (AdamW, warm-up + cosine): (net in eval mode, seconds).

    Args:
        x, y: training images [n, ...] and labels [n].
        gen: the generator of the minibatch indices and of ``augment(images, gen)``.
    """
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    net.train()
    t0 = time.perf_counter()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = warmup_cosine_lr(step, steps, lr, warmup=100, floor=0.02)
        idx = torch.randint(0, x.shape[0], (batch,), generator=gen)
        loss = F.cross_entropy(net(augment(x[idx], gen)), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % max(1, steps // 5) == 0:
            log(f"  {name} step {step + 1}/{steps} loss {loss.item():.4f} ({time.perf_counter() - t0:.0f}s)")
    net.eval()
    return net, time.perf_counter() - t0


def fit_diffusion(net: torch.nn.Module, loss_at: Callable[[torch.nn.Module], torch.Tensor], *, steps: int, lr: float = 1e-3,
                  ema_decay: float = 0.999, warmup: int = 200, floor: float = 0.02, name: str = "unet",
                  log=print) -> tuple[torch.nn.Module, dict]:
    """The denoiser loop: AdamW (warm-up + cosine, see :func:`warmup_cosine_lr`), gradient clipping, EMA of the weights.

    Args:
        net: the network (trained in place).
        loss_at: ``loss_at(net)`` -> the loss of one fresh minibatch (it draws its own randomness).
        steps: optimiser steps.
        warmup, floor: of the learning-rate shape.

    Returns the EMA copy (eval mode) and {'seconds', 'final_loss' (a running average), 'ema_decay'}.
    """
    ema = copy.deepcopy(net)
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    t0 = time.perf_counter()
    running = None
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = warmup_cosine_lr(step, steps, lr, warmup=warmup, floor=floor)
        loss = loss_at(net)
        train_step(net, ema, opt, loss, step, ema_decay)
        running = loss.item() if running is None else 0.99 * running + 0.01 * loss.item()
        if (step + 1) % max(1, steps // 10) == 0:
            log(f"  {name} step {step + 1}/{steps} loss {running:.5f} ({time.perf_counter() - t0:.0f}s)")
    ema.eval()
    return ema, {"seconds": time.perf_counter() - t0, "final_loss": running, "ema_decay": ema_decay}


def float32_state(net: torch.nn.Module) -> dict:
    """The state dict of ``net`` as contiguous float32 tensors (what the shipped files hold)."""
    return {k: v.detach().to(torch.float32).contiguous() for k, v in net.state_dict().items()}


def atomic_torch_save(obj, path: str) -> None:
    """torch.save to a temporary file in the same folder, then os.replace (never half-written)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path, ".pt") as tmp:
        torch.save(obj, tmp)
