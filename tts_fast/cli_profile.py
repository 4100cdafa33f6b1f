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

from ._cli_common import CLIError, check_options, finite_float, key_value, nonnegative_int, positive_float, positive_int, resolve_device

MODELS = ("gmm", "digits", "sd15", "sdxl", "flux")
VERIFIERS = ("cheap", "imagereward", "clip", "aesthetic")
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    from .models.backends import BACKENDS
    from .search.api import METHODS

    p = subparsers.add_parser("profile", help="profile a search: NFE/s, stage seconds, memory, roofline fraction, optional trace",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, choices=MODELS)
    p.add_argument("--weights", default=None, metavar="PATH", help="sd15/sdxl/flux: a local diffusers pipeline folder (default: random weights)")
    p.add_argument("--smoke", action="store_true", help="sd15/sdxl/flux: a tiny network of the family instead of the full size")
    p.add_argument("--method", default="bfs_best", choices=METHODS)
    p.add_argument("--option", type=key_value, action="append", default=[], metavar="KEY=VALUE", help="method option (JSON value), repeatable")
    p.add_argument("--particles", type=positive_int, default=8, metavar="N")
    p.add_argument("--steps", type=positive_int, default=50, metavar="S")
    p.add_argument("--batch-size", type=positive_int, default=1, metavar="B", help="prompt rows searched together (default 1)")
    p.add_argument("--prompt", action="append", default=None, metavar="TEXT", help="prompts (with --weights; repeatable)")
    p.add_argument("--verifier", default="cheap", choices=VERIFIERS,
                   help="sd15/sdxl/flux: 'cheap' (mean brightness of the decoded image) or a reward model (needs --weights and --prompt)")
    p.add_argument("--verifier-weights", default=None, metavar="PATH")
    p.add_argument("--aesthetic-head", default=None, metavar="FILE")
    p.add_argument("--tokenizer", default=None, metavar="PATH")
    p.add_argument("--guidance", type=finite_float, default=None, help="guidance scale (default: the model's)")
    p.add_argument("--backend", default="eager", choices=BACKENDS)
    p.add_argument("--max-batch", type=positive_int, default=None, help="largest network batch in rows")
    p.add_argument("--decode-scale", type=positive_float, default=1.0, help="latent scale of the decodes taken during search")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default=None, choices=sorted(DTYPES), help="network dtype (default fp16 on CUDA, bf16 for FLUX; fp32 on CPU)")
    p.add_argument("--repeats", type=positive_int, default=3)
    p.add_argument("--warmup", type=nonnegative_int, default=1)
    p.add_argument("--trace", default=None, metavar="FILE", help="write a torch profiler (Chrome) trace of one run")
    p.add_argument("--json", default=None, metavar="FILE", help="write the report as JSON")
    p.set_defaults(handler=main)
    return p


def _check_args(args) -> None:
    """Options that would be ignored for this model, refused before any work."""
    diffusion = args.model in ("sd15", "sdxl", "flux")
    if not diffusion:
        given = [f"--{k.replace('_', '-')}" for k in ("weights", "prompt", "verifier_weights", "aesthetic_head", "tokenizer", "guidance",
                                                       "max_batch", "dtype") if getattr(args, k) is not None]
        given += ["--smoke"] if args.smoke else []
        given += [f"--verifier {args.verifier}"] if args.verifier != "cheap" else []
        given += [f"--backend {args.backend}"] if args.backend != "eager" else []
        given += ["--decode-scale"] if args.decode_scale != 1.0 else []
        if given:
            raise CLIError(f"{', '.join(given)}: not an option of --model {args.model} (they apply to sd15, sdxl, flux)")
        return
    if args.weights is not None and args.smoke:
        raise CLIError("--smoke builds a tiny random network; it does not apply with --weights")
    if args.weights is None and args.prompt:
        raise CLIError("--prompt needs --weights (random-weight networks take random prompt embeddings)")
    if args.verifier == "cheap" and any(getattr(args, k) is not None for k in ("verifier_weights", "aesthetic_head", "tokenizer")):
        raise CLIError("--verifier-weights, --aesthetic-head and --tokenizer configure a reward-model --verifier, not 'cheap'")
    if args.aesthetic_head is not None and args.verifier != "aesthetic":
        raise CLIError(f"--aesthetic-head applies to --verifier aesthetic, not {args.verifier}")
    if args.tokenizer is not None and args.verifier != "imagereward":
        raise CLIError(f"--tokenizer applies to --verifier imagereward, not {args.verifier}")


def _setup(args, device):
    """(model, verifier) for the chosen model."""
    import torch

    import tts_fast as tts

    b = args.batch_size
    if args.model == "gmm":
        model = tts.models.GaussianMixture([[-2.0, 0.0], [2.0, 0.0]], [0.5, 0.5], [0.95, 0.05], dtype=torch.float32, device=device)
        return model, tts.verifiers.GaussianReward([2.0, 0.0], 1.0)
    if args.model == "digits":
        return tts.zoo.digits(device), tts.zoo.digits_verifier([d % 10 for d in range(b)], device=device)
    if args.dtype is None:
        dtype = torch.float32 if device.type == "cpu" else (torch.bfloat16 if args.model == "flux" else torch.float16)
    else:
        dtype = getattr(torch, DTYPES[args.dtype])
    kw = dict(guidance_scale=args.guidance, backend=args.backend, max_batch=args.max_batch, decode_scale=args.decode_scale)
    if args.weights is None:
        if args.verifier != "cheap":
            raise CLIError("reward-model verifiers need real prompts: give --weights PATH and --prompt TEXT")
        from .models import architectures

        model = architectures.random_model(args.model, b, smoke=args.smoke, device=device, dtype=dtype, **kw)
    else:
        from .runs import family_diffusers

        prompts = args.prompt or []
        if len(prompts) != b:
            raise CLIError(f"--weights needs --prompt given {b} time(s) (one per prompt row of --batch-size)")
        pipe = family_diffusers.load_pipeline(args, device, dtype)
        model = tts.models.DiffusersModel(pipe, prompts, **kw)
        if args.verifier != "cheap":
            return model, family_diffusers.image_verifier(args, prompts, device)
    cheap = tts.verifiers.Function(lambda img: img.float().mean(dim=tuple(range(1, img.dim()))), differentiable=True)
    return model, cheap


def main(args) -> int:
    """Handler of ``tts-fast profile``."""
    from ._io import atomic_write_json
    from .profiling import profile

    _check_args(args)
    options = check_options(args.method, args.option, reserved=("repeats", "warmup", "trace", "peak_tflops", "flops"))
    device = resolve_device(args.device)
    try:
        model, verifier = _setup(args, device)
        report = profile(model, verifier, args.method, n_particles=args.particles, num_steps=args.steps, batch_size=args.batch_size,
                         repeats=args.repeats, warmup=args.warmup, trace=args.trace, **options)
    except (ValueError, ImportError, OSError) as e:
        raise CLIError(str(e)) from None
    print(report.summary())
    if args.json:
        atomic_write_json(args.json, dict(report.to_dict(), model=args.model, backend=args.backend, smoke=args.smoke,
                                          weights=args.weights))
        print(f"wrote {args.json}")
    if args.trace:
        print(f"wrote {args.trace}")
    return 0

