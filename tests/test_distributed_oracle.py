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


# -- survivors of a fresh sample (seed 23) ---------------------------------------------------------------


def test_a_long_caption_is_cut_two_pixels_inside_the_strip():
    """Broken variant: the caption's ink cut at the strip's width + 4 instead of - 4 (a caption wider
    than its tile then no longer fits the strip: the drawing fails)."""
    strip = np.full((cs.CAPTION, 24), 255, np.uint8)
    cs._draw_caption(strip, ("#1234567890", "0.123"))
    assert (strip[:, -2:] == 255).all() and (strip[:, :2] == 255).all()
    full = _glyphs.render("#1234567890", cs.SCALE)
    assert full.shape[1] > 24 and (strip[2:2 + full.shape[0], 2:22] == 0).sum() == full[:, :20].sum()


def test_the_markdown_summary_leaves_a_blank_line_after_each_paragraph():
    """Broken variant: the line after 'this invocation: ...' written as 'XXXX' instead of blank (the
    next paragraph then runs into it)."""
    job = SimpleNamespace(out="o", settings=dict(model="digits", method="bon", particles=2, steps=3, verifier="v", seed=0, prompt_batch=1))
    totals = dict(prompts=1, ok=1, failed=0, missing=0, reward_mean=0.5, nfe_model=6)
    rows = [dict(index=0, prompt="3", status="ok", reward=0.5, nfe_model=6, seconds=1.0)]
    run = dict(prompts_computed=1, prompts_resumed=0, world_size=2, launcher="torchrun", wall_seconds=2.0,
               prompts_per_second=0.5, nfe_per_second=3.0)
    lines = summary._markdown(job, rows, totals, run).split("\n")
    k = next(i for i, line in enumerate(lines) if line.startswith("this invocation: 1 prompt(s) computed (0 resumed) on 2 torchrun ranks"))
    assert lines[k + 1] == "" and lines[k + 2] == "seconds: the prompt's share of its group's search and writes."
    assert lines[1] == lines[3] == lines[5] == ""


def test_a_rank_share_draws_its_bar_as_rank_of_world(monkeypatch, capsys):
    """Broken variant: run_share's progress bar made without the world size (every rank then reads
    'rank r/1')."""
    from tts_fast.distributed import share

    made = []

    class FakeBar:
        def __init__(self, *a, **kw):
            made.append((a, kw))

        def update(self, outcome):
            pass

        def close(self):
            pass

    class FakeWorker:
        def __init__(self, job, device, **kw):
            pass

        def run_group(self, g):
            return dict(prompts=len(g.members), nfe=4, seconds=0.5, failed=0)

    monkeypatch.setattr(share, "RankProgress", FakeBar)
    monkeypatch.setattr(share, "Worker", FakeWorker)
    job = SimpleNamespace(config=SimpleNamespace(progress=True))
    groups = [SimpleNamespace(index=1, members=[1, 4]), SimpleNamespace(index=7, members=[7])]
    out = share.run_share(job, "cpu", groups, rank=1, world_size=3, launcher="torchrun")
    assert len(out) == 2 and made == [((3, 1, 3), {"enabled": True})]
    # the bar itself reads rank/world
    bar = progress.RankProgress(3, 1, 3, enabled=True)
    try:
        assert bar.bar.desc == "rank 1/3"
    finally:
        bar.close()


def test_ranks_read_torchruns_environment_with_one_process_defaults(monkeypatch):
    """Broken variants (code that runs only inside torchrun ranks, so called here in-process): RANK or
    LOCAL_RANK defaulting to 1 outside torchrun."""
    from tts_fast._user_errors import UserError
    from tts_fast.distributed import torchrun

    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    assert torchrun.ranks() == (0, 1, 0)
    monkeypatch.setenv("RANK", "3"), monkeypatch.setenv("WORLD_SIZE", "4"), monkeypatch.setenv("LOCAL_RANK", "1")
    assert torchrun.ranks() == (3, 4, 1)
    monkeypatch.setenv("LOCAL_RANK", "x")
    with pytest.raises(UserError, match=r"^RANK / WORLD_SIZE / LOCAL_RANK must be integers \(set by torchrun\), got '3', '4', 'x'$"):
        torchrun.ranks()


def test_a_torchrun_world_of_one_runs_in_process(monkeypatch, tmp_path):
    """Broken variants (rank code, run here in this process as a gloo world of one): execute() calling
    the rank's work without its device, or with the arguments shifted."""
    import signal
    import socket

    import torch

    from tts_fast.distributed import torchrun
    from tts_fast.runs.job import prepare
    from tts_fast.runs.options import parse_config

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in dict(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)).items():
        monkeypatch.setenv(k, v)
    prompts = tmp_path / "p.txt"
    prompts.write_text("3\n5\n")
    job = prepare(parse_config(["--model", "digits", "--method", "bon", "--particles", "2", "--steps", "4", "--no-progress",
                                "--prompts-file", str(prompts), "--out", str(tmp_path / "out")]))
    handler, threads = signal.getsignal(signal.SIGTERM), torch.get_num_threads()
    try:
        assert torchrun.execute(job) == 0
    finally:
        signal.signal(signal.SIGTERM, handler)
        torch.set_num_threads(threads)
    import json

    done = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (done["ok"], done["failed"]) == (2, 0)
    assert done["this_run"]["launcher"] == "torchrun" and done["this_run"]["world_size"] == 1
    assert {r["index"] for r in done["rows"]} == {0, 1}


def test_ray_connects_with_the_workers_output_shown_and_runs_on_auto_by_default(monkeypatch):
    """Broken variants: ray.init without log_to_driver=True (the workers' output then never reaches
    the driver's terminal); run()'s default address garbled ('XXautoXX')."""
    pytest.importorskip("ray", reason="tts_fast.distributed.ray imports only with the extra 'ray'")
    from tts_fast.distributed import ray as R

    calls = []
    fake = SimpleNamespace(is_initialized=lambda: False, init=lambda **kw: calls.append(kw))
    assert R._connect(fake, "local") is True and R._connect(fake, "ray://h:1") is True
    assert calls == [dict(address=None, include_dashboard=False, log_to_driver=True),
                     dict(address="ray://h:1", include_dashboard=False, log_to_driver=True)]
    fake.is_initialized = lambda: True
    assert R._connect(fake, "auto") is False and len(calls) == 2
    seen = []
    monkeypatch.setattr(R, "_execute", lambda job, address, workers: (seen.append((address, workers)), (0, {"ok": 1}))[1])
    monkeypatch.setattr(R, "prepare", lambda config: config)
    monkeypatch.setattr(R, "parse_config", lambda argv: SimpleNamespace(ray=None, ray_workers=None))
    monkeypatch.setattr(R.dataclasses, "replace", lambda obj, **kw: SimpleNamespace(**{**vars(obj), **kw}))
    assert R.run([]) == {"ok": 1} and seen == [("auto", None)]


# -- survivors of a fresh sample (seed 23, skip 40) ------------------------------------------------------


def _digits_job(tmp_path):
    from tts_fast.runs.job import prepare
    from tts_fast.runs.options import parse_config

    prompts = tmp_path / "p.txt"
    prompts.write_text("3\n5\n")
    return prepare(parse_config(["--model", "digits", "--method", "bon", "--particles", "2", "--steps", "4", "--no-progress",
                                 "--prompts-file", str(prompts), "--out", str(tmp_path / "out")]))


def _world_of_one(monkeypatch, job):
    import signal
    import socket

    import torch

    from tts_fast.distributed import torchrun

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in dict(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)).items():
        monkeypatch.setenv(k, v)
    handler, threads = signal.getsignal(signal.SIGTERM), torch.get_num_threads()
    try:
        return torchrun.execute(job)
    finally:
        signal.signal(signal.SIGTERM, handler)
        torch.set_num_threads(threads)


def test_a_torchrun_rerun_counts_the_prompts_it_resumed(monkeypatch, tmp_path):
    """Broken variant (rank code, run in-process): rank 0's summary of the run with its resumed count
    lost (None)."""
    import json

    job = _digits_job(tmp_path)
    assert _world_of_one(monkeypatch, job) == 0
    first = json.loads((tmp_path / "out" / "summary.json").read_text())["this_run"]
    assert (first["prompts_computed"], first["prompts_resumed"]) == (2, 0)
    assert _world_of_one(monkeypatch, _digits_job(tmp_path)) == 0
    again = json.loads((tmp_path / "out" / "summary.json").read_text())["this_run"]
    assert (again["prompts_computed"], again["prompts_resumed"]) == (0, 2)


def test_rank_0_sends_its_listing_error_to_every_rank(monkeypatch):
    """Broken variant: rank 0's error while listing the pending groups sent as 'None' (the other
    ranks then raise a UserError without the reason)."""
    import torch.distributed as dist

    from tts_fast._user_errors import UserError
    from tts_fast.distributed import torchrun

    def pending(job):
        raise UserError("the records in out/ belong to another run (model sd15)")

    monkeypatch.setattr(torchrun, "pending", pending)
    monkeypatch.setattr(dist, "broadcast_object_list", lambda box, src, group: None)  # a world of one: nothing to send
    with pytest.raises(UserError, match=r"^the records in out/ belong to another run \(model sd15\)$"):
        torchrun._pending_on_rank0(SimpleNamespace(), 0, None)


def test_one_process_reports_its_groups_as_rank_0(capsys, tmp_path):
    """Broken variants: the single process's share run as rank None ('[rank None] group ...'), and
    RankProgress's default rank 1 (a bar drawn one line down, described 'rank 1/1')."""
    import torch

    from tts_fast.distributed import local

    threads = torch.get_num_threads()
    try:
        assert local.execute(_digits_job(tmp_path)) == 0
    finally:
        torch.set_num_threads(threads)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[rank")]
    assert [line.split(":")[0] for line in lines] == ["[rank 0] group 0 (prompts 0-0)", "[rank 0] group 1 (prompts 1-1)"]
    bar = progress.RankProgress(3, enabled=True)
    try:
        assert bar.bar.desc == "rank 0/1" and bar.bar.pos == 0
    finally:
        bar.close()


def test_ray_refuses_cuda_without_gpus_and_actors_know_the_worker_count(monkeypatch, tmp_path):
    """Broken variants: --device cuda on a Ray cluster without GPUs let through ('CUDA' tested) and
    run on CPUs; an actor's worker made without the number of workers (run here in-process: actors
    run in Ray's processes)."""
    pytest.importorskip("ray", reason="tts_fast.distributed.ray imports only with the extra 'ray'")
    from tts_fast._user_errors import UserError
    from tts_fast.distributed import ray as R

    fake = SimpleNamespace(is_initialized=lambda: True, cluster_resources=lambda: {"CPU": 4.0})
    monkeypatch.setattr(R, "require", lambda *a, **k: fake)
    monkeypatch.setattr(R, "pending", lambda job: [SimpleNamespace(index=0, members=[0])])
    monkeypatch.setattr(R, "announce", lambda job, n: 0)
    job = SimpleNamespace(config=SimpleNamespace(device="cuda", progress=False))
    with pytest.raises(UserError, match=r"^--device cuda: the Ray cluster has no GPU$"):
        R._execute(job, "auto", None)
    made = []
    monkeypatch.setattr(R, "Worker", lambda job, device, **kw: made.append((str(device), kw)))
    monkeypatch.setattr(R.threads, "apply", lambda n: None)
    R._Actor(SimpleNamespace(config=SimpleNamespace(threads=1)), "cpu", 2, 3)
    assert made == [("cpu", dict(rank=2, world_size=3, launcher="ray"))]


def test_ray_starts_each_actor_with_its_index_and_the_worker_count(monkeypatch):
    """Broken variant: the actors started without the number of workers (None), which each worker
    records as its world size."""
    ray = pytest.importorskip("ray", reason="tts_fast.distributed.ray imports only with the extra 'ray'")
    import ray.util

    from tts_fast.distributed import ray as R

    started, pools, finished = [], [], []

    def remote(**options):
        return lambda cls: SimpleNamespace(remote=lambda *a: started.append((options, a[1:])) or a[1:])

    class FakePool:
        def __init__(self, actors):
            pools.append(actors)

        def map_unordered(self, fn, todo):
            return []

    fake = SimpleNamespace(is_initialized=lambda: True, cluster_resources=lambda: {"CPU": 4.0}, remote=remote)
    monkeypatch.setattr(R, "require", lambda *a, **k: fake)
    monkeypatch.setattr(ray.util, "ActorPool", FakePool)
    monkeypatch.setattr(R, "pending", lambda job: [SimpleNamespace(index=i, members=[i]) for i in range(3)])
    monkeypatch.setattr(R, "announce", lambda job, n: 0)
    monkeypatch.setattr(R, "finish", lambda job, run: finished.append(run) or {"ok": 1})
    job = SimpleNamespace(config=SimpleNamespace(device="cpu", progress=False))
    assert R._execute(job, "auto", 2) == (0, {"ok": 1})
    assert [a for _, a in started] == [("cpu", 0, 2), ("cpu", 1, 2)]
    assert started[0][0] == dict(num_gpus=0, num_cpus=1, max_restarts=R.RESTARTS, max_task_retries=R.RESTARTS)
    assert pools == [[("cpu", 0, 2), ("cpu", 1, 2)]] and finished[0]["world_size"] == 2 and finished[0]["launcher"] == "ray"


# -- survivors of a fresh sample (seed 23, skip 80) ------------------------------------------------------


def test_one_process_summary_shows_each_image_on_the_contact_sheet(tmp_path):
    """Broken variants: a record's image read under another key ('IMAGE': every row without its
    image, the sheet empty), the contact sheet never made for an image family."""
    import json

    import torch

    from tts_fast.distributed import local

    threads = torch.get_num_threads()
    try:
        assert local.execute(_digits_job(tmp_path)) == 0
    finally:
        torch.set_num_threads(threads)
    done = json.loads((tmp_path / "out" / "summary.json").read_text())
    images = [r["image"] for r in done["rows"]]
    assert all(isinstance(i, str) and i.endswith(".png") and (tmp_path / "out" / i).is_file() for i in images), images
    assert done["contact_sheet"] == "contact_sheet.png" and (tmp_path / "out" / "contact_sheet.png").is_file()


def test_ray_run_passes_its_worker_count_and_ranks_their_wall_time(monkeypatch):
    """Broken variants: run()'s workers argument dropped (None); the Ray ranks' statistics made
    without the wall time (None)."""
    ray = pytest.importorskip("ray", reason="tts_fast.distributed.ray imports only with the extra 'ray'")
    import ray.util

    from tts_fast.distributed import ray as R

    seen = []
    real_execute = R._execute
    monkeypatch.setattr(R, "_execute", lambda job, address, workers: (seen.append((address, workers)), (0, {"ok": 1}))[1])
    monkeypatch.setattr(R, "prepare", lambda config: config)
    monkeypatch.setattr(R, "parse_config", lambda argv: SimpleNamespace(ray=None, ray_workers=None))
    monkeypatch.setattr(R.dataclasses, "replace", lambda obj, **kw: SimpleNamespace(**{**vars(obj), **kw}))
    R.run([], workers=3)
    assert seen == [("auto", 3)]
    monkeypatch.setattr(R, "_execute", real_execute)

    class FakePool:
        def __init__(self, actors):
            pass

        def map_unordered(self, fn, todo):
            return [dict(rank=0, prompts=1, failed=0, nfe=4, nfe_model=4, seconds=0.25)]

    remote = lambda **options: (lambda cls: SimpleNamespace(remote=lambda *a: a))  # noqa: E731
    fake = SimpleNamespace(is_initialized=lambda: True, cluster_resources=lambda: {"CPU": 4.0}, remote=remote)
    finished = []
    monkeypatch.setattr(R, "require", lambda *a, **k: fake)
    monkeypatch.setattr(ray.util, "ActorPool", FakePool)
    monkeypatch.setattr(R, "pending", lambda job: [SimpleNamespace(index=0, members=[0])])
    monkeypatch.setattr(R, "announce", lambda job, n: 0)
    monkeypatch.setattr(R, "finish", lambda job, run: finished.append(run) or {"ok": 1})
    R._execute(SimpleNamespace(config=SimpleNamespace(device="cpu", progress=False)), "auto", 1)
    (rank,) = finished[0]["ranks"]
    assert rank["wall_seconds"] == finished[0]["wall_seconds"] and rank["wall_seconds"] > 0


# -- survivors of a fresh sample (seed 23, skip 120) -----------------------------------------------------


def test_captions_final_line_and_sheet_size_by_hand(tmp_path):
    """Broken variants: a failed prompt captioned 'missing'; the final line always listing failed
    and resumed counts (', 0 failed, 0 resumed'); the sheet one gap too tall."""
    assert cs.caption(dict(index=4, status="error")) == ("#4", "failed")
    assert cs.caption(dict(index=5, status="missing")) == ("#5", "missing")
    assert cs.caption(dict(index=6, status="ok", reward=0.123456)) == ("#6", "0.123")
    run = dict(prompts_per_second=2.0, nfe_per_second=100.0, prompts_failed=0, prompts_resumed=0, prompts_computed=4,
               world_size=2, launcher="torchrun", wall_seconds=2.0)
    assert progress.final_line(run, "o") == "tts-fast run: 4 prompt(s) on 2 rank(s) in 2.0 s: 2.00 prompts/s, 100 NFE/s; summary: o/summary.md"
    run.update(prompts_failed=1, prompts_resumed=3)
    assert progress.final_line(run, "o").endswith("100 NFE/s, 1 failed, 3 resumed; summary: o/summary.md")
    rows = [dict(index=0, status="ok", reward=0.5, image=_png_file(tmp_path / "a.png", 200))]
    sheet = _png.decode(cs.contact_sheet(str(tmp_path), rows)[0])
    th, tw = cs.tile_of(np.full((16, 16, 3), 200, np.uint8)).shape[:2]
    assert sheet.shape[:2] == (th + cs.CAPTION, tw)  # one cell: no gap around it


def test_summary_json_lists_contact_sheet_notes_and_ray_names_the_devices(monkeypatch, tmp_path):
    """Broken variants: summary.json's contact_sheet_notes under another key; Ray's refusal of a
    --device it cannot give each worker without its message."""
    import json

    import torch

    from tts_fast.distributed import local

    threads = torch.get_num_threads()
    try:
        local.execute(_digits_job(tmp_path))
    finally:
        torch.set_num_threads(threads)
    done = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert done["contact_sheet_notes"] == []
    pytest.importorskip("ray", reason="tts_fast.distributed.ray imports only with the extra 'ray'")
    from tts_fast._user_errors import UserError
    from tts_fast.distributed import ray as R

    monkeypatch.setattr(R, "require", lambda *a, **k: SimpleNamespace(is_initialized=lambda: True, cluster_resources=lambda: {"CPU": 4.0}))
    monkeypatch.setattr(R, "pending", lambda job: [])
    monkeypatch.setattr(R, "announce", lambda job, n: 0)
    with pytest.raises(UserError, match=r"^--device meta: with --ray use auto, cuda or cpu \(Ray gives each worker its own GPU\)$"):
        R._execute(SimpleNamespace(config=SimpleNamespace(device="meta", progress=False)), "auto", None)
