"""MuJoCo's warnings reach Python's logging: no MUJOCO_LOG.TXT in the user's folder, nothing on stdout."""

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tts_fast import _mujoco_log

ROOT = Path(__file__).resolve().parents[1]


def test_dependency_deprecations_go_to_debug_the_rest_to_warning(caplog):
    with caplog.at_level(logging.DEBUG, logger="tts_fast.mujoco"):
        _mujoco_log._handler("compiler attribute 'settotalmass' is deprecated and will be removed in a future release\n")
        _mujoco_log._handler("Nan, Inf or huge value in QACC at DOF 0.")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "MuJoCo: compiler attribute 'settotalmass' is deprecated and will be removed in a future release"),
        (logging.WARNING, "MuJoCo: Nan, Inf or huge value in QACC at DOF 0."),
    ]


def test_a_handler_the_user_installed_is_left_alone():
    class FakeMujoco:
        handler = None

        def get_mju_user_warning(self):
            return self.handler

        def set_mju_user_warning(self, h):
            self.handler = h

    m = FakeMujoco()
    _mujoco_log.route_warnings(m)
    assert m.handler is _mujoco_log._handler
    mine = print
    m.handler = mine
    _mujoco_log.route_warnings(m)
    assert m.handler is mine


# In a fresh process (MuJoCo's handler is process-wide), from an empty folder: build, reset and step
# the environments as the library does, then list the folder and say what MuJoCo logged.
_SCRIPT = textwrap.dedent("""
    import logging, os, sys
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="LOG %(levelname)s %(name)s %(message)s")
    kind = sys.argv[1]
    if kind == "rl":
        from tts_fast.rl.envs import make_env
        for name in ("halfcheetah", "hopper"):
            env = make_env(name)
            env.reset(seed=0)
            env.step(env.action_space.sample())
            env.close()
    else:
        from tts_fast.maze import envs
        env = envs.make_env("medium")
        env.reset(seed=0)
        env.close()
    print("FILES", sorted(os.listdir(".")))
""")


@pytest.mark.parametrize("kind,module", [("rl", "gymnasium"), ("maze", "ogbench")])
def test_environments_leave_no_log_file_and_print_no_warning(kind, module, tmp_path):
    pytest.importorskip(module)
    pytest.importorskip("mujoco")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-c", _SCRIPT, kind], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip() == "FILES []", p.stdout  # no MUJOCO_LOG.TXT, nothing printed by MuJoCo
    warnings = [ln for ln in p.stderr.splitlines() if "WARNING" in ln and not ln.startswith("LOG DEBUG")]
    assert not warnings, p.stderr
    if kind == "rl":  # gymnasium's locomotion models use the attribute MuJoCo 4 deprecates: logged, at DEBUG
        assert "LOG DEBUG tts_fast.mujoco MuJoCo: compiler attribute 'settotalmass' is deprecated" in p.stderr
