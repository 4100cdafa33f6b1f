"""``tts-fast run`` over prompt sets in one process, on the digits and analytic models (CPU, seconds).

Prompt files (text and JSONL with per-prompt seed / options), group seeds that depend on the
group index only, the rank assignment, error records and the summary, resume, and bad input
refused before any work. The multi-process runs (torchrun, Ray) are in tests/test_distributed.py.
"""

import json
import os

import numpy as np
import pytest

from tts_fast import _png, cli
from tts_fast._user_errors import UserError
from tts_fast.distributed import assign
from tts_fast.distributed import contact_sheet as cs
from tts_fast.runs import comparable, make_groups, read_prompts

FAST = ["--particles", "2", "--steps", "5", "--no-progress"]


def _run(out, *argv, model="digits"):
    return cli.main(["run", "--model", model, "--out", str(out), *FAST, *argv])


def _rec(out, i):
    with open(os.path.join(out, f"{i:05d}.json")) as f:
        return json.load(f)


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return str(path)


# -- prompt sets and groups ----------------------------------------------------------------------


def test_prompt_files_text_and_jsonl(tmp_path):
    txt = _write(tmp_path / "p.txt", ["3", "", "  7  "])
    specs = read_prompts(["1"], txt)
    assert [(s.index, s.text, s.seed, s.options) for s in specs] == [(0, "1", None, {}), (1, "3", None, {}), (2, "7", None, {})]
    jl = _write(tmp_path / "p.jsonl", ['{"prompt": "3"}', '{"prompt": "7", "seed": 42, "options": {"lam": 2.0}}'])
    specs = read_prompts([], jl)
    assert (specs[1].text, specs[1].seed, specs[1].options) == ("7", 42, {"lam": 2.0}) and specs[1].where.endswith("p.jsonl:2")


@pytest.mark.parametrize("line, match", [
    ('{"prompt": "3", "sead": 1}', "unknown key"),
    ('{"prompt": 3}', "non-empty string"),
    ('{"prompt": "3", "seed": -1}', "seed"),
    ('{"prompt": "3", "seed": true}', "seed"),
    ('{"prompt": "3", "options": [1]}', "options"),
    ('{"prompt": "3", "options": {"lam": NaN}}', "finite"),
    ('["3"]', "JSON object"),
    ('{"prompt": "3"', "not a JSON object"),
])
def test_bad_jsonl_lines_name_the_file_and_line(tmp_path, line, match):
    jl = _write(tmp_path / "p.jsonl", ['{"prompt": "1"}', line])
    with pytest.raises(UserError, match=match) as e:
        read_prompts([], jl)
    assert "p.jsonl:2" in str(e.value)


def test_group_seeds_depend_on_the_group_index_only():
    specs = read_prompts([str(d) for d in range(7)], None)
    groups = make_groups(specs, 3, 10, {"lam": 1.0})
    assert [(g.index, g.members, g.seed) for g in groups] == [(0, (0, 1, 2), 10), (1, (3, 4, 5), 11), (2, (6,), 12)]
    assert all(g.options == {"lam": 1.0} for g in groups)


def test_a_group_takes_its_prompts_own_seed_and_options_over_the_base(tmp_path):
    jl = _write(tmp_path / "p.jsonl", ['{"prompt": "1"}', '{"prompt": "2", "seed": 99, "options": {"lam": 3}}'])
    g = make_groups(read_prompts([], jl), 1, 0, {"lam": 1.0, "resample_at": "every"})
    assert (g[0].seed, g[0].options) == (0, {"lam": 1.0, "resample_at": "every"})
    assert (g[1].seed, g[1].options) == (99, {"lam": 3, "resample_at": "every"})
    with pytest.raises(UserError, match="--prompt-batch 1"):
        make_groups(read_prompts([], jl), 2, 0, {})


@pytest.mark.parametrize("k", [1, 2, 3, 7])
def test_assignment_gives_every_group_to_exactly_one_rank(k):
    pending = list(range(23))
    shares = [assign(pending, k, r) for r in range(k)]
    assert sorted(x for s in shares for x in s) == pending  # a partition: no group twice, none dropped
    assert max(map(len, shares)) - min(map(len, shares)) <= 1  # balanced
    with pytest.raises(ValueError, match="rank"):
        assign(pending, k, k)


# -- runs -----------------------------------------------------------------------------------------


def test_digits_run_writes_records_images_and_summary(tmp_path):
    out = tmp_path / "o"
    assert _run(out, "--prompt", "3", "--prompt", "7", "--prompt", "0", "--prompt-batch", "2") == 0
    recs = [_rec(out, i) for i in range(3)]
    assert [r["prompt"] for r in recs] == ["3", "7", "0"] and all(r["status"] == "ok" for r in recs)
    assert [r["seed"] for r in recs] == [0, 0, 1] and recs[0]["group"]["prompts"] == [0, 1]
    assert recs[0]["nfe_model"] == 2 * 5 and recs[0]["reward"] == max(recs[0]["particle_rewards"])
    img = _png.decode((out / "00000.png").read_bytes())
    assert img.shape == (32, 32, 1) and img.dtype == np.uint8
    s = json.loads((out / "summary.json").read_text())
    assert (s["prompts"], s["ok"], s["failed"], s["missing"]) == (3, 3, 0, 0)
    assert [r["reward"] for r in s["rows"]] == [r["reward"] for r in recs]
    assert s["this_run"]["prompts_computed"] == 3 and s["this_run"]["prompts_per_second"] > 0
    assert s["nfe_model"] == sum(r["nfe_model"] for r in recs)
    md = (out / "summary.md").read_text()
    assert "| 1 | 7 | ok |" in md and "prompts/s" in md
    csv = (out / "summary.csv").read_text().splitlines()
    assert csv[0].startswith("index,prompt,status,reward,nfe_model,seconds") and len(csv) == 4
    sheet = _png.decode((out / "contact_sheet.png").read_bytes())
    # 2 x 2 grid of 128-pixel tiles (the 32-pixel digits enlarged 4x), each with a caption strip, 4-pixel gaps
    tile, cell = 128, 128 + cs.CAPTION
    assert sheet.shape == (2 * cell + cs.GAP, 2 * tile + cs.GAP, 1)
    assert (sheet[:tile, :tile] == img.repeat(4, axis=0).repeat(4, axis=1)).all()  # prompt 0 first, enlarged by repeating pixels
    assert (sheet[cell + cs.GAP:, tile + cs.GAP:] == 255).all()  # the unused cell is blank
    for k, rec in enumerate(recs):  # each caption says the prompt's index and its image's reward
        y, x = (k // 2) * (cell + cs.GAP) + tile, (k % 2) * (tile + cs.GAP)
        strip = np.full((cs.CAPTION, tile), 255, np.uint8)
        cs._draw_caption(strip, (f"#{k}", f"{rec['reward']:.3g}"))
        assert (sheet[y:y + cs.CAPTION, x:x + tile, 0] == strip).all() and (strip == 0).any()


def test_the_digit_prompt_is_the_verifiers_target(tmp_path):
    """The reward is log p(target | x0) for the prompt's digit: the same sample scored for its own
    target beats it scored for the other digits (a wiring bug that ignores the prompt fails this)."""
    import torch

    import tts_fast as tts

    out = tmp_path / "o"
    assert _run(out, "--prompt", "3", "--prompt", "8", "--method", "bfs_best", "--particles", "8", "--steps", "20") == 0
    for i, d in enumerate((3, 8)):
        rec = _rec(out, i)
        assert rec["reward"] > -1.0  # p(target) > e^-1 after search
        x = torch.tensor((255 - _png.decode((out / rec["image"]).read_bytes())[::4, ::4, 0]) / 127.5 - 1.0, dtype=torch.float32)
        logits = tts.zoo.digits_classifier("verifier")(x[None, None])
        assert int(logits.argmax()) == d


def test_jsonl_seed_overrides_the_group_seed(tmp_path):
    """A prompt with "seed": 5 in a JSONL file gives what group 5 of a plain run gives."""
    plain, jl = tmp_path / "plain", tmp_path / "jl"
    assert _run(plain, *[f"--prompt={d}" for d in "000004"]) == 0  # group 5 = prompt "4", seed 5
    f = _write(tmp_path / "p.jsonl", ['{"prompt": "4", "seed": 5}'])
    assert _run(jl, "--prompts-file", f) == 0
    a, b = _rec(plain, 5), _rec(jl, 0)
    assert b["seed"] == 5 and a["reward"] == b["reward"] and a["particle_rewards"] == b["particle_rewards"]
    assert (plain / "00005.png").read_bytes() == (jl / "00000.png").read_bytes()


def test_a_failing_prompt_gets_an_error_record_and_the_run_goes_on(tmp_path, capsys):
    """gmm: a centre of 1e300 overflows the reward to -inf, which the search refuses at run time."""
    out = tmp_path / "o"
    argv = ["--prompt", "[2, 0]", "--prompt", "[1e300, 0]", "--prompt", "[-2, 0]"]
    assert _run(out, *argv, model="gmm") == 1
    ok0, bad, ok2 = (_rec(out, i) for i in range(3))
    assert ok0["status"] == ok2["status"] == "ok" and len(ok0["sample"]) == 2 and ok0["image"] is None
    assert bad["status"] == "error" and bad["error"]["type"] == "ValueError" and "finite" in bad["error"]["message"]
    assert "Traceback" in bad["run"]["traceback"]
    s = json.loads((out / "summary.json").read_text())
    assert (s["ok"], s["failed"]) == (2, 1) and [f["index"] for f in s["failures"]] == [1] and s["contact_sheet"] is None
    assert "## Failures" in (out / "summary.md").read_text() and not (out / "contact_sheet.png").exists()
    assert "1 prompt(s) failed" in capsys.readouterr().err
    # a rerun retries the failure only
    mtimes = [os.stat(out / f"0000{i}.json").st_mtime_ns for i in (0, 2)]
    assert _run(out, *argv, model="gmm") == 1
    assert "resuming: 2 prompt(s) already done, 1 to go" in capsys.readouterr().out
    assert [os.stat(out / f"0000{i}.json").st_mtime_ns for i in (0, 2)] == mtimes


def test_gmm_reward_is_the_gaussian_around_the_prompts_centre(tmp_path):
    out = tmp_path / "o"
    assert _run(out, "--prompt", "[2, 0]", "--prompt", "[-2, 0.5]", model="gmm") == 0
    for i, c in enumerate(([2, 0], [-2, 0.5])):
        r = _rec(out, i)
        assert r["reward"] == pytest.approx(-((r["sample"][0] - c[0]) ** 2 + (r["sample"][1] - c[1]) ** 2) / 2, rel=1e-12)


def test_resume_skips_finished_prompts_and_reproduces_the_rest(tmp_path, capsys):
    full, part = tmp_path / "full", tmp_path / "part"
    prompts = [f"--prompt={d}" for d in "1234"]
    assert _run(full, *prompts) == 0
    assert _run(part, *prompts) == 0
    os.remove(part / "00002.json")
    (part / "00003.png").write_bytes(b"half")
    kept = {i: os.stat(part / f"0000{i}.json").st_mtime_ns for i in (0, 1)}
    capsys.readouterr()
    assert _run(part, *prompts) == 0
    assert "resuming: 2 prompt(s) already done, 2 to go" in capsys.readouterr().out
    assert {i: os.stat(part / f"0000{i}.json").st_mtime_ns for i in (0, 1)} == kept
    for i in range(4):
        assert comparable(_rec(full, i)) == comparable(_rec(part, i))
        assert (full / f"0000{i}.png").read_bytes() == (part / f"0000{i}.png").read_bytes()
    assert _run(part, *prompts) == 0
    assert "all 4 prompt(s) already done" in capsys.readouterr().out


def test_changing_a_prompts_options_is_a_different_run(tmp_path, capsys):
    out = tmp_path / "o"
    f = tmp_path / "p.jsonl"
    _write(f, ['{"prompt": "1", "options": {"lam": 2}}'])
    assert _run(out, "--prompts-file", str(f), "--method", "fk") == 0
    _write(f, ['{"prompt": "1", "options": {"lam": 3}}'])
    capsys.readouterr()
    assert _run(out, "--prompts-file", str(f), "--method", "fk") == 2
    assert "different run" in capsys.readouterr().err
    assert _run(out, "--prompts-file", str(f), "--method", "fk", "--overwrite") == 0
    assert _rec(out, 0)["options"] == {"lam": 3}


@pytest.mark.parametrize("model, argv, match", [
    ("digits", ["--prompt", "12"], "--prompt #1: prompt '12': --model digits takes target digits"),
    ("digits", ["--prompt", "3", "--verifier", "clip"], "--verifier clip does not apply to --model digits"),
    ("digits", ["--prompt", "3", "--guidance", "3"], "--guidance: not an option of --model digits"),
    ("digits", ["--prompt", "3", "--backend", "compile"], "--backend compile"),
    ("digits", ["--prompt", "3", "--weights", "/nonexistent"], "--weights"),
    ("gmm", ["--prompt", "[1, 2, 3]"], "--model gmm takes reward centres"),
    ("gmm", ["--prompt", "[1, NaN]"], "--model gmm takes reward centres"),
    ("gmm", ["--prompt", "[1, 0]", "--weights", "w"], "--weights does not apply"),
    ("gmm", ["--prompt", "[1, 0]", "--ray-workers", "2"], "--ray-workers applies with --ray"),
    ("digits", ["--prompt", "3", "--option", "lam=-1"], "lam"),
    ("sd15", ["--prompt", "a cat"], "--model sd15 needs --verifier"),
    ("sd15", ["--prompt", "a cat", "--verifier", "clip"], "--model sd15 needs --weights"),
    ("sd15", ["--prompt", "a cat", "--verifier", "digits"], "--verifier digits does not apply to --model sd15"),
])
def test_bad_input_is_refused_before_any_work(tmp_path, capsys, model, argv, match):
    out = tmp_path / "o"
    assert _run(out, *argv, model=model) == 2
    assert match in capsys.readouterr().err and not out.exists()


def test_bad_per_prompt_options_name_the_line(tmp_path, capsys):
    f = _write(tmp_path / "p.jsonl", ['{"prompt": "1"}', '{"prompt": "2", "options": {"temperature": "hot"}}'])
    assert _run(tmp_path / "o", "--prompts-file", f) == 2
    err = capsys.readouterr().err
    assert "p.jsonl:2" in err and "temperature" in err and not (tmp_path / "o").exists()
    f = _write(tmp_path / "q.jsonl", ['{"prompt": "1", "options": {"n_particles": 8}}'])
    assert _run(tmp_path / "o", "--prompts-file", f) == 2
    assert "not a method option" in capsys.readouterr().err


def test_a_bad_digit_line_in_a_file_names_file_and_line(tmp_path, capsys):
    f = _write(tmp_path / "p.txt", ["3", "seven"])
    assert _run(tmp_path / "o", "--prompts-file", f) == 2
    assert "p.txt:2: prompt 'seven'" in capsys.readouterr().err


# -- images ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 1), (4, 3, 3), (1, 1)])
def test_png_round_trip_and_pillow_agrees(shape):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    data = _png.encode(a)
    assert data == _png.encode(a.copy())  # bytes are a function of the pixels
    b = _png.decode(data)
    assert (b.reshape(a.shape) == a).all()
    Image = pytest.importorskip("PIL.Image")
    import io

    assert (np.asarray(Image.open(io.BytesIO(data))).reshape(a.shape) == a).all()


def test_png_refuses_what_it_cannot_write():
    with pytest.raises(ValueError, match="uint8"):
        _png.encode(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="shape"):
        _png.encode(np.zeros((2, 2, 4), np.uint8))


def test_contact_sheet_tiles_are_brought_to_a_readable_size_by_integer_factors():
    a = np.arange(256 * 256 * 3, dtype=np.int64).reshape(256, 256, 3) % 251
    s = cs.tile_of(a.astype(np.uint8))
    assert s.shape == (128, 128, 3)
    assert s[0, 0, 0] == round(a[:2, :2, 0].mean())
    small = (np.arange(8 * 8).reshape(8, 8, 1) * 3).astype(np.uint8)
    assert (cs.tile_of(small) == small.repeat(16, axis=0).repeat(16, axis=1)).all()
    assert cs.tile_of(np.zeros((512, 128, 1), np.uint8)).shape == (128, 32, 1)


def test_contact_sheet_captions_name_the_failed_and_the_missing():
    assert cs.caption({"index": 7, "status": "ok", "reward": -0.12345}) == ("#7", "-0.123")
    assert cs.caption({"index": 8, "status": "ok", "reward": -2.345e-05}) == ("#8", "-2.35e-05")
    assert cs.caption({"index": 2, "status": "error", "reward": None}) == ("#2", "failed")
    assert cs.caption({"index": 3, "status": "missing", "reward": None}) == ("#3", "missing")


def test_the_label_font_draws_what_captions_say_and_refuses_the_rest():
    from tts_fast import _glyphs

    ink = _glyphs.render("#12 -0.5e+3 failed missing error", scale=2)
    assert ink.shape == (14, _glyphs.text_width("#12 -0.5e+3 failed missing error", 2)) and ink.any()
    assert not _glyphs.render(" ").any() and (_glyphs.render("1") != _glyphs.render("7")).any()
    with pytest.raises(ValueError, match=r"characters the label font lacks: \['Q'\]"):
        _glyphs.render("Q")


def test_ray_without_ray_installed_names_the_extra(tmp_path, monkeypatch):
    import sys

    from tts_fast.distributed import ray as on_ray
    from tts_fast.runs import parse_config, prepare

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as when it is not installed
    job = prepare(parse_config(["--model", "digits", "--prompt", "1", "--out", str(tmp_path / "o"), "--ray", "local"]))
    with pytest.raises(ImportError, match=r"tts_fast\[ray\]"):
        on_ray.execute(job, "local")
    assert not (tmp_path / "o").exists()
