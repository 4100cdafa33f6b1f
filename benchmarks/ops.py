"""Benchmark of the tts_fast ops against equivalent eager PyTorch composites.

For each op: the compiled kernel (torch.ops.tts_fast.*) and the pure-PyTorch reference
(tts_fast._reference, i.e. what the op would cost written as eager torch code); resample also
against the usual composites (torch.multinomial on softmax weights; cumsum + searchsorted for
systematic). Elementwise ops report achieved bandwidth (bytes the op must move / time) beside the
device's copy bandwidth (x.clone()) measured in the same run at the same size and dtype; on CUDA
over 1, 4, 16 and 64 M elements (rows of 16384 = one SD latent, 4 x 64 x 64). Resample runs at
B=1024 x N=64 per scheme; on CUDA also captured in a CUDA graph (replay time).

Timing: CPU -- time.perf_counter; CUDA -- CUDA events. Warm-up, then the median of many runs.
Writes benchmarks/results/ops_<device>.json atomically (temporary file + os.replace).

    python benchmarks/ops.py [--device cpu|cuda] [--quick] [--sizes 1 4 16 64] [--out PATH]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

import torch

from tts_fast import _reference as ref
from tts_fast import ops
from tts_fast._user_errors import command

HERE = os.path.dirname(os.path.abspath(__file__))


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Timer:
    """Median wall time of fn() in microseconds, after warm-up; CUDA events on a GPU."""

    def __init__(self, device: str, budget_s: float):
        self.device = device
        self.budget_s = budget_s
        self.last_min_us = float("nan")  # fastest run of the last measurement (robust to CPU contention)

    def __call__(self, fn, min_runs: int = 5, max_runs: int = 200) -> float:
        for _ in range(2):
            fn()
        self._sync()
        t0 = time.perf_counter()
        fn()
        self._sync()
        one = max(time.perf_counter() - t0, 1e-7)
        runs = int(min(max_runs, max(min_runs, self.budget_s / one)))
        times = []
        for _ in range(runs):
            if self.device == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                # Keep the device busy (~50 us) so that the host's launch latency of fn is hidden
                # behind it: the events then time the kernels, not Python dispatch.
                torch.cuda._sleep(100_000)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) * 1e3)
            else:
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e6)
        self.last_min_us = min(times)
        return statistics.median(times)

    def graph(self, fn) -> float | None:
        """Median replay time of fn captured in a CUDA graph (None on CPU or if capture fails)."""
        if self.device != "cuda":
            return None
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):
                    fn()
            torch.cuda.current_stream().wait_stream(side)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                fn()
            return self(g.replay, min_runs=50, max_runs=2000)
        except Exception as exc:  # e.g. an op that syncs the host cannot be captured
            print(f"  (graph capture failed: {type(exc).__name__})", file=sys.stderr)
            return None

    def _sync(self):
        if self.device == "cuda":
            torch.cuda.synchronize()


def bench_copy(timer: Timer, numel: int, device: str, dtype=torch.float32) -> float:
    x = torch.randn(numel, device=device).to(dtype)
    us = timer(lambda: x.clone())
    return 2 * x.numel() * x.element_size() / (us * 1e-6) / 1e9


INNER = 16384  # one SD latent (4 x 64 x 64) per row


def elementwise_sizes(device: str, quick: bool, sizes_m=None) -> list[tuple[int, int]]:
    """[(B, inner)] of the elementwise sweep; ``sizes_m``: millions of elements (2**20) per call."""
    if sizes_m:
        return [(max(1, round(m * 2**20 / INNER)), INNER) for m in sizes_m]
    if device == "cuda":
        return [(64, INNER)] if quick else [(64, INNER), (256, INNER), (1024, INNER), (4096, INNER)]  # 1, 4, 16, 64 M
    return [(8, 4096)] if quick else [(256, INNER)]


def bench_elementwise(timer: Timer, device: str, b: int, inner: int, dtypes, copies: list) -> list[dict]:
    """Each op at [b, inner] per dtype, beside the copy bandwidth of the same size and dtype
    (measured here, appended to ``copies``)."""
    rows = []
    alpha, sigma = ref_tables(device)
    lf = torch.randint(0, 500, (b,), device=device)
    lt = lf + torch.randint(0, 400, (b,), device=device)
    for dtype in dtypes:
        copy_gbps = bench_copy(timer, b * inner, device, dtype)
        copies.append(dict(dtype=str(dtype).replace("torch.", ""), numel=b * inner, copy_GBps=round(copy_gbps, 2)))
        print(f"  [{b} x {inner}] {str(dtype).replace('torch.', '')}: copy bandwidth (x.clone()) {copy_gbps:.1f} GB/s")
        x = torch.randn(b, inner, device=device).to(dtype)
        y = torch.randn_like(x)
        z = torch.randn_like(x)
        step = torch.full((b,), 0.01, device=device)
        rng = torch.tensor([1, 0], dtype=torch.int64, device=device)
        es = x.element_size()
        cases = {
            # name: (kernel with in-kernel Philox, eager composite drawing torch.randn_like, bytes moved)
            "renoise": (
                lambda: ops.renoise(x, lf, lt, alpha, sigma, rng=rng),
                lambda: ref.renoise(x, lf, lt, alpha, sigma, noise=torch.randn_like(x)),
                2,
            ),
            "ddim_step": (
                lambda: ops.ddim_step(x, y, lt, lf, alpha, sigma, eta=1.0, rng=rng),
                lambda: ref.ddim_step(x, y, lt, lf, alpha, sigma, 1.0, noise=torch.randn_like(x)),
                3,
            ),
            "langevin_step": (
                lambda: ops.langevin_step(x, y, step, rng=rng),
                lambda: ref.langevin_step(x, y, step, noise=torch.randn_like(x)),
                3,
            ),
            "langevin_step_max_norm": (
                lambda: ops.langevin_step(x, y, step, rng=rng, max_norm=1.0),
                lambda: ref.langevin_step(x, y, step, noise=torch.randn_like(x), max_norm=1.0),
                4,
            ),
        }
        for name, (kernel, composite, passes) in cases.items():
            k_us = timer(kernel)
            k_min = timer.last_min_us
            c_us = timer(composite, min_runs=3, max_runs=50)
            c_min = timer.last_min_us
            # Same op with a given noise tensor: one more tensor read.
            gbps = passes * x.numel() * es / (k_us * 1e-6) / 1e9
            rows.append(
                dict(
                    op=name, dtype=str(dtype).replace("torch.", ""), shape=[b, inner], source="rng",
                    kernel_us=round(k_us, 2), kernel_GBps=round(gbps, 2), copy_GBps=round(copy_gbps, 2),
                    ratio_to_copy=round(gbps / copy_gbps, 3),
                    eager_composite_us=round(c_us, 2), speedup=round(c_us / k_us, 2),
                    kernel_min_us=round(k_min, 2), eager_composite_min_us=round(c_min, 2),
                )
            )
            print(f"  {name:24s} {rows[-1]['dtype']:9s} kernel {k_us:10.1f} us {gbps:7.1f} GB/s "
                  f"({gbps / copy_gbps:5.1%} of copy)  eager {c_us:10.1f} us  x{c_us / k_us:5.1f}")
        k_us = timer(lambda: ops.renoise(x, lf, lt, alpha, sigma, noise=z))
        gbps = 3 * x.numel() * es / (k_us * 1e-6) / 1e9
        c_us = timer(lambda: ref.renoise(x, lf, lt, alpha, sigma, noise=z), min_runs=3, max_runs=50)
        rows.append(dict(op="renoise", dtype=str(dtype).replace("torch.", ""), shape=[b, inner], source="noise",
                         kernel_us=round(k_us, 2), kernel_GBps=round(gbps, 2), copy_GBps=round(copy_gbps, 2),
                         ratio_to_copy=round(gbps / copy_gbps, 3),
                         eager_composite_us=round(c_us, 2), speedup=round(c_us / k_us, 2)))
        print(f"  {'renoise (noise tensor)':24s} {rows[-1]['dtype']:9s} kernel {k_us:10.1f} us {gbps:7.1f} GB/s "
              f"({gbps / copy_gbps:5.1%} of copy)  eager {c_us:10.1f} us  x{c_us / k_us:5.1f}")
    return rows


def ref_tables(device: str):
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    ab = torch.cumprod(1.0 - betas, 0)
    return ab.sqrt().to(device), (1.0 - ab).sqrt().to(device)


def bench_resample(timer: Timer, device: str, b: int, n: int) -> list[dict]:
    rows = []
    lw = (torch.randn(b, n, dtype=torch.float64) * 2).to(device)
    u = torch.rand(b, n, dtype=torch.float64, device=device)
    rng = torch.tensor([3, 0], dtype=torch.int64, device=device)
    lw32 = lw.float()

    def multinomial():
        return torch.multinomial(torch.softmax(lw32, dim=1), n, replacement=True)

    def searchsorted_systematic():
        w = torch.softmax(lw32, dim=1)
        cdf = torch.cumsum(w, dim=1)
        cdf[:, -1] = 1.0
        t = (torch.arange(n, device=device, dtype=torch.float32) + torch.rand(b, 1, device=device)) / n
        return torch.searchsorted(cdf, t).clamp_max(n - 1)

    composites = {"multinomial": multinomial, "systematic": searchsorted_systematic}
    for scheme in ref.SCHEMES:
        row = dict(scheme=scheme, B=b, N=n)
        row["kernel_us"] = round(timer(lambda: ops.resample(lw, u, scheme=scheme)), 2)
        row["kernel_min_us"] = round(timer.last_min_us, 2)
        row["kernel_rng_us"] = round(timer(lambda: ops.resample(lw, rng=rng, scheme=scheme)), 2)
        row["reference_us"] = round(timer(lambda: ref.resample(lw, u, None, scheme), min_runs=3, max_runs=30), 2)
        row["reference_min_us"] = round(timer.last_min_us, 2)
        g = timer.graph(lambda: ops.resample(lw, u, scheme=scheme))
        if g is not None:
            row["kernel_graph_us"] = round(g, 2)
        if scheme in composites:
            row["torch_composite"] = "torch.multinomial(softmax)" if scheme == "multinomial" else "cumsum+searchsorted"
            row["torch_composite_us"] = round(timer(composites[scheme]), 2)
            row["torch_composite_min_us"] = round(timer.last_min_us, 2)
            g = timer.graph(composites[scheme])
            if g is not None:
                row["torch_composite_graph_us"] = round(g, 2)
        row["speedup_vs_reference"] = round(row["reference_us"] / row["kernel_us"], 1)
        rows.append(row)
        extra = f"  {row['torch_composite']} {row['torch_composite_us']:9.1f} us" if "torch_composite" in row else ""
        graph = f"  graph {row['kernel_graph_us']:7.1f} us" if "kernel_graph_us" in row else ""
        print(f"  {scheme:12s} kernel {row['kernel_us']:9.1f} us (rng {row['kernel_rng_us']:9.1f}){graph}  "
              f"reference {row['reference_us']:10.1f} us  x{row['speedup_vs_reference']:7.1f}{extra}")
    return rows


def bench_reductions(timer: Timer, device: str, b: int, n: int) -> list[dict]:
    lw = (torch.randn(b, n, dtype=torch.float64) * 2).to(device)
    rows = []
    for name, kernel, reference in [
        ("ess", lambda: ops.ess(lw), lambda: ref.ess(lw)),
        ("normalize_log_weights", lambda: ops.normalize_log_weights(lw), lambda: ref.normalize_log_weights(lw)),
    ]:
        k = timer(kernel)
        k_min = timer.last_min_us
        r = timer(reference)
        rows.append(dict(op=name, B=b, N=n, kernel_us=round(k, 2), reference_us=round(r, 2), speedup=round(r / k, 2),
                         kernel_min_us=round(k_min, 2), reference_min_us=round(timer.last_min_us, 2)))
        print(f"  {name:22s} kernel {k:9.1f} us  reference {r:9.1f} us  x{r / k:5.1f}")
    return rows


def _write(out: str, result: dict) -> None:
    """Atomically (temporary file + os.replace), so a reader never sees half a file."""
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    os.replace(tmp, out)


@command("python benchmarks/ops.py")
def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="small sizes and short budgets (smoke test)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    parser.add_argument("--sizes", type=float, nargs="+", default=None,
                        help="elementwise sizes in millions (2**20) of elements (default: cuda 1 4 16 64; cpu one size)")
    parser.add_argument("--out", default=None, help="output JSON (default benchmarks/results/ops_<device>.json)")
    args = parser.parse_args(argv)
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda needs a CUDA device")
    timer = Timer(device, budget_s=0.05 if args.quick else 0.5)
    dtypes = [torch.float32, torch.float16] if device == "cuda" else [torch.float32]
    sizes = elementwise_sizes(device, args.quick, args.sizes)
    print(f"tts_fast ops benchmark on {device} ({torch.cuda.get_device_name() if device == 'cuda' else _cpu_name()}), "
          f"backend {ops.backend(device)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    copies, elementwise = [], []
    result = {
        "device": device,
        "device_name": torch.cuda.get_device_name() if device == "cuda" else _cpu_name(),
        "cpu_threads": torch.get_num_threads(),
        # Other work on the machine skews CPU timings: record the load when the run started.
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "torch_version": str(torch.__version__),
        "cuda_version": torch.version.cuda,
        "backend": ops.backend(device),
        "build_info": ops.build_info(),
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "timing": "CUDA events" if device == "cuda" else "time.perf_counter",
        "statistic": "median (and *_min_us: fastest run)",
        "elementwise_sizes": [list(s) for s in sizes],
        "copy": copies,
        "elementwise": elementwise,
    }
    out = args.out or os.path.join(HERE, "results", f"ops_{device}.json")
    for b_elem, inner in sizes:
        elementwise += bench_elementwise(timer, device, b_elem, inner, dtypes, copies)
        _write(out, result)  # as it goes: a run cut short keeps what it measured
    # the copy bandwidth of the largest float32 size: the device's streaming ceiling
    result["copy_bandwidth_GBps"] = max((c for c in copies if c["dtype"] == "float32"), key=lambda c: c["numel"])["copy_GBps"]
    result["resample"] = bench_resample(timer, device, 64 if args.quick else 1024, 64)
    _write(out, result)
    result["reductions"] = bench_reductions(timer, device, 64 if args.quick else 1024, 64)
    result["complete"] = True
    _write(out, result)
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    sys.exit(main())
