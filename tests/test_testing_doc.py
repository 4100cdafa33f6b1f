"""docs/testing.md maps every test file to its package: the map names each file of tests/ and no other."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_file_is_in_the_package_map():
    text = (ROOT / "docs" / "testing.md").read_text()
    section = text[text.index("## How the suite is organised"):text.index("Speed is never asserted")]
    helpers = next(line for line in section.splitlines() if line.startswith("Shared helpers"))
    named = set(re.findall(r"`(test_\w+\.py)`", section)) | set(re.findall(r"`(_\w+\.py)`", helpers))
    present = {p.name for p in (ROOT / "tests").glob("*.py") if p.name not in ("conftest.py", "__init__.py")}
    assert present - named == set(), f"test files missing from docs/testing.md's map: {sorted(present - named)}"
    assert named - present == set(), f"docs/testing.md's map names files that do not exist: {sorted(named - present)}"
