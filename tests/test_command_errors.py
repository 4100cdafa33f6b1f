"""Every command a user types ends a mistake -- a bad option value, a missing file, a missing
optional extra -- with one line ``PROG: error: ...`` naming what is wrong, and exit status 2: the
``tts-fast`` subcommands, the module commands (``python -m tts_fast.<pkg>.<module>``) and the
benchmarks' scripts. Broken variant: a traceback (status 1) instead."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tts_fast._user_errors import UserError, command

ROOT = Path(__file__).resolve().parents[1]


def _run(argv, tmp_path, env=None):
    e = {**os.environ, "PYTHONPATH": str(ROOT / "benchmarks"), **(env or {})}
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=tmp_path, env=e, timeout=300)


def _one_line_error(proc, prog, must_mention):
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    # argparse's own errors use its prog (a script's file name), ours the command as typed
    assert lines and lines[-1].startswith((f"{prog}: error: ", f"{prog.split('/')[-1]}: error: ")), proc.stderr[-1000:]
    assert must_mention in lines[-1], lines[-1]


# (argv after the interpreter, the program name printed, what the message must name)
MODULE_CASES = [
    (["-m", "tts_fast.rl.train", "--env", "halfcheetah", "--dataset", "medium", "--data", "{tmp}/nowhere", "--out", "{tmp}/w"],
     "python -m tts_fast.rl.train", "--data"),
    (["-m", "tts_fast.rl.train", "--env", "halfcheetha"], "python -m tts_fast.rl.train", "--env"),
    (["-m", "tts_fast.rl.distill", "--env", "halfcheetah", "--dataset", "medium", "--data", "{tmp}/nowhere", "--overwrite"],
     "python -m tts_fast.rl.distill", "--data"),
    (["-m", "tts_fast.rl.distill", "--env", "halfcheetah", "--dataset", "medium", "--data", "{tmp}/nowhere"],
     "python -m tts_fast.rl.distill", "--overwrite"),
    (["-m", "tts_fast.rl.check_data", "--env", "halfcheetah", "--dataset", "medium", "--data", "{tmp}/nowhere"],
     "python -m tts_fast.rl.check_data", "does not exist"),
    (["-m", "tts_fast.rl.check_data", "--env", "walker2d", "--dataset", "medium", "--data", "{tmp}"],
     "python -m tts_fast.rl.check_data", "no recorded fingerprint"),
    (["benchmarks/critic_ranking.py", "--env", "hopper", "--dataset", "medium", "--recipes", "relu"],
     "python benchmarks/critic_ranking.py", "--data"),
    (["benchmarks/critic_training.py", "--rounds", "0"], "python benchmarks/critic_training.py", "--rounds"),
    (["-m", "tts_fast.rl.generate", "--env", "hopperr"], "python -m tts_fast.rl.generate", "--env"),
    (["-m", "tts_fast.maze.train", "--maze", "umaze"], "python -m tts_fast.maze.train", "--maze"),
    (["-m", "tts_fast.zoo.train", "--steps", "0"], "python -m tts_fast.zoo.train", "--steps"),
    (["-m", "tts_fast", "run", "--model", "digits", "--out", "{tmp}/o", "--particles", "0"], "tts-fast run", "--particles"),
    (["-m", "tts_fast", "profile", "--model", "gmm", "--method", "beam"], "tts-fast profile", "--method"),
    (["-m", "tts_fast", "demo", "--digits", "12"], "tts-fast demo", "digit"),
    (["benchmarks/tempering.py", "--tables", "--out", "{tmp}/missing.json"], "python benchmarks/tempering.py", "missing.json"),
    (["benchmarks/digits.py", "--tables", "--out", "{tmp}/missing.json"], "python benchmarks/digits.py", "missing.json"),
    (["benchmarks/tree_search.py", "--only", "nothing"], "python benchmarks/tree_search.py", "--only"),
    (["-m", "tts_fast.zoo.real28.train", "--out", "{tmp}/w", "--steps", "0"], "python -m tts_fast.zoo.real28.train", "--steps"),
    (["-m", "tts_fast.zoo.real28.train", "--out", "{tmp}/w", "--p-uncond", "1"], "python -m tts_fast.zoo.real28.train", "--p-uncond"),
    (["benchmarks/real_digits.py", "--tables", "--out", "{tmp}/missing.json"], "python benchmarks/real_digits.py", "missing.json"),
    (["benchmarks/real_digits.py", "--per-class", "0"], "python benchmarks/real_digits.py", "--per-class"),
    (["benchmarks/terrain.py", "--tables", "--out", "{tmp}/missing.json"], "python benchmarks/terrain.py", "missing.json"),
    (["benchmarks/terrain.py", "--methods", "beam"], "python benchmarks/terrain.py", "beam"),
]


@pytest.mark.parametrize("argv, prog, must_mention", MODULE_CASES, ids=[" ".join(c[0][:3]) for c in MODULE_CASES])
def test_a_mistake_is_one_line_and_status_2(argv, prog, must_mention, tmp_path):
    argv = [a.format(tmp=tmp_path) for a in argv]
    if argv[0].startswith("benchmarks/"):
        argv[0] = str(ROOT / argv[0])
    _one_line_error(_run(argv, tmp_path), prog, must_mention)


def test_a_missing_extra_is_one_line_and_status_2(tmp_path):
    """The maze dataset command without ogbench (hidden from the subprocess): the extra is named."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "ogbench.py").write_text("raise ImportError('ogbench is hidden for this test')\n")
    proc = _run(["-m", "tts_fast.maze.data", "--maze", "large", "--out", str(tmp_path / "d")], tmp_path,
                env={"PYTHONPATH": f"{hide}{os.pathsep}{ROOT / 'benchmarks'}"})
    _one_line_error(proc, "python -m tts_fast.maze.data", "tts_fast[maze]")


@pytest.mark.parametrize("exc, status", [(UserError("--x must be 1"), 2), (ValueError("x must be > 0"), 2),
                                         (FileNotFoundError("no such file: f"), 2), (ImportError("needs 'tts_fast[rl]'"), 2),
                                         (KeyboardInterrupt(), 130)])
def test_the_command_wrapper(exc, status, capsys):
    @command("prog")
    def main(argv=None):
        raise exc

    assert main([]) == status
    err = capsys.readouterr().err
    assert err.count("\n") <= 2 and ("prog: error: " in err or status == 130)


def test_the_command_wrapper_passes_status_and_bugs_through():
    @command("prog")
    def ok(argv=None):
        return 3

    @command("prog")
    def bug(argv=None):
        raise RuntimeError("an internal bug keeps its traceback")

    assert ok() == 3
    with pytest.raises(RuntimeError):
        bug()
