"""Execution backends for a denoiser network: eager, torch.compile, CUDA graphs, TensorRT.

A backend wraps one *network call* ``fn(x, t, **ctx) -> out`` in which every tensor (the model
input ``x``, the per-row timesteps ``t`` and each conditioning tensor of ``ctx``) has the batch as
its first dimension. The denoiser adapters (:class:`tts_fast.models.DiffusersModel`) build that
call; the backend decides how it runs:

- ``eager``: as is.
- ``compile``: ``torch.compile(fn, **options)``. Batches are padded up to fixed *slot* sizes
  so that the compiled graph sees a handful of shapes and never recompiles during a search.
- ``cudagraphs``: one CUDA graph per slot size, captured on first use (after warm-up runs on a
  side stream) with static input buffers; a smaller batch is padded up to the next slot, the
  graph is replayed and the valid rows of its output are copied out (a replay overwrites its
  outputs). Slot sizes do not depend on which particles are in the batch, so the graphs stay
  valid across resampling, pruning and DFS backtracking. Calls that need autograd (local search
  gradients through the denoiser) run eagerly: a replay has no backward.
- ``tensorrt``: ``torch.compile(fn, backend="tensorrt")`` from torch-tensorrt (install the
  ``tensorrt`` extra), with slot padding like ``compile`` so that each engine is built once.

Padding repeats the last real row (never zeros: some networks normalise per sample, and a zero
row could produce NaNs that are discarded anyway but trip anomaly checks). Batches larger than
the largest slot are split into chunks of that size.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

BACKENDS = ("eager", "compile", "cudagraphs", "tensorrt")


def default_slots(max_batch: Optional[int]) -> tuple[int, ...]:
    """Powers of two up to ``max_batch`` (64 when None), plus ``max_batch`` itself."""
    top = 64 if max_batch is None else int(max_batch)
    slots, s = [], 1
    while s < top:
        slots.append(s)
        s *= 2
    slots.append(top)
    return tuple(slots)


def _check_slots(slots) -> tuple[int, ...]:
    items = list(slots) if isinstance(slots, (list, tuple, set, frozenset, range)) else None
    if not items or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in items):
        raise ValueError(f"slots must be a non-empty sequence of positive integer batch sizes, got {slots!r}")
    return tuple(sorted(set(items)))


def _pad_rows(v: torch.Tensor, size: int) -> torch.Tensor:
    n = v.shape[0]
    if n == size:
        return v
    return torch.cat([v, v[-1:].expand(size - n, *v.shape[1:])])


class Runner:
    """Eager runner: calls ``fn`` on the whole batch (or chunks of ``max_batch`` rows)."""

    name = "eager"

    def __init__(self, fn: Callable, max_batch: Optional[int] = None):
        self.fn = fn
        self.max_batch = max_batch

    def __call__(self, x: torch.Tensor, t: torch.Tensor, ctx: dict) -> torch.Tensor:
        n = x.shape[0]
        step = self.max_batch or max(n, 1)
        if step >= n:
            return self.fn(x, t, **ctx)
        outs = [self.fn(x[s : s + step], t[s : s + step], **{k: v[s : s + step] for k, v in ctx.items()}) for s in range(0, n, step)]
        return torch.cat(outs)


class SlotRunner(Runner):
    """Pads each batch up to the next slot size and runs ``run_slot`` on it.

    Attributes:
        slots: the allowed batch sizes (ascending); larger batches are split into chunks of the
            largest slot.
        calls: how many padded calls ran per slot size (for tests and profiling).
    """

    name = "slots"

    def __init__(self, fn: Callable, slots: Sequence[int]):
        super().__init__(fn)
        self.slots = _check_slots(slots)
        self.calls: dict[int, int] = {}

    def slot_for(self, n: int) -> int:
        """The smallest slot that holds n rows (n <= the largest slot)."""
        for s in self.slots:
            if s >= n:
                return s
        raise ValueError(f"batch of {n} rows exceeds the largest slot {self.slots[-1]}")

    def __call__(self, x, t, ctx):
        n = x.shape[0]
        top = self.slots[-1]
        outs = []
        for s in range(0, n, top):
            m = min(top, n - s)
            slot = self.slot_for(m)
            xs = _pad_rows(x[s : s + m], slot)
            ts = _pad_rows(t[s : s + m], slot)
            cs = {k: _pad_rows(v[s : s + m], slot) for k, v in ctx.items()}
            self.calls[slot] = self.calls.get(slot, 0) + 1
            outs.append(self.run_slot(slot, xs, ts, cs)[:m])
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def run_slot(self, slot: int, x, t, ctx):
        return self.fn(x, t, **ctx)


class CompiledRunner(SlotRunner):
    """torch.compile of the network call, with slot padding (one graph per slot size)."""

    name = "compile"

    def __init__(self, fn: Callable, slots: Sequence[int], **compile_options):
        super().__init__(fn, slots)
        compile_options.setdefault("dynamic", False)
        import torch._dynamo

        # One recompile per slot size, with and without autograd: past dynamo's limit (8) it would
        # silently run the network eagerly.
        cfg = torch._dynamo.config
        cfg.recompile_limit = max(cfg.recompile_limit, 2 * len(self.slots) + 2)
        self.compiled = torch.compile(fn, **compile_options)
        # CUDA-graphed modes overwrite a call's outputs on the next call: chunks must be copied out.
        self._graphed = compile_options.get("mode") in ("reduce-overhead", "max-autotune")

    def run_slot(self, slot, x, t, ctx):
        out = self.compiled(x, t, **ctx)
        return out.clone() if self._graphed else out


def cuda_capture(fn: Callable, static: dict, *, warmup: int = 2, pool=None) -> Callable[[], torch.Tensor]:
    """Capture ``fn(**static)`` into a CUDA graph; returns a replay function giving the static output.

    The warm-up runs happen on a side stream (as the PyTorch CUDA-graph guide prescribes), so lazy
    initialisation (cuBLAS handles, autotuning) is not captured.
    """
    dev = next(iter(static.values())).device
    with torch.cuda.device(dev):  # streams and the capture belong to the inputs' device, not the current one
        stream = torch.cuda.Stream(dev)
        stream.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(stream), torch.no_grad():
            for _ in range(warmup):
                fn(**static)
        torch.cuda.current_stream(dev).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph, pool=pool, stream=stream):
            out = fn(**static)

    def replay():
        graph.replay()
        return out

    return replay


class CUDAGraphRunner(SlotRunner):
    """One captured CUDA graph per slot size; inputs copied into static buffers, outputs copied out.

    Args:
        fn: the network call.
        slots: batch sizes to capture (lazily, on first use of each).
        capture: ``capture(call, static_inputs) -> replay`` (default :func:`cuda_capture`); a test
            can pass a fake to exercise the slot and buffer logic without a GPU.
        warmup: eager runs before each capture.
    """

    name = "cudagraphs"

    def __init__(self, fn: Callable, slots: Sequence[int], *, capture: Optional[Callable] = None, warmup: int = 2):
        super().__init__(fn, slots)
        if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
            raise ValueError(f"cudagraphs warmup must be an integer >= 0 (eager runs before each capture), got {warmup!r}")
        if capture is not None and not callable(capture):
            raise ValueError(f"cudagraphs capture must be callable or None, got {type(capture).__name__}")
        self._capture = capture
        self.warmup = warmup
        self.graphs: dict = {}
        self._pool = None

    def _key(self, slot, x, t, ctx):
        return (slot, tuple(x.shape[1:]), x.dtype, x.device, t.dtype) + tuple(
            (k, tuple(v.shape[1:]), v.dtype) for k, v in sorted(ctx.items())
        )

    def run_slot(self, slot, x, t, ctx):
        if torch.is_grad_enabled() and (x.requires_grad or any(v.requires_grad for v in ctx.values())):
            return self.fn(x, t, **ctx)  # autograd cannot flow through a replay
        if _get_current_dispatch_mode() is not None:
            return self.fn(x, t, **ctx)  # e.g. FlopCounterMode: a replay is invisible to dispatch modes
        key = self._key(slot, x, t, ctx)
        entry = self.graphs.get(key)
        if entry is None:
            static = {"x": x.detach().clone(), "t": t.detach().clone(), **{k: v.detach().clone() for k, v in ctx.items()}}
            call = lambda **kw: self.fn(kw.pop("x"), kw.pop("t"), **kw)  # noqa: E731
            if self._capture is not None:
                replay = self._capture(call, static)
            else:
                if x.device.type != "cuda":
                    raise ValueError("backend='cudagraphs' needs the model on a CUDA device; use backend='eager' or 'compile' on CPU")
                if self._pool is None:
                    self._pool = torch.cuda.graph_pool_handle()
                replay = cuda_capture(call, static, warmup=self.warmup, pool=self._pool)
            entry = self.graphs[key] = (static, replay)
        static, replay = entry
        static["x"].copy_(x)
        static["t"].copy_(t)
        for k, v in ctx.items():
            static[k].copy_(v)
        return replay().clone()


def tensorrt_runner(fn: Callable, slots: Sequence[int], **options) -> CompiledRunner:
    """torch.compile with torch-tensorrt's backend (needs the ``tensorrt`` extra and a CUDA device)."""
    try:
        import torch_tensorrt  # noqa: F401  (registers the 'tensorrt' torch.compile backend)
    except ImportError as e:
        raise ValueError(
            f"backend='tensorrt' needs torch-tensorrt, which could not be imported ({e}); install it with "
            "pip install --no-build-isolation 'tts_fast[tensorrt]' (torch-tensorrt matching your torch and CUDA), or use backend='compile'"
        ) from e
    trt_options = dict(options.pop("options", {}) or {})
    return CompiledRunner(fn, slots, backend="tensorrt", options=trt_options, **options)


def make_runner(
    backend: str,
    fn: Callable,
    *,
    max_batch: Optional[int] = None,
    slots: Optional[Sequence[int]] = None,
    options: Optional[dict] = None,
) -> Runner:
    """Wrap the network call ``fn(x, t, **ctx)`` in the named backend.

    Args:
        backend: 'eager', 'compile', 'cudagraphs' or 'tensorrt'.
        max_batch: largest network batch (rows) per call; the default slots go up to it.
        slots: batch sizes of the padded backends (default: powers of two up to max_batch, 64
            without one). Ignored by 'eager'.
        options: backend options: for 'compile' keyword arguments of torch.compile (mode,
            fullgraph, backend, ...); for 'cudagraphs' ``warmup`` and ``capture``; for 'tensorrt'
            keyword arguments of torch.compile plus ``options`` for torch-tensorrt.
    """
    if options is not None and not isinstance(options, dict):
        raise ValueError(f"backend_options must be a dict or None, got {type(options).__name__}")
    if max_batch is not None and (not isinstance(max_batch, int) or isinstance(max_batch, bool) or max_batch < 1):
        raise ValueError(f"max_batch must be a positive integer or None, got {max_batch!r}")
    options = dict(options or {})
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if slots is not None:
        slots = _check_slots(slots)
        if max_batch is not None and slots[-1] > max_batch:
            raise ValueError(f"the largest slot ({slots[-1]}) exceeds max_batch={max_batch}")
    slots = slots or default_slots(max_batch)
    if backend == "eager":
        if options:
            raise ValueError(f"backend='eager' takes no options, got {sorted(options)}")
        return Runner(fn, max_batch)
    if backend == "compile":
        return CompiledRunner(fn, slots, **options)
    if backend == "cudagraphs":
        unknown = set(options) - {"warmup", "capture"}
        if unknown:
            raise ValueError(f"backend='cudagraphs' options are warmup and capture; got {sorted(unknown)}")
        return CUDAGraphRunner(fn, slots, **options)
    return tensorrt_runner(fn, slots, **options)
