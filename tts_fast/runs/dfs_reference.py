"""``tts-fast run --method dfs``: thresholds from the prompt set's DFS reference, fitted once per run.

When a run searches with DFS and sets none of DFS's threshold options (threshold, quantile,
calibrate) for any prompt, the worker fits a :class:`~tts_fast.search.calibration.DFSReference`
before its first group (runs with local search, or with per-prompt options, keep DFS's own default):
the plain sampler over the reference prompts (all of them up to
:data:`MAX_PROMPTS`, else a sample of that many drawn with ``--seed``), in groups of
``--prompt-batch`` with seeds ``--seed + g``, ``--particles`` walkers, pooled at q =
:data:`QUANTILE`. Every group is then searched with the reference's per-level thresholds, so a
prompt set searched one prompt per call still gives its hard prompts the compute. The reference
is a function of the run's settings and prompts only -- every rank fits the same one -- and it is
written to ``--out/dfs_reference.json`` (atomically) so that a resumed run, or another rank,
loads it. Give ``--option calibrate=0.5`` for DFS's per-call calibration instead.
"""

from __future__ import annotations

import json
import os

import torch

from .._user_errors import UserError
from .._io import atomic_write_json

REFERENCE_FILE = "dfs_reference.json"
MAX_PROMPTS = 64
QUANTILE = 0.5
THRESHOLD_OPTIONS = ("threshold", "quantile", "calibrate")


def wanted(job) -> bool:
    """Whether the run uses a reference: DFS without local search, no threshold option anywhere, every
    group on the base options (per-prompt options would need references of their own)."""
    from ..search.api import resolve_method

    if job.config.method != "dfs":
        return False
    base = dict(job.config.options)
    _, local = resolve_method("dfs", base)
    return local is None and not any(k in base for k in THRESHOLD_OPTIONS) and all(g.options == base for g in job.groups)


def reference_prompts(n: int, seed: int) -> list:
    """Indices of the reference prompts: all n up to MAX_PROMPTS, else MAX_PROMPTS drawn with ``seed`` (sorted)."""
    if n <= MAX_PROMPTS:
        return list(range(n))
    g = torch.Generator().manual_seed(int(seed))
    return sorted(torch.randperm(n, generator=g)[:MAX_PROMPTS].tolist())


def load_or_fit(job, loaded):
    """The run's DFSReference (loaded from --out when it was fitted with these settings), or None when
    the run does not use one (:func:`wanted`). ``loaded``: the worker's loaded model family
    (:class:`~tts_fast.runs.families.LoadedModel`), whose ``prepare`` gives a model and verifier."""
    if not wanted(job):
        return None
    from ..search.api import resolve_method
    from ..search.calibration import DFSReference, fit_dfs_reference

    config = job.config
    chosen = reference_prompts(len(job.specs), config.seed)
    key = {"settings": job.settings, "prompts": [job.specs[i].text for i in chosen], "quantile": QUANTILE}
    path = os.path.join(job.out, REFERENCE_FILE)
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except (OSError, ValueError) as e:
            raise UserError(f"cannot read {path}: {e}; remove it to fit the DFS reference again") from None
        if d.get("meta", {}).get("key") == key:
            return DFSReference.from_dict(d)
        if not config.overwrite:
            raise UserError(f"{path} was fitted for other settings or prompts; use another --out, or --overwrite")
    k = config.prompt_batch
    groups = [chosen[j:j + k] for j in range(0, len(chosen), k)]
    sources = ((*loaded.prepare([job.specs[i].text for i in idx]), config.seed + g) for g, idx in enumerate(groups))
    ref = fit_dfs_reference(sources, n_particles=config.particles, num_steps=config.steps, quantile=QUANTILE,
                            dfs=resolve_method("dfs", dict(config.options))[0], meta={"key": key, "prompts": chosen})
    atomic_write_json(path, ref.to_dict())
    return ref
