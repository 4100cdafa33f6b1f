"""Profiling a whole search: NFE/s, seconds per stage, memory, FLOPs and the matmul roofline.

The counters the search engine keeps (NFE, Counter, Timers, Trace) live in
``tts_fast.search.counting``; NFE is handed on here for the reports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import torch

from .search import search
from .search.counting import NFE

# ----------------------------------------------------------------------------------------------
# profiling a whole search: NFE/s, stage seconds, memory, roofline


@dataclass
class ProfileReport:
    """Where the time of a search goes, and how fast it runs.

    Attributes:
        seconds: wall time of one search (median of the timed runs, device synchronised).
        nfe: the counts of one search. nfe_per_s: model NFE per second (the budget unit);
            model_evals_per_s: network evaluations per second (a CFG pair counts twice).
        stages: seconds per stage in one run with the device synchronised around each stage:
            model, decode, verifier, search_ops, and 'host' = the rest of the wall time (the
            search's Python control on the host while the device waits, plus anything unlabelled).
        search_overhead: (search_ops + host) / seconds of that synchronised run.
        memory_peak_bytes: peak device memory allocated during a run (CUDA), else None.
        flops_per_nfe: FLOPs of one denoiser evaluation of one particle (counted on one call).
        achieved_tflops: flops_per_nfe * nfe_per_s / 1e12. peak_tflops: the measured matmul peak
            of the device at the network's dtype; roofline_fraction = achieved / peak.
    """

    method: str
    n_particles: int
    num_steps: int
    batch_size: int
    device: str
    seconds: float
    nfe: NFE
    nfe_per_s: float
    model_evals_per_s: float
    stages: dict
    search_overhead: float
    memory_peak_bytes: Optional[int]
    flops_per_nfe: Optional[float]
    achieved_tflops: Optional[float]
    peak_tflops: Optional[float]
    roofline_fraction: Optional[float]
    runs: list = field(default_factory=list)

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["nfe"] = dict(self.nfe.__dict__, total=self.nfe.total, model_evaluations=self.nfe.model_evaluations)
        return d

    def summary(self) -> str:
        lines = [
            f"{self.method}: {self.n_particles} particles x {self.num_steps} steps x {self.batch_size} prompts on {self.device}",
            f"  {self.seconds:.3f} s per search, {self.nfe.model} model NFE: {self.nfe_per_s:.1f} NFE/s "
            f"({self.model_evals_per_s:.1f} model evaluations/s{', CFG pairs' if self.nfe.cfg else ''})",
        ]
        total = sum(self.stages.values()) or 1.0
        lines.append("  stages (synchronised run): " + ", ".join(f"{k} {v:.3f} s ({100 * v / total:.1f}%)" for k, v in self.stages.items()))
        lines.append(f"  search overhead (search ops + host control): {100 * self.search_overhead:.1f}% of the step")
        if self.memory_peak_bytes is not None:
            lines.append(f"  peak device memory: {self.memory_peak_bytes / 2**30:.2f} GiB")
        if self.flops_per_nfe is not None:
            lines.append(f"  {self.flops_per_nfe / 1e9:.2f} GFLOP per NFE -> {self.achieved_tflops:.3f} TFLOP/s achieved")
        if self.roofline_fraction is not None:
            lines.append(f"  measured matmul peak {self.peak_tflops:.1f} TFLOP/s: {100 * self.roofline_fraction:.1f}% of the roofline")
        return "\n".join(lines)


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def model_flops_per_nfe(model, num_steps: int, n: int = 2) -> Optional[float]:
    """FLOPs of one denoiser evaluation of one particle (FlopCounterMode on a call of n particles)."""
    from torch.utils.flop_counter import FlopCounterMode

    grid = model.schedule.grid(num_steps)
    dev = torch.device(getattr(model, "device", "cpu"))
    x = torch.randn(n, *model.sample_shape, device=dev, dtype=getattr(model, "dtype", torch.float32))
    t = grid.timesteps[num_steps // 2].expand(n).to(dev)
    cond = torch.zeros(n, dtype=torch.int64, device=dev) if getattr(model, "num_prompts", None) else None
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x, t, cond)
    total = counter.get_total_flops()
    return total / n if total else None


def matmul_peak_tflops(device, dtype=torch.float32, size: Optional[int] = None, repeats: int = 5) -> float:
    """Measured dense matmul throughput of the device (TFLOP/s): the roofline the report uses."""
    dev = torch.device(device)
    size = size or (8192 if dev.type == "cuda" else 1024)
    dtype = dtype if dev.type == "cuda" else torch.float32
    a = torch.randn(size, size, device=dev, dtype=dtype)
    b = torch.randn(size, size, device=dev, dtype=dtype)
    a @ b
    _sync(dev)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        _sync(dev)
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e12


def profile(
    model,
    verifier,
    method,
    *,
    n_particles: int,
    num_steps: int,
    batch_size: Optional[int] = None,
    repeats: int = 3,
    warmup: int = 1,
    trace: Optional[str] = None,
    peak_tflops: Optional[float] = None,
    flops: bool = True,
    **search_kwargs,
) -> ProfileReport:
    """Profile ``tts_fast.search`` on any model, verifier, method and particle count.

    Runs ``warmup`` untimed searches (compilation, graph capture), ``repeats`` timed ones (wall
    clock, device synchronised at the end), and one with the device synchronised around each
    stage for the breakdown. ``trace``: write a torch profiler (Chrome) trace of one more run to
    this path. ``peak_tflops``: the roofline to compare with (default: measured matmul peak).

    Args:
        repeats: timed runs, an integer >= 1 (the report's ``seconds`` is their median).
        warmup: untimed runs before them, an integer >= 0.
        trace: a file path or None; its folder is created and checked for writing before any run.
        peak_tflops: a finite number > 0 (TFLOP/s) or None.
        flops: count FLOPs per NFE (one extra model call).

    Raises ValueError naming the argument for any of these out of range, before any search runs.
    """
    import math
    import os

    from ._io import atomic_path, check_writable_dir

    for name, v, low in (("repeats", repeats, 1), ("warmup", warmup, 0)):
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    if peak_tflops is not None and (isinstance(peak_tflops, bool) or not isinstance(peak_tflops, (int, float))
                                    or not math.isfinite(peak_tflops) or peak_tflops <= 0):
        raise ValueError(f"peak_tflops must be a finite number > 0 (TFLOP/s) or None, got {peak_tflops!r}")
    if not isinstance(flops, bool):
        raise ValueError(f"flops must be True or False, got {flops!r}")
    if trace is not None:
        if not isinstance(trace, (str, os.PathLike)) or not str(trace):
            raise ValueError(f"trace must be a file path or None, got {trace!r}")
        if os.path.isdir(trace):
            raise ValueError(f"trace must be a file path, got the folder {trace!r}")
        try:
            check_writable_dir(os.path.dirname(os.path.abspath(trace)))
        except OSError as e:
            raise ValueError(f"trace: {e}") from None
    kw = dict(n_particles=n_particles, num_steps=num_steps, batch_size=batch_size, progress=False, **search_kwargs)
    dev = torch.device(getattr(model, "device", "cpu"))
    for _ in range(warmup):
        search(model, verifier, method, **kw)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    runs = []
    result = None
    for _ in range(repeats):
        _sync(dev)
        t0 = time.perf_counter()
        result = search(model, verifier, method, **kw)
        _sync(dev)
        runs.append(time.perf_counter() - t0)
    memory = int(torch.cuda.max_memory_allocated(dev)) if dev.type == "cuda" else None
    seconds = sorted(runs)[len(runs) // 2]
    staged = search(model, verifier, method, profile=True, **kw)
    stage_names = ("model", "decode", "verifier", "search_ops")
    stages = {k: staged.timings.get(k, 0.0) for k in stage_names}
    stages["host"] = max(0.0, staged.timings["total"] - sum(stages.values()))
    overhead = (stages["search_ops"] + stages["host"]) / staged.timings["total"]
    if trace is not None:
        activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if dev.type == "cuda" else [])
        with torch.profiler.profile(activities=activities) as prof:
            search(model, verifier, method, **kw)
            _sync(dev)
        with atomic_path(trace, ".json") as tmp:
            prof.export_chrome_trace(tmp)
    nfe = result.nfe
    nfe_per_s = nfe.model / seconds
    fpn = model_flops_per_nfe(model, num_steps) if flops else None
    achieved = fpn * nfe_per_s / 1e12 if fpn else None
    if fpn and peak_tflops is None:
        peak_tflops = matmul_peak_tflops(dev, getattr(model, "net_dtype", getattr(model, "dtype", torch.float32)))
    name = method if isinstance(method, str) else getattr(method, "name", type(method).__name__)
    return ProfileReport(
        method=name, n_particles=n_particles, num_steps=num_steps, batch_size=result.rewards.shape[0], device=str(dev),
        seconds=seconds, nfe=nfe, nfe_per_s=nfe_per_s, model_evals_per_s=nfe.model_evaluations / seconds, stages=stages,
        search_overhead=overhead, memory_peak_bytes=memory, flops_per_nfe=fpn, achieved_tflops=achieved,
        peak_tflops=peak_tflops if fpn else None, roofline_fraction=(achieved / peak_tflops) if (achieved and peak_tflops) else None,
        runs=runs,
    )
