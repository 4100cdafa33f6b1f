"""Every argument of the public helpers around the ops -- ops.Philox, ops.gather_particles, the
op wrappers' scalars, and tts_fast.schedules -- is checked before any work, and the error names it.
(The ops' tensor arguments: test_ops.py::test_bad_input_names_the_argument and
test_ops_reference.py::test_reference_error_messages; their device-side checks:
test_cuda_emu.py::test_kernels_assert_on_values_the_cpu_ops_refuse.)"""

from __future__ import annotations

import math

import pytest
import torch

from tts_fast import ops
from tts_fast import schedules as S

from _ops_helpers import vp_tables


@pytest.mark.parametrize("seed", [True, 1.5, "3", None, 2**64, -(2**63) - 1])
def test_philox_seed(seed):
    with pytest.raises(ValueError, match=r"seed must be an integer in \[-9223372036854775808, 18446744073709551616\)"):
        ops.Philox(seed)


def test_philox_seeds_are_64_bit_patterns():
    assert ops.Philox(2**63).state.tolist() == [-(2**63), 0]  # the same bits as the uint64 seed
    assert ops.Philox(2**64 - 1).state.tolist() == [-1, 0]
    assert ops.Philox(-5).state.tolist() == [-5, 0]
    a = ops.resample(torch.zeros(2, 9, dtype=torch.float64), rng=ops.Philox(2**64 - 1).take(18), scheme="multinomial")
    b = ops.resample(torch.zeros(2, 9, dtype=torch.float64), rng=ops.Philox(-1).take(18), scheme="multinomial")
    assert torch.equal(a, b)


def test_philox_device_and_take():
    with pytest.raises(ValueError, match="device must be a torch.device or a device name"):
        ops.Philox(0, device="gpu7")
    ph = ops.Philox(0)
    for bad in (-1, 2.5, True, "4", None):
        with pytest.raises(ValueError, match=r"numel must be an integer >= 0"):
            ph.take(bad)
    assert ph.state.tolist() == [0, 0]  # nothing advanced by a refused call
    assert ph.take(0).tolist() == [0, 0] and ph.take(5).tolist() == [0, 0] and ph.state.tolist() == [0, 2]


def test_gather_particles_arguments():
    state = torch.arange(6.0).view(2, 3)
    anc = torch.tensor([[0, 0, 2], [1, 2, 2]])
    assert ops.gather_particles(state, anc).tolist() == [[0.0, 0.0, 2.0], [4.0, 5.0, 5.0]]
    bad_ancestors = [anc.float(), anc[0], anc.int(), [[0, 0, 2], [1, 2, 2]]]
    for bad in bad_ancestors:
        with pytest.raises(ValueError, match=r"ancestors must be an int64 tensor \[B, N\]"):
            ops.gather_particles(state, bad)
    for bad in (anc + 1, anc - 1):
        with pytest.raises(ValueError, match=r"ancestors must lie in \[0, N\) = \[0, 3\)"):
            ops.gather_particles(state, bad)
    with pytest.raises(ValueError, match="ancestors are on meta but state is on cpu"):
        ops.gather_particles(state, anc.to("meta"))
    with pytest.raises(TypeError, match="state must be a tensor"):
        ops.gather_particles(state.tolist(), anc)


def test_op_wrappers_refuse_scalars_of_the_wrong_kind():
    alpha, sigma = vp_tables(10)
    x = torch.zeros(2, 3)
    lv = torch.tensor([5, 6])
    for bad in ("0.5", None, True, torch.tensor(0.5)):
        with pytest.raises(TypeError, match="eta must be a real number"):
            ops.ddim_step(x, x, lv, lv - 1, alpha, sigma, eta=bad, noise=x)
    for bad in ("1", True):
        with pytest.raises(TypeError, match="max_norm must be a real number"):
            ops.langevin_step(x, x, torch.ones(2), noise=x, max_norm=bad)


# ----------------------------------------------------------------------------------------------
# schedules


@pytest.mark.parametrize("call, name", [
    (lambda: S.VPSchedule([0.1, 0.2], steps_offset=-1), "steps_offset"),
    (lambda: S.VPSchedule([0.1, 0.2], steps_offset=1.5), "steps_offset"),
    (lambda: S.VPSchedule([0.1, 0.2], steps_offset=True), "steps_offset"),
    (lambda: S.VPSchedule("abc"), "betas"),
    (lambda: S.VPSchedule([0.1, math.inf]), "betas"),
    (lambda: S.ddpm_linear(1), "num_train_timesteps"),
    (lambda: S.ddpm_linear(10.0), "num_train_timesteps"),
    (lambda: S.ddpm_linear(beta_start=0.0), "beta_start"),
    (lambda: S.ddpm_linear(beta_end=1.0), "beta_end"),
    (lambda: S.ddpm_linear(beta_end=math.nan), "beta_end"),
    (lambda: S.scaled_linear(beta_start=-0.1), "beta_start"),
    (lambda: S.scaled_linear(True), "num_train_timesteps"),
    (lambda: S.cosine(s=-0.01), "s must"),
    (lambda: S.cosine(max_beta=1.0), "max_beta"),
    (lambda: S.cosine(max_beta=0.0), "max_beta"),
    (lambda: S.ddpm_linear(10).timesteps(3.0), "num_steps"),
    (lambda: S.ddpm_linear(10).grid(True), "num_steps"),
    (lambda: S.ddpm_linear(10).alpha_sigma(torch.tensor([True])), "t must"),
    (lambda: S.ddpm_linear(10).alpha_sigma(torch.tensor([2.5])), "t must"),
    (lambda: S.flow().grid(0), "num_steps"),
])
def test_schedule_constructors_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_grid_checks_its_tables():
    g = S.ddpm_linear(100).grid(4)
    assert S.Grid(g.timesteps, g.alpha, g.sigma, "vp").num_steps == 4
    with pytest.raises(ValueError, match="kind must be one of 'vp', 'flow'"):
        S.Grid(g.timesteps, g.alpha, g.sigma, "ve")
    with pytest.raises(ValueError, match="alpha must be a 1-D float64 tensor"):
        S.Grid(g.timesteps, g.alpha.float(), g.sigma, "vp")
    with pytest.raises(ValueError, match=r"timesteps \[S\] and alpha, sigma \[S \+ 1\]"):
        S.Grid(g.timesteps, g.alpha[:-1], g.sigma[:-1], "vp")
    with pytest.raises(ValueError, match="share a device"):
        S.Grid(g.timesteps, g.alpha.to("meta"), g.sigma, "vp")


def test_step_wrappers_name_the_argument():
    g = S.ddpm_linear(100).grid(10)
    x = torch.randn(4, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="level_from must be an int or an int64 tensor"):
        S.ddim_step(x, x, True, 4, g, generator=torch.Generator())
    with pytest.raises(ValueError, match="level_to must be an int or an int64 tensor"):
        S.renoise(x, 3, 4.0, g, generator=torch.Generator())
    with pytest.raises(ValueError, match="generator must be a torch.Generator or None"):
        S.ddim_step(x, x, 3, 4, g, generator=7)
    with pytest.raises(ValueError, match="pass either noise or generator, not both"):
        S.ddim_step(x, x, 3, 4, g, noise=x, generator=torch.Generator())
    with pytest.raises(ValueError, match="eta must be a finite number >= 0.0 and <= 1.0"):
        S.ddim_step(x, x, 3, 4, g, eta=1.5, generator=torch.Generator())


def test_sample_checks_everything_before_the_first_model_call():
    g = S.ddpm_linear(100).grid(5)
    calls = []

    def model(x, t, cond):
        calls.append(1)
        return x

    x = torch.randn(3, 2, dtype=torch.float64)
    for kw, name in ((dict(model=None), "model must be callable"), (dict(callback=3), "callback must be callable or None"),
                     (dict(eta=2.0), "eta must be a finite number"), (dict(grid="grid"), "grid must be a tts_fast.schedules.Grid"),
                     (dict(x=[1.0]), "x must be a tensor"),
                     (dict(eta=0.0, generator=torch.Generator()), "eta = 0 draws no noise")):
        args = dict(model=model, x=x, grid=g, eta=0.5)
        args.update(kw)
        with pytest.raises(ValueError, match=name):
            S.sample(args.pop("model"), args.pop("x"), args.pop("grid"), **args)
    assert calls == []
    assert S.sample(model, x, g, eta=0.0).shape == x.shape and len(calls) == 5
