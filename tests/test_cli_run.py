"""``tts-fast run`` on a tiny SD pipeline and a tiny CLIP verifier saved to disk (offline).

Images and JSON records per prompt, atomic writes, resuming an interrupted run (with the same
images as an uninterrupted one), refusing a folder of a different run, and clear errors.
"""

import json
import os
import sys

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from tts_fast import cli  # noqa: E402
from tts_fast.cli import run as cli_run  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from _tiny_diffusers import tiny_clip, tiny_sd  # noqa: E402

PROMPTS = ["a red cube", "a blue dog", "a cat"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    tiny_sd(str(root)).save_pretrained(str(root / "sd"))
    tiny_clip(str(root / "clip"))
    return str(root / "sd"), str(root / "clip")


def _args(weights, out, *extra, prompts=PROMPTS):
    sd, clip = weights
    argv = ["run", "--model", "sd15", "--weights", sd, "--verifier", "clip", "--verifier-weights", clip, "--method", "bfs_best",
            "--particles", "2", "--steps", "2", "--out", str(out), "--device", "cpu", "--no-progress"]
    for p in prompts:
        argv += ["--prompt", p]
    return cli.build_parser().parse_args(argv + list(extra))


def _records(out):
    return {f: json.load(open(os.path.join(out, f))) for f in sorted(os.listdir(out)) if f.endswith(".json") and f[:-5].isdigit()}


def test_run_writes_images_and_records(weights, tmp_path):
    out = tmp_path / "out"
    assert cli_run.main(_args(weights, out, "--prompt-batch", "2")) == 0
    recs = _records(out)
    assert sorted(recs) == ["00000.json", "00001.json", "00002.json"]
    for i, (name, rec) in enumerate(recs.items()):
        assert rec["prompt"] == PROMPTS[i] and rec["index"] == i
        assert os.path.isfile(out / rec["image"])
        assert rec["settings"]["method"] == "bfs_best" and rec["settings"]["particles"] == 2
        assert rec["nfe_model"] == 2 * 2  # particles x steps for this prompt
        assert rec["group"]["nfe"]["cfg"] is True
        assert rec["group"]["nfe"]["model_evaluations"] == 2 * rec["group"]["nfe"]["model"]
        assert len(rec["particle_rewards"]) == 2 and rec["reward"] == max(rec["particle_rewards"])
        assert rec["run"]["seconds"] > 0 and "model" in rec["run"]["timings"] and rec["run"]["launcher"] == "single"
    assert recs["00000.json"]["group"]["prompts"] == [0, 1] and recs["00002.json"]["group"]["seed"] == 1
    assert not [f for f in os.listdir(out) if f.startswith(".tmp-")]  # no temporary file of the atomic writes is left
    from PIL import Image

    assert Image.open(out / "00000.png").size == (32, 32)


def test_resume_skips_done_prompts_and_reproduces_the_rest(weights, tmp_path, capsys):
    full, part = tmp_path / "full", tmp_path / "part"
    assert cli_run.main(_args(weights, full)) == 0
    assert cli_run.main(_args(weights, part)) == 0
    # an interrupted run: the last prompt's record (written last) is missing, its PNG half-done
    os.remove(part / "00002.json")
    (part / "00002.png").write_bytes(b"partial")
    mtime = os.path.getmtime(part / "00000.json")
    capsys.readouterr()
    assert cli_run.main(_args(weights, part)) == 0
    assert "2 prompt(s) already done" in capsys.readouterr().out
    assert os.path.getmtime(part / "00000.json") == mtime  # not redone
    a, b = _records(full), _records(part)
    assert a["00002.json"]["reward"] == b["00002.json"]["reward"]
    assert (full / "00002.png").read_bytes() == (part / "00002.png").read_bytes()
    assert cli_run.main(_args(weights, part)) == 0
    assert "all 3 prompt(s) already done" in capsys.readouterr().out


def test_resume_regenerates_missing_or_clobbered_images(weights, tmp_path, capsys):
    """A finished prompt whose PNG was deleted (or overwritten by something else) is made again,
    identical to the first time; the others are not redone."""
    out = tmp_path / "out"
    assert cli_run.main(_args(weights, out, prompts=PROMPTS[:2])) == 0
    first = {i: (out / f"0000{i}.png").read_bytes() for i in (0, 1)}
    os.remove(out / "00000.png")
    (out / "00001.png").write_bytes(b"not an image")
    capsys.readouterr()
    assert cli_run.main(_args(weights, out, prompts=PROMPTS[:2])) == 0
    assert "already done" not in capsys.readouterr().out
    assert {i: (out / f"0000{i}.png").read_bytes() for i in (0, 1)} == first
    mtime = os.path.getmtime(out / "00001.json")
    os.remove(out / "00000.png")
    assert cli_run.main(_args(weights, out, prompts=PROMPTS[:2])) == 0
    assert "1 prompt(s) already done, 1 to go" in capsys.readouterr().out
    assert (out / "00000.png").read_bytes() == first[0] and os.path.getmtime(out / "00001.json") == mtime


@pytest.mark.parametrize("extra", [
    ["--guidance", "nan"], ["--guidance", "inf"], ["--guidance", "-1"], ["--decode-scale", "0"], ["--decode-scale", "nan"],
    ["--seed", "-1"], ["--steps", "0"], ["--particles", "-2"], ["--budget", "0"], ["--height", "-32"], ["--width", "0"],
    ["--prompt-batch", "0"], ["--max-batch", "0"], ["--option", "lam=NaN"], ["--option", "lam=Infinity"], ["--option", "=2"],
    ["--option", "lam"],
])
def test_nonsense_values_are_refused_at_parse_time(weights, tmp_path, extra):
    with pytest.raises(SystemExit) as e:
        _args(weights, tmp_path / "o", *extra)
    assert e.value.code == 2


@pytest.mark.parametrize("extra, match", [
    (["--option", "lam=1", "--option", "lam=2"], "given twice"),
    (["--option", "n_particles=8"], "not a method option"),
    (["--option", "lam=-1"], "lam"),
    (["--option", "temperature=hot"], "temperature"),
    (["--budget", "3"], "budget=3 is too small"),
    (["--height", "36"], "--height"),
    (["--max-batch", "1"], "--max-batch"),
    (["--guidance", "1", "--negative-prompt", "blurry"], "--negative-prompt"),
    (["--aesthetic-head", "head.pth"], "--aesthetic-head"),
    (["--tokenizer", "bert"], "--tokenizer"),
    (["--seed", str(2**63)], "--seed"),
])
def test_bad_option_combinations_are_refused_before_any_work(weights, tmp_path, capsys, monkeypatch, extra, match):
    """Refused before the pipeline is loaded or --out is created."""
    from tts_fast.runs import family_diffusers

    monkeypatch.setattr(family_diffusers, "load_pipeline", lambda *a: pytest.fail("the pipeline was loaded"))
    out = tmp_path / "o"
    assert cli_run.main(_args(weights, out, *extra)) == 2
    assert match in capsys.readouterr().err and not out.exists()


def test_a_guidance_run_resumes_itself(weights, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli_run.main(_args(weights, out, "--guidance", "3.5", "--option", "lam=2.5", "--method", "fk", prompts=PROMPTS[:1])) == 0
    capsys.readouterr()
    assert cli_run.main(_args(weights, out, "--guidance", "3.5", "--option", "lam=2.5", "--method", "fk", prompts=PROMPTS[:1])) == 0
    assert "all 1 prompt(s) already done" in capsys.readouterr().out


def test_a_folder_of_a_different_run_is_refused(weights, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli_run.main(_args(weights, out, prompts=PROMPTS[:1])) == 0
    capsys.readouterr()
    assert cli_run.main(_args(weights, out, "--particles", "3", prompts=PROMPTS[:1])) == 2
    assert "different run" in capsys.readouterr().err
    assert cli_run.main(_args(weights, out, "--particles", "3", "--overwrite", prompts=PROMPTS[:1])) == 0
    assert _records(out)["00000.json"]["settings"]["particles"] == 3


def test_method_options_and_decode_scale(weights, tmp_path):
    out = tmp_path / "out"
    args = _args(weights, out, "--method", "fk", "--option", "lam=2.0", "--decode-scale", "0.5", prompts=PROMPTS[:1])
    assert cli_run.main(args) == 0
    rec = _records(out)["00000.json"]
    assert rec["settings"]["options"] == {"lam": 2.0}
    from PIL import Image

    assert Image.open(out / "00000.png").size == (32, 32)  # saved images are full decodes


def test_errors(weights, tmp_path, capsys):
    assert cli_run.main(_args(weights, tmp_path / "o", prompts=[])) == 2
    assert "no prompts" in capsys.readouterr().err
    args = _args(weights, tmp_path / "o")
    args.weights = str(tmp_path / "missing")
    assert cli_run.main(args) == 2
    assert "not a folder" in capsys.readouterr().err
    assert cli_run.main(_args(weights, tmp_path / "o", "--option", "nonsense=1")) == 2
    assert "unknown option" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["run", "--model", "sd3", "--weights", "x", "--verifier", "clip", "--out", "o"])


# -- details a single bug would break (each test names the broken variant) --------------------------


def test_an_unknown_method_is_refused_at_parse_time(weights, tmp_path, capsys):
    """Broken variant: --method without its choices (a typo then fails after the pipeline loaded)."""
    with pytest.raises(SystemExit) as e:
        _args(weights, tmp_path / "o", "--method", "bfs_bets")
    assert e.value.code == 2 and "invalid choice: 'bfs_bets'" in capsys.readouterr().err


def test_the_standalone_parser_exits_or_raises_as_asked(capsys):
    """Broken variant: raise_errors ignored (a command-line user then gets a traceback, or a Python
    caller an exit)."""
    from tts_fast._user_errors import UserError
    from tts_fast.runs.options import build_parser

    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["--model", "digits", "--particles", "0"])
    assert e.value.code == 2 and "--particles" in capsys.readouterr().err
    with pytest.raises(UserError, match="--particles"):
        build_parser(raise_errors=True).parse_args(["--model", "digits", "--particles", "0"])


def test_pipeline_options_reach_the_adapter():
    """Broken variants: --max-batch or --decode-scale not passed on; FLUX's T5 length not capped by
    its tokenizer (or the tokenizer not looked up)."""
    from types import SimpleNamespace

    from tts_fast.runs.config import ModelConfig
    from tts_fast.runs.family_diffusers import T5_LENGTH, _model_options

    kw = _model_options(ModelConfig("sd15", max_batch=3, decode_scale=0.5, guidance=2.0, negative_prompt="blurry"), SimpleNamespace())
    assert (kw["max_batch"], kw["decode_scale"], kw["guidance_scale"], kw["negative_prompt"]) == (3, 0.5, 2.0, "blurry")
    assert "max_sequence_length" not in kw
    flux = ModelConfig("flux")
    assert _model_options(flux, SimpleNamespace(tokenizer_2=SimpleNamespace(model_max_length=77)))["max_sequence_length"] == 77
    assert _model_options(flux, SimpleNamespace(tokenizer_2=SimpleNamespace(model_max_length=10**30)))["max_sequence_length"] == T5_LENGTH
    assert _model_options(flux, SimpleNamespace())["max_sequence_length"] == T5_LENGTH


def test_a_missing_aesthetic_head_is_named(weights, tmp_path):
    """Broken variant: the head file checked only for other verifiers than 'aesthetic'."""
    from tts_fast._user_errors import UserError
    from tts_fast.runs.config import ModelConfig
    from tts_fast.runs.family_diffusers import DiffusersFamily

    cfg = ModelConfig("sd15", weights=weights[0], verifier="aesthetic", aesthetic_head=str(tmp_path / "head.pth"))
    with pytest.raises(UserError, match=r"--aesthetic-head .*head.pth' is not a file"):
        DiffusersFamily("sd15").check(cfg)


def test_profile_setups_pass_their_options_on():
    """Broken variants: the profiled random network without --decode-scale / --max-batch, or the
    profile's option checks called without the model (a TypeError); the digits profile scoring
    every row against one target instead of 0, 1, 2, ..."""
    from tts_fast._user_errors import UserError
    from tts_fast.runs.config import ModelConfig
    from tts_fast.runs.family_diffusers import DiffusersFamily
    from tts_fast.runs.family_digits import DigitsFamily

    cfg = ModelConfig("sd15", verifier="cheap", max_batch=2, decode_scale=0.5)
    net, verifier = DiffusersFamily("sd15").profile_setup(cfg, "cpu", batch_size=2, smoke=True, prompts=[])
    assert net.decode_scale == 0.5 and net.max_batch == 2
    with pytest.raises(UserError, match="--prompt needs --weights"):
        DiffusersFamily("sd15").profile_setup(cfg, "cpu", batch_size=2, smoke=True, prompts=["a cat"])
    _, digits_verifier = DigitsFamily.profile_setup(ModelConfig("digits"), "cpu", batch_size=12, smoke=False, prompts=[])
    assert digits_verifier.target.tolist() == [d % 10 for d in range(12)]


def test_digits_runs_use_the_given_weights_folder(tmp_path):
    """Broken variant: --weights ignored for the digits model (the shipped weights loaded instead)."""
    import shutil

    import torch

    import tts_fast as tts
    from tts_fast.runs.family_digits import LoadedDigits

    folder = tmp_path / "w"
    folder.mkdir()
    for name in ("unet", "verifier"):
        shutil.copy(tts.zoo.weights_path(name), folder)
    shipped = LoadedDigits(None, "cpu").model
    ckpt = torch.load(folder / os.path.basename(tts.zoo.weights_path("unet")), weights_only=True)
    state = ckpt["state_dict"] if isinstance(ckpt, dict) and "state_dict" in ckpt else ckpt
    for v in state.values():
        if torch.is_tensor(v) and v.is_floating_point():
            v.mul_(0.5)
    torch.save(ckpt, folder / os.path.basename(tts.zoo.weights_path("unet")))
    mine = LoadedDigits(str(folder), "cpu").model
    x = torch.randn(2, *shipped.sample_shape, generator=torch.Generator().manual_seed(0))
    t = torch.full((2,), 500, dtype=torch.int64)
    assert not torch.allclose(mine.eps(x, t), shipped.eps(x, t))


def test_records_say_how_many_threads_ran(weights, tmp_path):
    """Broken variant: the thread count missing from the run's record (timings cannot be compared)."""
    import torch

    out = tmp_path / "out"
    assert cli_run.main(_args(weights, out, prompts=PROMPTS[:1])) == 0
    assert _records(out)["00000.json"]["run"]["threads"] == torch.get_num_threads()
