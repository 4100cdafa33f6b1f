"""Running search methods on the digits zoo and measuring them (shared by the demo and benchmarks).

One *run* = one ``tts.search`` call with one prompt row per requested sample: the targets are the
digits, each repeated ``per_digit`` times (``batch_size = len(digits) * per_digit``), the selection
verifier is the 'verifier' classifier with one target per row, and every method gets the same
model-NFE budget per row. Measured on the returned samples:
- ``verifier_reward``: mean log p_verifier(target | x) (what the search maximised);
- ``verifier_acc``: fraction the verifier classifies as the target;
- ``evaluator_acc``: fraction the held-out evaluator (an MLP never used by any search) classifies
  as the target: the honest measure. ``gap`` = verifier_acc - evaluator_acc (reward hacking);
- NFE per row (model, model_grad) as the library counted them, and wall seconds.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from ..search import DFS, SearchOverPaths, ZeroOrder, search
from .weights import digits, digits_classifier
from ..verifiers.base import Classifier

# The paper's ImageNet local-search setting (official_repo_spec.md section 6): rho 0.2, mu 0.4,
# sigma 0.1, K = 1, J = 4; applied unchanged (no tuning on this model).
PAPER_LOCAL = dict(rho=0.2, mu=0.4, sigma=0.1, mc_samples=1, iter_steps=4)


@dataclass(frozen=True)
class Spec:
    """How one named method is run at a budget of ``n`` particle-trajectories (n * num_steps NFE per row).

    Attributes:
        method: a name for tts.search, or a callable (n, num_steps) -> method object.
        particles: (n) -> n_particles actually passed.
        options: method / local-search options.
        dual: local-search gradients from the 'guide' classifier (dual verifiers) instead of the
            selection verifier.
        fixed_nfe: the method ignores n (plain sampling: one trajectory).
    """

    label: str
    method: object
    particles: Callable[[int], int] = lambda n: n
    options: dict = field(default_factory=dict)
    dual: bool = False
    fixed_nfe: bool = False
    min_n: int = 1

    def build(self, n: int, num_steps: int):
        m = self.method(n, num_steps) if callable(self.method) else self.method
        return m, self.particles(n), dict(self.options)


def _half(n: int) -> int:
    return max(1, n // 2)


def _sop(n: int, num_steps: int):
    # Branch the last 60% of the run: 2 copies per path, forward 4% / backward 20% of the levels.
    s = num_steps
    df = max(1, round(0.04 * s))
    db = max(df + 1, round(0.2 * s))
    return SearchOverPaths(width=2, delta_f=df, delta_b=db, start=max(df, round(0.4 * s)))


def _zero_order_particles(n: int) -> int:
    return max(1, n // 4)


SPECS = {
    "baseline": Spec("plain sampling", "bon", particles=lambda n: 1, fixed_nfe=True),
    "bon": Spec("best-of-N", "bon"),
    "bfs_best": Spec("BFS-best", "bfs_best"),
    "fk": Spec("FK", "fk"),
    "das": Spec("DAS w/o grad", "das"),
    "svdd": Spec("SVDD", "svdd"),
    "sop": Spec("SoP", _sop, particles=_half, min_n=2),
    "zero_order": Spec("zero-order", lambda n, s: ZeroOrder(), particles=_zero_order_particles, min_n=2),
    # Quantile thresholds compare the walkers of a prompt, so DFS gets at least two.
    "dfs": Spec("DFS", lambda n, s: DFS(quantile=0.5), particles=lambda n: max(2, n // 2), min_n=2),
    "local": Spec("local search", "local", particles=_half, options=dict(PAPER_LOCAL, local_steps=2), min_n=2),
    "bfs_local": Spec("BFS-best + local", "bfs_best", particles=_half, options=dict(PAPER_LOCAL, local_steps=2), min_n=2),
    "local_dual": Spec("local search (dual)", "local", particles=_half, options=dict(PAPER_LOCAL, local_steps=2), dual=True, min_n=2),
    "bfs_local_dual": Spec("BFS-best + local (dual)", "bfs_best", particles=_half, options=dict(PAPER_LOCAL, local_steps=2), dual=True, min_n=2),
    # tree search: up to 4 rollouts in flight per tree, as many rollouts as the row's budget pays for
    "dts": Spec("DTS", "dts", particles=lambda n: min(n, 4)),
    "dts_star": Spec("DTS*", "dts_star", particles=lambda n: min(n, 4)),
    # DAS as published: n particles, each step one backward pass through the model and the verifier
    "das_guided": Spec("DAS (guided)", "das_guided"),
}
DEMO_METHODS = ("baseline", "bon", "bfs_best", "svdd", "local", "local_dual")


def check_methods(methods: Sequence[str]) -> list[str]:
    unknown = [m for m in methods if m not in SPECS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; allowed: {', '.join(SPECS)}")
    if not methods:
        raise ValueError(f"give at least one method; allowed: {', '.join(SPECS)}")
    return list(methods)


class Zoo:
    """The model and the three classifiers, loaded once."""

    def __init__(self, device=None):
        self.model = digits(device)
        self.device = self.model.device
        self.nets = {name: digits_classifier(name, self.device) for name in ("verifier", "guide", "evaluator")}

    def verifier(self, targets: torch.Tensor, name: str = "verifier") -> Classifier:
        return Classifier(self.nets[name], targets)

    @torch.no_grad()
    def measure(self, samples: torch.Tensor, targets: torch.Tensor) -> dict:
        """Per-sample log-probs / hits of each classifier on samples [n, 1, 8, 8] for targets [n]."""
        out = {}
        t = targets.to(self.device)
        for name, net in self.nets.items():
            logp = torch.log_softmax(net(samples.to(self.device)).float(), 1)
            out[f"{name}_logp"] = logp.gather(1, t[:, None]).squeeze(1).cpu()
            out[f"{name}_hit"] = (logp.argmax(1) == t).cpu()
        return out


def search_spec(model, spec: Spec, verifier, local_verifier, *, rows: int, n: int, num_steps: int, seed: int):
    """One ``tts.search`` call of a method :class:`Spec` (e.g. a :data:`SPECS` entry) at a budget of n trajectories per row.

    Args:
        model, verifier: the Denoiser and the selection verifier (``rows`` prompt rows).
        local_verifier: the gradient verifier, used only when the spec is ``dual``.
        n: budget in trajectories: n * num_steps model NFE per row (num_steps for a fixed-NFE spec).

    Returns (SearchResult, wall seconds, the model-NFE budget per row).
    """
    if n < spec.min_n and not spec.fixed_nfe:
        raise ValueError(f"{spec.label} needs a budget of at least {spec.min_n} trajectories, got {n}")
    method, particles, options = spec.build(n, num_steps)
    row_budget = num_steps * (1 if spec.fixed_nfe else n)
    t0 = time.perf_counter()
    res = search(
        model, verifier, method, n_particles=particles, num_steps=num_steps, batch_size=rows, seed=seed,
        budget=row_budget * rows, local_verifier=local_verifier if spec.dual else None, progress=False, **options,
    )
    return res, time.perf_counter() - t0, row_budget


def run(zoo: Zoo, key: str, *, digits_: Sequence[int], per_digit: int, n: int, num_steps: int, seed: int) -> dict:
    """One search run of method ``key`` at budget n (n * num_steps model NFE per row); metrics."""
    spec = SPECS[key]
    targets = torch.tensor([d for d in digits_ for _ in range(per_digit)], dtype=torch.int64)
    rows = targets.numel()
    res, seconds, row_budget = search_spec(zoo.model, spec, zoo.verifier(targets), zoo.verifier(targets, "guide"), rows=rows, n=n,
                                           num_steps=num_steps, seed=seed)
    m = zoo.measure(res.samples, targets)
    return {
        "method": key,
        "label": spec.label,
        "n": n,
        "budget_per_row": row_budget,
        "nfe_per_row": res.nfe.model / rows,
        "nfe_grad_per_row": res.nfe.model_grad / rows,
        "verifier_calls_per_row": res.nfe.verifier / rows,
        "verifier_reward": float(res.rewards.double().mean()),
        "verifier_acc": float(m["verifier_hit"].double().mean()),
        "guide_acc": float(m["guide_hit"].double().mean()),
        "evaluator_acc": float(m["evaluator_hit"].double().mean()),
        "evaluator_logp": float(m["evaluator_logp"].double().mean()),
        "gap": float(m["verifier_hit"].double().mean() - m["evaluator_hit"].double().mean()),
        "per_digit_evaluator_acc": {
            int(d): float(m["evaluator_hit"][targets == d].double().mean()) for d in digits_
        },
        "seconds": seconds,
        "samples": res.samples.detach().cpu(),
        "targets": targets,
    }


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value)."""
    v = [float(x) for x in values]
    m = sum(v) / len(v)
    if len(v) < 2:
        return m, 0.0
    var = sum((x - m) ** 2 for x in v) / (len(v) - 1)
    return m, math.sqrt(var / len(v))


@torch.no_grad()
def plain_samples(model, n: int, num_steps: int = 50, seed: int = 0, chunk: int = 1000) -> torch.Tensor:
    """n plain (unguided) samples: ancestral DDIM (eta = 1) from seeded noise, [n, 1, 8, 8] on CPU."""
    from .. import schedules

    grid = model.schedule.grid(num_steps).to(model.device)
    gen = torch.Generator(device=model.device).manual_seed(seed)
    out = []
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        x = torch.randn((m, *model.sample_shape), generator=gen, device=model.device)
        out.append(schedules.sample(model, x, grid, eta=1.0, generator=gen).cpu())
    return torch.cat(out)


@torch.no_grad()
def sample_quality(zoo: "Zoo", n: int = 2000, num_steps: int = 50, seed: int = 0) -> dict:
    """What the classifiers say about n plain samples.

    Returns the evaluator's class histogram (fractions), the fraction of samples on which the
    verifier and the evaluator agree, the evaluator's mean max-probability, and the fraction of
    samples it classifies with probability > 0.9 ('confident').
    """
    x = plain_samples(zoo.model, n, num_steps, seed).to(zoo.device)
    probs = {k: torch.softmax(net(x).float(), 1).cpu() for k, net in zoo.nets.items()}
    ev = probs["evaluator"]
    cls = ev.argmax(1)
    hist = torch.bincount(cls, minlength=10).double() / n
    return {
        "n": n,
        "num_steps": num_steps,
        "seed": seed,
        "evaluator_histogram": [float(v) for v in hist],
        "agreement_verifier_evaluator": float((probs["verifier"].argmax(1) == cls).double().mean()),
        "agreement_guide_evaluator": float((probs["guide"].argmax(1) == cls).double().mean()),
        "evaluator_mean_max_prob": float(ev.max(1).values.double().mean()),
        "evaluator_confident_fraction": float((ev.max(1).values > 0.9).double().mean()),
    }
