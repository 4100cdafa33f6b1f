"""The profiler, `tts-fast profile`, and the published architectures used for speed work."""

import json

import pytest
import torch

import tts_fast as tts
from tts_fast.cli import main as cli
from tts_fast.profiling import ProfileReport, matmul_peak_tflops, model_flops_per_nfe, profile


def test_profile_report_is_consistent(tmp_path):
    model = tts.zoo.digits()
    verifier = tts.zoo.digits_verifier([3, 5])
    trace = tmp_path / "trace.json"
    r = profile(model, verifier, "bfs_best", n_particles=4, num_steps=10, batch_size=2, repeats=2, trace=str(trace))
    assert isinstance(r, ProfileReport)
    assert r.nfe.model == 2 * 4 * 10 and len(r.runs) == 2
    assert r.nfe_per_s == pytest.approx(r.nfe.model / r.seconds)
    assert set(r.stages) == {"model", "decode", "verifier", "search_ops", "host"} and all(v >= 0 for v in r.stages.values())
    assert 0 <= r.search_overhead <= 1
    assert r.flops_per_nfe > 0 and r.achieved_tflops > 0 and 0 < r.roofline_fraction
    assert r.memory_peak_bytes is None  # CPU
    assert json.loads(trace.read_text())["traceEvents"]
    assert "NFE/s" in r.summary()
    json.dumps(r.to_dict())


def test_flops_per_nfe_counts_the_network():
    """A linear denoiser of a D-vector costs 2 D^2 FLOPs per particle."""

    class Linear(tts.models.GaussianMixture):
        def forward(self, x_t, t, cond=None):
            return x_t @ torch.eye(x_t.shape[1], dtype=x_t.dtype)

    m = Linear(torch.zeros(1, 16), 1.0)
    assert model_flops_per_nfe(m, 10) == 2 * 16 * 16
    assert matmul_peak_tflops("cpu", size=256, repeats=2) > 0


def test_profile_cli_writes_a_report(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert cli(["profile", "--model", "gmm", "--particles", "4", "--steps", "8", "--repeats", "1", "--json", str(out),
                "--method", "bfs", "--option", "temperature=inf"]) == 0
    rep = json.loads(out.read_text())
    assert rep["nfe"]["model"] == 32 and rep["method"] == "bfs" and rep["model"] == "gmm"
    assert "NFE/s" in capsys.readouterr().out


def test_profile_cli_bad_input(capsys):
    with pytest.raises(SystemExit) as e:
        cli(["profile", "--model", "sd15", "--smoke", "--verifier", "imagereward"])
    assert e.value.code == 2 and "--weights" in capsys.readouterr().err
    for extra, match in ((["--weights", "w", "--smoke"], "--smoke"), (["--prompt", "a cat"], "--prompt needs --weights"),
                         (["--verifier-weights", "v"], "reward-model --verifier"),
                         (["--weights", "w", "--prompt", "p", "--verifier", "clip", "--tokenizer", "t"], "--tokenizer")):
        with pytest.raises(SystemExit) as e:
            cli(["profile", "--model", "sd15"] + extra)
        assert e.value.code == 2 and match in capsys.readouterr().err, extra
    with pytest.raises(SystemExit):
        cli(["profile", "--model", "sd3"])


@pytest.mark.parametrize("kw, match", [
    (dict(repeats=0), "repeats"), (dict(repeats=1.5), "repeats"), (dict(warmup=-3), "warmup"), (dict(warmup=True), "warmup"),
    (dict(peak_tflops=float("nan")), "peak_tflops"), (dict(peak_tflops=0.0), "peak_tflops"), (dict(flops="yes"), "flops"),
    (dict(trace=""), "trace"), (dict(trace="DIR"), "trace"),
])
def test_profile_bad_arguments_are_refused_before_any_run(kw, match, tmp_path):
    calls = []
    model = tts.models.GaussianMixture([[-2.0, 0.0], [2.0, 0.0]], [0.5, 0.5], [0.5, 0.5])
    verifier = tts.verifiers.Function(lambda x: calls.append(1) or x.sum(1))
    if kw.get("trace") == "DIR":
        kw = dict(trace=str(tmp_path))
    with pytest.raises(ValueError, match=match):
        profile(model, verifier, "bfs", n_particles=2, num_steps=2, **kw)
    assert calls == []  # no search ran


def test_profile_cli_refuses_nonsense_options(capsys):
    base = ["profile", "--model", "gmm", "--particles", "2", "--steps", "2", "--repeats", "1"]
    for extra in (["--warmup", "-1"], ["--repeats", "0"], ["--guidance", "nan"], ["--decode-scale", "0"], ["--option", "lam=NaN"],
                  ["--option", "=3"]):
        with pytest.raises(SystemExit) as e:
            cli(base + extra)
        assert e.value.code == 2, extra
    for extra, match in ((["--verifier", "clip"], "not an option of --model gmm"), (["--weights", "x"], "--weights"),
                         (["--guidance", "3"], "--guidance"), (["--smoke"], "--smoke"),
                         (["--option", "lam=1", "--option", "lam=2"], "given twice"), (["--option", "warmup=2"], "not a method option"),
                         (["--option", "nonsense=1"], "unknown option"), (["--option", "lam=-1"], "lam")):
        with pytest.raises(SystemExit) as e:
            cli(base + extra)
        assert e.value.code == 2 and match in capsys.readouterr().err, extra


diffusers = pytest.importorskip("diffusers", reason="the diffusers extra is not installed")
from tts_fast.models import architectures  # noqa: E402


def test_published_architectures_have_the_published_sizes():
    """Parameter counts of the full-size networks (built on the meta device: no memory)."""
    assert architectures.parameter_count("sd15") == 859_520_964
    assert architectures.parameter_count("sdxl") == 2_567_463_684
    assert architectures.parameter_count("flux") == 11_901_408_320
    assert architectures.parameter_count("sd15", "vae") == 83_653_863


@pytest.mark.parametrize("name", architectures.ARCHITECTURES)
def test_random_smoke_models_search(name):
    model = architectures.random_model(name, 2, smoke=True)
    v = tts.verifiers.Function(lambda img: img.float().mean(dim=(1, 2, 3)))
    r = tts.search(model, v, "bfs_best", n_particles=2, num_steps=3, progress=False)
    assert r.samples.shape == (2, 3, 32, 32) and r.nfe.model == 2 * 2 * 3
    assert r.nfe.cfg == (name != "flux")
    with pytest.raises(ValueError, match="architecture"):
        architectures.build_pipeline("sd3")
