"""The shared sinusoidal timestep embedding: both trained layouts, value for value."""

import math

import pytest
import torch

from tts_fast._embeddings import sinusoidal_embedding


def test_cos_first_layout_uses_frequencies_over_half():
    t = torch.tensor([0.0, 1.0, 100.0])
    e = sinusoidal_embedding(t, 4)  # half 2: frequencies 1 and 10000^(-1/2)
    f = torch.tensor([1.0, 0.01])
    want = torch.cat([torch.cos(t[:, None] * f), torch.sin(t[:, None] * f)], 1)
    torch.testing.assert_close(e, want)


def test_sin_first_layout_uses_frequencies_over_half_minus_one():
    t = torch.tensor([0.0, 1.0, 100.0])
    e = sinusoidal_embedding(t, 4, layout="sin_first")  # half 2: frequencies 1 and 10000^(-1)
    f = torch.tensor([1.0, 1e-4])
    want = torch.cat([torch.sin(t[:, None] * f), torch.cos(t[:, None] * f)], 1)
    torch.testing.assert_close(e, want)
    assert e.shape == (3, 4) and math.isclose(float(e[1, 0]), math.sin(1.0), rel_tol=1e-6)


def test_unknown_layout_is_refused():
    with pytest.raises(ValueError, match="layout must be 'cos_first' or 'sin_first', got 'cos'"):
        sinusoidal_embedding(torch.zeros(2), 8, layout="cos")
