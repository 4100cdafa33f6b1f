"""The two stages ``tts-fast demo`` can run on: what searches, what selects, and who judges.

- ``mnist`` (default): the 28x28 model trained here on real MNIST digits, used unconditionally;
  the 'verifier' CNN trained here selects (and the LeNet-style 'guide' gives the dual verifiers'
  gradients); the **judge** is ``ccexam``'s MNIST classifier, which nobody here built or trained
  and no search ever sees (the ``demo`` extra installs it).
- ``digits``: the built-in 8x8 digits model; its judge is the held-out MLP 'evaluator' trained
  here beside the verifier. It needs nothing beyond the package, but the verifier is good enough
  there that the judge rarely disagrees.

A stage's :meth:`run` makes one ``tts.search`` call (one prompt row per target) and returns, per
returned sample, the verifier's reward and whether the verifier and the judge classify it as its
target; the judge is applied after the search, to the returned samples only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._user_errors import UserError


@dataclass(frozen=True)
class Defaults:
    """A stage's default settings (full run, and ``--quick``): steps, largest N, samples per digit."""

    steps: int
    n_max: int
    per_digit: int
    quick_steps: int
    quick_n_max: int
    quick_per_digit: int


class DigitsStage:
    """The built-in 8x8 digits model; judged by the held-out evaluator MLP."""

    name = "digits"
    judge_name = "held-out evaluator (an MLP trained here, never searched with)"
    defaults = Defaults(steps=50, n_max=8, per_digit=1, quick_steps=20, quick_n_max=4, quick_per_digit=1)

    def __init__(self, device):
        from ..zoo.experiment import Zoo

        self.zoo = Zoo(device)

    def run(self, spec, targets: torch.Tensor, *, n: int, num_steps: int, seed: int) -> dict:
        """One search of ``spec`` for targets [rows]; see the module docstring for what it returns."""
        from ..zoo.experiment import search_spec

        z = self.zoo
        res, seconds, row_budget = search_spec(z.model, spec, z.verifier(targets), z.verifier(targets, "guide"), rows=targets.numel(), n=n,
                                               num_steps=num_steps, seed=seed)
        m = z.measure(res.samples, targets)
        rows = targets.numel()
        return _record(targets, samples=res.samples, rewards=res.rewards, budget_per_row=row_budget, nfe_per_row=res.nfe.model / rows,
                       nfe_grad_per_row=res.nfe.model_grad / rows, seconds=seconds, verifier_hit=m["verifier_hit"],
                       judge_hit=m["evaluator_hit"])


class MnistStage:
    """The 28x28 real-MNIST model, used unconditionally; judged by ccexam's classifier (third party)."""

    name = "mnist"
    judge_name = "ccexam's MNIST classifier (third party, never searched with)"
    defaults = Defaults(steps=10, n_max=8, per_digit=3, quick_steps=6, quick_n_max=4, quick_per_digit=2)

    def __init__(self, device):
        from ..zoo.real28.experiment import Stage
        from ..zoo.real28.judge import judge

        try:
            self.judge = judge(device)
        except ImportError as e:
            raise UserError(f"the demo's judge is ccexam's MNIST classifier, which could not be loaded ({str(e).splitlines()[0]}): "
                            f"pip install --no-build-isolation 'tts_fast[demo]' {matching_torchvision()} (or run tts-fast demo "
                            f"--model digits, which needs neither)") from None
        self.stage = Stage.load("mnist", device)

    def run(self, spec, targets: torch.Tensor, *, n: int, num_steps: int, seed: int) -> dict:
        """One search of ``spec`` for targets [rows]; see the module docstring for what it returns."""
        from ..zoo.real28.experiment import search_samples

        got = search_samples(self.stage, spec, targets, n=n, num_steps=num_steps, seed=seed)
        with torch.no_grad():
            judge_hit = self.judge(got["samples"]).argmax(1).cpu() == targets
        return _record(targets, samples=got["samples"], rewards=got["rewards"], budget_per_row=got["budget_per_row"],
                       nfe_per_row=got["nfe_per_row"], nfe_grad_per_row=got["nfe_grad_per_row"], seconds=got["seconds"],
                       verifier_hit=got["verifier_hit"], judge_hit=judge_hit)


def matching_torchvision() -> str:
    """The pip requirement of the torchvision built for the running torch (2.x -> 0.(x+15)), so that pip keeps this torch."""
    major, minor = (int(p) for p in torch.__version__.split("+")[0].split(".")[:2])
    return f"torchvision=={major - 2}.{minor + 15}.*" if major == 2 else "torchvision"


def _record(targets: torch.Tensor, *, samples, rewards, budget_per_row: int, nfe_per_row: float, nfe_grad_per_row: float, seconds: float,
            verifier_hit, judge_hit) -> dict:
    """A stage's run as the demo keeps it: per-sample reward and hits as plain lists, the samples on the CPU."""
    return {
        "budget_per_row": budget_per_row,
        "nfe_per_row": nfe_per_row,
        "nfe_grad_per_row": nfe_grad_per_row,
        "reward": [float(v) for v in rewards.detach().double().cpu()],
        "verifier_hit": [bool(v) for v in verifier_hit.cpu()],
        "judge_hit": [bool(v) for v in judge_hit.cpu()],
        "seconds": seconds,
        "samples": samples.detach().cpu(),
        "targets": targets,
    }


STAGES = {s.name: s for s in (MnistStage, DigitsStage)}
