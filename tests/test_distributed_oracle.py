"""Oracles for the pieces of tts_fast.distributed that run in the driver process: the contact sheet's
pixels, the progress bar's figures, the failure line, the summary's wording, and Ray's address
rules. Each test names the broken variant it catches. (The ranks' and actors' own code runs in
other processes: tests/test_distributed.py runs them end to end.)"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tts_fast import _glyphs, _png
from tts_fast.distributed import contact_sheet as cs
from tts_fast.distributed import progress, summary


def test_shrink_averages_blocks_and_rounds_half_up():
    """Broken variants: the mean over the wrong axes; truncation instead of rounding."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, size=(cs.MAX_TILE * 2, cs.MAX_TILE * 2 - 1, 3), dtype=np.uint8)  # the odd last column is cut
    out = cs.shrink(a)
    assert out.shape == (cs.MAX_TILE, cs.MAX_TILE - 1, 3) and out.dtype == np.uint8
    i, j, c = 5, 77, 2
    block = a[2 * i:2 * i + 2, 2 * j:2 * j + 2, c].astype(np.float64)
    assert out[i, j, c] == int(np.floor(block.mean() + 0.5))
    half = np.tile(np.array([[1, 2], [1, 2]], dtype=np.uint8), (cs.MAX_TILE, cs.MAX_TILE))[..., None]  # every block's mean is 1.5
    assert (cs.shrink(half) == 2).all()


def test_enlarge_repeats_each_pixel_in_both_directions():
    """Broken variant: the repeat applied twice along the width (a stretched, wrongly shaped tile)."""
    a = np.arange(32 * 16 * 1, dtype=np.uint8).reshape(32, 16, 1)
    f = cs.MIN_TILE // 32
    assert (cs.enlarge(a) == np.kron(a, np.ones((f, f, 1), dtype=np.uint8))).all()


def _png_file(path, value, size=16, channels=3):
    path.write_bytes(_png.encode(np.full((size, size, channels), value, np.uint8)))
    return path.name


def test_an_unreadable_image_is_a_mid_grey_tile_captioned_error(tmp_path):
    """Broken variants: the placeholder tile not mid-grey 128; the caption drawn at another scale
    than SCALE (the reward line then overlaps or is cut)."""
    rows = [dict(index=0, status="ok", reward=0.5, image=_png_file(tmp_path / "a.png", 200)),
            dict(index=1, status="ok", reward=0.7, image="missing.png")]
    png, notes = cs.contact_sheet(str(tmp_path), rows)
    assert len(notes) == 1 and "missing.png" in notes[0]
    sheet = _png.decode(png)
    tile = cs.tile_of(np.full((16, 16, 3), 200, np.uint8))
    th, tw = tile.shape[:2]
    x = tw + cs.GAP  # the second cell of the first row
    assert (sheet[:th, :tw] == 200).all() and (sheet[:th, x:x + tw] == 128).all()
    strip = sheet[th:th + cs.CAPTION, x:x + tw, 0]
    ink_rows = np.flatnonzero((strip == 0).any(axis=1))
    expect = _glyphs.render("error", cs.SCALE)
    second = ink_rows[ink_rows >= cs.LINE]
    used = np.flatnonzero(expect.any(axis=1))
    assert second.max() - second.min() == used.max() - used.min()
    assert (strip[2 + cs.LINE:2 + cs.LINE + expect.shape[0], 2:2 + expect.shape[1]] == 0).sum() == expect.sum()


def test_the_progress_bar_shows_the_ranks_throughput_and_failures():
    """Broken variant: the NFE/s and failure count left out of the bar."""
    bar = progress.RankProgress(total=4, enabled=True, desc="t")
    try:
        bar.update(dict(nfe=300, seconds=2.0, failed=0, prompts=2))
        assert bar.bar.postfix == "150 NFE/s" and bar.bar.n == 2
        bar.update(dict(nfe=100, seconds=2.0, failed=1, prompts=1))
        assert bar.bar.postfix == "100 NFE/s, 1 failed" and bar.bar.n == 3
    finally:
        bar.close()
    assert progress.RankProgress(total=4, enabled=False).bar is None


def test_failures_are_announced_with_where_they_are_listed(monkeypatch, capsys, tmp_path):
    """Broken variant: the failure line printed empty."""
    monkeypatch.setattr(summary, "write", lambda job, run: {"failed": 2})
    monkeypatch.setattr(progress, "final_line", lambda run, out: "done")
    progress.finish(SimpleNamespace(out=str(tmp_path)), {})
    captured = capsys.readouterr()
    assert captured.err == f"tts-fast run: 2 prompt(s) failed (listed in {tmp_path}/summary.md)\n"
    assert captured.out == "done\n"


def test_the_summary_names_where_it_ran_and_its_columns():
    """Broken variants: Ray runs described as generic workers; the table's header changed."""
    assert summary._where({"world_size": 1, "launcher": "single"}) == "1 process"
    assert summary._where({"world_size": 3, "launcher": "torchrun"}) == "3 torchrun ranks"
    assert summary._where({"world_size": 4, "launcher": "ray"}) == "4 Ray workers"
    assert summary._where({"world_size": 2, "launcher": "other"}) == "2 workers"
    job = SimpleNamespace(out="o", settings=dict(model="digits", method="bon", particles=2, steps=3, verifier="v", seed=0, prompt_batch=1))
    totals = dict(prompts=1, ok=1, failed=0, missing=0, reward_mean=0.5, nfe_model=6)
    rows = [dict(index=0, prompt="3", status="ok", reward=0.5, nfe_model=6, seconds=1.0)]
    text = summary._markdown(job, rows, totals, None)
    assert "| index | prompt | status | reward | NFE | seconds |\n|---:|---|---|---:|---:|---:|\n| 0 | 3 | ok |" in text


def test_ray_address_and_worker_rules(monkeypatch):
    """Broken variants: the address argument, the job's --ray or the 'auto' default lost; a dead
    worker's RuntimeError without its message."""
    pytest.importorskip("ray", reason="tts_fast.distributed.ray imports only with the extra 'ray'")
    from tts_fast.distributed import ray as R

    seen = []
    monkeypatch.setattr(R, "_execute", lambda job, address, workers: (seen.append((address, workers)), (0, {"ok": 1}))[1])
    job = lambda ray=None, workers=None: SimpleNamespace(config=SimpleNamespace(ray=ray, ray_workers=workers))  # noqa: E731
    assert R.execute(job()) == 0 and seen[-1] == ("auto", None)
    R.execute(job(ray="ray://h:1", workers=3))
    assert seen[-1] == ("ray://h:1", 3)
    R.execute(job(ray="ray://h:1"), address="local", workers=2)
    assert seen[-1] == ("local", 2)
    monkeypatch.setattr(R, "prepare", lambda config: config)
    monkeypatch.setattr(R, "parse_config", lambda argv: SimpleNamespace(ray=None, ray_workers=None))
    monkeypatch.setattr(R.dataclasses, "replace", lambda obj, **kw: SimpleNamespace(**{**vars(obj), **kw}))
    assert R.run([], address="local") == {"ok": 1} and seen[-1] == ("local", None)
    monkeypatch.setattr(R, "_execute", lambda job, address, workers: (1, None))
    with pytest.raises(RuntimeError, match="a Ray worker died for good: finished prompts are saved; call run"):
        R.run([])
