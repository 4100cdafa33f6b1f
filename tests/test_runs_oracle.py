"""Oracles for prompt-set runs (tts_fast.runs, tts_fast.distributed): every figure a summary reports,
resume, groups, seeds and the split over ranks, computed by hand on runs written by hand (no
search runs here, so each figure is checked against a number the test states).

Each test names the broken variant it is written against.
"""

from __future__ import annotations

import csv
import io
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest

from tts_fast import _png
from tts_fast._user_errors import UserError
from tts_fast.distributed import progress, summary
from tts_fast.distributed.sharding import assign
from tts_fast.runs import prompts as P
from tts_fast.runs import records

SETTINGS = {"model": "digits", "method": "bfs", "particles": 2, "steps": 5, "verifier": "classifier", "seed": 0,
            "prompt_batch": 2}


def _job(tmp_path, texts, *, images=False, groups=None, overwrite=False):
    specs = [P.PromptSpec(i, t) for i, t in enumerate(texts)]
    groups = groups or [P.Group(g, tuple(range(s, min(s + 2, len(texts)))), 10 + g, {}) for g, s in enumerate(range(0, len(texts), 2))]
    return SimpleNamespace(out=str(tmp_path), specs=specs, groups=groups, settings=SETTINGS,
                           family=SimpleNamespace(images=images), config=SimpleNamespace(overwrite=overwrite))


def _record(job, i, status="ok", *, reward=None, nfe=None, seconds=1.0, group=None, image=None, seed=None, error=None):
    g = group or next(g for g in job.groups if i in g.members)
    rec = {"index": i, "prompt": job.specs[i].text, "status": status, "image": image, "reward": reward, "nfe_model": nfe,
           "seed": g.seed if seed is None else seed, "options": g.options,
           "group": {"index": g.index, "prompts": list(g.members), "seed": g.seed}, "settings": job.settings,
           "run": {"seconds": seconds}}
    if error is not None:
        rec["error"] = error
    with open(records.record_path(job.out, i), "w") as f:
        json.dump(rec, f)
    return rec


# -- the summary's figures ------------------------------------------------------------------------


def _five(tmp_path):
    """Five prompts in groups (0, 1), (2, 3), (4): 0 and 1 ok, 2 failed, 3 missing, 4 ok."""
    job = _job(tmp_path, ["a", "b", "c", "d", "e"])
    _record(job, 0, reward=1.0, nfe=10, seconds=4.0)
    _record(job, 1, reward=3.0, nfe=30, seconds=4.0)
    _record(job, 2, "error", seconds=3.0, error={"type": "ValueError", "message": "bad | row\nsecond line"})
    _record(job, 4, reward=-2.0, nfe=20, seconds=0.5)
    return job


def test_summary_totals_are_the_ok_prompts_only(tmp_path):
    """Broken variants: the mean reward or the NFE taking failed / missing prompts in, a missing
    prompt counted as failed, a failed one as missing."""
    s = summary.write(_five(tmp_path))
    assert (s["prompts"], s["ok"], s["failed"], s["missing"]) == (5, 3, 1, 1)
    assert s["reward_mean"] == pytest.approx((1.0 + 3.0 - 2.0) / 3)
    assert s["nfe_model"] == 60
    assert [r["status"] for r in s["rows"]] == ["ok", "ok", "error", "missing", "ok"]
    assert s["failures"] == [{"index": 2, "prompt": "c", "error": "ValueError: bad | row\nsecond line"}]
    assert s["contact_sheet"] is None and s["this_run"] is None


def test_summary_seconds_are_each_prompts_share_of_its_group(tmp_path):
    """Broken variant: a group's seconds reported for each of its prompts (the total doubled)."""
    rows = summary.write(_five(tmp_path))["rows"]
    assert [r["seconds"] for r in rows] == [2.0, 2.0, 1.5, None, 0.5]


def test_summary_with_no_ok_prompt_has_no_mean(tmp_path):
    job = _job(tmp_path, ["a", "b"])
    _record(job, 0, "error", error={"type": "E", "message": "m"})
    s = summary.write(job)
    assert s["reward_mean"] is None and s["nfe_model"] == 0 and (s["ok"], s["failed"], s["missing"]) == (0, 1, 1)


def test_summary_files_hold_the_same_rows(tmp_path):
    """summary.csv has one row per prompt with every column; summary.md the same figures; summary.json
    on disk equals the returned dict. Broken variants: a row dropped or reordered, a column shifted."""
    job = _five(tmp_path)
    run = progress.this_run([progress.rank_stats([{"prompts": 3, "failed": 1, "nfe": 40, "seconds": 7.5}], 0, 10.0)],
                            10.0, "single", 2)
    s = summary.write(job, run)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "summary.csv").read_text())))
    assert [r["index"] for r in rows] == ["0", "1", "2", "3", "4"] and list(rows[0]) == list(summary.COLUMNS)
    assert (rows[0]["reward"], rows[0]["nfe_model"], rows[0]["seconds"], rows[3]["status"]) == ("1.0", "10", "2.0", "missing")
    assert rows[2]["error"] == "ValueError: bad | row\nsecond line"
    md = (tmp_path / "summary.md").read_text()
    assert "5 prompts: 3 ok, 1 failed, 1 missing; mean reward 0.6667; model NFE 60" in md
    assert "this invocation: 3 prompt(s) computed (2 resumed) on 1 process in 10.0 s: 0.3 prompts/s, 4 NFE/s" in md
    assert "| 0 | a | ok | 1 | 10 | 2 |" in md and "| 3 | d | missing |  |  |  |" in md
    assert "| 2 | c | ValueError: bad \\| row second line |" in md  # pipes escaped, newlines folded: one table row
    assert json.loads((tmp_path / "summary.json").read_text()) == json.loads(json.dumps(s))


# -- this invocation's totals ------------------------------------------------------------------------


def test_this_run_sums_every_rank():
    """Broken variants: one rank's totals reported for the run, rates over busy seconds instead of
    the wall time, a rank counted twice."""
    r0 = progress.rank_stats([{"prompts": 2, "failed": 0, "nfe": 100, "seconds": 3.0},
                              {"prompts": 1, "failed": 1, "nfe": 0, "seconds": 0.5}], 0, 4.0)
    r1 = progress.rank_stats([{"prompts": 2, "failed": 0, "nfe": 60, "seconds": 2.0}], 1, 5.0)
    assert r0 == {"rank": 0, "groups": 2, "prompts": 3, "failed": 1, "nfe_model": 100, "busy_seconds": 3.5, "wall_seconds": 4.0}
    run = progress.this_run([r0, r1], 8.0, "torchrun", 3)
    assert (run["world_size"], run["prompts_computed"], run["prompts_failed"], run["prompts_resumed"], run["nfe_model"]) == (2, 5, 1, 3, 160)
    assert run["prompts_per_second"] == pytest.approx(5 / 8) and run["nfe_per_second"] == pytest.approx(160 / 8)
    assert progress.final_line(run, "/o") == ("tts-fast run: 5 prompt(s) on 2 rank(s) in 8.0 s: 0.62 prompts/s, 20 NFE/s, "
                                              "1 failed, 3 resumed; summary: /o/summary.md")
    empty = progress.this_run([], 0.0, "ray", 4)
    assert empty["prompts_per_second"] is None and empty["nfe_per_second"] is None
    assert progress.final_line(empty, "/o").startswith("tts-fast run: 0 prompt(s) on 0 worker(s)")


def test_rank_progress_accumulates_its_groups():
    bar = progress.RankProgress(5, enabled=False)
    for o in ({"prompts": 2, "failed": 0, "nfe": 40, "seconds": 1.0}, {"prompts": 3, "failed": 3, "nfe": 0, "seconds": 2.0}):
        bar.update(o)
    bar.close()
    assert (bar.nfe, bar.seconds, bar.bar) == (40, 3.0, None)


# -- resume -----------------------------------------------------------------------------------------


def test_pending_keeps_every_group_with_a_prompt_not_done(tmp_path):
    """Broken variants: a group counted done when one of its prompts is, an error record taken as
    done (never retried), a finished image-model prompt whose PNG is missing taken as done."""
    job = _job(tmp_path, ["a", "b", "c", "d", "e"], images=True)
    png = _png.encode(np.zeros((4, 4), np.uint8))
    for i in (0, 2, 3):
        _record(job, i, reward=0.0, nfe=1, image=records.image_name(i))
    for i in (0, 2):
        (tmp_path / records.image_name(i)).write_bytes(png)
    _record(job, 4, "error", error={"type": "E", "message": "m"})
    # group 0: prompt 1 missing; group 1: prompt 3 has no PNG; group 2: an error record
    assert [g.index for g in records.pending(job)] == [0, 1, 2]
    (tmp_path / records.image_name(3)).write_bytes(png)
    assert [g.index for g in records.pending(job)] == [0, 2]
    _record(job, 1, reward=0.0, nfe=1, image=records.image_name(1))
    (tmp_path / records.image_name(1)).write_bytes(b"not a png")
    assert [g.index for g in records.pending(job)] == [0, 2]  # a truncated or foreign image is not done either
    (tmp_path / records.image_name(1)).write_bytes(png)
    _record(job, 4, reward=0.0, nfe=1, image=records.image_name(4))
    (tmp_path / records.image_name(4)).write_bytes(png)
    assert records.pending(job) == []


def test_a_record_of_another_run_is_refused_unless_overwritten(tmp_path):
    """Broken variants: a record with another seed, prompt or settings silently kept as done (a resume
    that mixes two runs), or silently redone."""
    job = _job(tmp_path, ["a", "b"])
    _record(job, 0, reward=0.0, nfe=1)
    _record(job, 1, reward=0.0, nfe=1, seed=99)
    with pytest.raises(UserError, match=r"00001.json holds a record of a different run"):
        records.pending(job)
    assert [g.index for g in records.pending(_job(tmp_path, ["a", "b"], overwrite=True))] == [0]
    for changed in (_job(tmp_path, ["a", "B"]),):  # another prompt text at the same index
        _record(job, 1, reward=0.0, nfe=1)
        with pytest.raises(UserError, match="different run"):
            records.pending(changed)


def test_unreadable_records_are_missing(tmp_path):
    job = _job(tmp_path, ["a"])
    for text in ("", "{", "[1, 2]", "\xff"):
        with open(records.record_path(job.out, 0), "w", encoding="latin-1") as f:
            f.write(text)
        assert records.read_record(job.out, 0) is None and [g.index for g in records.pending(job)] == [0]


def test_comparable_drops_only_what_the_process_made(tmp_path):
    rec = _record(_job(tmp_path, ["a"]), 0, reward=1.5, nfe=3)
    assert records.comparable(rec) == {k: v for k, v in rec.items() if k != "run"} and "run" in rec


# -- groups and seeds -------------------------------------------------------------------------------


def test_groups_cut_consecutive_prompts_with_index_seeds():
    """Broken variants: a group's seed from its first prompt's index (g * K) instead of g, the last
    short group dropped, a prompt's options overridden by the base ones."""
    specs = [P.PromptSpec(i, str(i)) for i in range(5)]
    groups = P.make_groups(specs, 2, 100, {"lam": 1.0})
    assert [(g.index, g.members, g.seed, g.options) for g in groups] == [
        (0, (0, 1), 100, {"lam": 1.0}), (1, (2, 3), 101, {"lam": 1.0}), (2, (4,), 102, {"lam": 1.0})]
    own = [P.PromptSpec(0, "a", 7, {"lam": 3.0}), P.PromptSpec(1, "b", 7, {"lam": 3.0}), P.PromptSpec(2, "c")]
    groups = P.make_groups(own, 2, 100, {"lam": 1.0, "scoring": "max"})
    assert [(g.seed, g.options) for g in groups] == [(7, {"lam": 3.0, "scoring": "max"}), (101, {"lam": 1.0, "scoring": "max"})]
    assert [g.seed for g in P.make_groups(specs, 1, 0, {})] == [0, 1, 2, 3, 4]
    assert [g.members for g in P.make_groups(specs, 9, 0, {})] == [(0, 1, 2, 3, 4)]


def test_group_seeds_stay_below_two_to_the_63():
    specs = [P.PromptSpec(i, str(i)) for i in range(3)]
    assert P.make_groups(specs, 1, P.MAX_SEED - 2, {})[-1].seed == P.MAX_SEED
    with pytest.raises(UserError, match="--seed .* is too large"):
        P.make_groups(specs, 1, P.MAX_SEED - 1, {})


def test_prompts_of_one_group_must_agree():
    specs = [P.PromptSpec(0, "a", 1), P.PromptSpec(1, "b", 2, where="f:2")]
    with pytest.raises(UserError, match="f:2 share a search call"):
        P.make_groups(specs, 2, 0, {})
    specs = [P.PromptSpec(0, "a", None, {"lam": 1.0}), P.PromptSpec(1, "b", None, {"lam": 2.0})]
    with pytest.raises(UserError, match="different seeds or options"):
        P.make_groups(specs, 2, 0, {})
    assert len(P.make_groups(specs, 1, 0, {})) == 2


# -- the split over ranks -----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 5, 7, 12])
@pytest.mark.parametrize("k", [1, 2, 3, 8])
def test_every_group_runs_on_exactly_one_rank(n, k):
    """Broken variants: a shard dropped (pending[rank + 1::k]), doubled (a rank also taking its
    neighbour's), or unbalanced."""
    pending = [f"g{i}" for i in range(n)]
    shares = [assign(pending, k, r) for r in range(k)]
    assert sorted(x for s in shares for x in s) == sorted(pending)
    assert sum(len(s) for s in shares) == n  # nothing twice
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    for s in shares:
        assert s == sorted(s, key=pending.index)  # each rank keeps the set's order


@pytest.mark.parametrize("k, rank", [(0, 0), (2, 2), (2, -1), (1.0, 0), (2, 1.0), (True, 0)])
def test_bad_rank_or_world_size_is_refused(k, rank):
    with pytest.raises(ValueError, match="world_size|rank"):
        assign([1, 2, 3], k, rank)
