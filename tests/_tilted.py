"""The overlapping Gaussian-mixture problem and its plain sampler's tilted reference (for oracles).

Modes (-2, 0) 80 % and (2, 1) 20 %, std 0.6; verifier log f = -|x - (2, 1)|^2 / 4. A weighted plain
sample is exact for the plain S-step sampler's law tilted by exp(lam r) at any number of steps (no
discretisation error enters), which is what SMC's evidence and weighted populations, and DTS's
draws, target.
"""

import torch

import tts_fast as tts


def overlapping():
    """(model, verifier) of the problem."""
    model = tts.models.GaussianMixture([[-2.0, 0.0], [2.0, 1.0]], [0.6, 0.6], [0.8, 0.2])
    return model, tts.verifiers.GaussianReward([2.0, 1.0], 2.0)


def plain_reference(model, verifier, lam: float, num_steps: int, n: int, seed: int = 123):
    """n plain samples x [n, 2], their rewards r [n] and tilt weights exp(lam r) [n] (float64)."""
    ref = tts.search(model, verifier, "bon", n_particles=n, num_steps=num_steps, seed=seed, progress=False)
    r = ref.particle_rewards.reshape(-1).double()
    return ref.particles.reshape(-1, 2).double(), r, (lam * r).exp()
