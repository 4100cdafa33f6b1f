"""The built-in digits zoo: shipped weights, sample quality as documented, training, bad input."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

import tts_fast as tts
from tts_fast.zoo import experiment as ex

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "digits.json")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # many tiny kernels: extra threads only add overhead (and contention)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def documented():
    """The numbers docs/digits.md states (generated from benchmarks/results/digits.json)."""
    with open(RESULTS, encoding="utf-8") as f:
        return json.load(f)["quality"]


def test_shipped_weights_load_and_are_small():
    model = tts.zoo.digits("cpu")
    assert isinstance(model, tts.Denoiser)
    assert model.sample_shape == (1, 8, 8) and model.num_prompts is None
    for name in ("unet", *tts.zoo.CLASSIFIERS):
        path = tts.zoo.weights_path(name)
        assert os.path.getsize(path) < 1.5 * 2**20, path
        ck = tts.zoo.load_checkpoint(path)
        assert all(v.dtype == torch.float32 for v in ck["state_dict"].values())
    x = torch.randn(5, 1, 8, 8)
    t = torch.tensor([999.0, 700.0, 300.0, 10.0, 0.0], dtype=torch.float64)
    x0 = model(x, t, None)
    assert x0.shape == x.shape and bool((x0.abs() <= 1).all())
    for name in tts.zoo.CLASSIFIERS:
        net = tts.zoo.digits_classifier(name, "cpu")
        assert not net.training
        assert net(x).shape == (5, 10)


def test_classifier_accuracy_on_real_test_digits_is_as_documented(documented):
    pytest.importorskip("sklearn", reason="the digits data ships with scikit-learn (pip install 'tts_fast[test]')")
    from tts_fast.zoo.data import load_split

    x, y = load_split("test")
    assert x.shape == (400, 1, 8, 8) and float(x.min()) >= -1 and float(x.max()) <= 1
    for name in tts.zoo.CLASSIFIERS:
        net = tts.zoo.digits_classifier(name, "cpu")
        with torch.no_grad():
            acc = float((net(x).argmax(1) == y).double().mean())
        # Deterministic up to float rounding: at most one of 400 digits may flip on another machine.
        assert abs(acc - documented["classifier_test_accuracy"][name]) <= 1 / 400 + 1e-9, name
        assert acc > 0.95


def test_plain_samples_match_the_documented_histogram(documented):
    """400 fresh plain samples (another seed) vs the documented 2,000-sample histogram.

    Tolerance: each class fraction may differ by 4.5 standard errors of the difference of two
    independent binomial proportions, sqrt(p (1 - p) (1/400 + 1/n_doc)); with 10 classes and the
    agreement rate that is a false-alarm rate below 1e-4 per run.
    """
    zoo = ex.Zoo("cpu")
    n = 400
    q = ex.sample_quality(zoo, n=n, num_steps=documented["num_steps"], seed=12345)
    n_doc = documented["n"]
    for k, (p_doc, p_new) in enumerate(zip(documented["evaluator_histogram"], q["evaluator_histogram"])):
        p = max(p_doc, 1 / n_doc)
        tol = 4.5 * math.sqrt(p * (1 - p) * (1 / n + 1 / n_doc))
        assert abs(p_new - p_doc) <= tol, (k, p_new, p_doc, tol)
    for key in ("agreement_verifier_evaluator", "evaluator_confident_fraction"):
        p = documented[key]
        tol = 4.5 * math.sqrt(max(p * (1 - p), 1 / n_doc) * (1 / n + 1 / n_doc))
        assert abs(q[key] - p) <= tol, (key, q[key], p, tol)


def test_digits_verifier_per_row_targets_and_search():
    targets = [0, 3, 8]
    verifier = tts.zoo.digits_verifier(targets)
    assert isinstance(verifier, tts.verifiers.Classifier) and verifier.differentiable
    model = tts.zoo.digits("cpu")
    res = tts.search(model, verifier, "bfs_best", n_particles=4, num_steps=10, batch_size=3, seed=0, progress=False)
    assert res.samples.shape == (3, 1, 8, 8)
    assert res.nfe.model == 3 * 4 * 10
    logp = torch.log_softmax(tts.zoo.digits_classifier("verifier")(res.samples), 1)
    assert torch.allclose(res.rewards.float(), logp[torch.arange(3), torch.tensor(targets)], atol=1e-5)


def test_bad_input():
    with pytest.raises(ValueError, match="0..9"):
        tts.zoo.digits_verifier(10)
    with pytest.raises(ValueError, match="0..9"):
        tts.zoo.digits_verifier(["x"])
    with pytest.raises(ValueError, match="at least one"):
        tts.zoo.digits_verifier([])
    with pytest.raises(ValueError, match="verifier, guide, evaluator"):
        tts.zoo.digits_classifier("resnet")
    with pytest.raises(FileNotFoundError, match="retrain"):
        tts.zoo.digits(weights_dir="/nonexistent/folder")
    with pytest.raises(ValueError, match="unknown method"):
        ex.check_methods(["bon", "beam"])
    with pytest.raises(ValueError, match="device"):
        tts.zoo.digits("gpu")
    with pytest.raises(ValueError, match="batch_size"):
        tts.zoo.digits_verifier(3, batch_size=0)
    with pytest.raises(ValueError, match=r"x_t must be \[B, 1, 8, 8\]"):
        tts.zoo.digits("cpu")(torch.randn(2, 64), torch.zeros(2), None)


def test_broken_weight_files_are_named_with_what_was_expected(tmp_path):
    """Truncated, random, empty, foreign-pickle and wrong-kind files: a ValueError naming the file
    (never torch.load's raw error and its advice to load with weights_only=False); missing: FileNotFoundError."""
    import shutil
    import sys

    sys.path.insert(0, os.path.dirname(__file__))
    from _bad_files import bad_weight_files

    unet = tts.zoo.weights_path("unet")
    for kind, path in bad_weight_files(tmp_path, unet, "digits_unet.pt").items():
        with pytest.raises(ValueError, match="is not a tts_fast digits zoo checkpoint") as e:
            tts.zoo.digits("cpu", weights_dir=os.path.dirname(path))
        assert path in str(e.value) and "weights_only=False" not in str(e.value) and "`weights_only` set to `False`" not in str(e.value), kind
    # valid torch files of the wrong kind
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    from tts_fast.maze.weights import weights_path as maze_weights

    shutil.copy(maze_weights("medium"), wrong / "digits_unet.pt")  # a maze planner
    with pytest.raises(ValueError, match=r"digits_unet.pt is not a tts_fast digits zoo checkpoint: it holds kind='pointmaze_planner'"):
        tts.zoo.digits("cpu", weights_dir=str(wrong))
    shutil.copy(tts.zoo.weights_path("guide"), wrong / "digits_verifier.pt")  # swapped classifiers
    with pytest.raises(ValueError, match=r"digits_verifier.pt is a zoo checkpoint of 'guide', not of 'verifier'"):
        tts.zoo.digits_classifier("verifier", "cpu", weights_dir=str(wrong))
    torch.save(tts.zoo.digits("cpu").net.state_dict(), wrong / "digits_unet.pt")  # a bare state dict
    with pytest.raises(ValueError, match=r"digits_unet.pt is not a tts_fast digits zoo checkpoint \(expected a dict with keys kind"):
        tts.zoo.digits("cpu", weights_dir=str(wrong))
    ck = dict(tts.zoo.load_checkpoint(tts.zoo.weights_path("verifier")))
    torch.save(dict(ck, kind="unet"), wrong / "digits_unet.pt")  # a classifier's weights labelled unet
    with pytest.raises(ValueError, match=r"digits_unet.pt does not hold a DigitsUNet"):
        tts.zoo.digits("cpu", weights_dir=str(wrong))
    with pytest.raises(FileNotFoundError, match="retrain"):
        tts.zoo.digits_classifier("guide", weights_dir=str(tmp_path / "missing"))


def test_training_runs_a_few_steps(tmp_path):
    pytest.importorskip("sklearn", reason="the digits data ships with scikit-learn (pip install 'tts_fast[test]')")
    from tts_fast.zoo import train

    out = tmp_path / "w"
    assert train.main(["--out", str(out), "--steps", "3", "--clf-steps", "3", "--batch", "16"]) == 0
    assert sorted(os.listdir(out)) == sorted(["digits_unet.pt", "digits_verifier.pt", "digits_guide.pt", "digits_evaluator.pt"])
    model = tts.zoo.digits("cpu", weights_dir=str(out))
    assert model(torch.randn(2, 1, 8, 8), torch.tensor([500.0, 20.0]), None).shape == (2, 1, 8, 8)
    net = tts.zoo.digits_classifier("evaluator", "cpu", weights_dir=str(out))
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    meta = tts.zoo.load_checkpoint(str(out / "digits_verifier.pt"))["meta"]
    assert meta["steps"] == 3 and 0.0 <= meta["test_accuracy"] <= 1.0


def test_training_rejects_unwritable_out(tmp_path):
    from tts_fast.zoo import train

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SystemExit):
        train.main(["--out", str(blocker / "sub"), "--steps", "1"])
