"""Noise search (Ma et al. 2025): random search (best-of-N), zero-order search, search over paths.

These methods search the space of initial noises (and, for search over paths, of intermediate
re-noisings) with the verifier scoring completed or partially denoised samples. With eta = 0 the
sampler is the deterministic DDIM/ODE map, so a noise determines its sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from ._checks import check_bool, check_eta, check_float, check_int
from .local import LocalSearch


def denoise_all(ctx, x, cond, eta: float, level_from: int = 0, level_to: Optional[int] = None):
    """Run particles from level_from to level_to (default: clean). Returns (x, last x0_hat)."""
    level_to = ctx.num_steps if level_to is None else level_to
    x0_hat = x
    for i in range(level_from, level_to):
        x, x0_hat = ctx.transition(x, i, cond, eta)
    return x, x0_hat


@dataclass
class BestOfN:
    """Random search: N independent samples per prompt, keep the one the verifier likes best.

    Cost: N * num_steps * local_steps model NFE per prompt.
    """

    eta: float = 1.0
    local: Optional[LocalSearch] = None

    name = "bon"

    def __post_init__(self):
        check_eta(self.eta)

    def cost(self, ctx) -> int:
        return ctx.n_particles * ctx.num_steps * ctx.steps_cost()

    def run(self, ctx):
        n = ctx.n_particles
        cond = ctx.rows(n)
        x, _ = denoise_all(ctx, ctx.init_noise(cond.numel()), cond, self.eta)
        return ctx.finish(x, ctx.score(x, cond, final=True), n)


@dataclass
class ZeroOrder:
    """Zero-order search: move a pivot noise to its best neighbour while that improves the reward.

    Each iteration draws N neighbours y = sqrt(1 - lam^2) * pivot + lam * xi (xi ~ N(0, I)) of the
    pivot noise. This keeps y ~ N(0, I) when the pivot is, so neighbours stay typical noises;
    E|y - pivot|^2 = 2 (1 - sqrt(1 - lam^2)) D, about lam^2 D for small lam, and lam = 1 is random
    search. The neighbours are denoised and scored; the best replaces the pivot if it beats it.
    With ``restart_on_stall`` a round without improvement draws a fresh pivot (the fix discussed
    for zero-order search stalling at a fixed point); the best sample ever seen is returned.

    Attributes:
        lam: neighbourhood size in (0, 1].
        iterations: rounds of N neighbours; None = as many as ``budget`` allows (4 without one).
        restart_on_stall: draw a fresh pivot after a round without improvement.
        eta: DDIM eta of the sampler (0: deterministic noise-to-sample map).

    Cost: (1 + iterations * N) * num_steps * local_steps model NFE per prompt.
    """

    lam: float = 0.5
    iterations: Optional[int] = None
    restart_on_stall: bool = False
    eta: float = 0.0
    local: Optional[LocalSearch] = None

    name = "zero_order"

    def __post_init__(self):
        check_float(self.lam, "lam", 0.0, 1.0, low_open=True)
        check_bool(self.restart_on_stall, "restart_on_stall")
        if self.iterations is not None:
            check_int(self.iterations, "iterations", 1)
        check_eta(self.eta)

    def _iterations(self, ctx) -> int:
        if self.iterations is not None:
            return self.iterations
        if ctx.row_budget is None:
            return 4
        per_round = ctx.n_particles * ctx.num_steps * ctx.steps_cost()
        return max(1, (ctx.row_budget - ctx.num_steps * ctx.steps_cost()) // per_round)

    def cost(self, ctx) -> int:
        return (1 + self._iterations(ctx) * ctx.n_particles) * ctx.num_steps * ctx.steps_cost()

    def run(self, ctx):
        b, n = ctx.batch_size, ctx.n_particles
        rows1, rows = ctx.rows(1), ctx.rows(n)
        pivot = ctx.init_noise(b)
        best_x, _ = denoise_all(ctx, pivot, rows1, self.eta)
        best_r = ctx.score(best_x, rows1, final=True)
        pivot_r = best_r.clone()
        c = math.sqrt(1.0 - self.lam**2)
        for it in range(self._iterations(ctx)):
            y = c * pivot.repeat_interleave(n, dim=0) + self.lam * ctx.randn(b * n)
            x, _ = denoise_all(ctx, y, rows, self.eta)
            r = ctx.score(x, rows, final=True).reshape(b, n)
            top = r.argmax(dim=1)
            flat = top + torch.arange(b, device=top.device) * n
            top_r = r.gather(1, top[:, None]).squeeze(1)
            better = top_r > pivot_r
            pivot = torch.where(_col(better, pivot), y[flat], pivot)
            pivot_r = torch.where(better, top_r, pivot_r)
            improved = top_r > best_r
            best_x = torch.where(_col(improved, best_x), x[flat], best_x)
            best_r = torch.where(improved, top_r, best_r)
            ctx.trace.add(step=it, pivot_reward=pivot_r, accepted=better)
            if self.restart_on_stall:
                fresh = ctx.init_noise(b)
                pivot = torch.where(_col(better, pivot), pivot, fresh)
                pivot_r = torch.where(better, pivot_r, torch.full_like(pivot_r, -torch.inf))
        result = ctx.finish(best_x, best_r, 1)
        result.particles, result.particle_rewards = x.reshape(b, n, *x.shape[1:]), r
        return result


@dataclass
class SearchOverPaths:
    """Search over paths: branch partially denoised paths by forward noise, keep the best N.

    N paths are denoised from pure noise to level ``start``. Each round, every path at level l gets
    ``width`` copies re-noised forward by ``delta_f`` levels (the exact kernel q(x_{l-df} | x_l)),
    each copy is denoised ``delta_b`` > ``delta_f`` levels, the N * width candidates are scored on
    their x0-prediction at the last model call (the final samples themselves once clean), and the
    N best per prompt are kept. Rounds repeat until the paths are clean.

    Attributes:
        width: copies per path per round (M).
        delta_f, delta_b: forward and backward jumps in levels (defaults: S // 10 and 2 * delta_f).
        start: level of the first branching (default delta_b; must be >= delta_f).
        eta: DDIM eta of the denoising (0: ODE, as in the paper).
    """

    width: int = 2
    delta_f: Optional[int] = None
    delta_b: Optional[int] = None
    start: Optional[int] = None
    eta: float = 0.0
    local: Optional[LocalSearch] = None

    name = "search_over_paths"

    def __post_init__(self):
        check_int(self.width, "width", 1)
        for name in ("delta_f", "delta_b", "start"):
            if getattr(self, name) is not None:
                check_int(getattr(self, name), name, 1 if name != "start" else 0)
        check_eta(self.eta)

    def plan(self, num_steps: int):
        """(start, [(level_from, level_to) of each round]) for a grid of num_steps."""
        df = self.delta_f if self.delta_f is not None else max(1, num_steps // 10)
        db = self.delta_b if self.delta_b is not None else 2 * df
        if db <= df:
            raise ValueError(f"delta_b must be > delta_f, got delta_b={db}, delta_f={df}")
        start = self.start if self.start is not None else min(db, num_steps)
        if not df <= start <= num_steps:
            raise ValueError(f"start must lie in [delta_f={df}, num_steps={num_steps}], got {start}")
        rounds, level = [], start
        while level < num_steps:
            lf = level - df
            lt = min(lf + db, num_steps)
            rounds.append((lf, lt))
            level = lt
        return start, rounds

    def cost(self, ctx) -> int:
        start, rounds = self.plan(ctx.num_steps)
        n = ctx.n_particles
        return (n * start + sum(n * self.width * (lt - lf) for lf, lt in rounds)) * ctx.steps_cost()

    def run(self, ctx):
        b, n, m = ctx.batch_size, ctx.n_particles, self.width
        start, rounds = self.plan(ctx.num_steps)
        rows, wide = ctx.rows(n), ctx.rows(n * m)
        x, _ = denoise_all(ctx, ctx.init_noise(b * n), rows, self.eta, 0, start)
        r = None
        for k, (lf, lt) in enumerate(rounds):
            cand = ctx.renoise(x.repeat_interleave(m, dim=0), _level_of(rounds, k, start), lf)
            cand, x0_hat = denoise_all(ctx, cand, wide, self.eta, lf, lt)
            score_on = cand if lt == ctx.num_steps else x0_hat
            rc = ctx.score(score_on, wide, final=lt == ctx.num_steps).reshape(b, n * m)
            keep = rc.topk(n, dim=1).indices
            flat = (keep + torch.arange(b, device=keep.device)[:, None] * (n * m)).reshape(-1)
            x, r = cand[flat], rc.gather(1, keep).reshape(-1)
            ctx.trace.add(step=k, level=lt, best_reward=rc.max(dim=1).values)
        if r is None:
            r = ctx.score(x, rows, final=True)
        return ctx.finish(x, r, n)


def _level_of(rounds, k: int, start: int) -> int:
    """Level of the paths at the beginning of round k."""
    return start if k == 0 else rounds[k - 1][1]


def _col(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return mask.reshape(-1, *([1] * (x.dim() - 1)))
