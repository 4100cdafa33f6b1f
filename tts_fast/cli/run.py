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

from .._user_errors import UserError


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``run`` on an argparse subparsers object; the handler is :func:`main`."""
    from ..runs.options import add_arguments

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
    """Handler of ``tts-fast run`` (args from the parser of :func:`add_parser`). Returns the exit status.

    The options become one frozen :class:`~tts_fast.runs.config.RunConfig`, checked with every prompt
    (:func:`~tts_fast.runs.job.prepare`); the launcher -- one process, torchrun ranks or Ray -- is
    chosen by :func:`tts_fast.distributed.launchers.choose_launcher`.
    """
    from ..distributed.launchers import execute
    from ..runs.job import prepare
    from ..runs.options import config_of

    try:
        return execute(prepare(config_of(args)))
    except UserError as e:
        print(f"tts-fast run: error: {e}", file=sys.stderr)
        return 2
