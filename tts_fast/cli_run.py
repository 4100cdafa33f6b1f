"""``tts-fast run``: search on a real text-to-image model, one record per prompt, resumable.

    tts-fast run --model sd15 --weights ./stable-diffusion-v1-5 --prompt "a red cube" --prompt "a cat" \\
        --method bfs_best --particles 8 --steps 50 --verifier imagereward --out runs/sd15

For every prompt the run writes, into ``--out``:
- ``NNNNN.png``: the best image (the full VAE decode of the returned latent);
- ``NNNNN.json``: the prompt, the settings, the reward of the returned image, the final particles'
  rewards, NFE (model, model_grad, verifier, CFG flag, model evaluations), seconds and per-stage
  timings, the seed.
Both are written atomically (temporary file + rename), the JSON last, so a record exists only
for a finished prompt. Running the same command again skips prompts whose record exists with the
same settings and whose image is there, and continues with the rest (a deleted or clobbered image
is made again); a record with different settings is an error (use another --out, or --overwrite).
Every option is checked before anything is loaded.

Prompts are searched in groups of ``--prompt-batch`` (default 1) that share one search call;
group g (prompts g*K .. g*K+K-1) uses seed ``--seed + g``, so a resumed run gives the same images
as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time

from ._cli_common import CLIError, check_options, key_value, nonnegative_float, nonnegative_int, positive_float, positive_int, resolve_device
from .models.backends import BACKENDS

MODELS = {"sd15": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline", "flux": "FluxPipeline"}
VERIFIERS = ("imagereward", "clip", "aesthetic")
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


# A user error of ``run`` (printed as ``tts-fast run: error: ...``, exit status 2).
RunError = CLIError

def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``run`` on an argparse subparsers object; the handler is :func:`main`."""
    from .search.api import METHODS

    p = subparsers.add_parser(
        "run",
        help="search on a diffusers text-to-image model (SD1.5, SDXL, FLUX) and write images + JSON records",
        description=(
            "Run a tts_fast search on a stock diffusers pipeline loaded from local weights, for each prompt, and write "
            "the best image and a JSON record (settings, rewards, NFE, seconds) per prompt into --out. "
            "Interrupted runs resume where they stopped."
        ),
    )
    p.add_argument("--model", required=True, choices=sorted(MODELS), help="pipeline family of --weights")
    p.add_argument("--weights", required=True, help="local folder of the diffusers pipeline (model_index.json, unet/ or transformer/, vae/, ...)")
    p.add_argument("--prompt", action="append", default=[], metavar="TEXT", help="a prompt (repeat for several)")
    p.add_argument("--prompts-file", default=None, metavar="FILE", help="a text file with one prompt per line (added after --prompt)")
    p.add_argument("--method", default="bfs_best", choices=list(METHODS), help="search method (default bfs_best)")
    p.add_argument("--particles", type=positive_int, default=4, metavar="N", help="particles / samples per prompt (default 4)")
    p.add_argument("--steps", type=positive_int, default=50, metavar="S", help="denoising steps (default 50)")
    p.add_argument("--budget", type=positive_int, default=None, help="cap on model NFE per search call (default: none)")
    p.add_argument("--option", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="method option (JSON value), e.g. --option lam=10 --option temperature=increase (repeat)")
    p.add_argument("--verifier", required=True, choices=VERIFIERS, help="reward model")
    p.add_argument("--verifier-weights", default=None, metavar="PATH",
                   help="imagereward: ImageReward.pt (default ~/.cache/ImageReward/ImageReward.pt); clip/aesthetic: CLIP folder or cached id "
                   "(default openai/clip-vit-large-patch14)")
    p.add_argument("--aesthetic-head", default=None, metavar="FILE", help="aesthetic: the LAION head weights (default ~/.cache/tts_fast/sac+logos+ava1-l14-linearMSE.pth)")
    p.add_argument("--tokenizer", default=None, metavar="PATH", help="imagereward: bert-base-uncased tokenizer folder (default: from the HF cache)")
    p.add_argument("--guidance", type=nonnegative_float, default=None,
                   help="guidance scale >= 0 (SD/SDXL: CFG, default 7.5 / 5.0, <= 1 turns it off; FLUX: distilled guidance, default 3.5)")
    p.add_argument("--negative-prompt", default=None, help="negative prompt for all prompts (SD/SDXL)")
    p.add_argument("--height", type=positive_int, default=None, help="image height (default: the model's)")
    p.add_argument("--width", type=positive_int, default=None, help="image width (default: the model's)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="base seed >= 0; prompt group g uses seed + g (default 0)")
    p.add_argument("--prompt-batch", type=positive_int, default=1, metavar="K", help="prompts searched together in one call (default 1)")
    p.add_argument("--device", default="auto", help="'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:1', ...")
    p.add_argument("--dtype", default=None, choices=sorted(DTYPES), help="network dtype (default fp16 on CUDA for SD/SDXL, bf16 for FLUX; fp32 on CPU)")
    p.add_argument("--backend", default="eager", choices=BACKENDS, help="denoiser backend (default eager)")
    p.add_argument("--max-batch", type=positive_int, default=None, help="largest network batch in rows (memory cap)")
    p.add_argument("--decode-scale", type=positive_float, default=1.0,
                   help="latent scale (> 0) of the VAE decodes taken during search (saved images are always full)")
    p.add_argument("--out", required=True, help="output folder (created; records inside are resumed)")
    p.add_argument("--overwrite", action="store_true", help="redo prompts whose records have different settings")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=main)
    return p


# ----------------------------------------------------------------------------------------------


def _prompts(args) -> list[str]:
    prompts = list(args.prompt)
    if args.prompts_file:
        try:
            with open(args.prompts_file, encoding="utf-8") as f:
                prompts += [ln.strip() for ln in f if ln.strip()]
        except OSError as e:
            raise RunError(f"cannot read --prompts-file: {e}") from None
    if not prompts:
        raise RunError("no prompts: give --prompt TEXT (repeatable) or --prompts-file FILE")
    return prompts


def settings_of(args, prompts_total: int) -> dict:
    """What a record must match to be resumed (everything that changes the result)."""
    return {
        "model": args.model,
        "weights": os.path.abspath(args.weights),
        "method": args.method,
        "options": dict(args.option),
        "particles": args.particles,
        "steps": args.steps,
        "budget": args.budget,
        "verifier": args.verifier,
        "verifier_weights": args.verifier_weights,
        "aesthetic_head": args.aesthetic_head,
        "guidance": args.guidance,
        "negative_prompt": args.negative_prompt,
        "height": args.height,
        "width": args.width,
        "seed": args.seed,
        "prompt_batch": args.prompt_batch,
        "dtype": args.dtype,
        "decode_scale": args.decode_scale,
    }


def _record_path(out: str, i: int) -> str:
    return os.path.join(out, f"{i:05d}.json")


def _image_path(out: str, i: int) -> str:
    return os.path.join(out, f"{i:05d}.png")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_png(path: str) -> bool:
    """A file that starts as a PNG (a deleted or clobbered image is redone on resume)."""
    try:
        with open(path, "rb") as f:
            return f.read(8) == _PNG_SIGNATURE
    except OSError:
        return False


def _done(out: str, i: int, prompt: str, settings: dict, overwrite: bool) -> bool:
    """Whether prompt i has a record of this run *and* its image; a record of another run is an error."""
    path = _record_path(out, i)
    if not os.path.isfile(path):
        return False
    try:
        with open(path, encoding="utf-8") as f:
            rec = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return False  # unreadable: redo
    if not isinstance(rec, dict):
        return False
    if rec.get("prompt") == prompt and rec.get("settings") == settings:
        return _is_png(_image_path(out, i))
    if overwrite:
        return False
    raise RunError(
        f"{path} holds a record of a different run (prompt or settings differ); use another --out, or --overwrite to redo it"
    )


def _load_pipeline(args, device, dtype):
    from ._extras import require

    diffusers = require("diffusers", "diffusers", "tts-fast run")
    cls = getattr(diffusers, MODELS[args.model])
    kw = {"torch_dtype": dtype}
    if args.model == "sd15":
        kw.update(safety_checker=None, requires_safety_checker=False)
    if not os.path.isdir(args.weights):
        raise RunError(f"--weights {args.weights!r} is not a folder: pass a local diffusers pipeline folder (model_index.json, unet/ ...)")
    try:
        pipe = cls.from_pretrained(args.weights, **kw)
    except (OSError, ValueError, TypeError) as e:
        raise RunError(f"cannot load a {MODELS[args.model]} from {args.weights}: {e}") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def _verifier(args, prompts, device):
    import tts_fast as tts

    try:
        if args.verifier == "imagereward":
            return tts.verifiers.ImageReward(prompts, args.verifier_weights, tokenizer=args.tokenizer, device=device)
        if args.verifier == "clip":
            kw = {} if args.verifier_weights is None else {"model": args.verifier_weights}
            return tts.verifiers.CLIPScore(prompts, device=device, **kw)
        kw = {} if args.verifier_weights is None else {"model": args.verifier_weights}
        return tts.verifiers.Aesthetic(args.aesthetic_head, device=device, **kw)
    except (OSError, ImportError, ValueError, TypeError) as e:
        raise RunError(str(e)) from None


def _check_args(args, prompts: list[str]) -> dict:
    """Every option that can be checked without loading anything; returns the method options.

    Runs before any work (no pipeline, verifier or output folder yet), so that a bad option never
    costs a model load, and nothing that would be silently ignored is accepted.
    """
    if not os.path.isdir(args.weights):
        raise RunError(f"--weights {args.weights!r} is not a folder: pass a local diffusers pipeline folder (model_index.json, unet/ ...)")
    if args.verifier_weights is not None and args.verifier == "imagereward" and not os.path.isfile(args.verifier_weights):
        raise RunError(f"--verifier-weights {args.verifier_weights!r} is not a file: imagereward takes the ImageReward.pt checkpoint")
    if args.aesthetic_head is not None:
        if args.verifier != "aesthetic":
            raise RunError(f"--aesthetic-head applies to --verifier aesthetic, not {args.verifier}")
        if not os.path.isfile(args.aesthetic_head):
            raise RunError(f"--aesthetic-head {args.aesthetic_head!r} is not a file")
    if args.tokenizer is not None and args.verifier != "imagereward":
        raise RunError(f"--tokenizer applies to --verifier imagereward (its BERT tokenizer), not {args.verifier}")
    if args.negative_prompt is not None and args.model == "flux":
        raise RunError("--negative-prompt applies to SD/SDXL (FLUX.1 is guidance-distilled)")
    cfg = args.model != "flux" and (args.guidance is None or args.guidance > 1)
    if args.negative_prompt is not None and not cfg:
        raise RunError(f"--negative-prompt needs classifier-free guidance: --guidance {args.guidance} (<= 1) turns it off")
    if args.max_batch is not None and cfg and args.max_batch < 2:
        raise RunError("--max-batch must be >= 2 with classifier-free guidance (a CFG pair is 2 network rows)")
    factor = 16 if args.model == "flux" else 8
    for name in ("height", "width"):
        v = getattr(args, name)
        if v is not None and v % factor:
            raise RunError(f"--{name} {v} must be a multiple of {factor} for {args.model} (the VAE factor{' x 2x2 packing' if factor == 16 else ''})")
    groups = -(-len(prompts) // args.prompt_batch)
    if args.seed + groups - 1 >= 2**63:
        raise RunError(f"--seed {args.seed} is too large: prompt group g uses seed + g, which must stay below 2**63")
    options = check_options(args.method, args.option)
    _probe_search(args, options, min(args.prompt_batch, len(prompts)))
    return options


class _Probed(Exception):
    """Raised by the probe model at its first evaluation: the search accepted every argument."""


def _probe_search(args, options: dict, batch_size: int) -> None:
    """Run ``tts_fast.search``'s own argument checks (method options, budget against the plan's
    cost, ...) on a stand-in model that stops the search at its first evaluation: no work is done,
    and the errors are the ones the real run would raise after loading the model."""
    import torch

    import tts_fast as tts

    from . import schedules

    class Probe(tts.Denoiser):
        schedule = schedules.FlowSchedule() if args.model == "flux" else schedules.ddpm_linear()
        sample_shape = (1,)
        num_prompts = batch_size

        def forward(self, x_t, t, cond):
            raise _Probed

    def stop(x0, cond):
        raise _Probed

    verifier = tts.verifiers.Function(stop, differentiable=True, num_prompts=batch_size)  # the image verifiers are differentiable
    try:
        with torch.no_grad():
            tts.search(Probe(), verifier, args.method, n_particles=args.particles, num_steps=args.steps, batch_size=batch_size,
                       seed=args.seed, budget=args.budget, progress=False, **options)
    except _Probed:
        return
    except (ValueError, TypeError) as e:
        raise RunError(str(e)) from None
    raise RunError("internal error: the probe search finished without evaluating its model")


def _png_bytes(img) -> bytes:
    from PIL import Image

    arr = (img.detach().float().clamp(0, 1) * 255).round().to("cpu").byte().permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def main(args) -> int:
    """Handler of ``tts-fast run`` (args from the parser of :func:`add_parser`). Returns the exit status."""
    try:
        return _run(args)
    except RunError as e:
        print(f"tts-fast run: error: {e}", file=sys.stderr)
        return 2


def _run(args) -> int:
    import torch

    import tts_fast as tts
    from ._io import atomic_write_bytes, atomic_write_json

    prompts = _prompts(args)
    options = _check_args(args, prompts)
    device = resolve_device(args.device)
    if args.dtype is None:
        dtype = torch.float32 if device.type == "cpu" else (torch.bfloat16 if args.model == "flux" else torch.float16)
    else:
        dtype = getattr(torch, DTYPES[args.dtype])
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise RunError(f"cannot create --out {args.out}: {e}") from None
    settings = settings_of(args, len(prompts))
    k = args.prompt_batch
    groups = [list(range(g, min(g + k, len(prompts)))) for g in range(0, len(prompts), k)]
    todo = [(gi, idx) for gi, idx in enumerate(groups) if not all(_done(args.out, i, prompts[i], settings, args.overwrite) for i in idx)]
    skipped = len(prompts) - sum(len(idx) for _, idx in todo)
    if not todo:
        print(f"tts-fast run: all {len(prompts)} prompt(s) already done in {args.out}")
        return 0
    if skipped:
        print(f"tts-fast run: resuming: {skipped} prompt(s) already done, {len(prompts) - skipped} to go")

    pipe = _load_pipeline(args, device, dtype)
    first = [prompts[i] for i in todo[0][1]]
    model_kw = dict(guidance_scale=args.guidance, height=args.height, width=args.width, backend=args.backend, max_batch=args.max_batch,
                    decode_scale=args.decode_scale)
    if args.negative_prompt is not None:
        model_kw["negative_prompt"] = args.negative_prompt
    if args.model == "flux":
        model_kw["max_sequence_length"] = min(512, int(getattr(pipe.tokenizer_2, "model_max_length", 512) or 512)) if getattr(pipe, "tokenizer_2", None) is not None else 512
    try:
        model = tts.models.DiffusersModel(pipe, first, **model_kw)
    except ValueError as e:
        raise RunError(str(e)) from None
    verifier = _verifier(args, first, device)

    for gi, idx in todo:
        group = [prompts[i] for i in idx]
        model.set_prompts(group)
        verifier.set_prompts(group)
        seed = args.seed + gi
        t0 = time.perf_counter()
        try:
            result = tts.search(model, verifier, args.method, n_particles=args.particles, num_steps=args.steps, batch_size=len(group),
                                seed=seed, budget=args.budget, progress=not args.no_progress, **options)
        except (ValueError, TypeError) as e:
            raise RunError(str(e)) from None
        images = model.decode_full(result.latents) if args.decode_scale != 1.0 else result.samples
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
        nfe = result.nfe
        for b, i in enumerate(idx):
            name = os.path.basename(_image_path(args.out, i))
            atomic_write_bytes(os.path.join(args.out, name), _png_bytes(images[b]))
            record = {
                "index": i,
                "prompt": prompts[i],
                "image": name,
                "reward": float(result.rewards[b]),
                "particle_rewards": None if result.particle_rewards is None else [float(r) for r in result.particle_rewards[b]],
                "nfe_model": int(result.nfe_per_prompt[b]),
                "group": {"index": gi, "prompts": idx, "seed": seed, "seconds": seconds,
                          "nfe": {"model": nfe.model, "model_grad": nfe.model_grad, "verifier": nfe.verifier,
                                  "verifier_grad": nfe.verifier_grad, "cfg": nfe.cfg, "model_evaluations": nfe.model_evaluations},
                          "timings": result.timings},
                "settings": settings,
                "environment": {"device": str(device), "dtype": str(dtype), "torch": torch.__version__, "tts_fast": tts.__version__,
                                "backend": args.backend},
            }
            atomic_write_json(_record_path(args.out, i), record)
        print(f"[{idx[0]}-{idx[-1]}] reward {[round(float(r), 4) for r in result.rewards]}  NFE {nfe.model}  {seconds:.1f}s", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tts-fast")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


if __name__ == "__main__":  # python -m tts_fast.cli_run run ...
    ns = build_parser().parse_args()
    sys.exit(ns.handler(ns))
