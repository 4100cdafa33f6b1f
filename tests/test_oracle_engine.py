"""The engine's primitives as every method uses them: each particle's prompt row reaches the model
and the verifier, timings and counts cover every stage, single walkers and iteration counts."""

import pytest
import torch

import tts_fast as tts

S = 12
SHIFTS = torch.tensor([[-10.0, 0.0], [0.0, 0.0], [10.0, 0.0]], dtype=torch.float64)


class RowShift(tts.models.GaussianMixture):
    """Prompt row k's data is the mixture shifted by SHIFTS[k]: exact x0-prediction per row, so a
    model call with the wrong (or no) rows puts samples in the wrong place."""

    num_prompts = 3

    def forward(self, x_t, t, cond=None):
        if cond is None:
            raise ValueError("RowShift needs cond")
        alpha, _ = self.schedule.alpha_sigma(t)
        s = SHIFTS.to(x_t)[cond]
        return super().forward(x_t - alpha.to(x_t)[:, None] * s, t, None) + s


def _model():
    return RowShift([[-1.0, 0.0], [1.0, 0.0]], [0.5, 0.5], [0.5, 0.5])


METHODS = [
    ("bon", {}),
    ("zero_order", dict(iterations=1)),
    ("search_over_paths", {}),
    ("bfs", {}),
    ("bfs", dict(prune=True)),
    ("fk", {}),
    ("dfs", dict(threshold=-1.0, max_backtracks=1)),
    ("dfs", dict(slots="fixed", max_backtracks=1)),
    ("local", dict(rho=0.5, local_steps=2)),
    ("bfs_best", dict(rho=0.3, mu=0.1, sigma=0.1, mc_samples=2, local_steps=2)),
    ("dfs", dict(rho=0.3, mu=0.1, max_backtracks=1)),
    ("dfs", dict(rho=0.3, slots="fixed", max_backtracks=1, move="langevin", local_steps=2)),
    ("dts", dict(rollouts=6)),
    ("dts_star", dict(slots="fixed", rollouts=6)),
    ("das_guided", {}),
]


@pytest.mark.parametrize("method,opts", METHODS, ids=[f"{m}-{'-'.join(o)}" for m, o in METHODS])
def test_every_particle_carries_its_prompt_row(method, opts):
    """Model and verifier see each particle's own row in every call (plain, guided and MCMC steps)."""
    centers = SHIFTS.clone()
    centers[:, 0] += 1.0  # each row's verifier prefers its own right-hand mode
    verifier = tts.verifiers.GaussianReward(centers, 1.0)
    r = tts.search(_model(), verifier, method, n_particles=3, num_steps=S, seed=0, progress=False, **opts)
    assert r.samples.shape == (3, 2)
    assert bool(((r.samples[:, 0] - SHIFTS[:, 0]).abs() < 4).all()), r.samples
    assert torch.allclose(r.rewards, verifier(r.samples, torch.arange(3)))
    # every stage was timed, and the model's time includes gradient passes
    assert set(r.timings) == {"model", "decode", "verifier", "search_ops", "total"}, r.timings
    assert all(isinstance(v, float) and v >= 0 for v in r.timings.values()), r.timings
    assert r.timings["model"] > 0 and r.timings["total"] >= r.timings["model"]


def test_guided_model_calls_check_the_prediction_shape():
    class Broken(RowShift):
        def forward(self, x_t, t, cond=None):
            return super().forward(x_t, t, cond)[:, :1]

    with pytest.raises(ValueError, match=r"^Broken returned \(6, 1\) for x_t of shape \(6, 2\); a Denoiser must return x0 like x_t$"):
        tts.search(Broken([[0.0, 0.0]], [1.0], [1.0]), tts.verifiers.GaussianReward([0.0, 0.0], 1.0), "local", rho=0.5,
                   n_particles=2, num_steps=S, progress=False)


def test_a_single_walker_finishes_and_pays_for_its_backtrack(rare_mode):
    """One walker of one prompt, an unreachable threshold checked once at the last level, one backtrack
    of 3 levels: S + 4 model NFE, and it returns a finished sample."""
    model, verifier = rare_mode
    r = tts.search(model, verifier, "dfs", threshold=10.0, start=S - 1, backtrack=3, max_backtracks=1, n_particles=1,
                   num_steps=S, seed=0, progress=False)
    assert r.nfe.model == S + 4 and r.nfe.verifier == 2 + 1
    assert torch.allclose(r.rewards, verifier(r.samples))


def test_compact_dfs_iterations_are_numbered_from_zero(rare_mode):
    """Trace steps are loop iterations: during the first descent iteration i is level i, so the first
    check is iteration ``start``; later iterations count up."""
    model, verifier = rare_mode
    r = tts.search(model, verifier, "dfs", threshold=-2.0, start=5, every=2, n_particles=3, batch_size=2, num_steps=S,
                   seed=1, progress=False)
    steps = [row["step"] for row in r.trace if isinstance(row["step"], int)]
    assert steps[0] == 5 and steps == sorted(set(steps)) and len(steps) > 4
