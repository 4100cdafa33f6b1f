"""The run configuration and the model-family registry: one frozen description of a run, built once from
the command line, and one registry of ``--model`` values that ``tts-fast run`` and ``tts-fast profile``
both go through."""

import dataclasses
import json
import os

import pytest
import torch

import tts_fast as tts
from tts_fast import cli
from tts_fast._user_errors import UserError
from tts_fast.runs import FAMILIES, LoadedModel, ModelConfig, ModelFamily, RunConfig, config_of, parse_config, prepare
from tts_fast.runs import families as families_module
from tts_fast.runs.config import DTYPES

# the key order of a record's "settings" (what a resumed record must match), as records on disk hold it
SETTINGS_ORDER = ["model", "weights", "method", "options", "particles", "steps", "budget", "verifier", "verifier_weights",
                  "aesthetic_head", "guidance", "negative_prompt", "height", "width", "seed", "prompt_batch", "dtype", "decode_scale"]


def test_the_command_line_becomes_one_frozen_config(tmp_path):
    argv = ["--model", "gmm", "--prompt", "[2, 0]", "--prompt", "[1, 1]", "--out", str(tmp_path), "--option", "lam=2",
            "--option", "temperature=increase", "--method", "bfs", "--particles", "3", "--no-progress", "--seed", "7"]
    cfg = parse_config(argv)
    assert isinstance(cfg, RunConfig) and isinstance(cfg.model, ModelConfig)
    assert cfg.model.name == "gmm" and cfg.prompts == ("[2, 0]", "[1, 1]") and cfg.options == (("lam", 2), ("temperature", "increase"))
    assert cfg.progress is False and cfg.particles == 3 and cfg.seed == 7 and cfg.model.verifier is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.particles = 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.weights = "x"
    # built from the parser the CLI uses, the same config
    ns = cli.build_parser().parse_args(["run", *argv])
    assert config_of(ns) == cfg


def test_lists_given_to_the_config_are_copied_into_tuples(tmp_path):
    prompts, options = ["1"], [("lam", 1.0)]
    cfg = RunConfig(ModelConfig("digits"), str(tmp_path), prompts=prompts, options=options)
    prompts.append("2")
    options.append(("x", 1))
    assert cfg.prompts == ("1",) and cfg.options == (("lam", 1.0),)


def test_settings_keep_the_record_format(tmp_path):
    cfg = RunConfig(ModelConfig("sd15", weights="rel/w", verifier="clip", guidance=3.0, height=64, dtype="fp16"), str(tmp_path),
                    method="fk", options=(("lam", 2.0),), particles=2, steps=3, budget=12, seed=4, prompt_batch=2)
    s = cfg.settings()
    assert list(s) == SETTINGS_ORDER
    assert s["weights"] == os.path.abspath("rel/w") and s["options"] == {"lam": 2.0} and s["model"] == "sd15"
    assert (s["guidance"], s["height"], s["dtype"], s["budget"], s["prompt_batch"]) == (3.0, 64, "fp16", 12, 2)
    # run-only fields (where, how, on what) never enter the settings: changing them resumes the same records
    other = dataclasses.replace(cfg, out="elsewhere", device="cpu", threads=2, progress=False, overwrite=True, ray="auto")
    assert other.settings() == s


def test_a_run_writes_the_settings_of_its_config(tmp_path):
    out = tmp_path / "o"
    assert cli.main(["run", "--model", "gmm", "--prompt", "[2, 0]", "--particles", "2", "--steps", "3", "--device", "cpu",
                     "--no-progress", "--out", str(out)]) == 0
    rec = json.loads((out / "00000.json").read_text())
    expected = parse_config(["--model", "gmm", "--prompt", "[2, 0]", "--particles", "2", "--steps", "3", "--out", str(out)])
    expected = dataclasses.replace(expected, model=dataclasses.replace(expected.model, verifier="gaussian"))  # the family's default
    assert rec["settings"] == expected.settings() and list(rec["settings"]) == SETTINGS_ORDER


@pytest.mark.parametrize("make, match", [
    (lambda o: RunConfig(ModelConfig("gmm"), o, particles=0), "--particles must be an integer >= 1"),
    (lambda o: RunConfig(ModelConfig("gmm"), o, steps=2.5), "--steps must be an integer >= 1"),
    (lambda o: RunConfig(ModelConfig("gmm"), o, seed=-1), "--seed must be an integer >= 0"),
    (lambda o: RunConfig(ModelConfig("gmm"), o, budget=0), "--budget must be an integer >= 1 or None"),
    (lambda o: RunConfig(ModelConfig("gmm"), o, dist_timeout=float("nan")), "--dist-timeout must be a finite number > 0"),
    (lambda o: RunConfig("gmm", o), "model must be a ModelConfig"),
    (lambda o: ModelConfig("sd15", guidance=-1.0), "--guidance must be a finite number >= 0"),
    (lambda o: ModelConfig("sd15", decode_scale=0.0), "--decode-scale must be a finite number > 0"),
    (lambda o: ModelConfig("sd15", height=0), "--height must be an integer >= 1"),
    (lambda o: ModelConfig("sd15", dtype="fp8"), "--dtype must be one of bf16, fp16, fp32"),
])
def test_bad_config_values_name_the_flag(tmp_path, make, match):
    with pytest.raises(UserError, match=match):
        make(str(tmp_path))


def test_prepare_fills_in_the_default_verifier_without_changing_the_given_config(tmp_path):
    cfg = parse_config(["--model", "digits", "--prompt", "3", "--out", str(tmp_path / "o")])
    job = prepare(cfg)
    assert cfg.model.verifier is None and job.config.model.verifier == "digits" and job.settings["verifier"] == "digits"
    assert job.family is FAMILIES["digits"]


# -- the registry ------------------------------------------------------------------------------


def test_every_family_satisfies_the_protocols(tmp_path):
    assert list(FAMILIES) == ["sd15", "sdxl", "flux", "digits", "gmm"]
    for name, family in FAMILIES.items():
        assert isinstance(family, ModelFamily) and family.name == name
        assert family.default_verifier is None or family.default_verifier in family.verifiers
    for name in ("digits", "gmm"):
        loaded = FAMILIES[name].load(ModelConfig(name), torch.device("cpu"))
        assert isinstance(loaded, LoadedModel)


def test_pipeline_defaults_are_the_adapters(monkeypatch):
    from tts_fast.models.diffusers import adapter_of
    from tts_fast.runs.family_diffusers import network_dtype

    assert (adapter_of("sd15").default_guidance, adapter_of("sdxl").default_guidance, adapter_of("flux").default_guidance) == (7.5, 5.0, 3.5)
    assert (adapter_of("sd15").size_multiple, adapter_of("flux").size_multiple) == (8, 16)
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert network_dtype(ModelConfig("flux"), cpu) == torch.float32
    assert network_dtype(ModelConfig("flux"), gpu) == torch.bfloat16 and network_dtype(ModelConfig("sdxl"), gpu) == torch.float16
    assert network_dtype(ModelConfig("sd15", dtype="bf16"), gpu) == torch.bfloat16
    # the run family reads the adapter: a changed default changes what the family checks
    monkeypatch.setattr(adapter_of("sd15"), "size_multiple", 32)
    with pytest.raises(UserError, match="--height 48 must be a multiple of 32"):
        FAMILIES["sd15"]._check_pipeline_options(ModelConfig("sd15", height=48))
    with pytest.raises(ValueError, match="architecture must be one of"):
        adapter_of("sd3")
    assert set(DTYPES) == {"fp32", "fp16", "bf16"}


class _ToyFamily:
    """A family registered by the test: the analytic mixture, prompts 'near' or 'far'."""

    name = "toy"
    verifiers = ("distance",)
    default_verifier = "distance"
    images = False
    pipeline_options = False
    calls = []

    def check(self, model):
        self.calls.append("check")

    def check_prompt(self, text):
        if text not in ("near", "far"):
            raise UserError(f"prompt {text!r}: toy prompts are near or far")

    def schedule(self, model):
        return tts.schedules.ddpm_linear()

    def _pair(self, device, n):
        model = tts.models.GaussianMixture([[0.0, 0.0]], [1.0], [1.0], device=device)
        return model, tts.verifiers.GaussianReward([[1.0, 0.0]] * n, 1.0)

    def load(self, model, device):
        self.calls.append("load")
        family = self

        class Loaded:
            def prepare(self, prompts):
                return family._pair(device, len(prompts))

            def pixels(self, result):
                return None

            def sample(self, result, b):
                return result.samples[b].tolist()

        return Loaded()

    def profile_setup(self, model, device, *, batch_size, smoke, prompts):
        self.calls.append("profile_setup")
        return self._pair(device, batch_size)


def test_run_and_profile_both_go_through_the_registry(tmp_path, monkeypatch, capsys):
    toy = _ToyFamily()
    toy.calls.clear()
    monkeypatch.setitem(families_module.FAMILIES, "toy", toy)
    out = tmp_path / "o"
    assert cli.main(["run", "--model", "toy", "--prompt", "near", "--prompt", "far", "--particles", "2", "--steps", "3",
                     "--device", "cpu", "--no-progress", "--out", str(out)]) == 0
    rec = json.loads((out / "00001.json").read_text())
    assert rec["settings"]["model"] == "toy" and rec["settings"]["verifier"] == "distance" and len(rec["sample"]) == 2
    assert toy.calls == ["check", "load"]
    assert cli.main(["run", "--model", "toy", "--prompt", "close", "--out", str(tmp_path / "p")]) == 2
    assert "toy prompts are near or far" in capsys.readouterr().err
    report = tmp_path / "r.json"
    assert cli.main(["profile", "--model", "toy", "--particles", "2", "--steps", "3", "--repeats", "1", "--warmup", "0",
                     "--json", str(report)]) == 0
    assert toy.calls[-1] == "profile_setup" and json.loads(report.read_text())["model"] == "toy"
    # the registry's refusal of pipeline options reaches profile too, naming the families that take them
    with pytest.raises(SystemExit):
        cli.main(["profile", "--model", "toy", "--guidance", "2"])
    assert "--guidance: not an option of --model toy (they apply to sd15, sdxl, flux)" in capsys.readouterr().err
