"""Running ``tts_fast.search``'s own argument checks before anything is loaded."""

from __future__ import annotations

from .._user_errors import UserError


class _Probed(Exception):
    """Raised by the probe model at its first evaluation: the search accepted every argument."""


def probe_search(config, schedule, options: dict, batch_size: int) -> None:
    """Run ``tts_fast.search``'s checks (method options, budget against the plan's cost, ...) on a
    stand-in model with the real ``schedule`` that stops the search at its first evaluation: no
    work is done, and the errors (UserError) are the ones the real run would raise after loading.

    ``config``: the :class:`~tts_fast.runs.config.RunConfig` (method, particles, steps, seed, budget).
    """
    import torch

    import tts_fast as tts

    class Probe(tts.Denoiser):
        sample_shape = (1,)
        num_prompts = batch_size

        def forward(self, x_t, t, cond):
            raise _Probed

    Probe.schedule = schedule

    def stop(x0, cond):
        raise _Probed

    verifier = tts.verifiers.Function(stop, differentiable=True, num_prompts=batch_size)  # every run verifier is differentiable
    try:
        with torch.no_grad():
            tts.search(Probe(), verifier, config.method, n_particles=config.particles, num_steps=config.steps, batch_size=batch_size,
                       seed=config.seed, budget=config.budget, progress=False, **options)
    except _Probed:
        return
    except (ValueError, TypeError) as e:
        raise UserError(str(e)) from None
    raise UserError("internal error: the probe search finished without evaluating its model")
