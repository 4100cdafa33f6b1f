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
shaped per level), relative to the walkers of the prompt (``quantile``) or calibrated on the run
itself (``calibrate``, below); ``budget`` (model NFE per prompt) is never exceeded: a backtrack is
taken only if the row can still finish all of its walkers afterwards. The returned sample per
prompt is the best walker's.

Calibrated thresholds (``calibrate=q``). An absolute threshold has the verifier's units and must
match what x0-predictions reach at each level, which depends on the model and the task (the
paper's maze thresholds are 6 on giant and 400 on ultra). A running quantile of the rewards seen
at a level is biased: walkers that reach a later level have passed the earlier checks, so the
reference is skewed upward and every walker looks bad. ``calibrate`` removes both problems: the
first descent of every walker runs the plain sampler with checks deferred, and the threshold of
each check level is the q-quantile of the rewards of *all* walkers of *all* prompts at that level
(an unselected sample of the plain sampler's rewards there). Then each walker that failed a check
re-enters at its first failed check, backtracking from the state stored there, and from then on
DFS runs with these fixed thresholds. A prompt whose walkers score below the batch's typical
rewards gets more compute; nothing is in the verifier's units. A walker's finished first-descent
sample is kept: the walker returns the better of it and what it finishes with later.
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
        calibrate: calibrated threshold in (0, 1): a check fails when r is below the q-quantile of
            the first-descent rewards at that level, pooled over every walker of every prompt (see
            the module docstring). With ``threshold`` too, a check fails only when both fail.
            Excludes ``quantile``.
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
    calibrate: Optional[float] = None
    backtrack: Optional[int] = None
    start: Optional[int] = None
    every: Optional[int] = None
    max_backtracks: Optional[int] = 10
    history: int = 256
    eta: float = 1.0
    local: Optional[LocalSearch] = None

    name = "dfs"

    def __post_init__(self):
        if self.threshold is None and self.quantile is None and self.calibrate is None:
            raise ValueError("DFS needs a threshold (absolute reward), a quantile (relative to the prompt's walkers) "
                             "or calibrate (calibrated on the first descent)")
        if self.quantile is not None and self.calibrate is not None:
            raise ValueError("DFS takes quantile or calibrate, not both")
        if self.calibrate is not None:
            check_float(self.calibrate, "calibrate", 0.0, 1.0, low_open=True)
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
        if self.threshold is None and self.quantile is not None and n < 2:
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
        st = _Walkers(
            x=ctx.init_noise(w),
            level=torch.zeros(w, dtype=torch.int64, device=dev),
            done=torch.zeros(w, dtype=torch.bool, device=dev),
            n_back=torch.zeros(w, dtype=torch.int64, device=dev),
            best=_Best(len(checks), w, dev),
        )
        final = torch.empty_like(st.x)
        hist = torch.full((b * len(checks), self.history), math.nan, dtype=torch.float64, device=dev)
        hist_count = torch.zeros(b * len(checks), dtype=torch.int64, device=dev)
        first = None
        if self.calibrate is not None:
            tau, first = self._calibrate(ctx, st, final, rows, checks, check_of, tau, back)
        it = 0
        while True:
            idx = (~st.done).nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            lv, xr = st.level[idx], rows[idx]
            xi, x0_hat, aux = ctx.prepare(st.x[idx], lv, xr)
            reject = torch.zeros(idx.numel(), dtype=torch.bool, device=dev)
            c = (check_of[lv] >= 0).nonzero().squeeze(1)
            if c.numel():
                k = check_of[lv[c]]
                r = ctx.score(x0_hat[c], xr[c]).to(torch.float64)
                st.best.update(k, idx[c], r, xi[c], x0_hat[c], aux, c)
                fail = torch.ones_like(r, dtype=torch.bool)
                if tau is not None:
                    fail &= r < tau[lv[c]]
                if self.quantile is not None:
                    key = xr[c] * len(checks) + k
                    _append(hist, hist_count, key, r)
                    fail &= r < torch.nanquantile(hist[key], self.quantile, dim=1)
                extra = lv[c] + 1 - (lv[c] - back).clamp(min=0)
                allowed = fail & self._may_backtrack(ctx, st, idx[c], extra, remaining=(s - lv - 1, rows[idx]))
                reject[c] = allowed
                fallback = c[fail & ~allowed]
                if fallback.numel():
                    xi, x0_hat, aux = st.best.restore(check_of[lv[fallback]], idx[fallback], fallback, xi, x0_hat, aux)
                ctx.trace.add(step=it, active=idx.numel(), walkers=idx[c], levels=lv[c], rewards=r, rejected=allowed,
                              fallback=fallback.numel())
            acc = (~reject).nonzero().squeeze(1)
            rej = reject.nonzero().squeeze(1)
            if acc.numel():
                a_idx = idx[acc]
                st.x[a_idx] = ctx.advance(xi[acc], x0_hat[acc], _take(aux, acc), lv[acc], xr[acc], self.eta)
                st.level[a_idx] = lv[acc] + 1
                finished = a_idx[st.level[a_idx] == s]
                final[finished] = st.x[finished]
                st.done[finished] = True
            if rej.numel():
                self._backtrack(ctx, st, idx[rej], xi[rej], lv[rej], (lv[rej] - back).clamp(min=0))
            it += 1
        ctx.trace.add(step="final", backtracks=st.n_back.view(b, n))
        r_final = ctx.score(final, rows, final=True)
        if first is not None:
            # A walker returns the better of its first-descent sample and what it finished with later.
            x_first, r_first = first
            keep = r_first > r_final
            final = torch.where(_col(keep, final), x_first, final)
            r_final = torch.where(keep, r_first, r_final)
        return ctx.finish(final, r_final, n)

    def _calibrate(self, ctx, st, final, rows, checks, check_of, tau_abs, back):
        """First descent of every walker with checks deferred; returns (thresholds [S], first samples).

        The thresholds are the ``calibrate``-quantiles of the rewards at each check level over all
        walkers (combined with the absolute thresholds: a check fails only when both fail). Walkers
        that failed a check re-enter at their first failed check, from the state stored there.
        """
        s = ctx.num_steps
        w = st.x.shape[0]
        every = torch.arange(w, device=ctx.device)
        r_checks = torch.empty((len(checks), w), dtype=torch.float64, device=ctx.device)
        x = st.x
        for i in range(s):
            xi, x0_hat, aux = ctx.prepare(x, i, rows)
            if i in checks:
                k = checks.index(i)
                r = ctx.score(x0_hat, rows).to(torch.float64)
                r_checks[k] = r
                st.best.update(torch.full_like(every, k), every, r, xi, x0_hat, aux, every)
            x = ctx.advance(xi, x0_hat, aux, i, rows, self.eta)
        final.copy_(x)
        r_first = ctx.score(x, rows, final=True)
        cal = torch.nanquantile(r_checks, self.calibrate, dim=1)  # [K]
        tau = torch.full((s,), -math.inf, dtype=torch.float64, device=ctx.device)
        tau[checks] = cal
        ctx.trace.add(step="calibration", levels=checks, thresholds=cal, rewards=r_checks)
        fail = r_checks < cal[:, None]
        if tau_abs is not None:
            fail &= r_checks < tau_abs[checks][:, None]
            tau = torch.minimum(tau, tau_abs)  # r < min(a, b) iff both fail
        failed = fail.any(0)
        k_first = torch.where(failed, fail.to(torch.int8).argmax(0), torch.zeros_like(every))
        lv = torch.tensor(checks, device=ctx.device)[k_first]
        j = (lv - back).clamp(min=0)
        st.level.fill_(s)
        st.done.fill_(True)
        cand = failed.nonzero().squeeze(1)
        allowed = self._may_backtrack(ctx, st, cand, s - j[cand], remaining=None)
        go = cand[allowed]
        if go.numel():
            x_k = st.best.store["x"][k_first[go], go]
            st.done[go] = False
            self._backtrack(ctx, st, go, x_k, lv[go], j[go])
        ctx.trace.add(step="calibration_backtracks", walkers=go)
        return tau, (final.clone(), r_first)

    def _backtrack(self, ctx, st, walkers, x_at, lv, j):
        """Send walkers from their states x_at at levels lv back to levels j (j = 0: a fresh noise)."""
        moved = ctx.renoise(x_at, lv, j)
        fresh = ctx.init_noise(walkers.numel())
        # j = 0 restarts from a fresh noise (the run's own generator), else the exact forward kernel.
        st.x[walkers] = torch.where(_col(j == 0, moved), fresh, moved)
        st.level[walkers] = j
        st.n_back[walkers] += 1

    def _may_backtrack(self, ctx, st, walkers, extra_levels, remaining):
        """Which failing walkers may backtrack: under max_backtracks, and within the row's budget.

        ``walkers`` [m] sorted; ``extra_levels`` [m] the levels a backtrack adds for each;
        ``remaining`` (levels [a], rows [a]) of the active walkers, None when none is active.
        The row must still be able to finish every walker afterwards: spent + committed + extra
        <= budget, where committed counts the remaining levels of all active walkers assuming they
        pass. Candidates of a row are granted in walker order while the slack lasts.
        """
        ok = torch.ones(walkers.numel(), dtype=torch.bool, device=walkers.device)
        if self.max_backtracks is not None:
            ok &= st.n_back[walkers] < self.max_backtracks
        if ctx.row_budget is None:
            return ok
        r_steps = ctx.steps_cost()
        b, n = ctx.batch_size, ctx.n_particles
        committed = torch.zeros(b, dtype=torch.int64, device=walkers.device)
        if remaining is not None:
            levels, active_rows = remaining
            committed.index_add_(0, active_rows, levels * r_steps)
        slack = ctx.row_budget - ctx.counter.per_prompt - committed  # [B]
        extra = torch.where(ok, extra_levels * r_steps, torch.zeros_like(extra_levels))
        c_rows = walkers // n
        # Cumulative extra per row in walker order (walkers are sorted, and so are their rows).
        csum = extra.cumsum(0)
        first = torch.searchsorted(c_rows, c_rows, right=False)
        before = torch.where(first > 0, csum[(first - 1).clamp(min=0)], torch.zeros_like(csum))
        return ok & (csum - before <= slack[c_rows])


@dataclass
class _Walkers:
    """The walkers' state: x [W, ...] at level [W], finished flags, backtrack counts, best-so-far."""

    x: torch.Tensor
    level: torch.Tensor
    done: torch.Tensor
    n_back: torch.Tensor
    best: "_Best"


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
