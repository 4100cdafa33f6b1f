"""One process's share of a run: the model and verifier loaded once, then group after group.

Each group's search runs with the group's seed; its PNGs and then its JSON records are written
atomically, so an interrupted worker leaves whole files of finished prompts only. A search that
raises (out of memory after chunking, non-finite rewards, ...) leaves an error record per prompt
of the group, and the worker goes on with the next group.
"""

from __future__ import annotations

import os
import socket
import time
import traceback

from .._io import atomic_write_bytes, atomic_write_json
from .._png import encode
from .dfs_reference import load_or_fit
from .records import image_name, record_path


class Worker:
    """Runs groups of ``job`` on ``device``.

    Args:
        job: the :class:`~tts_fast.runs.job.Job`.
        device: torch.device of the model and verifier.
        rank, world_size: this worker's place (recorded under "run"; results never depend on it).
        launcher: 'single', 'torchrun' or 'ray' (recorded).
        progress: show the search's own per-step bar.
    """

    def __init__(self, job, device, *, rank: int = 0, world_size: int = 1, launcher: str = "single", progress: bool = False):
        import torch

        import tts_fast as tts

        self.job, self.device, self.progress = job, device, progress
        self.loaded = job.family.load(job.config.model, device)  # the model (and, for pipelines, nothing else yet)
        # DFS thresholds from the prompt set's reference (None unless the run uses one)
        self.dfs_reference = load_or_fit(job, self.loaded)
        self.run_info = {"rank": rank, "world_size": world_size, "launcher": launcher, "host": socket.gethostname(), "pid": os.getpid(),
                         "device": str(device), "threads": torch.get_num_threads(), "backend": job.config.model.backend,
                         "torch": torch.__version__, "tts_fast": tts.__version__}

    def run_group(self, group) -> dict:
        """Search one group and write its files. Returns {'group', 'prompts', 'failed', 'nfe', 'seconds'}
        (model NFE spent; seconds of the search, the decodes and the writes)."""
        import torch

        import tts_fast as tts

        job, config = self.job, self.job.config
        texts = [job.specs[i].text for i in group.members]
        t0 = time.perf_counter()
        model, verifier = self.loaded.prepare(texts)  # a UserError here (a reward model that cannot load) stops the run
        try:
            options = group.options if self.dfs_reference is None else {**group.options, **self.dfs_reference.options()}
            result = tts.search(model, verifier, config.method, n_particles=config.particles, num_steps=config.steps,
                                batch_size=len(texts), seed=group.seed, budget=config.budget, progress=self.progress, **options)
            pixels = self.loaded.pixels(result)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
        except Exception as e:  # noqa: BLE001 -- any failure of one group is recorded, and the run goes on
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            seconds, tb = time.perf_counter() - t0, traceback.format_exc()
            for i in group.members:
                rec = self._base(group, i, "error", seconds)
                rec["error"] = {"type": type(e).__name__, "message": str(e)}
                rec["run"]["traceback"] = tb
                atomic_write_json(record_path(job.out, i), _ordered(rec))
            return {"group": group.index, "prompts": len(texts), "failed": len(texts), "nfe": 0, "seconds": seconds}
        nfe = result.nfe
        group_nfe = {"model": nfe.model, "model_grad": nfe.model_grad, "verifier": nfe.verifier, "verifier_grad": nfe.verifier_grad,
                     "cfg": nfe.cfg, "model_evaluations": nfe.model_evaluations}
        images = [] if pixels is None else [encode(p) for p in pixels]
        for b, i in enumerate(group.members):
            if images:
                atomic_write_bytes(os.path.join(job.out, image_name(i)), images[b])
        seconds = time.perf_counter() - t0
        for b, i in enumerate(group.members):
            rec = self._base(group, i, "ok", seconds)
            rec.update({
                "image": image_name(i) if images else None,
                "reward": float(result.rewards[b]),
                "particle_rewards": None if result.particle_rewards is None else [float(r) for r in result.particle_rewards[b]],
                "sample": self.loaded.sample(result, b),
                "nfe_model": int(result.nfe_per_prompt[b]),
            })
            rec["group"]["nfe"] = group_nfe
            rec["run"]["timings"] = result.timings
            atomic_write_json(record_path(job.out, i), _ordered(rec))
        return {"group": group.index, "prompts": len(texts), "failed": 0, "nfe": nfe.model, "seconds": seconds}

    def _base(self, group, i: int, status: str, seconds: float) -> dict:
        job = self.job
        rec = {"index": i, "prompt": job.specs[i].text, "status": status, "seed": group.seed, "options": group.options,
               "group": {"index": group.index, "prompts": list(group.members), "seed": group.seed},
               "settings": job.settings, "run": dict(self.run_info, seconds=seconds)}
        if self.dfs_reference is not None:
            rec["dfs_reference"] = {"file": "dfs_reference.json", "levels": self.dfs_reference.levels,
                                    "thresholds": self.dfs_reference.thresholds}
        return rec


_ORDER = ("index", "prompt", "status", "error", "image", "reward", "particle_rewards", "sample", "nfe_model", "seed", "options",
          "dfs_reference", "group", "settings", "run")


def _ordered(rec: dict) -> dict:
    """The record's keys in a fixed, readable order."""
    return {k: rec[k] for k in _ORDER if k in rec} | {k: v for k, v in rec.items() if k not in _ORDER}
