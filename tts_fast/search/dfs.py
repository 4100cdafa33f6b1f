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

What each threshold kind adapts to (``calibrate=0.5`` is the default when none is given):
- absolute (``threshold``): the verifier's units, fixed; the same prompt gets the same treatment
  in every run, alone or in any batch, so compute follows difficulty *across runs*. It must be
  tuned to the verifier and the model.
- calibrated (``calibrate``): the rewards of the other walkers *of the same call*, pooled over its
  prompts. A prompt is hard relative to the batch it is searched with: in a batch of easy and hard
  prompts the hard ones draw the compute, but a prompt searched alone is compared with its own
  walkers only (a q-fraction of them always fails), so a hard prompt run on its own gets no more
  than an easy prompt run on its own. Adaptivity across separate single-prompt runs needs an
  absolute threshold.
- quantile (``quantile``): the running rewards of the prompt's own walkers at that level; it caps
  the rejection rate within each prompt and does not compare prompts at all.

Two ways to run the walkers (``slots``): 'compact' gathers the running walkers for each model
call (no wasted evaluations, but finding them is a host read per iteration and the batch size
changes), 'fixed' keeps every walker in its slot and masks the finished ones (the step reads
nothing on the host and has constant shapes, so it suits CUDA graphs and compiled networks; the
host asks whether all walkers finished once every ``sync_every`` iterations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch

from ._checks import check_choice, check_eta, check_float, check_int
from .local import LocalSearch

THRESHOLD_SCHEDULES = ("constant", "increase")
DEFAULT_CALIBRATE = 0.5
DEFAULT_HISTORY = 256
SLOTS = ("compact", "fixed")


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
            Excludes ``quantile``. The default when none of threshold, quantile and calibrate is
            given: ``calibrate=0.5`` (unit-free, so ``search(..., "dfs")`` runs by its name alone).
        backtrack: Delta_T, levels to go back on a failed check (default round(0.4 S), at least 1).
        start: first check level (default round(0.5 S)); every: check every k levels from start
            (default round(0.1 S), at least 1). Early x0-predictions say little about the final
            sample, so checks there mostly waste backtracks; these defaults come from a pilot on the
            Gaussian-mixture model (see benchmarks/search_ablation.py), not from the paper, which
            checks at 12..15 of 16 steps with Delta_T = 12 on its maze.
        max_backtracks: per-walker cap (None: only the budget limits backtracking).
        history: rewards kept per level and prompt for the quantile (only with ``quantile``;
            default 256).
        eta: DDIM eta of the sampler.
        local: optional LocalSearch run at every level (joint global + local scaling).
        slots: 'compact' (each iteration gathers the walkers still running, so every model call
            does useful work; finding them reads the device once per iteration) or 'fixed' (every
            walker keeps its slot in every model call and finished walkers are masked: no host
            read inside the loop except whether all walkers finished, once every ``sync_every``
            iterations, and shapes never change, so the step can be captured in a CUDA graph;
            finished slots compute but are not counted as NFE, ``Counter.slot_evaluations`` says
            what was computed). Same algorithm; the random streams differ.
        sync_every: fixed slots only: iterations between the host's checks for the end (default S).
    """

    threshold: Union[None, float, Sequence[float]] = None
    threshold_schedule: str = "constant"
    quantile: Optional[float] = None
    calibrate: Optional[float] = None
    backtrack: Optional[int] = None
    start: Optional[int] = None
    every: Optional[int] = None
    max_backtracks: Optional[int] = 10
    history: Optional[int] = None
    eta: float = 1.0
    local: Optional[LocalSearch] = None
    slots: str = "compact"
    sync_every: Optional[int] = None

    name = "dfs"

    def __post_init__(self):
        if self.threshold is None and self.quantile is None and self.calibrate is None:
            self.calibrate = DEFAULT_CALIBRATE  # the unit-free default
        if self.quantile is not None and self.calibrate is not None:
            raise ValueError("DFS takes quantile or calibrate, not both")
        if self.calibrate is not None:
            check_float(self.calibrate, "calibrate", 0.0, 1.0, low_open=True)
        if isinstance(self.threshold, (list, tuple)):
            if not self.threshold:
                raise ValueError("threshold must be a number or a non-empty sequence of one number per step")
            for i, v in enumerate(self.threshold):
                check_float(v, f"threshold[{i}]")
        elif self.threshold is not None:
            check_float(self.threshold, "threshold")
        check_choice(self.threshold_schedule, "threshold_schedule", THRESHOLD_SCHEDULES)
        if self.threshold_schedule != "constant" and self.threshold is None:
            raise ValueError(f"threshold_schedule={self.threshold_schedule!r} shapes the absolute threshold: give threshold=...")
        if self.quantile is not None:
            check_float(self.quantile, "quantile", 0.0, 1.0, low_open=True)
        for name in ("backtrack", "start"):
            if getattr(self, name) is not None:
                check_int(getattr(self, name), name, 1 if name == "backtrack" else 0)
        if self.every is not None:
            check_int(self.every, "every", 1)
        if self.history is not None:
            check_int(self.history, "history", 1)
            if self.quantile is None:
                raise ValueError("history is the quantile's window: it needs quantile=...")
        if self.max_backtracks is not None:
            check_int(self.max_backtracks, "max_backtracks", 0)
        check_eta(self.eta)
        check_choice(self.slots, "slots", SLOTS)
        if self.sync_every is not None:
            check_int(self.sync_every, "sync_every", 1)
            if self.slots != "fixed":
                raise ValueError("sync_every paces the end checks of slots='fixed'; the compact loop checks every iteration")

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
        """Adaptive: at least N * S * local_steps per prompt; the budget caps the rest (checks the plan)."""
        self.plan(ctx.grid)
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
        check_of = torch.full((s,), -1, dtype=torch.int64, device=dev)
        checks_t = torch.tensor(checks, dtype=torch.int64, device=dev)  # set up before the loop: no copies inside it
        check_of[checks_t] = torch.arange(len(checks), device=dev)
        run = _Run(
            ctx=ctx, rows=ctx.rows(n), checks=checks, checks_t=checks_t, check_of=check_of, back=back,
            tau=None if tau is None else tau.to(dev),
            x=ctx.init_noise(w),
            level=torch.zeros(w, dtype=torch.int64, device=dev),
            done=torch.zeros(w, dtype=torch.bool, device=dev),
            n_back=torch.zeros(w, dtype=torch.int64, device=dev),
            best=_Best(len(checks), w, dev),
            # one spare ring buffer (the last) takes the masked-out appends of fixed slots
            hist=torch.full((b * len(checks) + 1, (self.history or DEFAULT_HISTORY) if self.quantile is not None else 1), math.nan, dtype=torch.float64, device=dev),
            hist_count=torch.zeros(b * len(checks) + 1, dtype=torch.int64, device=dev),
        )
        run.final = torch.empty_like(run.x)
        first = self._calibrate(run) if self.calibrate is not None else None
        if self.slots == "fixed":
            self._loop_fixed(run, lockstep=first is None)
        else:
            self._loop_compact(run)
        ctx.trace.add(step="final", backtracks=run.n_back.view(b, n))
        final = run.final
        r_final = ctx.score(final, run.rows, final=True)
        if first is not None:
            # A walker returns the better of its first-descent sample and what it finished with later.
            x_first, r_first = first
            keep = r_first > r_final
            final = torch.where(_col(keep, final), x_first, final)
            r_final = torch.where(keep, r_first, r_final)
        return ctx.finish(final, r_final, n)

    # -- the two ways of running the walkers --------------------------------------------------------

    def _loop_compact(self, run):
        """Each iteration: the running walkers only (one host read per iteration to find them)."""
        ctx, s = run.ctx, run.ctx.num_steps
        it = 0
        while True:
            idx = (~run.done).nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            lv, xr = run.level[idx], run.rows[idx]
            xi, x0_hat, aux = ctx.prepare(run.x[idx], lv, xr)
            c = (run.check_of[lv] >= 0).nonzero().squeeze(1)
            reject = torch.zeros(idx.numel(), dtype=torch.bool, device=idx.device)
            if c.numel():
                committed = _per_row(ctx, run.rows[idx], (s - lv - 1) * ctx.steps_cost())
                allowed, xi, x0_hat, aux = self._check(run, idx, lv, xi, x0_hat, aux, c, None, committed, it)
                reject[c] = allowed
            acc = (~reject).nonzero().squeeze(1)
            rej = reject.nonzero().squeeze(1)
            if acc.numel():
                a_idx = idx[acc]
                run.x[a_idx] = ctx.advance(xi[acc], x0_hat[acc], _take(aux, acc), lv[acc], xr[acc], self.eta)
                run.level[a_idx] = lv[acc] + 1
                finished = a_idx[run.level[a_idx] == s]
                run.final[finished] = run.x[finished]
                run.done[finished] = True
            if rej.numel():
                r_idx = idx[rej]
                j = (lv[rej] - run.back).clamp(min=0)
                run.x[r_idx] = self._backtracked(ctx, xi[rej], lv[rej], j)
                run.level[r_idx] = j
                run.n_back[r_idx] += 1
            it += 1

    def _loop_fixed(self, run, lockstep: bool):
        """Each iteration: every walker slot, masked; no host read but the end check every sync_every.

        While all walkers are still on their first descent (``lockstep``, known on the host) no
        slot can be at a check level before the first one, so the verifier is not called there.
        """
        ctx, s = run.ctx, run.ctx.num_steps
        w = run.x.shape[0]
        every = torch.arange(w, device=run.x.device)
        sync_every = self.sync_every or s
        it = 0
        while True:
            for _ in range(sync_every):
                active = ~run.done
                lv = run.level.clamp(max=s - 1)  # finished slots run at the last level; their output is dropped
                with ctx.counter.masked(active):
                    xi, x0_hat, aux = ctx.prepare(run.x, lv, run.rows)
                reject = torch.zeros(w, dtype=torch.bool, device=run.x.device)
                if not (lockstep and it < run.checks[0]):
                    at_check = active & (run.check_of[lv] >= 0)
                    committed = _per_row(ctx, run.rows, torch.where(active, s - lv - 1, 0) * ctx.steps_cost())
                    reject, xi, x0_hat, aux = self._check(run, every, lv, xi, x0_hat, aux, every, at_check, committed, it)
                accept = active & ~reject
                with ctx.counter.masked(accept):
                    x_next = ctx.advance(xi, x0_hat, aux, lv, run.rows, self.eta)
                j = (lv - run.back).clamp(min=0)
                x_back = self._backtracked(ctx, xi, lv, j)
                run.x = torch.where(_col(accept, x_next), x_next, torch.where(_col(reject, x_back), x_back, run.x))
                run.level = torch.where(accept, lv + 1, torch.where(reject, j, run.level))
                run.n_back = run.n_back + reject.to(torch.int64)
                newly = accept & (run.level == s)
                run.final = torch.where(_col(newly, run.final), run.x, run.final)
                run.done = run.done | newly
                it += 1
            if bool(run.done.all()):  # the loop's one host read, every sync_every iterations
                break
        ctx.trace.add(step="slots", iterations=it, slot_evaluations=ctx.counter.slot_evaluations)

    # -- what both share -----------------------------------------------------------------------------

    def _check(self, run, walkers, lv, xi, x0_hat, aux, pos, mask, committed, it):
        """Score the batch positions ``pos`` (at check levels where ``mask``; all of them if None).

        Returns (rejected [len(pos)] or [batch] for fixed slots, xi, x0_hat, aux with the
        best-so-far states restored for walkers that failed but may not backtrack).
        """
        ctx = run.ctx
        w_pos, lv_pos = walkers[pos], lv[pos]
        ok = torch.ones_like(w_pos, dtype=torch.bool) if mask is None else mask
        k = run.check_of[lv_pos].clamp(min=0)
        r = ctx.score(x0_hat[pos], run.rows[w_pos], count=mask).to(torch.float64)
        run.best.update(k, w_pos, r, xi[pos], x0_hat[pos], aux, pos, ok)
        fail = ok.clone()
        if run.tau is not None:
            fail &= r < run.tau[lv_pos]
        if self.quantile is not None:
            spare = run.hist.shape[0] - 1
            key = torch.where(ok, run.rows[w_pos] * len(run.checks) + k, spare)
            _append(run.hist, run.hist_count, key, r)
            fail &= r < torch.nanquantile(run.hist[key], self.quantile, dim=1)
        extra = lv_pos + 1 - (lv_pos - run.back).clamp(min=0)
        allowed = self._may_backtrack(run, w_pos, fail, extra, committed)
        fallback = fail & ~allowed
        xi, x0_hat, aux = run.best.restore(k, w_pos, pos, fallback, xi, x0_hat, aux)
        # fixed slots trace every slot with a 'checked' mask (selecting the checked ones would read the device)
        extra_keys = {} if mask is None else {"checked": mask}
        ctx.trace.add(step=it, **extra_keys, walkers=w_pos, levels=lv_pos, rewards=r, rejected=allowed, fallback=fallback.sum())
        return allowed, xi, x0_hat, aux

    def _calibrate(self, run):
        """First descent of every walker with checks deferred; sets the thresholds, returns the first samples.

        The thresholds are the ``calibrate``-quantiles of the rewards at each check level over all
        walkers (combined with the absolute thresholds: a check fails only when both fail). Walkers
        that failed a check re-enter at their first failed check, from the state stored there.
        """
        ctx, checks, s = run.ctx, run.checks, run.ctx.num_steps
        w = run.x.shape[0]
        every = torch.arange(w, device=ctx.device)
        r_checks = torch.empty((len(checks), w), dtype=torch.float64, device=ctx.device)
        x = run.x
        for i in range(s):
            xi, x0_hat, aux = ctx.prepare(x, i, run.rows)
            if i in checks:
                k = checks.index(i)
                r = ctx.score(x0_hat, run.rows).to(torch.float64)
                r_checks[k] = r
                run.best.update(torch.full_like(every, k), every, r, xi, x0_hat, aux, every, None)
            x = ctx.advance(xi, x0_hat, aux, i, run.rows, self.eta)
        run.final = x.clone()  # the compact loop writes finished walkers into it; x stays the first samples
        r_first = ctx.score(x, run.rows, final=True)
        cal = torch.nanquantile(r_checks, self.calibrate, dim=1)  # [K]
        tau = torch.full((s,), -math.inf, dtype=torch.float64, device=ctx.device)
        tau[run.checks_t] = cal
        ctx.trace.add(step="calibration", levels=checks, thresholds=cal, rewards=r_checks)
        fail = r_checks < cal[:, None]
        if run.tau is not None:
            fail &= r_checks < run.tau[run.checks_t][:, None]
            tau = torch.minimum(tau, run.tau)  # r < min(a, b) iff both fail
        run.tau = tau
        failed = fail.any(0)
        k_first = fail.to(torch.int8).argmax(0)  # the first failed check (0 where none failed)
        lv = run.checks_t[k_first]
        j = (lv - run.back).clamp(min=0)
        go = self._may_backtrack(run, every, failed, s - j, _per_row(ctx, run.rows, torch.zeros_like(j)))
        x_k = run.best.store["x"][k_first, every]
        run.x = torch.where(_col(go, x), self._backtracked(ctx, x_k, lv, j), x)
        run.level = torch.where(go, j, torch.full_like(j, s))
        run.done = ~go
        run.n_back = go.to(torch.int64)
        ctx.trace.add(step="calibration_backtracks", sent_back=go)
        return x, r_first

    def _backtracked(self, ctx, x_at, lv, j):
        """x_at at levels lv sent back to levels j: the exact forward kernel, a fresh noise where j = 0."""
        moved = ctx.renoise(x_at, lv, j)
        fresh = ctx.init_noise(x_at.shape[0])
        return torch.where(_col(j == 0, moved), fresh, moved)

    def _may_backtrack(self, run, walkers, fail, extra_levels, committed):
        """Which failing walkers may backtrack: under max_backtracks, and within the row's budget.

        ``walkers`` [m] sorted, ``fail`` [m] the candidates, ``extra_levels`` [m] the levels a
        backtrack adds for each, ``committed`` [B] the NFE the running walkers still need if they
        pass. The row must still finish every walker afterwards: spent + committed + extra <=
        budget. Candidates of a row are granted in walker order while the slack lasts.
        """
        ctx = run.ctx
        ok = fail.clone()
        if self.max_backtracks is not None:
            ok &= run.n_back[walkers] < self.max_backtracks
        if ctx.row_budget is None:
            return ok
        slack = ctx.row_budget - ctx.counter.per_prompt - committed  # [B]
        extra = torch.where(ok, extra_levels * ctx.steps_cost(), torch.zeros_like(extra_levels))
        c_rows = walkers // ctx.n_particles
        # Cumulative extra per row in walker order (walkers are sorted, and so are their rows).
        csum = extra.cumsum(0)
        first = torch.searchsorted(c_rows, c_rows, right=False)
        before = torch.where(first > 0, csum[(first - 1).clamp(min=0)], torch.zeros_like(csum))
        return ok & (csum - before <= slack[c_rows])


@dataclass
class _Run:
    """The state of a DFS run: walkers' x [W, ...] at level [W], flags, counts, thresholds."""

    ctx: object
    rows: torch.Tensor
    checks: list
    checks_t: torch.Tensor
    check_of: torch.Tensor
    back: int
    tau: Optional[torch.Tensor]
    x: torch.Tensor
    level: torch.Tensor
    done: torch.Tensor
    n_back: torch.Tensor
    best: "_Best"
    hist: torch.Tensor
    hist_count: torch.Tensor
    final: Optional[torch.Tensor] = None


class _Best:
    """Each walker's best state seen at each check level (the best-so-far fallback)."""

    def __init__(self, n_checks: int, walkers: int, device):
        self.r = torch.full((n_checks, walkers), -math.inf, dtype=torch.float64, device=device)
        self.store: dict = {}

    def update(self, k, walkers, r, xi, x0_hat, aux, pos, mask):
        """Keep (xi, x0_hat, aux[pos]) of the walkers (unique) at check k where r beats the stored reward.

        ``mask`` (or None: all) selects the entries that are real checks. No host read.
        """
        better = r > self.r[k, walkers]
        if mask is not None:
            better &= mask
        self.r[k, walkers] = torch.where(better, r, self.r[k, walkers])
        tensors = {"x": xi, "x0": x0_hat}
        for name, v in (aux or {}).items():
            if v is not None:
                tensors["aux_" + name] = v[pos]
        for name, v in tensors.items():
            if name not in self.store:
                self.store[name] = torch.zeros((self.r.shape[0], self.r.shape[1], *v.shape[1:]), dtype=v.dtype, device=v.device)
            old = self.store[name][k, walkers]
            self.store[name][k, walkers] = torch.where(_col(better, v), v, old)

    def restore(self, k, walkers, pos, use, xi, x0_hat, aux):
        """xi, x0_hat, aux with the stored states put back at positions ``pos`` where ``use``."""
        def put(v, stored):
            v = v.clone()
            v[pos] = torch.where(_col(use, stored), stored, v[pos])
            return v

        xi, x0_hat = put(xi, self.store["x"][k, walkers]), put(x0_hat, self.store["x0"][k, walkers])
        if aux is not None:
            aux = {name: (None if v is None else put(v, self.store["aux_" + name][k, walkers])) for name, v in aux.items()}
        return xi, x0_hat, aux


def _per_row(ctx, rows, values):
    """Sum of per-walker values per prompt row [B]."""
    return torch.zeros(ctx.batch_size, dtype=torch.int64, device=rows.device).index_add_(0, rows, values)


def _append(hist, count, key, r):
    """Append rewards r [m] to the ring buffers hist[key] (in the order given; the last buffer is a spare
    that is never read).

    When more entries share a key than a buffer holds, only the last ``history`` of them are written,
    so every slot is written once (duplicate writes race on CUDA, and the window would depend on it).
    """
    h, spare = hist.shape[1], hist.shape[0] - 1
    order = torch.argsort(key, stable=True)
    ks, rs = key[order], r[order]
    first = torch.searchsorted(ks, ks)
    size = torch.searchsorted(ks, ks, right=True) - first
    rank = torch.arange(ks.numel(), device=ks.device) - first
    pos = (count[ks] + rank) % h
    hist[torch.where(rank >= size - h, ks, spare), pos] = rs
    count.index_add_(0, ks, torch.ones_like(ks))


def _take(aux, sel):
    if aux is None:
        return None
    return {k: (None if v is None else v[sel]) for k, v in aux.items()}


def _col(mask, x):
    return mask.reshape(-1, *([1] * (x.dim() - 1)))
