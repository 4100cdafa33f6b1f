"""The Verifier protocol and the generic verifiers."""

import pytest
import torch

from tts_fast.verifiers import Classifier, Function, GaussianReward, MixtureReward


def test_function_with_and_without_cond_and_chunking():
    x = torch.randn(10, 3)
    f1 = Function(lambda x0: x0.sum(1))
    f2 = Function(lambda x0, cond: x0.sum(1) + cond, batch_size=3)
    cond = torch.arange(10)
    assert torch.allclose(f1(x), x.sum(1))
    assert torch.allclose(f2(x, cond), x.sum(1) + cond)
    with pytest.raises(ValueError, match=r"\[B\]"):
        Function(lambda x0: x0)(x)
    with pytest.raises(ValueError, match="batch_size"):
        Function(lambda x0: x0.sum(1), batch_size=0)
    with pytest.raises(TypeError, match="callable"):
        Function(3)


def test_classifier_log_probability_per_row_targets():
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    x = torch.randn(6, 4)
    logp = torch.log_softmax(net(x), 1)
    single = Classifier(net, 2)
    assert torch.allclose(single(x), logp[:, 2])
    per_row = Classifier(net, [0, 1, 2])
    cond = torch.tensor([0, 0, 1, 1, 2, 2])
    assert torch.allclose(per_row(x, cond), logp[torch.arange(6), cond])
    with pytest.raises(ValueError, match="cond"):
        per_row(x)
    with pytest.raises(ValueError, match="target"):
        Classifier(net, 5)(x)
    r, g = single.grad(x)
    assert g.shape == x.shape and torch.allclose(r, logp[:, 2])


def test_analytic_rewards():
    x = torch.randn(5, 2, dtype=torch.float64)
    c = torch.tensor([1.0, -1.0], dtype=torch.float64)
    assert torch.allclose(GaussianReward(c, 2.0)(x), -((x - c) ** 2).sum(1) / 4)
    per = GaussianReward([[0.0, 0.0], [1.0, -1.0]], 2.0)
    cond = torch.tensor([0, 1, 1, 0, 1])
    expect = -((x - per.center[cond]) ** 2).sum(1) / 4
    assert torch.allclose(per(x, cond), expect)
    m = MixtureReward([[0.0, 0.0], [1.0, -1.0]], [1.0, 2.0], [1.0, 3.0])
    manual = torch.log(torch.exp(-(x**2).sum(1) / 2) + 3 * torch.exp(-((x - c) ** 2).sum(1) / 4))
    assert torch.allclose(m(x), manual)


def test_grad_requires_differentiable():
    with pytest.raises(ValueError, match="not differentiable"):
        Function(lambda x0: x0.sum(1)).grad(torch.randn(2, 2))


# -- bad input and device-side checks --------------------------------------------------------------


def test_classifier_targets_checked_against_the_classes_on_the_host():
    """Targets are checked against the logits' class count once, from the host target tensor."""
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    x = torch.randn(4, 4)
    with pytest.raises(ValueError, match=r"target classes must lie in \[0, 3\)"):
        Classifier(net, [0, 1, 3])(x, torch.tensor([0, 1, 1, 0]))  # every row's target is checked, used or not
    with pytest.raises(ValueError, match="target classes must be >= 0"):
        Classifier(net, [0, -1])
    for bad in (2.5, [1.0, 2.0], True, torch.tensor([1.0])):
        with pytest.raises(ValueError, match="target"):
            Classifier(net, bad)
    with pytest.raises(ValueError, match="batch_size"):
        Classifier(net, 1, batch_size=0)
    c = Classifier(net, [0, 2])
    c(x, torch.tensor([0, 1, 1, 0]))
    assert c._checked_classes == 3 and c.target.device.type == "cpu"
    with pytest.raises(ValueError, match=r"cond holds prompt rows outside \[0, 2\)"):
        c(x, torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="cond"):
        c(x)


def test_classifier_on_a_device_reads_nothing_back():
    """On a device the prompt rows' range check is deferred to the run's collector, and the class
    check uses the host targets: the meta device stands in for a GPU (reading its values raises)."""
    from tts_fast._device_checks import Collector, collect

    net = torch.nn.Linear(4, 3).to("meta")
    x = torch.randn(4, 4, device="meta")
    c = Classifier(net, [0, 1, 2])
    col = Collector()
    with collect(col):
        r = c(x, torch.tensor([0, 1, 2, 5], device="meta"))
    assert r.device.type == "meta" and r.shape == (4,)
    assert any("cond holds prompt rows outside [0, 3)" in m for m in col._flags)
    with collect(Collector()), pytest.raises(ValueError, match=r"target classes must lie in \[0, 3\)"):
        Classifier(net, [0, 7])(x, torch.zeros(4, dtype=torch.int64, device="meta"))


# -- details a single bug would break (each test names the broken variant) --------------------------


def test_gaussian_reward_refuses_any_nonpositive_variance():
    """Broken variants: only an empty or all-bad var refused (one zero among positives let through);
    the bound moved (a variance below 1 refused); a centre of three dimensions let through."""
    for var in ([1.0, 0.0], [2.0, -1.0], [1.0, float("inf")]):
        with pytest.raises(ValueError, match=r"var must be finite and > 0"):
            GaussianReward([[0.0, 0.0], [1.0, 1.0]], var)
    x = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(GaussianReward([0.0, 0.0], 0.25)(x), torch.tensor([-2.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="center"):
        GaussianReward(torch.zeros(2, 2, 2))


def test_analytic_rewards_keep_the_samples_dtype():
    """Broken variant: the float64 centres not cast to the samples' dtype (float32 samples promoted)."""
    rewards = (GaussianReward([1.0, -1.0], 2.0), MixtureReward([[0.0, 0.0], [1.0, -1.0]], [1.0, 2.0], [1.0, 3.0]))
    for r in rewards:
        for dtype in (torch.float32, torch.float64):
            x = torch.randn(5, 2, dtype=dtype, generator=torch.Generator().manual_seed(0))
            out = r(x)
            assert out.dtype == dtype and out.shape == (5,)
            assert torch.allclose(out.double(), r(x.double()), atol=1e-5)


def test_classifier_targets_of_any_shape_and_the_transform():
    """Broken variants: a [P, 1] target tensor not flattened; the transform ignored; the errors'
    messages lost."""
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    x = torch.randn(4, 4)
    cond = torch.tensor([0, 1, 1, 0])
    column = Classifier(net, torch.tensor([[2], [0]]))
    assert column.num_prompts == 2
    assert torch.allclose(column(x, cond), torch.log_softmax(net(x), 1)[torch.arange(4), torch.tensor([2, 0, 0, 2])])
    flipped = Classifier(net, 1, transform=lambda v: -v)
    assert torch.allclose(flipped(x), torch.log_softmax(net(-x), 1)[:, 1])
    assert not torch.allclose(flipped(x), Classifier(net, 1)(x))
    with pytest.raises(ValueError, match="target must hold at least one class index"):
        Classifier(net, [])
    with pytest.raises(ValueError, match=r"must return \[B, C\] = \[4, C\] logits, got shape \(4,\)"):
        Classifier(lambda v: v.sum(1), 1)(x)


def test_reward_rows_and_their_messages():
    """Broken variants (the third verifiers sample): per-row centres told apart by their width, not
    their count (one [1, D] centre then claims a prompt row, [P, 1] centres none); the row-count
    message lost; a one-component mixture refused; the transform's type message lost; a callable
    without an inspectable signature called without cond."""
    assert GaussianReward([[0.0, 0.0]]).num_prompts is None
    per = GaussianReward([[0.0], [1.0]])
    assert per.num_prompts == 2
    x = torch.tensor([[0.5], [0.5]], dtype=torch.float64)
    assert torch.allclose(per(x, torch.tensor([0, 1])), torch.tensor([-0.125, -0.125], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"center has 2 rows but var has 3 values: give one per prompt row"):
        GaussianReward([[0.0], [1.0]], [1.0, 2.0, 3.0])
    one = MixtureReward([[1.0, 2.0]], 0.5)
    y = torch.tensor([[1.0, 3.0]], dtype=torch.float64)
    assert torch.allclose(one(y), torch.tensor([-1.0], dtype=torch.float64))  # log(1 * exp(-1 / (2 * 0.5)))
    with pytest.raises(TypeError, match="transform must be callable or None, got int"):
        Classifier(torch.nn.Linear(2, 2), 0, transform=3)
    f = Function(torch.add)  # a builtin: no signature to inspect, so it is given cond
    v = torch.tensor([1.0, 2.0])
    assert torch.equal(f(v, torch.tensor([10, 20])), torch.tensor([11.0, 22.0]))


def test_function_differentiable_flag():
    """Broken variant (a fourth verifiers sample): the flag dropped (grad then refuses every Function)."""
    f = Function(lambda x0: (x0**2).sum(1), differentiable=True)
    assert f.differentiable is True
    r, g = f.grad(torch.tensor([[1.0, 2.0]]))
    assert torch.equal(r, torch.tensor([5.0])) and torch.equal(g, torch.tensor([[2.0, 4.0]]))
