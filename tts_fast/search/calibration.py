"""DFS thresholds that adapt across a prompt set: a seeded reference pre-pass, kept for every call.

DFS's calibrated threshold (``calibrate=q``) ranks a prompt against the walkers of its own call:
in a batch of easy and hard prompts the hard ones draw the compute, but a prompt searched alone
is compared with itself only, so a prompt set searched one prompt per call (the usual text-to-image
run) gets no adaptivity at all. An absolute threshold would, but it is in the verifier's units.

A *reference* fixes both. Once per prompt set, the plain sampler (DFS's first descent: every walker
straight down, nothing rejected) runs over the set's prompts with a fixed seed, and the rewards of
its x0-predictions at each of DFS's check levels are pooled over every walker of every prompt. The
threshold at check level i is the q-quantile of that pool: a reward a typical prompt's walkers
reach there with probability 1 - q. Every later call, alone or batched, on any rank, checks its
walkers against these same thresholds (DFS's absolute ``threshold``, one value per step), so a
prompt whose walkers fall below what the set's prompts typically reach backtracks and gets more
compute, an easy one passes. Nothing is in the verifier's units (q is a probability), and the
reference depends on the prompt set, the seed and the settings only: never on the number of ranks
or on which prompts a call holds. It is kept as JSON (:meth:`DFSReference.to_dict`), so runs that
resume or shard the set load it instead of computing it again.

Cost: walkers x steps model NFE per reference prompt, once (``nfe`` records it); the calls' own
budgets are unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Optional

import torch

from ._checks import check_float, check_int
from .dfs import DFS
from .engine import Context

FORMAT = "tts_fast.dfs_reference/1"


@dataclass
class DFSReference:
    """Per-check-level reward thresholds for DFS, fitted once on a prompt set.

    Attributes:
        quantile: q in (0, 1): the threshold at a check level is the q-quantile of the reference
            rewards there.
        num_steps: S of the runs it applies to.
        levels: DFS's check levels (step indices), as planned by the DFS settings it was fitted for.
        thresholds: the threshold at each of ``levels`` (reward units, measured, never given).
        rewards_per_level: how many rewards each quantile pools (reference prompts x walkers).
        nfe: model NFE the pre-pass spent.
        meta: what produced it (seeds, walkers, prompts) and, per source, the mean reward of its
            walkers at the last check level (``last_check_mean_reward``: which prompts are hard).
    """

    quantile: float
    num_steps: int
    levels: list
    thresholds: list
    rewards_per_level: int
    nfe: int
    meta: dict = field(default_factory=dict)

    def threshold(self) -> list:
        """DFS's ``threshold`` option: one value per step. Steps without a check carry the last
        check's threshold before them (the first one's before the first check); DFS never reads them."""
        out, k = [], 0
        for i in range(self.num_steps):
            while k + 1 < len(self.levels) and self.levels[k + 1] <= i:
                k += 1
            out.append(float(self.thresholds[k]))
        return out

    def options(self) -> dict:
        """The DFS options that apply this reference: ``threshold`` per step (the whole hook into DFS)."""
        return {"threshold": self.threshold()}

    def to_dict(self) -> dict:
        """A JSON-ready dict (floats as Python floats)."""
        return {"format": FORMAT, "quantile": self.quantile, "num_steps": self.num_steps, "levels": list(self.levels),
                "thresholds": [float(v) for v in self.thresholds], "rewards_per_level": self.rewards_per_level, "nfe": self.nfe,
                "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict) -> "DFSReference":
        """Inverse of :meth:`to_dict`; refuses another format or inconsistent fields."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"not a DFS reference (expected format {FORMAT!r})")
        ref = cls(quantile=d["quantile"], num_steps=d["num_steps"], levels=list(d["levels"]), thresholds=list(d["thresholds"]),
                  rewards_per_level=d["rewards_per_level"], nfe=d["nfe"], meta=dict(d.get("meta", {})))
        if len(ref.levels) != len(ref.thresholds) or not ref.levels or not all(0 <= i < ref.num_steps for i in ref.levels):
            raise ValueError("a DFS reference needs one threshold per check level, with levels inside [0, num_steps)")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in ref.thresholds):
            raise ValueError("a DFS reference's thresholds must be finite numbers")
        return ref


def reference_rewards(model, verifier, *, n_particles: int, num_steps: int, levels: list, seed: int,
                      batch_size: Optional[int] = None) -> tuple:
    """Rewards of the plain sampler's x0-predictions at ``levels``: ([len(levels), rows * n_particles]
    float64, model NFE spent). ``model`` / ``verifier`` hold the prompt rows (as for tts.search).

    The walkers go straight down (DDIM eta = 1, as DFS's default); the sampler's draws come from a
    generator seeded with ``seed``, so the same call gives the same rewards.
    """
    rows = batch_size if batch_size is not None else (getattr(model, "num_prompts", None) or getattr(verifier, "num_prompts", None) or 1)
    grid = model.schedule.grid(num_steps)
    ctx = Context(model, verifier, None, grid, batch_size=rows, n_particles=n_particles, seed=seed, budget=None, progress=None)
    cond = ctx.rows(n_particles)
    out = torch.empty((len(levels), rows * n_particles), dtype=torch.float64, device=ctx.device)
    x = ctx.init_noise(rows * n_particles)
    with torch.no_grad():
        for i in range(num_steps):
            x0_hat = ctx.denoise(x, i, cond)
            if i in levels:
                out[levels.index(i)] = ctx.score(x0_hat, cond).to(torch.float64)
            x = ctx.step(x, x0_hat, i, 1.0)
    ctx.read_checks()
    return out, ctx.counter.nfe.model


def fit_dfs_reference(sources: Iterable, *, n_particles: int, num_steps: int, quantile: float = 0.5,
                      dfs: Optional[DFS] = None, meta: Optional[dict] = None) -> DFSReference:
    """Fit a :class:`DFSReference` on a prompt set.

    Args:
        sources: (model, verifier, seed) per group of reference prompts (a model and verifier
            holding that group's rows, as tts.search takes them); their rewards are pooled.
        n_particles: walkers per prompt in the pre-pass (use the runs' walkers).
        num_steps: S of the runs.
        quantile: q in (0, 1).
        dfs: the DFS settings the reference is for (its check levels; default DFS()).
        meta: stored with the reference (e.g. which prompts, which seed).
    """
    check_int(n_particles, "n_particles", 1)
    check_int(num_steps, "num_steps", 1)
    check_float(quantile, "quantile", 0.0, 1.0, low_open=True)
    if quantile == 1.0:
        raise ValueError("quantile must be < 1: a threshold at the largest reference reward fails almost every check")
    dfs = dfs if dfs is not None else DFS()
    sources = list(sources)
    if not sources:
        raise ValueError("fit_dfs_reference needs at least one (model, verifier, seed) source")
    _, levels, _ = dfs.plan(sources[0][0].schedule.grid(num_steps))
    pooled, nfe = [], 0
    for model, verifier, seed in sources:
        r, spent = reference_rewards(model, verifier, n_particles=n_particles, num_steps=num_steps, levels=levels, seed=seed)
        pooled.append(r.cpu())
        nfe += spent
    r = torch.cat(pooled, dim=1)
    thresholds = torch.quantile(r, quantile, dim=1).tolist()
    # how each source's walkers did at the last check: which prompts of the set are hard, for reports
    last = [float(p[-1].mean()) for p in pooled]
    return DFSReference(quantile=float(quantile), num_steps=num_steps, levels=list(levels), thresholds=thresholds,
                        rewards_per_level=int(r.shape[1]), nfe=int(nfe),
                        meta=dict(meta or {}, n_particles=n_particles, seeds=[int(s) for _, _, s in sources],
                                  last_check_mean_reward=last))
