"""The batched IQL critic trainer (tts_fast.rl.fast_critic) and its stacked MLPs (tts_fast.rl.stacked).

The fast trainer must compute what the reference loop (train.train_critic, itself checked against an
independent recomputation in test_rl_oracle.py) computes: same initial weights, same batches, same
updates in the same order. Needs only torch (no simulator, no data).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tts_fast.rl import train
from tts_fast.rl.critic import TwinQ, mlp
from tts_fast.rl.datasets import Transitions
from tts_fast.rl.fast_critic import train_critic_fast
from tts_fast.rl.stacked import StackedMLP

pytestmark = pytest.mark.usefixtures("one_thread")


def _transitions(n=64, obs=5, act=3, seed=0):
    rng = np.random.default_rng(seed)
    o = (rng.normal(size=(n, obs)) * rng.uniform(0.5, 4, obs) + rng.normal(size=obs)).astype(np.float32)
    return Transitions(observations=o, actions=rng.uniform(-1, 1, (n, act)).astype(np.float32),
                       rewards=rng.normal(size=n).astype(np.float32), next_observations=(o + rng.normal(size=o.shape) * 0.1).astype(np.float32),
                       terminals=(rng.uniform(size=n) < 0.2).astype(np.float32), episode_returns=np.zeros(3))


@pytest.mark.parametrize("cfg", [
    dict(batch=16, lr=1e-2, gamma=0.9, tau=0.8, polyak=0.3, seed=3),
    dict(batch=7, lr=3e-3, gamma=0.5, tau=0.6, polyak=0.05, seed=11),
])
def test_fast_trainer_computes_the_reference_loops_weights(monkeypatch, cfg):
    """Same weights as the reference loop after 12 steps: against the V step after the Q step (or V(s')
    before V's update), the targets' Polyak step skipped or on the online networks, the twins' min
    replaced by a mean, one twin's loss dropped, the batch drawn differently, the states not
    normalised or normalised twice."""
    monkeypatch.setattr(train, "CRITIC", dict(width=24, layers=2))
    tr = _transitions()
    ref, ref_log = train.train_critic(tr, 12, log=lambda *a: None, **cfg)
    got, log = train_critic_fast(tr, 12, width=24, layers=2, log=lambda *a: None, **cfg)
    want = ref.state_dict()
    assert set(got.state_dict()) == set(want)
    # float rounding only: Adam's first steps divide gradients by their own size, which turns rounding of
    # near-zero gradients into ~1e-6 of weight; an algorithmic change moves weights by ~lr = 1e-2
    for k, v in got.state_dict().items():
        torch.testing.assert_close(v, want[k], rtol=1e-4, atol=1e-5, msg=k)
    for key in ("v_loss", "q_loss", "mean_q_on_data"):
        assert log[key] == pytest.approx(ref_log[key], rel=1e-4, abs=1e-6), key
    assert log["steps"] == 12 and log["trainer"] == "fast" and not got.training
    assert log["steps_per_second"] == pytest.approx(12 / log["seconds"])


def test_fast_trainer_log_points_and_callback(monkeypatch):
    """The callback sees, at each log point, the critic of that step (the reference loop run that many
    steps), and its returned figures land in the log point; losses are means of the last 500 steps."""
    monkeypatch.setattr(train, "CRITIC", dict(width=16, layers=1))
    tr = _transitions(seed=1)
    cfg = dict(batch=8, lr=5e-3, gamma=0.9, tau=0.7, polyak=0.2, seed=0)
    seen = {}

    def callback(step, critic):
        seen[step] = {k: v.clone() for k, v in critic.state_dict().items()}
        return {"mark": step * 10}

    lines = []
    _, log = train_critic_fast(tr, 9, width=16, layers=1, log=lines.append, log_every=3, callback=callback, **cfg)
    assert [p["step"] for p in log["losses"]] == [3, 6, 9] and [p["mark"] for p in log["losses"]] == [30, 60, 90]
    assert len(lines) == 3 and lines[0].startswith("critic step 3/9: V loss ")
    for step in (3, 6):
        ref, ref_log = train.train_critic(tr, step, log=lambda *a: None, **cfg)
        for k, v in ref.state_dict().items():
            torch.testing.assert_close(seen[step][k], v, rtol=1e-4, atol=1e-5, msg=f"step {step} {k}")
        assert log["losses"][step // 3 - 1]["v_loss"] == pytest.approx(ref_log["v_loss"], rel=1e-4)


def test_fast_trainer_relu_critic_and_its_file_round_trip(monkeypatch, tmp_path):
    from tts_fast._checkpoints import build_network

    tr = _transitions(seed=2)
    critic, _ = train_critic_fast(tr, 3, batch=8, lr=1e-3, gamma=0.9, tau=0.7, polyak=0.1, seed=0, width=8, layers=2,
                                  activation="relu", log=lambda *a: None)
    assert critic.config == {"obs_dim": 5, "act_dim": 3, "width": 8, "layers": 2, "activation": "relu"}
    assert all(isinstance(m, (torch.nn.Linear, torch.nn.ReLU)) for m in critic.q1)
    back = build_network(TwinQ, critic.config, critic.state_dict(), "test")
    s, a = torch.from_numpy(tr.observations), torch.from_numpy(tr.actions)
    torch.testing.assert_close(back.q(s, a), critic.q(s, a))
    # a file written before the option (no key) is a Mish critic
    assert "activation" not in TwinQ(5, 3, width=8).config and isinstance(TwinQ(5, 3, width=8).q1[1], torch.nn.Mish)


@pytest.mark.parametrize("bad, match", [
    (dict(steps=0), "steps must be an integer >= 1, got 0"),
    (dict(batch=0), "batch must be an integer >= 1, got 0"),
    (dict(activation="tanh"), "activation must be one of mish, relu; got 'tanh'"),
])
def test_fast_trainer_refuses_bad_arguments(bad, match):
    args = dict(steps=2, batch=4, lr=1e-3, gamma=0.9, tau=0.7, polyak=0.1, seed=0, log=lambda *a: None)
    args.update(bad)
    tr = _transitions()
    steps = args.pop("steps")
    with pytest.raises(ValueError, match=match):
        train_critic_fast(tr, steps, **args)


@pytest.mark.parametrize("activation", ["mish", "relu"])
def test_stacked_mlp_is_the_mlps_exactly(activation):
    torch.manual_seed(0)
    mlps = [mlp(6, 10, 2, out=3, activation=activation) for _ in range(3)]
    st = StackedMLP.from_mlps(mlps)
    assert (st.members, st.in_dim, st.width, st.layers, st.out, st.activation) == (3, 6, 10, 2, 3, activation)
    x = torch.randn(5, 6)
    shared = st(x)
    per = st(torch.randn(3, 5, 6).copy_(x.expand(3, 5, 6)))
    for e, m in enumerate(mlps):
        torch.testing.assert_close(shared[e], m(x), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(per[e], m(x), rtol=1e-6, atol=1e-6)
    own = torch.randn(3, 5, 6)
    for e, m in enumerate(mlps):  # each member on its own batch
        torch.testing.assert_close(st(own)[e], m(own[e]), rtol=1e-6, atol=1e-6)
    fresh = [mlp(6, 10, 2, out=3, activation=activation) for _ in range(3)]
    st.to_mlps(fresh)
    for a, b in zip(mlps, fresh):
        for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
            assert ka == kb and torch.equal(va, vb)


def test_stacked_mlp_initialises_like_linear_layers():
    """Uniform in ±1/sqrt(fan_in) per layer, as nn.Linear: the spread of each layer's weights says so."""
    torch.manual_seed(0)
    st = StackedMLP(4, 100, 400, 1, out=1)
    for w, b, fan_in in zip([w.detach() for w in st.weights], [b.detach() for b in st.biases], (100, 400)):
        bound = fan_in ** -0.5
        assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.99 * bound
        assert float(b.abs().max()) <= bound
    assert tuple(st.weights[0].shape) == (4, 100, 400) and tuple(st.biases[1].shape) == (4, 1, 1)


def test_stacked_mlp_refuses_what_it_cannot_hold():
    with pytest.raises(ValueError, match="members must be an integer >= 1, got 0"):
        StackedMLP(0, 3, 4, 1)
    with pytest.raises(ValueError, match="layers must be an integer >= 0, got -1"):
        StackedMLP(2, 3, 4, -1)
    with pytest.raises(ValueError, match="activation must be one of mish, relu; got 'gelu'"):
        StackedMLP(2, 3, 4, 1, activation="gelu")
    with pytest.raises(ValueError, match=r"x must be \[B, 3\] or \[2, B, 3\], got \(4, 5\)"):
        StackedMLP(2, 3, 4, 1)(torch.zeros(4, 5))
    with pytest.raises(ValueError, match="one shape"):
        StackedMLP.from_mlps([mlp(3, 4, 1), mlp(3, 4, 2)])
    with pytest.raises(ValueError, match="one activation"):
        StackedMLP.from_mlps([mlp(3, 4, 1), mlp(3, 4, 1, activation="relu")])
    with pytest.raises(ValueError, match="to_mlps needs 2 MLPs, got 1"):
        StackedMLP(2, 3, 4, 1).to_mlps([mlp(3, 4, 1)])
