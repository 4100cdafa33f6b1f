"""MuJoCo's warnings go to Python's logging, not to stdout and a MUJOCO_LOG.TXT in the user's folder.

MuJoCo's own warning handler prints each warning and appends it to ``MUJOCO_LOG.TXT`` in the
current folder. The model files of gymnasium's locomotion tasks use a compiler attribute that MuJoCo
4 deprecates ('settotalmass'), so every locomotion environment printed that warning and left the
file behind wherever the user ran a command. tts_fast's environment builders (``tts_fast.rl`` and
``tts_fast.maze``) call :func:`route_warnings` first: MuJoCo then hands its warnings to the logger
``tts_fast.mujoco`` -- at DEBUG for deprecations inside the dependencies' model files, which a user
cannot act on, at WARNING for the rest (shown on stderr unless logging is configured otherwise).
A handler the user installed themselves is left alone.
"""

from __future__ import annotations

import logging

LOGGER = logging.getLogger("tts_fast.mujoco")
# warnings about the dependencies' model files, not about anything a user does
_DEPENDENCY_NOTICES = ("is deprecated and will be removed",)


def _handler(message: str) -> None:
    level = logging.DEBUG if any(n in message for n in _DEPENDENCY_NOTICES) else logging.WARNING
    LOGGER.log(level, "MuJoCo: %s", message.strip())


def route_warnings(mujoco) -> None:
    """Install the handler in the ``mujoco`` module given, unless another handler is installed."""
    current = mujoco.get_mju_user_warning()
    if current is None or current is _handler:
        mujoco.set_mju_user_warning(_handler)
