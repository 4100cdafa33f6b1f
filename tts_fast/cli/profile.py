"""``tts-fast profile``: where the time of a search goes, for any model, method and particle count.

    tts-fast profile --model digits --method bfs_best --particles 8
    tts-fast profile --model sd15 --method bfs_best --particles 8 --device cuda --backend compile --trace sd15.json
    tts-fast profile --model sdxl --smoke                     # a tiny network of the family (CPU)
    tts-fast profile --model flux --weights /path/FLUX.1-dev --prompt "a cat" --verifier imagereward --verifier-weights ImageReward.pt

Models: 'gmm' (the analytic Gaussian mixture), 'digits' (the built-in model), and 'sd15', 'sdxl',
'flux': the published architectures with random weights (speed does not depend on the weights;
nothing is downloaded) or a local pipeline folder with --weights. Prints NFE/s, seconds per stage,
the search overhead, peak memory and the fraction of the measured matmul roofline; --json writes
the report, --trace a torch profiler (Chrome) trace.
"""

from __future__ import annotations

import argparse
import textwrap

from .. import _threads as threads
from .._arg_types import key_value, nonnegative_float, nonnegative_int, positive_float, positive_int
from .._user_errors import UserError, user_device

VERIFIERS = ("cheap", "imagereward", "clip", "aesthetic")
RESERVED = ("repeats", "warmup", "trace", "peak_tflops", "flops")  # profile() arguments: not method options


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``profile`` on an argparse subparsers object; the handler is :func:`main`."""
    from ..models.backends import BACKENDS
    from ..runs.config import DTYPES
    from ..runs.families import FAMILIES
    from ..search.api import METHODS

    p = subparsers.add_parser(
        "profile", help="profile a search: NFE/s, seconds per stage, memory, roofline fraction, optional trace",
        description=textwrap.fill(
            "Time one search method on one model and say where the time goes: NFE per second (and model evaluations per "
            "second with classifier-free guidance), seconds per stage with the device synchronised (model, decode, verifier, "
            "search ops, host control), the search overhead, peak device memory, FLOPs per NFE and the fraction of the "
            "measured matmul roofline. Models: gmm (the analytic Gaussian mixture), digits (the built-in model), and sd15, "
            "sdxl, flux: the published architectures with random weights (nothing is downloaded) or a local pipeline "
            "folder given with --weights.", width=88
        ),
        epilog="examples:\n  tts-fast profile --model digits --method bfs_best --particles 8\n"
               "  tts-fast profile --model sd15 --device cuda --backend compile --trace sd15_trace.json\n"
               "  tts-fast profile --model sdxl --smoke",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, choices=list(FAMILIES),
                   help="what to profile: gmm, digits, or the sd15 / sdxl / flux architectures")
    p.add_argument("--weights", default=None, metavar="PATH", help="sd15/sdxl/flux: a local diffusers pipeline folder (default: random weights)")
    p.add_argument("--smoke", action="store_true", help="sd15/sdxl/flux: a tiny network of the family instead of the full size")
    p.add_argument("--method", default="bfs_best", choices=METHODS, help="search method (default bfs_best)")
    p.add_argument("--option", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="a method option with a JSON value, e.g. --option lam=10 (repeat for several)")
    p.add_argument("--particles", type=positive_int, default=8, metavar="N", help="particles per prompt (default 8)")
    p.add_argument("--steps", type=positive_int, default=50, metavar="S", help="denoising steps (default 50)")
    p.add_argument("--batch-size", type=positive_int, default=1, metavar="B", help="prompt rows searched together (default 1)")
    p.add_argument("--prompt", action="append", default=None, metavar="TEXT", help="a prompt, with --weights (repeat for several)")
    p.add_argument("--verifier", default="cheap", choices=VERIFIERS,
                   help="sd15/sdxl/flux: 'cheap' (mean brightness of the decoded image) or a reward model (needs --weights and --prompt)")
    p.add_argument("--verifier-weights", default=None, metavar="PATH", help="the reward model's weights (imagereward: ImageReward.pt; "
                   "clip/aesthetic: a CLIP folder)")
    p.add_argument("--aesthetic-head", default=None, metavar="FILE", help="aesthetic: the LAION aesthetic head's weights")
    p.add_argument("--tokenizer", default=None, metavar="PATH", help="imagereward: a bert-base-uncased tokenizer folder")
    p.add_argument("--guidance", type=nonnegative_float, default=None, help="guidance scale >= 0 (default: the model's)")
    p.add_argument("--backend", default="eager", choices=BACKENDS, help="how the network runs: eager, compile (torch.compile), "
                   "cudagraphs or tensorrt (default eager)")
    p.add_argument("--max-batch", type=positive_int, default=None, metavar="ROWS", help="largest network batch in rows (a memory cap)")
    p.add_argument("--decode-scale", type=positive_float, default=1.0, metavar="SCALE",
                   help="latent scale (> 0) of the image decodes taken during search (default 1)")
    p.add_argument("--device", default="auto", help="'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:1', ...")
    p.add_argument("--dtype", default=None, choices=sorted(DTYPES), help="network dtype (default fp16 on CUDA, bf16 for FLUX; fp32 on CPU)")
    p.add_argument("--repeats", type=positive_int, default=3, help="timed runs; the report gives their median (default 3)")
    p.add_argument("--warmup", type=nonnegative_int, default=1, help="untimed runs before them (default 1)")
    threads.add_argument(p)
    p.add_argument("--trace", default=None, metavar="FILE", help="write a torch profiler (Chrome) trace of one run")
    p.add_argument("--json", default=None, metavar="FILE", help="write the report as JSON")
    p.set_defaults(handler=main)
    return p


def _profile_flags_given(args) -> list:
    """The flags of profile's own that only the pipeline families take (refused for the others)."""
    given = [f"--{k}" for k in ("weights", "prompt") if getattr(args, k) is not None]
    given += ["--smoke"] if args.smoke else []
    given += [f"--verifier {args.verifier}"] if args.verifier != "cheap" else []
    return given


def main(args) -> int:
    """Handler of ``tts-fast profile``: the family's (model, verifier) from the registry, profiled."""
    from .._io import atomic_write_json
    from ..profiling import profile
    from ..runs.families import family_of, refuse_pipeline_options
    from ..runs.options import check_method_options, model_config_of

    model = model_config_of(args)
    family = family_of(model)
    refuse_pipeline_options(model, family, also=_profile_flags_given(args))
    options = check_method_options(args.method, args.option, reserved=RESERVED)
    device = user_device(args.device)
    n_threads = threads.apply(args.threads)
    try:
        net, verifier = family.profile_setup(model, device, batch_size=args.batch_size, smoke=args.smoke, prompts=args.prompt or [])
        report = profile(net, verifier, args.method, n_particles=args.particles, num_steps=args.steps, batch_size=args.batch_size,
                         repeats=args.repeats, warmup=args.warmup, trace=args.trace, **options)
    except (ValueError, ImportError, OSError) as e:
        raise UserError(str(e)) from None
    print(report.summary())
    if args.json:
        atomic_write_json(args.json, dict(report.to_dict(), model=args.model, backend=args.backend, smoke=args.smoke,
                                          weights=args.weights, threads=n_threads))
        print(f"wrote {args.json}")
    if args.trace:
        print(f"wrote {args.trace}")
    return 0
