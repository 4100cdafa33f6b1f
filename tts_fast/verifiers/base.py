"""The Verifier protocol and the generic verifiers (a function, a classifier)."""

from __future__ import annotations

import inspect
import numbers
from abc import ABC, abstractmethod
from typing import Callable, Optional

import torch

from .._chunking import AdaptiveChunks
from .._device_checks import prompt_rows


class Verifier(ABC):
    """A reward on clean samples: ``reward = verifier(x0, cond)`` -> [B] float.

    Subclasses implement :meth:`forward` on one chunk. ``__call__`` splits the batch into chunks
    of at most ``batch_size`` samples (memory cap; None: the whole batch, halved automatically on
    out-of-memory) and checks the output shape.

    Attributes:
        differentiable: whether :meth:`forward` is differentiable in x0 (needed for gradient
            guidance and Langevin moves).
        batch_size: max samples per forward (None: all at once, fewer after an out-of-memory error).
        num_prompts: prompt rows the verifier holds targets for (prompts, class labels, reward
            centres), or None when one target serves every row. ``tts_fast.search`` requires it
            to agree with the model's.

    ``cond`` is an int64 tensor [B] of prompt rows (what the denoiser received) or None; a
    verifier with per-prompt targets (class labels, reward centres, prompts) indexes them by it.
    """

    differentiable: bool = False
    batch_size: Optional[int] = None
    num_prompts: Optional[int] = None

    @abstractmethod
    def forward(self, x0: torch.Tensor, cond: Optional[torch.Tensor]) -> torch.Tensor:
        """Rewards [B] of one chunk of samples x0 [B, ...]."""

    def __call__(self, x0: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        n = x0.shape[0]
        if cond is not None and cond.shape != (n,):
            raise ValueError(f"cond must be [B] = [{n}] prompt rows, got {tuple(cond.shape)}")
        chunks = getattr(self, "_chunks", None)
        if chunks is None or chunks.cap != self.batch_size:
            chunks = self._chunks = AdaptiveChunks(self.batch_size)
        if n == 0:
            reward = x0.new_zeros(0)
        else:
            reward = chunks.run(n, lambda s, e: self.forward(x0[s:e], None if cond is None else cond[s:e]))
        if reward.shape != (n,):
            raise ValueError(f"{type(self).__name__} returned shape {tuple(reward.shape)}; a verifier must return [B] = [{n}] rewards")
        return reward

    def grad(self, x0: torch.Tensor, cond: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Rewards [B] and their gradient with respect to x0 [B, ...] (autograd)."""
        if not self.differentiable:
            raise ValueError(f"{type(self).__name__} is not differentiable; gradient guidance needs a differentiable (local) verifier")
        with torch.enable_grad():
            x = x0.detach().requires_grad_(True)
            r = self(x, cond)
            (g,) = torch.autograd.grad(r.sum(), x)
        return r.detach(), g


class Function(Verifier):
    """Wrap a callable ``fn(x0)`` or ``fn(x0, cond)`` -> [B] rewards.

    Args:
        fn: the reward function.
        differentiable: whether fn is differentiable in x0.
        batch_size: max samples per call (None: all at once).
        num_prompts: prompt rows fn holds targets for (checked against the model's by search),
            or None when fn serves any row.
    """

    def __init__(self, fn: Callable, *, differentiable: bool = False, batch_size: Optional[int] = None,
                 num_prompts: Optional[int] = None):
        if not callable(fn):
            raise TypeError("fn must be callable")
        if batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1):
            raise ValueError(f"batch_size must be an integer >= 1 or None, got {batch_size!r}")
        if num_prompts is not None and (not isinstance(num_prompts, int) or isinstance(num_prompts, bool) or num_prompts < 1):
            raise ValueError(f"num_prompts must be an integer >= 1 or None, got {num_prompts!r}")
        self.num_prompts = num_prompts
        self.fn = fn
        self.differentiable = bool(differentiable)
        self.batch_size = batch_size
        try:
            params = [p for p in inspect.signature(fn).parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            self._takes_cond = len(params) >= 2
        except (TypeError, ValueError):
            self._takes_cond = True

    def forward(self, x0, cond):
        out = self.fn(x0, cond) if self._takes_cond else self.fn(x0)
        return torch.as_tensor(out, device=x0.device).reshape(-1) if not isinstance(out, torch.Tensor) else out.reshape(-1)


class Classifier(Verifier):
    """Log-probability of a target class under a classifier network: log p(target | x0).

    Args:
        net: module mapping [B, ...] samples to [B, C] logits.
        target: a class index, or a sequence/tensor of one target per prompt row (indexed by cond).
        transform: optional differentiable preprocessing applied to x0 before ``net``.
        batch_size: max samples per forward.
    """

    differentiable = True

    def __init__(self, net: torch.nn.Module, target, *, transform: Optional[Callable] = None, batch_size: Optional[int] = None):
        self.net = net
        self.target = _class_indices(target)  # on the host: checked there, never read back from a device
        if self.target.numel() < 1:
            raise ValueError("target must hold at least one class index")
        if bool((self.target < 0).any()):
            raise ValueError(f"target classes must be >= 0, got {self.target.tolist()}")
        self.num_prompts = int(self.target.numel()) if self.target.numel() > 1 else None
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")
        if batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1):
            raise ValueError(f"batch_size must be an integer >= 1 or None, got {batch_size!r}")
        if not callable(net):
            raise TypeError(f"net must be a module (or callable) mapping samples to [B, C] logits, got {type(net).__name__}")
        self.transform = transform
        self.batch_size = batch_size
        self._checked_classes: Optional[int] = None  # the class count the targets were checked against
        self._target_dev: Optional[torch.Tensor] = None

    def forward(self, x0, cond):
        x = self.transform(x0) if self.transform is not None else x0
        logits = self.net(x)
        if logits.dim() != 2 or logits.shape[0] != x0.shape[0]:
            raise ValueError(f"the classifier must return [B, C] = [{x0.shape[0]}, C] logits, got shape {tuple(logits.shape)}")
        self._check_classes(int(logits.shape[1]))
        target = self._target_on(logits.device)
        if target.numel() == 1:
            y = target.expand(x0.shape[0])
        else:
            y = target[prompt_rows(cond, x0.shape[0], int(target.numel()), logits.device, "this Classifier (one target per prompt row)")]
        return torch.log_softmax(logits.float(), dim=1).gather(1, y[:, None]).squeeze(1)

    def _check_classes(self, num_classes: int) -> None:
        """Targets against the number of classes, on the host target tensor (no device read), once per class count."""
        if self._checked_classes == num_classes:
            return
        top = int(self.target.max())
        if top >= num_classes:
            raise ValueError(f"target classes must lie in [0, {num_classes}) (the classifier returns {num_classes} logits), got {top}")
        self._checked_classes = num_classes

    def _target_on(self, device) -> torch.Tensor:
        # copied to the device once (not on every call)
        if self._target_dev is None or self._target_dev.device != device:
            self._target_dev = self.target.to(device)
        return self._target_dev


def _class_indices(target) -> torch.Tensor:
    """Integer class indices as a host int64 tensor [P]; floats and bools are refused, not truncated."""
    if isinstance(target, torch.Tensor):
        if target.dtype == torch.bool or target.is_floating_point() or target.is_complex():
            raise ValueError(f"target must hold integer class indices, got a {target.dtype} tensor")
        return target.detach().to("cpu", torch.int64).reshape(-1)
    items = [target] if not isinstance(target, (list, tuple)) and not hasattr(target, "__len__") else list(target)
    for v in items:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise ValueError(f"target must be a class index or a sequence of class indices (integers), got {v!r}")
    return torch.as_tensor([int(v) for v in items], dtype=torch.int64)
