"""NFE accounting and stage timers that every search method reports through SearchResult.

Counting rules (docs/design.md): an NFE is one denoiser evaluation of one particle (a CFG pair is one
NFE, flagged by ``cfg``); backward passes through the denoiser and verifier evaluations are
counted separately, one per sample.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Optional

import torch


@dataclass
class NFE:
    """Evaluation counts of one search call.

    Attributes:
        model: denoiser forward evaluations, one per particle (a CFG pair counts once).
        model_grad: backward passes through the denoiser, one per particle.
        verifier: verifier forward evaluations, one per sample.
        verifier_grad: verifier backward passes, one per sample.
        cfg: True when every model evaluation was a classifier-free-guidance pair.
    """

    model: int = 0
    model_grad: int = 0
    verifier: int = 0
    verifier_grad: int = 0
    cfg: bool = False

    @property
    def total(self) -> int:
        """All counted evaluations: model + model_grad + verifier + verifier_grad."""
        return self.model + self.model_grad + self.verifier + self.verifier_grad

    @property
    def model_evaluations(self) -> int:
        """Network evaluations of the denoiser (a CFG pair counts twice)."""
        return self.model * (2 if self.cfg else 1)


class Counter:
    """Running counts during a search. Per-prompt model NFE stay on the device (no host syncs).

    Inside :meth:`masked` (fixed particle slots: every slot is evaluated, only some do work) model
    NFE, and verifier evaluations of those slots, count the masked slots only; their totals are
    device tensors until :meth:`settle` reads them once, at the end of the run.
    ``slot_evaluations`` counts the model evaluations computed either way.
    """

    def __init__(self, batch_size: int, device, cfg: bool = False):
        self.nfe = NFE(cfg=cfg)
        self.per_prompt = torch.zeros(batch_size, dtype=torch.int64, device=device)
        self.slot_evaluations = 0
        self._mask: Optional[torch.Tensor] = None
        self._masked_used = False
        # masked (model, model_grad, verifier, verifier_grad) counts, on the device
        self._pending = torch.zeros(4, dtype=torch.int64, device=device)

    def add_model(self, rows: torch.Tensor, grad: bool = False) -> None:
        """Count one model evaluation of each particle whose prompt row is in ``rows`` [n]."""
        n = int(rows.shape[0])
        self.slot_evaluations += n
        if self._mask is not None:
            if self._mask.shape != rows.shape:
                raise RuntimeError(f"internal error: slot mask {tuple(self._mask.shape)} for {n} particles")
            m = self._mask.to(torch.int64)
            self.per_prompt.index_add_(0, rows, m)
            self._add_pending(0, m.sum(), grad)
            return
        self.nfe.model += n
        if grad:
            self.nfe.model_grad += n
        self.per_prompt.index_add_(0, rows, torch.ones_like(rows))

    def add_verifier(self, n: int, grad: bool = False, mask: Optional[torch.Tensor] = None) -> None:
        """Count ``n`` verifier evaluations (and backward passes if ``grad``).

        ``mask`` [m] (or, by default, the slot mask of :meth:`masked`) marks the working slots when
        the n samples are m slots x n/m samples each (Monte-Carlo smoothing scores k per slot).
        """
        mask = self._mask if mask is None else mask
        if mask is not None:
            m = mask.numel()
            if n % m if m else n:
                raise RuntimeError(f"internal error: slot mask {tuple(mask.shape)} for {n} verifier samples")
            if m:
                self._add_pending(2, mask.to(torch.int64).sum() * (n // m), grad)
            return
        self.nfe.verifier += int(n)
        if grad:
            self.nfe.verifier_grad += int(n)

    def _add_pending(self, at: int, total: torch.Tensor, grad: bool) -> None:
        self._masked_used = True
        self._pending[at] += total
        if grad:
            self._pending[at + 1] += total

    @property
    def masking(self) -> bool:
        """Whether counts go to the device now (inside :meth:`masked`): the host does not know them."""
        return self._mask is not None

    def pending_model(self) -> torch.Tensor:
        """The masked model NFE counted so far and not yet settled: a 0-d int64 tensor on the device."""
        return self._pending[0]

    @contextmanager
    def masked(self, mask: torch.Tensor):
        """Count NFE only for the slots where ``mask`` [n] (bool, on the device) is True."""
        self._mask = mask
        try:
            yield
        finally:
            self._mask = None

    def settle(self) -> NFE:
        """Add the masked counts to ``nfe`` (one host read, only if masked counting was used)."""
        if self._masked_used:
            model, model_grad, verifier, verifier_grad = (int(v) for v in self._pending.tolist())
            self.nfe.model += model
            self.nfe.model_grad += model_grad
            self.nfe.verifier += verifier
            self.nfe.verifier_grad += verifier_grad
            self._pending.zero_()
            self._masked_used = False
        return self.nfe


class Timers:
    """Wall-clock seconds per stage ('model', 'decode', 'verifier', 'search_ops').

    On CUDA the host does not wait for the device unless ``sync=True`` (profiling mode), so
    without it the numbers are launch times for asynchronous stages.
    """

    def __init__(self, sync: bool = False):
        self.sync = sync
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str, device: Optional[torch.device] = None):
        synced = self.sync and device is not None and torch.device(device).type == "cuda"
        if synced:
            # work queued by earlier (untimed) code must not be charged to this stage
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if synced:
                torch.cuda.synchronize(device)
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t0


@dataclass
class Trace:
    """Per-step statistics kept as tensors during the run and turned into floats once at the end."""

    rows: list = field(default_factory=list)

    def add(self, **stats) -> None:
        self.rows.append({k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in stats.items()})

    def finalize(self) -> list[dict]:
        out = []
        for row in self.rows:
            out.append({k: (v.cpu().tolist() if isinstance(v, torch.Tensor) else v) for k, v in row.items()})
        return out
