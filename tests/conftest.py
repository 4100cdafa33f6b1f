"""Shared fixtures: analytic Gaussian-mixture problems whose tilted targets are known exactly."""

import pytest
import torch

import tts_fast as tts


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: builds or runs that take minutes (still run by default)")
    config.addinivalue_line("markers", "cuda: needs a CUDA device")


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests (many small kernels: extra threads only add overhead and contention)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def rare_mode():
    """A 2-D mixture with a rare mode (5%) and a verifier that prefers it."""
    model = tts.models.GaussianMixture([[-2.0, 0.0], [2.0, 0.0]], [0.5, 0.5], [0.95, 0.05])
    verifier = tts.verifiers.GaussianReward([2.0, 0.0], 1.0)
    return model, verifier


@pytest.fixture
def overlapping():
    """A 2-D mixture with overlapping modes, so that Langevin chains can mix at every level."""
    model = tts.models.GaussianMixture([[-1.0, 0.0], [1.0, 0.5]], [0.9, 0.9], [0.7, 0.3])
    verifier = tts.verifiers.GaussianReward([1.5, 1.0], 2.0)
    return model, verifier
