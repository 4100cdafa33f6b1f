"""Robust orderings at matched model NFE on a mixture whose verifier prefers a rare mode."""

import itertools
import math

import pytest
import torch

import tts_fast as tts

B, N, S = 256, 8, 50


def _mean_se(r):
    return float(r.mean()), float(r.std()) / math.sqrt(r.numel())


@pytest.fixture(scope="module")
def bon_rewards():
    model = tts.models.GaussianMixture([[-2.0, 0.0], [2.0, 0.0]], [0.5, 0.5], [0.95, 0.05])
    verifier = tts.verifiers.GaussianReward([2.0, 0.0], 1.0)
    r = tts.search(model, verifier, "bon", n_particles=N, num_steps=S, batch_size=B, seed=0, progress=False)
    return (model, verifier), r


VARIANTS = list(itertools.product(["constant", "increase", "inf"], ["current", "difference", "max"], tts.ops.SCHEMES))


@pytest.mark.parametrize("temperature,scoring,resampling", VARIANTS)
def test_every_bfs_variant_beats_best_of_n(bon_rewards, temperature, scoring, resampling):
    (model, verifier), bon = bon_rewards
    r = tts.search(model, verifier, "bfs", n_particles=N, num_steps=S, batch_size=B, seed=0, progress=False,
                   temperature=temperature, scoring=scoring, resampling=resampling)
    assert r.nfe.model == bon.nfe.model
    m1, s1 = _mean_se(r.rewards)
    m0, s0 = _mean_se(bon.rewards)
    assert m1 - m0 > 4 * math.hypot(s0, s1), (m1, m0)


@pytest.mark.parametrize("preset", ["svdd", "das", "fk", "bfs_best"])
def test_presets_beat_best_of_n(bon_rewards, preset):
    (model, verifier), bon = bon_rewards
    r = tts.search(model, verifier, preset, n_particles=N, num_steps=S, batch_size=B, seed=0, progress=False)
    m1, s1 = _mean_se(r.rewards)
    m0, s0 = _mean_se(bon.rewards)
    assert r.nfe.model == bon.nfe.model and m1 - m0 > 4 * math.hypot(s0, s1), (m1, m0)


@pytest.mark.parametrize("slots", ["compact", "fixed"])
@pytest.mark.parametrize("thresholds", [dict(threshold=-1.0), dict(calibrate=0.5)], ids=["absolute", "calibrated"])
def test_dfs_spends_more_on_harder_targets(slots, thresholds):
    """Prompt rows whose verifier targets the rare mode, or beyond it, draw more NFE than easy ones,
    with an absolute threshold or with thresholds calibrated on the run itself (no reward units)."""
    model = tts.models.GaussianMixture([[-2.0, 0.0], [2.0, 0.0]], [0.5, 0.5], [0.9, 0.1])
    centers = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [3.0, 0.0]]).repeat(32, 1)  # easy, hard, harder
    verifier = tts.verifiers.GaussianReward(centers, 1.0)
    b = centers.shape[0]
    kw = dict(n_particles=4, num_steps=S, batch_size=b, seed=0, progress=False)
    r = tts.search(model, verifier, "dfs", max_backtracks=None, budget=b * 4 * S * 3, slots=slots, **thresholds, **kw)
    per = r.nfe_per_prompt.view(32, 3).double()
    easy, hard, harder = per.mean(0)
    se = per.std(0) / math.sqrt(32)
    assert hard - easy > 4 * math.hypot(se[0], se[1]) and harder - easy > 4 * math.hypot(se[0], se[2])
    assert float(easy) < 0.5 * float(hard)
    assert r.nfe.model <= b * 4 * S * 3
    if "calibrate" in thresholds:
        # the first descent is best-of-N's: DFS keeps its samples and improves on the hard rows
        bon = tts.search(model, verifier, "bon", **kw).rewards.view(32, 3).double()
        gain = r.rewards.view(32, 3).double() - bon
        assert bool((gain >= 0).all())
        for col in (1, 2):
            assert float(gain[:, col].mean()) > 4 * float(gain[:, col].std()) / math.sqrt(32)


def test_local_search_raises_the_reward_of_its_starting_samples(rare_mode):
    """Same seed, same initial noises: guided local search ends with higher rewards than plain sampling."""
    model, verifier = rare_mode
    common = dict(n_particles=64, num_steps=S, batch_size=8, seed=5, progress=False)
    plain = tts.search(model, verifier, "bon", **common).particle_rewards.reshape(-1)
    local = tts.search(model, verifier, "local", rho=1.0, rho_schedule="langevin", local_steps=2, **common).particle_rewards.reshape(-1)
    d = local - plain
    assert float(d.mean()) > 4 * float(d.std()) / math.sqrt(d.numel())
