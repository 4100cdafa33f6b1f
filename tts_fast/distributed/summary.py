"""The merged summary of a run folder, written once at the end (by rank 0, or the Ray driver).

From every prompt's record on disk (this invocation's and earlier, resumed ones):
- ``summary.json``: settings, counts, per-prompt rows, the failures, this invocation's throughput;
- ``summary.md`` and ``summary.csv``: a table of reward, model NFE and seconds per prompt;
- ``contact_sheet.png``: the best image of every prompt in index order (failed or missing prompts
  are grey tiles), each tile shrunk by an integer factor to at most 128 pixels a side. Models
  without images (gmm) have no contact sheet.
"""

from __future__ import annotations

import csv
import io
import math
import os

import numpy as np

from .._io import atomic_write_bytes, atomic_write_json, atomic_write_text
from .._png import decode, encode
from ..runs.records import read_record

TILE = 128  # largest tile side of the contact sheet, pixels
GAP = 2  # pixels between tiles
COLUMNS = ("index", "prompt", "status", "reward", "nfe_model", "seconds", "image", "error")


def _row(job, i: int) -> dict:
    rec = read_record(job.out, i)
    if rec is None:
        return {"index": i, "prompt": job.specs[i].text, "status": "missing", "reward": None, "nfe_model": None, "seconds": None,
                "image": None, "error": None}
    group = rec.get("group", {}).get("prompts") or [i]
    seconds = rec.get("run", {}).get("seconds")
    err = rec.get("error")
    return {"index": i, "prompt": rec.get("prompt"), "status": rec.get("status"), "reward": rec.get("reward"),
            "nfe_model": rec.get("nfe_model"), "seconds": None if seconds is None else seconds / len(group),  # its share of the group
            "image": rec.get("image"), "error": None if err is None else f"{err.get('type')}: {err.get('message')}"}


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def _where(run: dict) -> str:
    n = run["world_size"]
    return {"single": "1 process", "torchrun": f"{n} torchrun ranks", "ray": f"{n} Ray workers"}.get(run["launcher"], f"{n} workers")


def _markdown(job, rows: list, totals: dict, run: dict) -> str:
    s = job.settings
    lines = [f"# tts-fast run: {os.path.abspath(job.out)}", "",
             f"model {s['model']}, method {s['method']}, {s['particles']} particles, {s['steps']} steps, verifier {s['verifier']}, "
             f"seed {s['seed']}, prompt batch {s['prompt_batch']}", "",
             f"{totals['prompts']} prompts: {totals['ok']} ok, {totals['failed']} failed, {totals['missing']} missing; "
             f"mean reward {_cell(totals['reward_mean'])}; model NFE {totals['nfe_model']}", ""]
    if run is not None:
        lines += [f"this invocation: {run['prompts_computed']} prompt(s) computed ({run['prompts_resumed']} resumed) on "
                  f"{_where(run)} in {run['wall_seconds']:.1f} s: "
                  f"{_cell(run['prompts_per_second'])} prompts/s, {_cell(run['nfe_per_second'])} NFE/s", ""]
    lines += ["seconds: the prompt's share of its group's search and writes.", "",
              "| index | prompt | status | reward | NFE | seconds |", "|---:|---|---|---:|---:|---:|"]
    lines += [f"| {r['index']} | {_cell(r['prompt'])} | {r['status']} | {_cell(r['reward'])} | {_cell(r['nfe_model'])} | {_cell(r['seconds'])} |"
              for r in rows]
    failures = [r for r in rows if r["status"] == "error"]
    if failures:
        lines += ["", "## Failures", "", "| index | prompt | error |", "|---:|---|---|"]
        lines += [f"| {r['index']} | {_cell(r['prompt'])} | {_cell(r['error'])} |" for r in failures]
    return "\n".join(lines) + "\n"


def _csv(rows: list) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r[k] is None else r[k]) for k in COLUMNS})
    return buf.getvalue()


def _shrink(a: np.ndarray) -> np.ndarray:
    """Average f x f blocks (f the smallest integer that brings the image to <= TILE a side)."""
    f = math.ceil(max(a.shape[0], a.shape[1]) / TILE)
    if f == 1:
        return a
    h, w = a.shape[0] // f * f, a.shape[1] // f * f
    blocks = a[:h, :w].astype(np.float64).reshape(h // f, f, w // f, f, a.shape[2]).mean(axis=(1, 3))
    return np.floor(blocks + 0.5).astype(np.uint8)


def contact_sheet(job, rows: list):
    """PNG bytes of the best images in index order (None without images), and notes on unreadable ones."""
    tiles, notes = {}, []
    for r in rows:
        if r["status"] != "ok" or not r["image"]:
            continue
        try:
            with open(os.path.join(job.out, r["image"]), "rb") as f:
                tiles[r["index"]] = _shrink(decode(f.read()))
        except (OSError, ValueError) as e:
            notes.append(f"{r['image']}: {e}")
    if not tiles:
        return None, notes
    first = next(iter(tiles.values()))
    th, tw = first.shape[:2]
    c = 3 if any(t.shape[2] == 3 for t in tiles.values()) else 1
    cols = math.ceil(math.sqrt(len(rows)))
    nrows = math.ceil(len(rows) / cols)
    sheet = np.full((nrows * (th + GAP) - GAP, cols * (tw + GAP) - GAP, c), 255, np.uint8)
    for k, r in enumerate(rows):
        y, x = (k // cols) * (th + GAP), (k % cols) * (tw + GAP)
        t = tiles.get(r["index"])
        if t is not None and t.shape[:2] != (th, tw):
            notes.append(f"{r['image']}: {t.shape[1]}x{t.shape[0]} tile, not {tw}x{th} like the first (shown grey)")
            t = None
        sheet[y:y + th, x:x + tw] = 128 if t is None else (np.repeat(t, c, axis=2) if t.shape[2] != c else t)
    return encode(sheet), notes


def write(job, run=None) -> dict:
    """Write summary.json / .md / .csv and contact_sheet.png into ``job.out``; returns the summary dict.

    ``run``: this invocation's totals (:func:`tts_fast.distributed.progress.this_run`), or None.
    """
    rows = [_row(job, s.index) for s in job.specs]
    ok = [r for r in rows if r["status"] == "ok"]
    rewards = [r["reward"] for r in ok if r["reward"] is not None]
    totals = {"prompts": len(rows), "ok": len(ok), "failed": sum(r["status"] == "error" for r in rows),
              "missing": sum(r["status"] == "missing" for r in rows),
              "reward_mean": sum(rewards) / len(rewards) if rewards else None, "nfe_model": sum(r["nfe_model"] or 0 for r in ok)}
    sheet, notes = contact_sheet(job, rows) if job.family.images else (None, [])
    summary = {"out": os.path.abspath(job.out), "settings": job.settings, **totals,
               "contact_sheet": "contact_sheet.png" if sheet is not None else None, "contact_sheet_notes": notes,
               "failures": [{"index": r["index"], "prompt": r["prompt"], "error": r["error"]} for r in rows if r["status"] == "error"],
               "rows": rows, "this_run": run}
    if sheet is not None:
        atomic_write_bytes(os.path.join(job.out, "contact_sheet.png"), sheet)
    atomic_write_text(os.path.join(job.out, "summary.csv"), _csv(rows))
    atomic_write_text(os.path.join(job.out, "summary.md"), _markdown(job, rows, totals, run))
    atomic_write_json(os.path.join(job.out, "summary.json"), summary)
    return summary
