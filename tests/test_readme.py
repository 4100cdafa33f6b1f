"""The README stays true: its Python snippets run, and CI runs the test command it gives."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("block", re.findall(r"```python\n(.*?)```", README, re.S))
def test_python_snippets_run(block):
    exec(compile(block, "README.md", "exec"), {})


def test_ci_runs_the_readme_test_command():
    assert "bash .ci/run" in README
    assert "python -m pytest -q tests" in (ROOT / ".ci" / "run").read_text()
