"""Breadth-first search (BFS): particle search with resampling at chosen noise levels.

Zhang et al. 2025, "Inference-time Scaling of Diffusion Models through Classical Search", Sec. 4.1.
BFS keeps N particles per prompt and walks them down the noise levels together. At each
*evaluation level* i it scores every particle by the verifier on its x0-prediction, turns the
scores into potentials G_i, and allocates the N children of the next level among the particles in
proportion to their weights (resampling), or removes the unpromising ones (pruning). The design
space of the paper, each axis a field of :class:`BFS`:

- **temperature** lam_i of the potential at level i: 'constant' (lam), 'increase' (lam times a
  shape that grows with the per-step alpha_i, mean 1 over the run: the paper's schedule), 'inf'
  (greedy: all children go to the best-scoring particles) and 'exp' (DAS's tempering
  lam * min((1+g)^i - 1, 1), reaching lam at 87% of the run) and 'adaptive' (adaptive tempering:
  at each evaluation level every prompt row takes the increment whose incremental weights have a
  conditional ESS of target_ess * N, found on the device by bisection, until lam is reached;
  tempering.py). With ``lam=None`` the final tilt is not fixed either: the last increment is chosen
  by the same rule on the final weights, and the search is then invariant to the reward's units.
- **scoring**, the potential from the reward r_i = r(x0_hat(x_i)) of a particle whose lineage
  carries log-potential log_psi:
  'current'    log G_i = lam_i r_i                              (the paper's BFS, SVDD)
  'difference' log G_i = lam_i r_i - log_psi, with log_psi = lam_prev r_prev (FK 'diff', DAS, SMC)
  'max'        log G_i = lam_i max(r_1 .. r_i)                   (FK 'max')
- **resampling** scheme (tts_fast.ops.resample): multinomial, stratified, systematic, residual,
  ssp (Srinivasan sampling process: N children exactly, counts floor(N w) or floor(N w) + 1);
  or **prune**: keep each particle whose expected child count N w is above 1/2 (the paper's
  rule), no copies, so the population (and its NFE) shrinks.
- **resample_at**: the evaluation levels; **ess_threshold**: resample a prompt only when its
  effective sample size falls below ess_threshold * N (weights accumulate otherwise).

Unlike the original code, scores belong to the particles being resampled (x0_hat of x_i, computed
by the model call that x_i needs anyway, before x_i steps), every prompt row keeps exactly N
particles, and the lineage's potentials are carried, so that the final weights
log w = lam * r(x0) - log_psi make the weighted population target p0(x) exp(lam r(x)) for every
finite temperature and scoring (the correction FK-steering applies; exact SMC without local
search, whose guided proposals are not reweighted). The returned sample per prompt is the
highest-reward particle (``select='best'``) or a draw from the weighted population
(``select='weighted'``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch

from .. import ops
from ..ops import SCHEMES
from ._checks import check_bool, check_choice, check_eta, check_float
from .local import LocalSearch
from .smc import exp_tempering, gated_resample, log_mean_exp
from .tempering import adaptive_increment

TEMPERATURES = ("constant", "increase", "inf", "exp", "adaptive")
SCORINGS = ("current", "difference", "max")
SELECTIONS = ("best", "weighted")


@dataclass
class BFS:
    """BFS over the design space above (defaults: the paper's best, increase / max / ssp).

    Attributes:
        temperature: 'constant', 'increase', 'inf', 'exp' or 'adaptive'.
        scoring: 'current', 'difference' or 'max'.
        resampling: 'multinomial', 'stratified', 'systematic', 'residual' or 'ssp'.
        lam: the target tilt lambda (the final weights target p0 exp(lam r)). With
            temperature='adaptive', None leaves the final tilt to the ESS rule too: each row then
            targets p0 exp(lam_hat r) with its own data-dependent lam_hat (``result.temperatures``
            [:, -1]), the tilt at which the final weights keep target_ess * N effective particles;
            lam_hat scales as 1 / (reward units), so the search does not depend on them.
        target_ess: for temperature='adaptive', the conditional ESS, as a fraction of N in (0, 1),
            that every increment keeps (None: 0.5); None for the fixed schedules.
        resample_at: evaluation levels: 'every' (each step), an int k (every k steps from k),
            step indices, or fractions of the run in (0, 1) (default 0.25, 0.5, 0.75 as in the paper).
        prune: prune instead of resampling.
        ess_threshold: resample a row only when ESS < ess_threshold * N (None: always).
        eta: DDIM eta of the sampler (> 0 so that copies diverge).
        select: 'best' (argmax reward) or 'weighted' (a draw from the final weights).
        local: optional LocalSearch run at every level (joint global + local scaling).
    """

    temperature: str = "increase"
    scoring: str = "max"
    resampling: str = "ssp"
    lam: Optional[float] = 1.0
    resample_at: Union[str, int, Sequence[int], Sequence[float]] = (0.25, 0.5, 0.75)
    prune: bool = False
    ess_threshold: Optional[float] = None
    eta: float = 1.0
    select: str = "best"
    local: Optional[LocalSearch] = None
    target_ess: Optional[float] = None

    name = "bfs"

    def __post_init__(self):
        check_choice(self.temperature, "temperature", TEMPERATURES)
        check_choice(self.scoring, "scoring", SCORINGS)
        check_choice(self.resampling, "resampling", SCHEMES)
        check_choice(self.select, "select", SELECTIONS)
        adaptive = self.temperature == "adaptive"
        if self.lam is None and not adaptive:
            raise ValueError(f"lam=None lets the ESS rule choose the final tilt; it needs temperature='adaptive', got {self.temperature!r}")
        if self.lam is not None:
            check_float(self.lam, "lam", 0.0, low_open=True)
            if self.temperature == "inf" and self.lam != 1.0:
                raise ValueError(f"lam={self.lam!r} would do nothing: the greedy temperature 'inf' gives every child to the "
                                 "best particles whatever the tilt; use a finite temperature to tilt by lam")
        if self.target_ess is not None:
            if not adaptive:
                raise ValueError(f"target_ess sets the adaptive temperature's increments; temperature={self.temperature!r} would ignore it")
            check_float(self.target_ess, "target_ess", 0.0, 1.0, low_open=True)
            if self.target_ess == 1.0:
                raise ValueError("target_ess must be < 1: an ESS of N allows no increment, so the temperature would never rise")
        check_eta(self.eta)
        check_bool(self.prune, "prune")
        if self.ess_threshold is not None:
            check_float(self.ess_threshold, "ess_threshold", 0.0, 1.0, low_open=True)
            if self.prune:
                raise ValueError("ess_threshold gates resampling; prune=True prunes at every evaluation level and would ignore it")
        if self.select == "weighted" and self.temperature == "inf":
            raise ValueError("select='weighted' draws from the final weights p0 exp(lam r), which the greedy temperature 'inf' "
                             "does not define; use a finite temperature or select='best'")
        ra = self.resample_at
        ok = ra == "every" or (isinstance(ra, int) and not isinstance(ra, bool) and ra >= 1)
        if not ok and isinstance(ra, (list, tuple)) and len(ra) > 0:
            ok = all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ra) or all(
                isinstance(v, float) and 0.0 < v < 1.0 for v in ra
            )
        if not ok:
            raise ValueError(
                "resample_at must be 'every', an int k >= 1, a list of step indices, or a list of fractions in (0, 1); "
                f"got {ra!r}"
            )

    # -- plan ------------------------------------------------------------------------------------

    def levels(self, num_steps: int) -> list[int]:
        """The evaluation levels (step indices in [0, num_steps)) of a run."""
        ra = self.resample_at
        if ra == "every":
            return list(range(num_steps))
        if isinstance(ra, int):
            if ra >= num_steps:
                raise ValueError(f"resample_at={ra} (every {ra} steps from step {ra}) gives no evaluation level in a run of "
                                 f"num_steps={num_steps}: the search would be best-of-N; use resample_at < num_steps")
            return list(range(ra, num_steps, ra))
        if isinstance(ra[0], float):
            return sorted({min(num_steps - 1, round(f * num_steps)) for f in ra})
        bad = [v for v in ra if v >= num_steps]
        if bad:
            raise ValueError(f"resample_at steps {bad} are outside [0, num_steps={num_steps})")
        return sorted(set(ra))

    def lambdas(self, grid) -> Optional[torch.Tensor]:
        """lam_i for every step i ([S] float64), None for the greedy 'inf' temperature.

        The 'adaptive' temperature has no fixed schedule; it is chosen during the run (see run).
        """
        s = grid.num_steps
        if self.temperature == "adaptive":
            raise ValueError("temperature='adaptive' has no fixed schedule: its lam_i are chosen per row during the run")
        if self.temperature == "inf":
            return None
        if self.temperature == "constant":
            return torch.full((s,), self.lam, dtype=torch.float64)
        if self.temperature == "increase":
            return self.lam * grid.shape("increase").cpu()
        return exp_tempering(s, self.lam)

    @property
    def ess_target(self) -> float:
        """The adaptive temperature's target CESS as a fraction of N (target_ess, default 0.5)."""
        return 0.5 if self.target_ess is None else self.target_ess

    def cost(self, ctx) -> int:
        """Model NFE per prompt without pruning (pruning spends less); checks the plan fits the run."""
        self.levels(ctx.num_steps)
        if self.temperature == "adaptive" and self.ess_target * ctx.n_particles <= 1.0:
            raise ValueError(f"target_ess * n_particles = {self.ess_target} * {ctx.n_particles} must exceed 1: an ESS is never "
                             "below one particle, so the adaptive temperature would jump to the greedy limit")
        return ctx.n_particles * ctx.num_steps * ctx.steps_cost()

    # -- the search ------------------------------------------------------------------------------

    def run(self, ctx):
        b, n, steps = ctx.batch_size, ctx.n_particles, ctx.num_steps
        evaluate_at = set(self.levels(steps))
        adaptive = self.temperature == "adaptive"
        lam = None if adaptive else self.lambdas(ctx.grid)
        lam = None if lam is None else lam.tolist()  # host floats: the loop never reads a tensor
        finite = adaptive or lam is not None
        rows = ctx.rows(n)
        x = ctx.init_noise(b * n)
        dev = x.device
        log_w = torch.zeros(b, n, dtype=torch.float64, device=dev)  # weights since the last resampling
        log_z = torch.zeros(b, dtype=torch.float64, device=dev)  # log evidence: sum of log mean incremental weights
        log_psi = torch.zeros(b, n, dtype=torch.float64, device=dev)  # log potentials along each lineage
        best_r = torch.full((b, n), -math.inf, dtype=torch.float64, device=dev)  # running max (scoring='max')
        alive = torch.ones(b, n, dtype=torch.bool, device=dev)
        live = None  # flat indices of the particles still alive once pruning removed some
        lam_row = torch.zeros(b, dtype=torch.float64, device=dev)  # each row's current temperature
        temperatures = []  # lam_row at every evaluation level, then the final tilt

        for i in range(steps):
            live_rows = rows if live is None else rows[live]
            xi, x0_hat, aux = ctx.prepare(x if live is None else x[live], i, live_rows)
            if i in evaluate_at:
                r = _scatter(ctx.score(x0_hat, live_rows).to(torch.float64), live, b, n)
                if adaptive:
                    key = torch.maximum(best_r, r) if self.scoring == "max" else r
                    base = lam_row[:, None] * key - (log_psi if self.scoring == "difference" else 0.0)
                    lam_row = self._next_temperature(log_w, base, key, alive, lam_row)
                elif lam is not None:
                    lam_row = torch.full_like(lam_row, lam[i])
                log_g, best_r, log_psi = self._potential(r, best_r, log_psi, lam_row[:, None] if finite else None, alive)
                if finite:
                    temperatures.append(lam_row)
                log_w = log_w + log_g
                ess = ops.ess(log_w)
                if self.prune:
                    # Keep a particle iff its expected number of children, M_row * W, exceeds 1/2.
                    keep = alive & (alive.sum(1, keepdim=True) * ops.normalize_log_weights(log_w).exp() > 0.5)
                    sel = keep.reshape(-1) if live is None else keep.reshape(-1)[live]
                    xi, x0_hat, aux = xi[sel], x0_hat[sel], _take_aux(aux, sel)
                    alive = keep
                    live = keep.reshape(-1).nonzero().squeeze(1)  # data-dependent shape: pruning syncs
                    live_rows = rows[live]
                else:
                    anc, resample_row, log_w, dz, _ = gated_resample(ctx, log_w, self.resampling, self.ess_threshold)
                    log_z = log_z + dz
                    xi, x0_hat, aux = ops.gather_particles(xi, anc), ops.gather_particles(x0_hat, anc), _gather_aux(aux, anc)
                    log_psi, best_r = ops.gather_particles(log_psi, anc), ops.gather_particles(best_r, anc)
                ctx.trace.add(
                    step=i, ess=ess, reward_mean=_masked_mean(r, alive), reward_max=r.amax(1), alive=alive.sum(1),
                    resampled=None if self.prune else resample_row, **({"lam": lam_row} if finite else {}),
                )
            x_next = ctx.advance(xi, x0_hat, aux, i, live_rows, self.eta)
            x = x_next if live is None else x.index_copy(0, live, x_next)

        r_raw = ctx.score(x if live is None else x[live], rows if live is None else rows[live], final=True)
        r_final = _scatter(r_raw.to(torch.float64), live, b, n)
        if finite:
            # Final potential: the lineage's intermediate potentials are divided out, so the weighted
            # population targets p0 * exp(lam * r) whatever the intermediate scoring was.
            if adaptive:
                lam_row = self._next_temperature(log_w, lam_row[:, None] * r_final - log_psi, r_final, alive, lam_row)
            else:
                lam_row = torch.full_like(lam_row, self.lam)
            temperatures.append(lam_row)
            # masked: a dead slot's -inf reward times a zero tilt would be NaN
            log_w = log_w + torch.where(alive, lam_row[:, None] * r_final - log_psi, torch.full_like(log_w, -math.inf))
            log_z = log_z + log_mean_exp(log_w)
        # Weights are float64; rewards are returned in the verifier's dtype, as by every method.
        result = ctx.finish(x, r_final.reshape(-1).to(r_raw.dtype), n, log_weights=log_w, alive=None if live is None else alive)
        if finite:
            result.temperatures = torch.stack(temperatures, dim=1)
        if self.lam is not None and self.temperature != "inf" and not self.prune and ctx.local is None:
            # SMC's evidence estimate; pruning is not resampling and guided proposals are not reweighted.
            # Adaptive increments, chosen from the particles, make it consistent rather than unbiased.
            result.log_evidence = log_z
        if self.select == "weighted":
            pick = ctx.resample(result.log_weights, "multinomial")[:, 0]
            flat = pick + torch.arange(b, device=dev) * n
            result.latents = x[flat]
            result.rewards = r_final.reshape(-1)[flat].to(r_raw.dtype)
            result.samples = ctx.decode_full(result.latents)
        return result

    def _next_temperature(self, log_w, base, key, alive, lam_row):
        """The adaptive temperature after this level [B]: lam_row plus the increment whose incremental
        log-weights base + delta * key keep a CESS of target_ess times the live count."""
        target = self.ess_target * alive.sum(1).to(torch.float64)
        if self.lam is None:
            return lam_row + adaptive_increment(log_w, base, key, alive, target, torch.full_like(lam_row, math.inf))
        cap = torch.clamp(self.lam - lam_row, min=0.0)
        delta = adaptive_increment(log_w, base, key, alive, target, cap)
        return torch.where(delta >= cap, torch.full_like(lam_row, self.lam), lam_row + delta)

    def _potential(self, r, best_r, log_psi, lam_i, alive):
        """log G_i [B, N] for this level, and the updated running max and lineage log-potential."""
        if self.scoring == "max":
            best_r = torch.maximum(best_r, r)
        if lam_i is None:
            # Greedy: every child goes to the best particles of the row (ties share). log_psi then
            # holds the previous reward, for the 'difference' key r_i - r_prev.
            key = {"current": r, "difference": r - log_psi, "max": best_r}[self.scoring]
            top = torch.where(alive, key, torch.full_like(key, -math.inf)).amax(dim=1, keepdim=True)
            log_g = torch.where(alive & (key == top), torch.zeros_like(key), torch.full_like(key, -math.inf))
            return log_g, best_r, torch.where(alive, r, log_psi)
        if self.scoring == "current":
            log_g = lam_i * r
        elif self.scoring == "difference":
            log_g = lam_i * r - log_psi
        else:
            log_g = lam_i * best_r
        log_g = torch.where(alive, log_g, torch.full_like(log_g, -math.inf))
        return log_g, best_r, log_psi + torch.where(alive, log_g, torch.zeros_like(log_g))


def _scatter(values: torch.Tensor, live, b: int, n: int) -> torch.Tensor:
    """Per-particle values of the live particles as a [B, N] table (-inf for pruned slots)."""
    if live is None:
        return values.view(b, n)
    full = torch.full((b * n,), -math.inf, dtype=values.dtype, device=values.device)
    return full.index_copy(0, live, values).view(b, n)


def _masked_mean(r: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    return torch.where(alive, r, torch.zeros_like(r)).sum(1) / alive.sum(1)


def _gather_aux(aux, anc):
    if aux is None:
        return None
    return {k: (None if v is None else ops.gather_particles(v, anc)) for k, v in aux.items()}


def _take_aux(aux, sel):
    if aux is None:
        return None
    return {k: (None if v is None else v[sel]) for k, v in aux.items()}
