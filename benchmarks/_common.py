"""Shared plumbing of the benchmark scripts: environment record, statistics, figures and tables.

Every script writes its results as JSON under ``benchmarks/results/`` and rewrites its tables in
docs/*.md and README.md from that JSON with ``--tables``, through :func:`refresh_tables`: a table
sits between ``<!-- PREFIX:NAME:begin -->`` and ``<!-- PREFIX:NAME:end -->`` markers.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

import tts_fast  # noqa: E402
from tts_fast._io import atomic_path, atomic_write_json, atomic_write_text  # noqa: E402,F401

README = ROOT / "README.md"


def environment(device="cpu") -> dict:
    """Device, versions and build of this run (recorded in every results file)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
    else:
        name = platform.processor() or platform.machine()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    return {
        "device": str(dev),
        "device_name": name,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "tts_fast": tts_fast.__version__,
        "ops_backend": tts_fast.ops.backend(dev.type),
        "ops_build": tts_fast.ops.build_info(),
        "git_commit": commit,
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def mean_se(values) -> tuple[float, float]:
    """Mean and standard error of a sequence of independent replicates."""
    v = [float(x) for x in values]
    m = sum(v) / len(v)
    if len(v) < 2:
        return m, float("nan")
    var = sum((x - m) ** 2 for x in v) / (len(v) - 1)
    return m, math.sqrt(var / len(v))


def summarise(runs, keys) -> dict:
    """{key: mean, key_se: standard error} over replicate records (dicts) for each of ``keys``, and 'seeds'."""
    out = {}
    for k in keys:
        out[k], out[k + "_se"] = mean_se([r[k] for r in runs])
    out["seeds"] = len(runs)
    return out


def pm(d: dict, key: str, digits: int = 3) -> str:
    """'mean ± s.e.' of ``key`` in a :func:`summarise` record, to ``digits`` decimals (the tables' cell)."""
    return f"{d[key]:.{digits}f} ± {d[key + '_se']:.{digits}f}"


def merge_results(out, parts, singles=("quality",)) -> int:
    """Merge result files of parts run separately (e.g. in two processes) into ``out``.

    ``out`` (if it exists, else the first part) is the base; each part adds its 'runs' and 'tables',
    replaces the base's ``singles`` entries it holds, and its command and seconds go to meta['parts'].
    """
    import json

    base = None
    if os.path.exists(out):
        with open(out, encoding="utf-8") as f:
            base = json.load(f)
    for path in parts:
        with open(path, encoding="utf-8") as f:
            part = json.load(f)
        if base is None:
            base = part
            base["meta"]["parts"] = [{"command": part["meta"]["command"], "seconds": part["meta"]["seconds"]}]
            continue
        base["runs"].update(part.get("runs", {}))
        base["tables"].update(part.get("tables", {}))
        for k in singles:
            if k in part:
                base[k] = part[k]
        base["meta"].setdefault("parts", []).append({"command": part["meta"]["command"], "seconds": part["meta"]["seconds"]})
    atomic_write_json(out, base)
    print(f"merged {len(parts)} file(s) into {out}")
    return 0


def write_tables(path, doc, prefix: str, available) -> int:
    """Rewrite ``doc``'s (and README's) ``prefix`` tables from the results JSON at ``path``; ``available(results)``
    gives the (name, table function) pairs the results hold."""
    import json

    with open(path, encoding="utf-8") as f:
        res = json.load(f)
    refresh_tables(doc, prefix, available(res), res)
    print(f"wrote the tables of {doc} and README.md")
    return 0


def markdown_table(headers, rows) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def save_figure(fig, path, dpi: int = 110) -> None:
    """A matplotlib figure -> PNG at ``path``, atomically."""
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)


def replace_marked_block(path, marker: str, body: str) -> None:
    """Replace the text between ``<!-- marker:begin -->`` and ``<!-- marker:end -->`` in a file (atomically)."""
    path = Path(path)
    text = path.read_text()
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < i:
        raise ValueError(f"{path} has no block {begin} ... {end}")
    atomic_write_text(path, text[: i + len(begin)] + "\n" + body.rstrip() + "\n" + text[j:])


def measure_then_tables(out, tables_only: bool, measure, doc, prefix: str, tables) -> dict:
    """The end of a benchmark's main: ``measure()`` into the JSON ``out`` (unless ``tables_only``), then
    ``doc``'s tables from what ``out`` holds (:func:`refresh_tables`). Returns the results."""
    import json

    if not tables_only:
        atomic_write_json(out, measure())
        print(f"wrote {out}")
    with open(out, encoding="utf-8") as f:
        results = json.load(f)
    refresh_tables(doc, prefix, tables, results)
    return results


def refresh_tables(doc, prefix: str, tables, results) -> None:
    """The one way the benchmarks write their tables: each (name, fn) table fn(results) into ``doc``'s
    block ``prefix:name`` (which must exist), and into README.md's too where README has that block."""
    doc = Path(doc)
    for name, fn in tables:
        body = fn(results)
        replace_marked_block(doc, f"{prefix}:{name}", body)
        if doc.resolve() != README.resolve() and f"<!-- {prefix}:{name}:begin -->" in README.read_text():
            replace_marked_block(README, f"{prefix}:{name}", body)
