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

Symbols (name in the code -> the paper's, Zhang et al. 2025 Sec. 4.2 -> meaning):

    B, N, S       batch_size, n_particles, num_steps: prompts, walkers per prompt, denoising steps
    W = B * N     walkers, in one flat batch ordered by prompt row (walker w serves row w // N)
    level [W]     i: each walker's step on the grid, 0 (pure noise) .. S (finished)
    x [W, ...]    x_i: each walker's state at its level
    step          what one model call gives for a batch of walkers: ``xi`` (x_i, after local search
                  when it is on), ``x0_hat`` (x0_hat(x_i), what the verifier scores) and ``aux``
                  (what the guided step needs)
    checks        the check levels start, start + every, ... (K of them); ``check_of[i]`` = k, or -1
    thresholds    delta_i [S]: a check at level i fails when r < delta_i (-inf: never fails)
    back          Delta_T: how many levels a failed check sends a walker back
    target        j = max(i - Delta_T, 0): where it goes (0: a fresh start from new noise)
    below         walkers whose reward at a check is under the threshold(s)
    rejected      the ``below`` walkers granted a backtrack (under max_backtracks and the budget):
                  sent back to their target (the trace's ``rejected``; ``sent_back`` at calibration)
    fallback      the ``below`` walkers not granted one: they go on from their best state at that check
    n_back [W]    backtracks taken by each walker
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
        """(back = Delta_T, check levels, absolute thresholds delta_i [S] float64 or None)."""
        s = grid.num_steps
        back = self.backtrack if self.backtrack is not None else max(1, round(0.4 * s))
        start = self.start if self.start is not None else min(round(0.5 * s), s - 1)
        every = self.every if self.every is not None else max(1, round(0.1 * s))
        if start >= s:
            raise ValueError(f"start must be < num_steps={s}, got {start}")
        checks = list(range(start, s, every))
        thresholds = None
        if self.threshold is not None:
            if isinstance(self.threshold, (list, tuple)):
                if len(self.threshold) != s:
                    raise ValueError(f"threshold must be a float or a sequence of num_steps={s} values, got {len(self.threshold)}")
                thresholds = torch.tensor(self.threshold, dtype=torch.float64)
            else:
                thresholds = torch.full((s,), float(self.threshold), dtype=torch.float64)
            if self.threshold_schedule == "increase":
                thresholds = thresholds / grid.shape("increase").cpu()
        return back, checks, thresholds

    def cost(self, ctx) -> Optional[int]:
        """Adaptive: at least N * S * local_steps per prompt; the budget caps the rest (checks the plan)."""
        self.plan(ctx.grid)
        return None

    def run(self, ctx):
        b, n, s = ctx.batch_size, ctx.n_particles, ctx.num_steps
        back, checks, thresholds = self.plan(ctx.grid)
        if self.threshold is None and self.quantile is not None and n < 2:
            # The quantile includes the walker's own reward, so a lone walker never falls below it.
            raise ValueError("DFS with only a quantile threshold compares the walkers of a prompt: use n_particles >= 2 "
                             "or give an absolute threshold")
        if self.max_backtracks is None and ctx.row_budget is None:
            raise ValueError("DFS with max_backtracks=None needs a budget, or it may never stop")
        ctx.check_cost(n * s * ctx.steps_cost(), f"{n} DFS walkers of {s} steps")
        plan = _Plan.of(checks, back, num_steps=s, device=ctx.device)
        rows = ctx.rows(n)
        walkers = _Walkers.start(ctx.init_noise(b * n), rows, thresholds=None if thresholds is None else thresholds.to(ctx.device))
        best = _Best(len(checks), b * n, ctx.device)
        history = _History(b * len(checks), (self.history or DEFAULT_HISTORY) if self.quantile is not None else 1, ctx.device)
        first = self._calibrate(ctx, plan, walkers, best) if self.calibrate is not None else None
        if self.slots == "fixed":
            self._run_fixed(ctx, plan, walkers, best, history, lockstep=first is None)
        else:
            self._run_compact(ctx, plan, walkers, best, history)
        ctx.trace.add(step="final", backtracks=walkers.n_back.view(b, n))
        final = walkers.final
        r_final = ctx.score(final, rows, final=True)
        if first is not None:
            # A walker returns the better of its first-descent sample and what it finished with later.
            x_first, r_first = first
            keep = r_first > r_final
            final = torch.where(_col(keep, final), x_first, final)
            r_final = torch.where(keep, r_first, r_final)
        return ctx.finish(final, r_final, n)

    # -- the two ways of running the walkers: each iteration steps them, checks, accepts or sends back --

    def _run_compact(self, ctx, plan, walkers, best, history):
        """Each iteration: the running walkers only (one host read per iteration to find them)."""
        s = ctx.num_steps
        iteration = 0
        while True:
            running = (~walkers.done).nonzero().squeeze(1)
            if running.numel() == 0:
                break
            level, rows = walkers.level[running], walkers.rows[running]
            step = _Step(*ctx.prepare(walkers.x[running], level, rows))
            at_check = (plan.check_of[level] >= 0).nonzero().squeeze(1)
            rejected = torch.zeros(running.numel(), dtype=torch.bool, device=running.device)
            if at_check.numel():
                committed = _per_row(ctx, rows, (s - level - 1) * ctx.steps_cost())
                rejected_at_check, step = self._check(ctx, plan, walkers, best, history, walkers_in_batch=running, level=level, step=step,
                                                      at=at_check, check_mask=None, committed=committed, iteration=iteration)
                rejected[at_check] = rejected_at_check
            go_on, go_back = (~rejected).nonzero().squeeze(1), rejected.nonzero().squeeze(1)  # batch positions
            if go_on.numel():
                x_next = ctx.advance(*step.take(go_on), level[go_on], rows[go_on], self.eta)
                walkers.accept(running[go_on], x_next, level[go_on] + 1, num_steps=s)
            if go_back.numel():
                target = plan.target(level[go_back])
                walkers.send_back(running[go_back], self._sent_back(ctx, step.xi[go_back], level[go_back], target), target)
            iteration += 1

    def _run_fixed(self, ctx, plan, walkers, best, history, *, lockstep: bool):
        """Each iteration: every walker slot, masked; no host read but the end check every sync_every.

        While all walkers are still on their first descent (``lockstep``, known on the host) no
        slot can be at a check level before the first one, so the verifier is not called there.
        """
        s = ctx.num_steps
        all_walkers = torch.arange(walkers.x.shape[0], device=walkers.x.device)
        iteration = 0
        while True:
            for _ in range(self.sync_every or s):
                active = ~walkers.done
                level = walkers.level.clamp(max=s - 1)  # finished slots run at the last level; their output is dropped
                with ctx.counter.masked(active):
                    step = _Step(*ctx.prepare(walkers.x, level, walkers.rows))
                rejected = torch.zeros_like(active)
                if not (lockstep and iteration < plan.checks[0]):
                    at_check = active & (plan.check_of[level] >= 0)
                    committed = _per_row(ctx, walkers.rows, torch.where(active, s - level - 1, 0) * ctx.steps_cost())
                    rejected, step = self._check(ctx, plan, walkers, best, history, walkers_in_batch=all_walkers, level=level, step=step,
                                                 at=all_walkers, check_mask=at_check, committed=committed, iteration=iteration)
                accepted = active & ~rejected
                with ctx.counter.masked(accepted):
                    x_next = ctx.advance(step.xi, step.x0_hat, step.aux, level, walkers.rows, self.eta)
                target = plan.target(level)
                x_back = self._sent_back(ctx, step.xi, level, target)
                walkers.accept(accepted, x_next, level + 1, num_steps=s)
                walkers.send_back(rejected, x_back, target)
                iteration += 1
            if ctx.read_flag(walkers.done.all()):  # the loop's one host read, every sync_every iterations
                break
        ctx.trace.add(step="slots", iterations=iteration, slot_evaluations=ctx.counter.slot_evaluations)

    # -- what both share -----------------------------------------------------------------------------

    def _check(self, ctx, plan, walkers, best, history, *, walkers_in_batch, level, step, at, check_mask, committed, iteration):
        """Score the batch positions ``at`` and decide: (rejected [len(at)], the step with fallbacks restored).

        Args:
            walkers_in_batch: [m] the walker index of each batch position (sorted).
            level: [m] their levels.
            step: the batch's :class:`_Step`.
            at: the positions to score: those at check levels (compact), or every position (fixed).
            check_mask: fixed slots: [m] which positions really are at a check (the others' scores
                are discarded); None when every position of ``at`` is.
            committed: [B] model NFE the running walkers still need if they pass.
            iteration: for the trace.
        """
        ids, lv = walkers_in_batch[at], level[at]
        real = torch.ones_like(ids, dtype=torch.bool) if check_mask is None else check_mask
        k = plan.check_of[lv].clamp(min=0)
        r = ctx.score(step.x0_hat[at], walkers.rows[ids], count=check_mask).to(torch.float64)
        best.update(k, ids, r, step.xi[at], step.x0_hat[at], step.aux, at, real)
        below = real.clone()
        if walkers.thresholds is not None:
            below &= r < walkers.thresholds[lv]
        if self.quantile is not None:
            key = torch.where(real, walkers.rows[ids] * len(plan.checks) + k, history.spare)
            below &= r < history.add_and_quantile(key, r, self.quantile)
        rejected = self._grant_backtracks(ctx, walkers, ids=ids, below=below, extra_levels=lv + 1 - plan.target(lv), committed=committed)
        fallback = below & ~rejected
        step = best.restore(k, ids, at, fallback, step)
        # fixed slots trace every slot with a 'checked' mask (selecting the checked ones would read the device)
        checked = {} if check_mask is None else {"checked": check_mask}
        ctx.trace.add(step=iteration, **checked, walkers=ids, levels=lv, rewards=r, rejected=rejected, fallback=fallback.sum())
        return rejected, step

    def _calibrate(self, ctx, plan, walkers, best):
        """First descent of every walker with checks deferred; sets the thresholds, returns the first samples.

        The thresholds are the ``calibrate``-quantiles of the rewards at each check level over all
        walkers (combined with the absolute thresholds: a check fails only when both fail). Walkers
        that failed a check re-enter at their first failed check, from the state stored there.
        """
        s = ctx.num_steps
        all_walkers = torch.arange(walkers.x.shape[0], device=ctx.device)
        x_first, r_checks = self._first_descent(ctx, plan, walkers, best, all_walkers)
        walkers.final = x_first.clone()  # the compact loop writes finished walkers into it; x_first stays the first samples
        r_first = ctx.score(x_first, walkers.rows, final=True)
        calibrated = torch.nanquantile(r_checks, self.calibrate, dim=1)  # [K]
        thresholds = torch.full((s,), -math.inf, dtype=torch.float64, device=ctx.device)
        thresholds[plan.checks_t] = calibrated
        ctx.trace.add(step="calibration", levels=plan.checks, thresholds=calibrated, rewards=r_checks)
        below = r_checks < calibrated[:, None]
        if walkers.thresholds is not None:
            below &= r_checks < walkers.thresholds[plan.checks_t][:, None]
            thresholds = torch.minimum(thresholds, walkers.thresholds)  # r < min(a, b) iff both fail
        walkers.thresholds = thresholds
        k_first = below.to(torch.int8).argmax(0)  # the first failed check (0 where none failed)
        level = plan.checks_t[k_first]
        target = plan.target(level)
        rejected = self._grant_backtracks(ctx, walkers, ids=all_walkers, below=below.any(0), extra_levels=s - target,
                                          committed=_per_row(ctx, walkers.rows, torch.zeros_like(target)))
        x_back = self._sent_back(ctx, best.store["x"][k_first, all_walkers], level, target)
        walkers.x = torch.where(_col(rejected, x_first), x_back, x_first)
        walkers.level = torch.where(rejected, target, torch.full_like(target, s))
        walkers.done = ~rejected
        walkers.n_back = rejected.to(torch.int64)
        ctx.trace.add(step="calibration_backtracks", sent_back=rejected)
        return x_first, r_first

    def _first_descent(self, ctx, plan, walkers, best, all_walkers):
        """The plain sampler for every walker, keeping the best state at each check: (samples, rewards [K, W])."""
        r_checks = torch.empty((len(plan.checks), all_walkers.numel()), dtype=torch.float64, device=ctx.device)
        x = walkers.x
        for i in range(ctx.num_steps):
            step = _Step(*ctx.prepare(x, i, walkers.rows))
            if i in plan.checks:
                k = plan.checks.index(i)
                r = ctx.score(step.x0_hat, walkers.rows).to(torch.float64)
                r_checks[k] = r
                best.update(torch.full_like(all_walkers, k), all_walkers, r, step.xi, step.x0_hat, step.aux, all_walkers, None)
            x = ctx.advance(step.xi, step.x0_hat, step.aux, i, walkers.rows, self.eta)
        return x, r_checks

    @staticmethod
    def _sent_back(ctx, x_at, level, target):
        """x_at at ``level`` sent back to ``target``: the exact forward kernel, a fresh noise where target = 0."""
        moved = ctx.renoise(x_at, level, target)
        fresh = ctx.init_noise(x_at.shape[0])
        return torch.where(_col(target == 0, moved), fresh, moved)

    def _grant_backtracks(self, ctx, walkers, *, ids, below, extra_levels, committed):
        """Which ``below`` walkers may backtrack: under max_backtracks, and within the row's budget.

        ``ids`` [m] sorted walker indices, ``below`` [m] the candidates, ``extra_levels`` [m] the
        levels a backtrack adds for each, ``committed`` [B] the NFE the running walkers still need
        if they pass. The row must still finish every walker afterwards: spent + committed + extra
        <= budget. Candidates of a row are granted in walker order while the slack lasts.
        """
        ok = below.clone()
        if self.max_backtracks is not None:
            ok &= walkers.n_back[ids] < self.max_backtracks
        if ctx.row_budget is None:
            return ok
        slack = ctx.row_budget - ctx.counter.per_prompt - committed  # [B]
        extra = torch.where(ok, extra_levels * ctx.steps_cost(), torch.zeros_like(extra_levels))
        rows = ids // ctx.n_particles
        # Cumulative extra per row in walker order (walkers are sorted, and so are their rows).
        csum = extra.cumsum(0)
        first = torch.searchsorted(rows, rows, right=False)
        before = torch.where(first > 0, csum[(first - 1).clamp(min=0)], torch.zeros_like(csum))
        return ok & (csum - before <= slack[rows])


@dataclass(frozen=True)
class _Plan:
    """The fixed shape of a run: check levels (a list and a tensor), ``check_of`` [S] and Delta_T."""

    checks: list
    checks_t: torch.Tensor
    check_of: torch.Tensor
    back: int

    @classmethod
    def of(cls, checks: list, back: int, *, num_steps: int, device) -> "_Plan":
        check_of = torch.full((num_steps,), -1, dtype=torch.int64, device=device)
        checks_t = torch.tensor(checks, dtype=torch.int64, device=device)  # set up before the loop: no copies inside it
        check_of[checks_t] = torch.arange(len(checks), device=device)
        return cls(checks, checks_t, check_of, back)

    def target(self, level: torch.Tensor) -> torch.Tensor:
        """j = max(level - Delta_T, 0): where a walker at ``level`` is sent back to."""
        return (level - self.back).clamp(min=0)


@dataclass
class _Step:
    """What ``ctx.prepare`` gives for a batch of walkers: xi, x0_hat and aux (see the legend)."""

    xi: torch.Tensor
    x0_hat: torch.Tensor
    aux: Optional[dict]

    def take(self, sel) -> tuple:
        """(xi, x0_hat, aux) of the batch positions ``sel``, as ``ctx.advance`` takes them."""
        return self.xi[sel], self.x0_hat[sel], _take(self.aux, sel)


@dataclass
class _Walkers:
    """The walkers' state: x and level [W], done, n_back, the finished samples and the thresholds.

    ``accept`` and ``send_back`` write results at ``at``: walker indices [m] with values [m, ...]
    (compact slots), or a mask [W] with values [W, ...] (fixed slots: no host read, no shape change).
    """

    rows: torch.Tensor
    x: torch.Tensor
    level: torch.Tensor
    done: torch.Tensor
    n_back: torch.Tensor
    final: torch.Tensor
    thresholds: Optional[torch.Tensor]

    @classmethod
    def start(cls, noise: torch.Tensor, rows: torch.Tensor, *, thresholds) -> "_Walkers":
        w, dev = noise.shape[0], noise.device
        return cls(rows=rows, x=noise, level=torch.zeros(w, dtype=torch.int64, device=dev), done=torch.zeros(w, dtype=torch.bool, device=dev),
                   n_back=torch.zeros(w, dtype=torch.int64, device=dev), final=torch.empty_like(noise), thresholds=thresholds)

    def accept(self, at, x_next, level_next, *, num_steps: int) -> None:
        """The walkers ``at`` passed (or had no check): they move to ``level_next``; those at num_steps finish."""
        self.x = _put(self.x, at, x_next)
        self.level = _put(self.level, at, level_next)
        finished = _narrow(at, level_next == num_steps)
        self.final = _put(self.final, finished, _gather(self.x, finished))
        self.done = _mark(self.done, finished)

    def send_back(self, at, x_back, target) -> None:
        """The walkers ``at`` were rejected: they restart from ``x_back`` at ``target``, one backtrack more."""
        self.x = _put(self.x, at, x_back)
        self.level = _put(self.level, at, target)
        self.n_back = _put(self.n_back, at, _gather(self.n_back, at) + 1)


class _History:
    """Rewards seen per (prompt row, check) for the quantile threshold: ring buffers, the last one a spare
    that takes the masked-out appends of fixed slots."""

    def __init__(self, keys: int, size: int, device):
        self.rewards = torch.full((keys + 1, size), math.nan, dtype=torch.float64, device=device)
        self.count = torch.zeros(keys + 1, dtype=torch.int64, device=device)
        self.spare = keys

    def add_and_quantile(self, key: torch.Tensor, r: torch.Tensor, q: float) -> torch.Tensor:
        """Append rewards r [m] under ``key`` [m]; the q-quantile of each entry's buffer, this reward included."""
        _append(self.rewards, self.count, key, r)
        return torch.nanquantile(self.rewards[key], q, dim=1)


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

    def restore(self, k, walkers, pos, use, step: "_Step") -> "_Step":
        """The step with the stored states put back at positions ``pos`` where ``use``."""
        def put(v, stored):
            v = v.clone()
            v[pos] = torch.where(_col(use, stored), stored, v[pos])
            return v

        xi, x0_hat, aux = put(step.xi, self.store["x"][k, walkers]), put(step.x0_hat, self.store["x0"][k, walkers]), step.aux
        if aux is not None:
            aux = {name: (None if v is None else put(v, self.store["aux_" + name][k, walkers])) for name, v in aux.items()}
        return _Step(xi, x0_hat, aux)


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


def _put(dst: torch.Tensor, at: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """``dst`` with ``src`` written at ``at``: walker indices (in place) or a mask (a new tensor, no host read)."""
    if at.dtype == torch.bool:
        return torch.where(_col(at, src), src, dst)
    dst[at] = src
    return dst


def _gather(v: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """The values of ``v`` at ``at`` in the shape :func:`_put` takes: v[at] for indices, all of v for a mask."""
    return v if at.dtype == torch.bool else v[at]


def _narrow(at: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The part of ``at`` where ``keep`` ([m] for indices, [W] for a mask)."""
    return at & keep if at.dtype == torch.bool else at[keep]


def _mark(flags: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """``flags`` set to True at ``at``."""
    if at.dtype == torch.bool:
        return flags | at
    flags[at] = True
    return flags
