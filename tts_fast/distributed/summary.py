"""The merged summary of a run folder, written once at the end (by rank 0, or the Ray driver).

From every prompt's record on disk (this invocation's and earlier, resumed ones):
- ``summary.json``: settings, counts, per-prompt rows, the failures, this invocation's throughput;
- ``summary.md`` and ``summary.csv``: a table of reward, model NFE and seconds per prompt;
- ``contact_sheet.png``: the best image of every prompt in index order, captioned with its index
  and reward (:mod:`.contact_sheet`). Models without images (gmm) have no contact sheet.
"""

from __future__ import annotations

import csv
import io
import os

from .._io import atomic_write_bytes, atomic_write_json, atomic_write_text
from ..runs.records import read_record
from .contact_sheet import contact_sheet

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
    sheet, notes = contact_sheet(job.out, rows) if job.family.images else (None, [])
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
