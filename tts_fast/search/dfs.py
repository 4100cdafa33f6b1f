"""Depth-first search (DFS) with adaptive backtracking.

Zhang et al. 2025, Sec. 4.2. A walker denoises one particle level by level. At each *check level*
i it scores x0_hat(x_i); if the reward falls below the threshold delta_i (and the walker may still
spend compute), the walker backtracks: x_i is re-noised with the exact forward kernel to level
j = i - Delta_T (a fresh noise when j = 0) and denoised again from there. Easy prompts pass their
checks and cost little; hard prompts make walkers backtrack, so compute flows to where it is
needed. When a walker may not backtrack any more, it continues from the best state it has seen at
that level (best-so-far fallback).

Unlike the original code (one particle, absolute hand-tuned thresholds, unbounded buffers keyed by
float scores, restart noise from another RNG stream), tts_fast runs N walkers per prompt for B
prompts in one batch, each at its own level; thresholds are absolute (``threshold``, optionally
shaped per level) and/or relative (``quantile``: the q-quantile of the rewards seen at that level
for that prompt, so nothing needs per-task tuning); ``budget`` (model NFE per prompt) is never
exceeded: a backtrack is taken only if the row can still finish all of its walkers afterwards.
The returned sample per prompt is the best walker's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch

from ._checks import check_choice, check_eta, check_float, check_int
from .local import LocalSearch

THRESHOLD_SCHEDULES = ("constant", "increase")


@dataclass
class DFS:
    """DFS settings.

    Attributes:
        threshold: absolute reward threshold: a check fails when r < threshold_i. A float or a
            sequence of one value per step.
        threshold_schedule: 'constant', or 'increase' (threshold_i = threshold * mean(alpha) /
            alpha_i, the paper's schedule for its penalty thresholds: with a negative threshold it
            is lenient at noisy levels and strict near clean data).
        quantile: relative threshold in (0, 1): a check fails when r is below the q-quantile of
            the rewards seen at that level for that prompt (this attempt included). With both
            thresholds a check fails only when both fail (the quantile caps the rejection rate).
        backtrack: Delta_T, levels to go back on a failed check (default round(0.4 S), at least 1).
        start: first check level (default round(0.5 S)); every: check every k levels from start
            (default round(0.1 S), at least 1). Early x0-predictions say little about the final
            sample, so checks there mostly waste backtracks; these defaults come from a pilot on the
            Gaussian-mixture model (see benchmarks/search_ablation.py), not from the paper, which
            checks at 12..15 of 16 steps with Delta_T = 12 on its maze.
        max_backtracks: per-walker cap (None: only the budget limits backtracking).
        history: rewards kept per level and prompt for the quantile.
        eta: DDIM eta of the sampler.
        local: optional LocalSearch run at every level (joint global + local scaling).
    """

    threshold: Union[None, float, Sequence[float]] = None
    threshold_schedule: str = "constant"
    quantile: Optional[float] = None
    backtrack: Optional[int] = None
    start: Optional[int] = None
    every: Optional[int] = None
    max_backtracks: Optional[int] = 10
    history: int = 256
    eta: float = 1.0
    local: Optional[LocalSearch] = None

    name = "dfs"

    def __post_init__(self):
        if self.threshold is None and self.quantile is None:
            raise ValueError("DFS needs a threshold (absolute reward) or a quantile (relative threshold), or both")
        if self.threshold is not None and not isinstance(self.threshold, (list, tuple)):
            check_float(self.threshold, "threshold")
        check_choice(self.threshold_schedule, "threshold_schedule", THRESHOLD_SCHEDULES)
        if self.quantile is not None:
            check_float(self.quantile, "quantile", 0.0, 1.0, low_open=True)
        for name in ("backtrack", "start"):
            if getattr(self, name) is not None:
                check_int(getattr(self, name), name, 1 if name == "backtrack" else 0)
        if self.every is not None:
            check_int(self.every, "every", 1)
        check_int(self.history, "history", 1)
        if self.max_backtracks is not None:
            check_int(self.max_backtracks, "max_backtracks", 0)
        check_eta(self.eta)

    def plan(self, grid):
        """(Delta_T, check levels, per-step thresholds [S] float64 or None)."""
        s = grid.num_steps
        back = self.backtrack if self.backtrack is not None else max(1, round(0.4 * s))
        start = self.start if self.start is not None else min(round(0.5 * s), s - 1)
        every = self.every if self.every is not None else max(1, round(0.1 * s))
        if start >= s:
            raise ValueError(f"start must be < num_steps={s}, got {start}")
        checks = list(range(start, s, every))
        tau = None
        if self.threshold is not None:
            if isinstance(self.threshold, (list, tuple)):
                if len(self.threshold) != s:
                    raise ValueError(f"threshold must be a float or a sequence of num_steps={s} values, got {len(self.threshold)}")
                tau = torch.tensor(self.threshold, dtype=torch.float64)
            else:
                tau = torch.full((s,), float(self.threshold), dtype=torch.float64)
            if self.threshold_schedule == "increase":
                tau = tau / grid.shape("increase").cpu()
        return back, checks, tau

    def cost(self, ctx) -> Optional[int]:
        """Adaptive: at least N * S * local_steps per prompt; the budget caps the rest."""
        return None

    def run(self, ctx):
        b, n, s = ctx.batch_size, ctx.n_particles, ctx.num_steps
        r_steps = ctx.steps_cost()
        back, checks, tau = self.plan(ctx.grid)
        if self.threshold is None and n < 2:
            # The quantile includes the walker's own reward, so a lone walker never falls below it.
            raise ValueError("DFS with only a quantile threshold compares the walkers of a prompt: use n_particles >= 2 "
                             "or give an absolute threshold")
        if self.max_backtracks is None and ctx.row_budget is None:
            raise ValueError("DFS with max_backtracks=None needs a budget, or it may never stop")
        ctx.check_cost(n * s * r_steps, f"{n} DFS walkers of {s} steps")
        dev = ctx.device
        w = b * n
        rows = ctx.rows(n)
        check_of = torch.full((s,), -1, dtype=torch.int64, device=dev)
        check_of[checks] = torch.arange(len(checks), device=dev)
        tau = None if tau is None else tau.to(dev)
        x = ctx.init_noise(w)
        level = torch.zeros(w, dtype=torch.int64, device=dev)
        done = torch.zeros(w, dtype=torch.bool, device=dev)
        n_back = torch.zeros(w, dtype=torch.int64, device=dev)
        hist = torch.full((b * len(checks), self.history), math.nan, dtype=torch.float64, device=dev)
        hist_count = torch.zeros(b * len(checks), dtype=torch.int64, device=dev)
        best = _Best(len(checks), w, dev)
        final = torch.empty_like(x)
        it = 0
        while True:
            idx = (~done).nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            lv, xr = level[idx], rows[idx]
            xi, x0_hat, aux = ctx.prepare(x[idx], lv, xr)
            reject = torch.zeros(idx.numel(), dtype=torch.bool, device=dev)
            c = (check_of[lv] >= 0).nonzero().squeeze(1)
            if c.numel():
                k = check_of[lv[c]]
                r = ctx.score(x0_hat[c], xr[c]).to(torch.float64)
                key = xr[c] * len(checks) + k
                _append(hist, hist_count, key, r)
                best.update(k, idx[c], r, xi[c], x0_hat[c], aux, c)
                fail = torch.ones_like(r, dtype=torch.bool)
                if tau is not None:
                    fail &= r < tau[lv[c]]
                if self.quantile is not None:
                    fail &= r < torch.nanquantile(hist[key], self.quantile, dim=1)
                allowed = fail & self._may_backtrack(ctx, idx, c, lv, n_back, back, done, level)
                reject[c] = allowed
                fallback = c[fail & ~allowed]
                if fallback.numel():
                    xi, x0_hat, aux = best.restore(check_of[lv[fallback]], idx[fallback], fallback, xi, x0_hat, aux)
                ctx.trace.add(step=it, active=idx.numel(), walkers=idx[c], levels=lv[c], rewards=r, rejected=allowed,
                              fallback=fallback.numel())
            acc = (~reject).nonzero().squeeze(1)
            rej = reject.nonzero().squeeze(1)
            if acc.numel():
                a_idx = idx[acc]
                x_next = ctx.advance(xi[acc], x0_hat[acc], _take(aux, acc), lv[acc], xr[acc], self.eta)
                x[a_idx] = x_next
                level[a_idx] = lv[acc] + 1
                finished = a_idx[level[a_idx] == s]
                final[finished] = x[finished]
                done[finished] = True
            if rej.numel():
                r_idx = idx[rej]
                j = (lv[rej] - back).clamp(min=0)
                # j = 0 restarts from a fresh noise (the run's own generator), else the exact forward kernel.
                moved = ctx.renoise(xi[rej], lv[rej], j)
                fresh = ctx.init_noise(rej.numel())
                x[r_idx] = torch.where(_col(j == 0, moved), fresh, moved)
                level[r_idx] = j
                n_back[r_idx] += 1
            it += 1
        ctx.trace.add(step="final", backtracks=n_back.view(b, n))
        return ctx.finish(final, ctx.score(final, rows, final=True), n)

    def _may_backtrack(self, ctx, idx, c, lv, n_back, back, done, level):
        """Which failing walkers may backtrack: under max_backtracks, and within the row's budget.

        The row must still be able to finish every walker afterwards: spent + committed + extra
        <= budget, where committed counts the remaining levels of all active walkers assuming they
        pass, and a backtrack from level i to j adds i + 1 - j levels. Candidates of a row are
        granted in walker order while the slack lasts.
        """
        walkers = idx[c]
        ok = torch.ones(c.numel(), dtype=torch.bool, device=idx.device)
        if self.max_backtracks is not None:
            ok &= n_back[walkers] < self.max_backtracks
        if ctx.row_budget is None:
            return ok
        r_steps = ctx.steps_cost()
        b, n, s = ctx.batch_size, ctx.n_particles, ctx.num_steps
        rows = idx // n
        remaining = torch.zeros(b, dtype=torch.int64, device=idx.device).index_add_(0, rows, (s - lv - 1) * r_steps)
        slack = ctx.row_budget - ctx.counter.per_prompt - remaining  # [B]
        extra = (lv[c] + 1 - (lv[c] - back).clamp(min=0)) * r_steps
        extra = torch.where(ok, extra, torch.zeros_like(extra))
        c_rows = rows[c]
        # Cumulative extra per row in walker order (c is sorted, and so are rows).
        csum = extra.cumsum(0)
        first = torch.searchsorted(c_rows, c_rows, right=False)
        before = torch.where(first > 0, csum[(first - 1).clamp(min=0)], torch.zeros_like(csum))
        return ok & (csum - before <= slack[c_rows])


class _Best:
    """Each walker's best state seen at each check level (the best-so-far fallback)."""

    def __init__(self, n_checks: int, walkers: int, device):
        self.r = torch.full((n_checks, walkers), -math.inf, dtype=torch.float64, device=device)
        self.store: dict = {}

    def update(self, k, walkers, r, xi, x0_hat, aux, c):
        better = r > self.r[k, walkers]
        sel = better.nonzero().squeeze(1)
        if sel.numel() == 0:
            return
        kk, ww = k[sel], walkers[sel]
        self.r[kk, ww] = r[sel]
        tensors = {"x": xi[sel], "x0": x0_hat[sel]}
        for name, v in (aux or {}).items():
            if v is not None:
                tensors["aux_" + name] = v[c[sel]]
        for name, v in tensors.items():
            if name not in self.store:
                self.store[name] = torch.zeros((self.r.shape[0], self.r.shape[1], *v.shape[1:]), dtype=v.dtype, device=v.device)
            self.store[name][kk, ww] = v

    def restore(self, k, walkers, pos, xi, x0_hat, aux):
        xi, x0_hat = xi.clone(), x0_hat.clone()
        xi[pos] = self.store["x"][k, walkers]
        x0_hat[pos] = self.store["x0"][k, walkers]
        if aux is not None:
            aux = dict(aux)
            for name, v in aux.items():
                if v is not None:
                    v = v.clone()
                    v[pos] = self.store["aux_" + name][k, walkers]
                    aux[name] = v
        return xi, x0_hat, aux


def _append(hist, count, key, r):
    """Append rewards r to the ring buffers hist[key] (several entries may share a key)."""
    order = torch.argsort(key, stable=True)
    ks, rs = key[order], r[order]
    first = torch.searchsorted(ks, ks, right=False)
    rank = torch.arange(ks.numel(), device=ks.device) - first
    pos = (count[ks] + rank) % hist.shape[1]
    hist[ks, pos] = rs
    count.index_add_(0, ks, torch.ones_like(ks))


def _take(aux, sel):
    if aux is None:
        return None
    return {k: (None if v is None else v[sel]) for k, v in aux.items()}


def _col(mask, x):
    return mask.reshape(-1, *([1] * (x.dim() - 1)))
