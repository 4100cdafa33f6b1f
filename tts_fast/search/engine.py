"""The machinery every search method shares: the four primitives and the bookkeeping.

A method is a short function over
- **denoise-step** (:meth:`Context.transition`): one model call for a batch of particles at
  per-particle levels, then a DDIM(eta) step to the next level; with a local-search config
  attached it becomes a guided step with recurrence (annealed Langevin), see local.py;
- **score** (:meth:`Context.score`): the verifier on (decoded) x0-predictions;
- **resample** (:meth:`Context.resample`): ancestor indices per prompt row (tts_fast.ops);
- **perturb** (:meth:`Context.renoise`, Langevin moves in local.py): forward re-noising.

Particles live in a flat batch [B*N, ...] ordered by prompt row; ``cond`` [B*N] holds each
particle's row. The Context counts NFE per row, times each stage and collects the trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from .. import ops
from .._device_checks import Collector
from .counting import NFE, Counter, Timers, Trace
from ..schedules import Grid


@dataclass
class SearchResult:
    """What a search returns.

    Attributes:
        samples: [B, ...] the best sample per prompt, decoded (``model.decode_full``).
        rewards: [B] verifier reward of each returned sample.
        latents: [B, *sample_shape] the same samples in model space.
        particles: [B, N, *sample_shape] final population in model space (None when the method has
            no population).
        particle_rewards: [B, N] verifier rewards of the final population.
        log_weights: [B, N] normalised log-weights of the final population; for the SMC settings
            of BFS (finite temperature) the weighted population targets p0 * exp(lam * reward).
            None for methods without weights.
        nfe: counts of model / model_grad / verifier / verifier_grad evaluations.
        nfe_per_prompt: [B] model NFE spent on each prompt row.
        log_evidence: [B] float64, the log of the SMC estimate of Z = E_p0[exp(lam * reward)] per
            row (the product of the mean incremental weights at each resampling and at the end;
            exp of it is unbiased for Z), for BFS at a finite temperature with resampling and no
            local search (for the adaptive temperature, whose increments are chosen from the
            particles, a consistent rather than unbiased estimate); None otherwise, and for an
            adaptive run with lam=None, whose rows each target their own tilt.
        temperatures: [B, L + 1] float64, for BFS at a finite temperature: each row's tilt lam_i at
            its L evaluation levels and, last, the final tilt of its weights (per row and data-
            dependent for temperature='adaptive'); None otherwise.
        timings: seconds per stage ('model', 'decode', 'verifier', 'search_ops', 'total').
        trace: per-step statistics (list of dicts of Python numbers).
        method: the method object that ran (with its resolved settings).
    """

    samples: torch.Tensor
    rewards: torch.Tensor
    latents: torch.Tensor
    particles: Optional[torch.Tensor]
    particle_rewards: Optional[torch.Tensor]
    log_weights: Optional[torch.Tensor]
    nfe: NFE
    nfe_per_prompt: torch.Tensor
    log_evidence: Optional[torch.Tensor] = None
    temperatures: Optional[torch.Tensor] = None
    timings: dict = field(default_factory=dict)
    trace: list = field(default_factory=list)
    method: object = None


class Context:
    """The state shared by a search run (built by :func:`tts_fast.search`)."""

    def __init__(
        self,
        model,
        verifier,
        local_verifier,
        grid: Grid,
        *,
        batch_size: int,
        n_particles: int,
        seed: int,
        budget: Optional[int],
        progress,
        local=None,
        timers: Optional[Timers] = None,
    ):
        self.model = model
        self.verifier = verifier
        self.local_verifier = local_verifier if local_verifier is not None else verifier
        self.device = torch.device(getattr(model, "device", "cpu"))
        self.dtype = getattr(model, "dtype", torch.float32)
        self.grid = grid.to(self.device)
        self.batch_size = batch_size
        self.n_particles = n_particles
        self.budget = budget
        self.row_budget = None if budget is None else budget // batch_size
        self.local = local
        # Value checks on the device (finite rewards; prompt rows and targets checked inside models
        # and verifiers through tts_fast._device_checks.require) are recorded here and read on the
        # host twice per run: at the first scoring level, so that NaN rewards stop the run before
        # its budget is spent, and at the end (read_checks). The loop never waits on the device.
        self.checks = Collector()
        self._first_scores_read = False
        self.generator = torch.Generator(device=self.device).manual_seed(int(seed))
        self.counter = Counter(batch_size, self.device, cfg=bool(getattr(model, "cfg", False)))
        self.timers = timers or Timers()
        self.trace = Trace()
        self.progress = progress
        self._local_tables = None

    # -- randomness (one seeded generator: same seed, same result) --------------------------------

    @property
    def num_steps(self) -> int:
        return self.grid.num_steps

    def rows(self, n_per_row: int) -> torch.Tensor:
        """Prompt row of each particle of a [B * n_per_row] batch."""
        return torch.arange(self.batch_size, device=self.device).repeat_interleave(n_per_row)

    def randn(self, n: int) -> torch.Tensor:
        """[n, *sample_shape] standard normals."""
        return torch.randn((n, *self.model.sample_shape), generator=self.generator, device=self.device, dtype=self.dtype)

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)

    def init_noise(self, n: int) -> torch.Tensor:
        """[n, *sample_shape] particles at level 0: sigma_0 * eps (sigma_0 = 1 for flow, ~1 for VP)."""
        return self.randn(n)

    def levels(self, level, n: int) -> torch.Tensor:
        if isinstance(level, int):
            return torch.full((n,), level, dtype=torch.int64, device=self.device)
        return level

    # -- the primitives ---------------------------------------------------------------------------

    def denoise(self, x: torch.Tensor, level, cond: torch.Tensor) -> torch.Tensor:
        """x0-prediction of each particle at its level (one model NFE each)."""
        lv = self.levels(level, x.shape[0])
        t = self.grid.timesteps[lv]
        with self.timers("model", self.device), torch.no_grad():
            x0_hat = self.model(x, t, cond)
        _check_prediction(x0_hat, x, self.model)
        self.counter.add_model(cond)
        self._advance(x.shape[0])
        return x0_hat

    def denoise_with_grad(self, x, level, cond, objective):
        """x0-prediction and the gradient of ``objective(x0_hat)`` [n] in x, through the model."""
        lv = self.levels(level, x.shape[0])
        t = self.grid.timesteps[lv]
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            with self.timers("model", self.device):
                x0_hat = self.model(xg, t, cond)
            _check_prediction(x0_hat, x, self.model)
            value = objective(x0_hat)
            with self.timers("model", self.device):
                (g,) = torch.autograd.grad(value.sum(), xg)
        self.counter.add_model(cond, grad=True)
        self._advance(x.shape[0])
        return x0_hat.detach(), g

    def score(self, x0: torch.Tensor, cond: torch.Tensor, verifier=None, grad: bool = False, final: bool = False,
              count: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Verifier rewards [n] of (decoded) x0; ``grad`` keeps the graph for autograd callers.

        ``final``: x0 are finished samples, decoded at full quality (``decode_full``), so that the
        returned rewards belong to the returned samples; intermediate scores use ``decode``.
        ``count``: [n] bool, the samples that count as verifier evaluations (fixed slots score
        every slot; the others' scores are discarded), on the device.
        """
        verifier = verifier or self.verifier
        with torch.set_grad_enabled(grad):
            with self.timers("decode", self.device):
                img = self.decode_full(x0) if final else self.model.decode(x0)
            with self.timers("verifier", self.device):
                r = verifier(img, cond)
        self.counter.add_verifier(x0.shape[0], grad=grad, mask=count)
        if r.device != self.device:
            r = r.to(self.device)  # a verifier on another device (e.g. CPU) scores for a CUDA search
        if x0.shape[0]:
            role = "local_verifier" if verifier is not self.verifier else "verifier"
            self.checks.add(torch.isfinite(r.detach()).all(), f"the {role} ({type(verifier).__name__}) returned NaN or inf "
                            "rewards; rewards must be finite")
            if not self._first_scores_read:
                self._first_scores_read = True
                self.checks.check()  # the first scoring level: one host read, before the budget is spent
        return r if grad else r.detach()

    def read_checks(self) -> None:
        """Raise the first failed deferred value check of the run (one host read)."""
        self.checks.check()

    def decode_full(self, x0: torch.Tensor) -> torch.Tensor:
        return getattr(self.model, "decode_full", self.model.decode)(x0)

    def step(self, x, x0_hat, level, eta: float, noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        """DDIM(eta) step of each particle from its level to the next.

        ``noise``: the step's standard normals [n, ...] (default: drawn here from the run's
        generator); a method that evaluates a subset of fixed slots passes the subset of a draw
        for every slot, so that its random stream does not depend on which slots ran.
        """
        lv = self.levels(level, x.shape[0])
        with self.timers("search_ops", self.device):
            if noise is None and eta > 0:
                noise = self.randn_like(x)
            return ops.ddim_step(x, x0_hat, lv, lv + 1, self.grid.alpha, self.grid.sigma, eta=eta, noise=noise)

    def renoise(self, x, level_from, level_to) -> torch.Tensor:
        """Exact forward re-noising from level_from to the (noisier) level_to, per particle."""
        lf = self.levels(level_from, x.shape[0])
        lt = self.levels(level_to, x.shape[0])
        with self.timers("search_ops", self.device):
            return ops.renoise(x, lf, lt, self.grid.alpha, self.grid.sigma, noise=self.randn_like(x))

    def resample(self, log_weights: torch.Tensor, scheme: str) -> torch.Tensor:
        """Ancestors [B, N] (row-local) from per-row log-weights, with uniforms from the run's generator."""
        with self.timers("search_ops", self.device):
            u = torch.rand(log_weights.shape, generator=self.generator, device=self.device, dtype=torch.float64)
            return ops.resample(log_weights, u, scheme=scheme)

    def prepare(self, x, level, cond):
        """First half of a transition: (x at its level, x0_hat, aux) before the step.

        Plain: one model call. With a LocalSearch attached: its recurrence rounds and the last
        round's model call (aux carries the gradient the guided step uses). Methods score and
        resample here, so scores belong to the particles being resampled (not one step stale).
        """
        if self.local is None:
            return x, self.denoise(x, level, cond), None
        return self.local.prepare(self, x, self.levels(level, x.shape[0]), cond)

    def advance(self, x, x0_hat, aux, level, cond, eta: float):
        """Second half: the (guided) DDIM(eta) step of each particle to the next level."""
        if self.local is None:
            return self.step(x, x0_hat, level, eta)
        return self.local.advance(self, x, x0_hat, aux, self.levels(level, x.shape[0]), cond, eta)

    def transition(self, x, level, cond, eta: float):
        """One denoising transition of each particle: (x at level+1, x0_hat at level).

        Costs ``steps_cost()`` model NFE per particle.
        """
        x, x0_hat, aux = self.prepare(x, level, cond)
        return self.advance(x, x0_hat, aux, level, cond, eta), x0_hat

    def steps_cost(self) -> int:
        """Model NFE of one transition of one particle."""
        return 1 if self.local is None else self.local.local_steps

    # -- budget, progress, results ----------------------------------------------------------------

    def check_cost(self, per_row: int, what: str) -> None:
        """Refuse a fixed-cost plan that would exceed the budget (budget is never exceeded)."""
        if self.row_budget is not None and per_row > self.row_budget:
            raise ValueError(
                f"budget={self.budget} is too small for {what}: it needs {per_row} model NFE per prompt "
                f"x {self.batch_size} prompts = {per_row * self.batch_size}"
            )

    def _advance(self, n: int) -> None:
        # The bar counts model NFE as the counter does: n particles here, unless the counter masks
        # them (fixed slots), whose NFE are device values that read_flag brings to the bar.
        if self.progress is not None and not self.counter.masking:
            self.progress.update(n)

    def read_flag(self, flag: torch.Tensor) -> bool:
        """Read a 0-d bool ``flag`` from the device: one host read. With a progress bar, the same read
        brings the masked model NFE counted so far, and the bar moves to the run's true count."""
        if self.progress is None:
            return bool(flag)
        value, pending = torch.stack([flag.to(torch.int64), self.counter.pending_model()]).tolist()
        self.progress.update(self.counter.nfe.model + pending - self.progress.n)
        return bool(value)

    def finish(self, x0, rewards, n_per_row: int, *, log_weights=None, alive=None) -> SearchResult:
        """Pick the best particle per row and package the result.

        Args:
            x0: [B*n, ...] final samples (model space). rewards: [B*n].
            log_weights: optional [B, n] unnormalised final log-weights.
            alive: optional [B, n] mask of particles that may be returned.
        """
        b = self.batch_size
        r = rewards.reshape(b, n_per_row)
        masked = r if alive is None else torch.where(alive, r, torch.full_like(r, -torch.inf))
        best = masked.argmax(dim=1)
        flat = best + torch.arange(b, device=best.device) * n_per_row
        latents = x0[flat]
        with self.timers("decode", self.device), torch.no_grad():
            samples = self.decode_full(latents)
        lw = None
        if log_weights is not None:
            lw = log_weights if alive is None else torch.where(alive, log_weights, torch.full_like(log_weights, -torch.inf))
            lw = ops.normalize_log_weights(lw.to(torch.float64))
        return SearchResult(
            samples=samples,
            rewards=r.gather(1, best[:, None]).squeeze(1),
            latents=latents,
            particles=x0.reshape(b, n_per_row, *x0.shape[1:]),
            particle_rewards=r,
            log_weights=lw,
            nfe=self.counter.nfe,  # masked counts are added by Counter.settle, after the run
            nfe_per_prompt=self.counter.per_prompt,
        )


def _check_prediction(x0_hat, x, model) -> None:
    if not isinstance(x0_hat, torch.Tensor) or x0_hat.shape != x.shape:
        got = tuple(x0_hat.shape) if isinstance(x0_hat, torch.Tensor) else type(x0_hat).__name__
        raise ValueError(f"{type(model).__name__} returned {got} for x_t of shape {tuple(x.shape)}; a Denoiser must return x0 like x_t")
