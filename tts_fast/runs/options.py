"""The command-line options of ``tts-fast run`` and the :class:`~tts_fast.runs.config.RunConfig` they make.

The one place that knows the flags' names: :func:`add_arguments` declares them (``tts-fast run``
and :func:`tts_fast.distributed.ray.run` parse with it), :func:`config_of` turns the parsed
namespace into the frozen config that everything after reads, and :func:`check_method_options`
checks ``--option KEY=VALUE`` pairs against the method (``tts-fast profile`` uses it too).
"""

from __future__ import annotations

import argparse
import dataclasses

from .. import _threads as threads
from .._arg_types import key_value, nonnegative_float, nonnegative_int, positive_float, positive_int
from .._user_errors import UserError
from .config import DTYPES, ModelConfig, RunConfig
from .families import FAMILIES

# keyword arguments of tts_fast.search that have their own flags: not method options
SEARCH_ARGUMENTS = ("model", "verifier", "method", "n_particles", "num_steps", "batch_size", "seed", "local_verifier", "budget",
                    "progress", "profile")


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add every option of ``tts-fast run`` to the parser ``p``; returns ``p``."""
    from ..models.backends import BACKENDS
    from ..search.api import METHODS

    verifiers = list(dict.fromkeys(v for f in FAMILIES.values() for v in f.verifiers))
    p.add_argument("--model", required=True, choices=sorted(FAMILIES),
                   help="sd15/sdxl/flux: a diffusers pipeline in --weights; digits: the built-in digits model (prompts are "
                   "target digits 0..9); gmm: the analytic 2-D Gaussian mixture (prompts are reward centres, JSON [x, y])")
    p.add_argument("--weights", default=None,
                   help="sd15/sdxl/flux: local folder of the diffusers pipeline (model_index.json, unet/ or transformer/, vae/, ...); "
                   "digits: a zoo weights folder (default: the shipped weights)")
    p.add_argument("--prompt", action="append", default=[], metavar="TEXT", help="a prompt (repeat for several)")
    p.add_argument("--prompts-file", default=None, metavar="FILE",
                   help="one prompt per line, or (FILE.jsonl) one JSON object per line: {\"prompt\": ..., \"seed\": S, \"options\": {...}} "
                   "with seed and options optional (added after --prompt)")
    p.add_argument("--method", default="bfs_best", choices=list(METHODS), help="search method (default bfs_best)")
    p.add_argument("--particles", type=positive_int, default=4, metavar="N", help="particles / samples per prompt (default 4)")
    p.add_argument("--steps", type=positive_int, default=50, metavar="S", help="denoising steps (default 50)")
    p.add_argument("--budget", type=positive_int, default=None, help="cap on model NFE per search call (default: none)")
    p.add_argument("--option", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="method option (JSON value), e.g. --option lam=10 --option temperature=increase (repeat)")
    p.add_argument("--verifier", default=None, choices=verifiers,
                   help="reward: imagereward/clip/aesthetic for sd15/sdxl/flux (required); digits (default) for digits; "
                   "gaussian (default) for gmm")
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
    p.add_argument("--device", default="auto",
                   help="'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:1', ...; under torchrun 'auto' and 'cuda' mean cuda:LOCAL_RANK")
    p.add_argument("--dtype", default=None, choices=sorted(DTYPES), help="network dtype (default fp16 on CUDA for SD/SDXL, bf16 for FLUX; fp32 on CPU)")
    p.add_argument("--backend", default="eager", choices=BACKENDS, help="denoiser backend (default eager)")
    p.add_argument("--max-batch", type=positive_int, default=None, help="largest network batch in rows (memory cap)")
    p.add_argument("--decode-scale", type=positive_float, default=1.0,
                   help="latent scale (> 0) of the VAE decodes taken during search (saved images are always full)")
    threads.add_argument(p)
    p.add_argument("--out", required=True, help="output folder (created; records inside are resumed)")
    p.add_argument("--overwrite", action="store_true", help="redo prompts whose records have different settings")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--dist-timeout", type=positive_float, default=24.0, metavar="HOURS",
                   help="torchrun: how long a rank may wait for the others (e.g. at the end, for the slowest rank; default 24)")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run on a Ray cluster instead: 'auto' (the cluster this machine belongs to), 'local' (start one here) or ray://HOST:PORT")
    p.add_argument("--ray-workers", type=positive_int, default=None, metavar="W",
                   help="Ray: workers (actors, one model + verifier each; default one per GPU of the cluster, else one per CPU)")
    return p


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError(message)


def build_parser(raise_errors: bool = False) -> argparse.ArgumentParser:
    """A standalone parser of the ``tts-fast run`` options (without the subcommand word); with
    ``raise_errors`` a bad option raises UserError instead of exiting (for Python callers)."""
    return add_arguments((_RaisingParser if raise_errors else argparse.ArgumentParser)(prog="tts-fast run"))


def model_config_of(args: argparse.Namespace) -> ModelConfig:
    """The :class:`ModelConfig` of parsed options (``--model`` and its family's flags; flags a command
    does not have stay at their defaults)."""
    names = [f.name for f in dataclasses.fields(ModelConfig) if f.name != "name"]
    return ModelConfig(args.model, **{f: getattr(args, f) for f in names if hasattr(args, f)})


def config_of(args: argparse.Namespace) -> RunConfig:
    """The :class:`RunConfig` of options parsed by :func:`add_arguments`: the run's one description."""
    return RunConfig(
        model=model_config_of(args), out=args.out, prompts=tuple(args.prompt), prompts_file=args.prompts_file, method=args.method,
        options=tuple(args.option), particles=args.particles, steps=args.steps, budget=args.budget, seed=args.seed,
        prompt_batch=args.prompt_batch, device=args.device, threads=args.threads, overwrite=args.overwrite,
        progress=not args.no_progress, dist_timeout=args.dist_timeout, ray=args.ray, ray_workers=args.ray_workers,
    )


def parse_config(argv) -> RunConfig:
    """``tts-fast run`` options (a list of strings, without ``run``) -> RunConfig; a bad one raises UserError."""
    return config_of(build_parser(raise_errors=True).parse_args(list(argv)))


def check_method_options(method: str, pairs, reserved=()) -> dict:
    """``--option KEY=VALUE`` pairs -> the method's keyword options, checked before any work.

    Refuses a key given twice (the last would win silently), keys that are search arguments with
    their own flags (``reserved`` adds more), and names or values the method refuses (its
    dataclasses validate them; the same error ``tts_fast.search`` would raise after loading).
    """
    from ..search.api import resolve_method

    options = {}
    for k, v in pairs:
        if k in options:
            raise UserError(f"--option {k} is given twice")
        if k in SEARCH_ARGUMENTS or k in reserved:
            raise UserError(f"--option {k}: {k} is not a method option (it has its own flag, or is set by the command)")
        options[k] = v
    try:
        resolve_method(method, dict(options))
    except (ValueError, TypeError) as e:
        raise UserError(f"--option: {e}") from None
    return options
