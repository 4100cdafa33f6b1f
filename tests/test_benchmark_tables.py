"""The tables in README.md and docs/*.md are what the stored results make, through one refresh path.

Every benchmark's ``--tables`` goes through ``benchmarks/_common.refresh_tables``; here it is replaced
by a check that the block in the file already holds what the script would write (nothing is written).
"""

import importlib
import os
import pathlib
import re
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))
pytest.importorskip("matplotlib")


def _block(path, marker):
    text = pathlib.Path(path).read_text()
    m = re.search(rf"<!-- {re.escape(marker)}:begin -->\n(.*?)<!-- {re.escape(marker)}:end -->", text, re.S)
    return None if m is None else m.group(1)


@pytest.fixture
def checked(monkeypatch):
    """Replace refresh_tables in every benchmark module by a check; returns the blocks checked."""
    common = importlib.import_module("_common")
    seen = []

    def check(doc, prefix, tables, results):
        for name, fn in tables:
            body = fn(results).rstrip() + "\n"
            marker = f"{prefix}:{name}"
            assert _block(doc, marker) == body, f"{doc} {marker} is not what the results make"
            seen.append((pathlib.Path(doc).name, marker))
            readme = _block(ROOT / "README.md", marker)
            if readme is not None:
                assert readme == body, f"README.md {marker} is not what the results make"
                seen.append(("README.md", marker))

    monkeypatch.setattr(common, "refresh_tables", check)
    return check, seen


def _bench(name, monkeypatch, check):
    module = importlib.import_module(name)
    if hasattr(module, "refresh_tables"):  # the others call it through _common.measure_then_tables / write_tables (patched by `checked`)
        monkeypatch.setattr(module, "refresh_tables", check)
    if hasattr(module, "plot"):
        monkeypatch.setattr(module, "plot", lambda *a, **k: None)  # the figures are byte-checked by hand, not here
    return module


def test_every_table_is_what_its_results_make(monkeypatch, checked, capsys):
    check, seen = checked
    assert _bench("digits", monkeypatch, check).main(["--tables"]) == 0
    assert _bench("search_ablation", monkeypatch, check).main(["--tables"]) == 0
    assert _bench("self_tuning", monkeypatch, check).main(["--tables"]) == 0
    assert _bench("maze", monkeypatch, check).main(["--tables"]) == 0
    assert _bench("locomotion", monkeypatch, check).main(["--tables"]) == 0
    assert _bench("tempering", monkeypatch, check).main(["--tables"]) == 0
    assert _bench("tree_search", monkeypatch, check).main(["--tables"]) == 0
    assert _bench("throughput", monkeypatch, check).main(["--tables"]) == 0  # no full-size CUDA result yet: the block says so in one line
    assert _bench("threads", monkeypatch, check).main(["--tables"]) == 0
    assert _bench("demo", monkeypatch, check).main(["--tables"]) == 0
    assert _bench("real_digits", monkeypatch, check).main(["--tables"]) == 0
    assert _bench("terrain", monkeypatch, check).main(["--tables"]) == 0
    assert _bench("critic_training", monkeypatch, check).main(["--tables"]) == 0
    assert _bench("critic_ranking", monkeypatch, check).main(["--tables"]) == 0
    markers = {m for _, m in seen}
    assert {"digits:main", "digits:hacking", "search:main", "search:exact", "self_tuning:units", "self_tuning:maze",
            "maze:main", "maze:dfs_threshold", "locomotion:summary", "locomotion:ordering", "tempering:overhead",
            "throughput:gpu", "threads:cpu", "demo:time", "real_digits:quality", "real_digits:main", "real_digits:strength", "terrain:main",
            "terrain:levels", "demo:table", "locomotion:critic_speed", "locomotion:ranking"} <= markers
    # every marked block of README.md and docs/ is covered
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    all_blocks = {(f.name, m) for f in files for m in re.findall(r"<!-- (\S+):begin -->", f.read_text())}
    assert all_blocks == set(seen)


def test_tables_are_written_only_through_refresh_tables():
    for path in sorted(BENCH.glob("*.py")):
        if path.name == "_common.py":
            continue
        src = path.read_text()
        assert "replace_marked_block" not in src and "tts_fast._io import save_figure" not in src, path.name
    assert not (BENCH / "readme_tables.py").exists()
    assert "save_figure" not in (ROOT / "tts_fast" / "_io.py").read_text()
    assert "replace_marked_block" not in (ROOT / "tts_fast" / "_io.py").read_text()


def test_refresh_tables_writes_the_doc_and_the_readme_blocks(tmp_path, monkeypatch):
    common = importlib.import_module("_common")
    doc, readme = tmp_path / "doc.md", tmp_path / "README.md"
    doc.write_text("a\n<!-- p:t:begin -->\nold\n<!-- p:t:end -->\n<!-- p:u:begin -->\n<!-- p:u:end -->\n")
    readme.write_text("r\n<!-- p:t:begin -->\nold\n<!-- p:t:end -->\n")
    monkeypatch.setattr(common, "README", readme)
    common.refresh_tables(doc, "p", [("t", lambda r: f"new {r}"), ("u", lambda r: "only in the doc")], 1)
    assert doc.read_text() == "a\n<!-- p:t:begin -->\nnew 1\n<!-- p:t:end -->\n<!-- p:u:begin -->\nonly in the doc\n<!-- p:u:end -->\n"
    assert readme.read_text() == "r\n<!-- p:t:begin -->\nnew 1\n<!-- p:t:end -->\n"
    with pytest.raises(ValueError, match="has no block"):
        common.refresh_tables(doc, "p", [("missing", lambda r: "x")], 1)
    assert sorted(os.listdir(tmp_path)) == ["README.md", "doc.md"]  # no temporary file left (atomic writes)
