"""``tts-fast run``: search over a prompt set, one record per prompt, resumable, on 1..k ranks or Ray.

    tts-fast run --model sd15 --weights ./stable-diffusion-v1-5 --prompt "a red cube" --prompt "a cat" \\
        --method bfs_best --particles 8 --steps 50 --verifier imagereward --out runs/sd15
    torchrun --nproc-per-node 8 -m tts_fast run --model sd15 ... --prompts-file drawbench.txt --out runs/sd15
    tts-fast run --model digits --prompts-file digits.txt --out runs/digits     # prompts are target digits
    tts-fast run --ray auto --model sd15 ...                                     # a Ray cluster

For every prompt the run writes, into ``--out``:
- ``NNNNN.png``: the best image (the full VAE decode of the returned latent; digits: 32x32 gray);
- ``NNNNN.json``: the prompt, the settings, the reward of the returned image, the final particles'
  rewards, NFE (model, model_grad, verifier, CFG flag, model evaluations), the seed and options;
  under ``"run"`` what depends on the process (seconds, stage timings, rank, host, device).
Both are written atomically (temporary file + rename), the JSON last, so a record exists only
for a finished prompt. Running the same command again (on any number of ranks) skips prompts whose
record exists with the same settings and whose image is there, and continues with the rest; a
record with different settings is an error (use another --out, or --overwrite). A prompt group
whose search raises gets error records and the run goes on (exit status 1; rerunning retries it).
At the end rank 0 writes summary.json, summary.md, summary.csv and contact_sheet.png. Every option
and every prompt is checked before anything is loaded.

Prompts are searched in groups of ``--prompt-batch`` (default 1) that share one search call;
group g (prompts g*K .. g*K+K-1) uses seed ``--seed + g`` (or its prompts' own seed from a JSONL
file), so results do not depend on resuming or on the number of ranks.
"""

from __future__ import annotations

import argparse
import sys

from ._cli_common import CLIError

# A user error of ``run`` (printed as ``tts-fast run: error: ...``, exit status 2).
RunError = CLIError


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``run`` on an argparse subparsers object; the handler is :func:`main`."""
    from .runs.options import add_arguments

    p = subparsers.add_parser(
        "run",
        help="search over a prompt set (diffusers SD1.5/SDXL/FLUX, the digits or analytic model) and write images + JSON records",
        description=(
            "Run a tts_fast search for each prompt of a set and write the best image and a JSON record (settings, rewards, NFE, "
            "seconds) per prompt into --out, then a summary. Interrupted runs resume where they stopped. Several GPUs: "
            "torchrun --nproc-per-node K -m tts_fast run ...; a Ray cluster: --ray auto."
        ),
    )
    add_arguments(p)
    p.set_defaults(handler=main)
    return p


def main(args) -> int:
    """Handler of ``tts-fast run`` (args from the parser of :func:`add_parser`). Returns the exit status."""
    from .runs.job import prepare

    try:
        job = prepare(args)
        if args.ray is not None:
            from .distributed import ray as on_ray

            return on_ray.execute(job, args.ray, args.ray_workers)
        from .distributed import torchrun

        return torchrun.execute(job)
    except CLIError as e:
        print(f"tts-fast run: error: {e}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    """A ``tts-fast`` parser with only the ``run`` subcommand."""
    parser = argparse.ArgumentParser(prog="tts-fast")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


if __name__ == "__main__":  # python -m tts_fast.cli_run run ...
    ns = build_parser().parse_args()
    sys.exit(ns.handler(ns))
