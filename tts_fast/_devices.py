"""The one default-device rule of tts_fast: 'auto' (or None) means CUDA when it is available, else the CPU.

Every loader that places a network (``tts.zoo.digits``, ``tts.rl.load_policy``, ``tts.maze.load_planner``, ...)
and the command line (``--device auto``) resolve their ``device`` argument here, so the rule is
stated once.
"""

from __future__ import annotations

import torch

AUTO = "auto"


def resolve_device(device=None, *, argument: str = "device") -> torch.device:
    """``device`` as a torch.device: None or 'auto' -> 'cuda' when CUDA is available, else 'cpu'.

    Args:
        device: None, 'auto', 'cpu', 'cuda', 'cuda:1', ... or a torch.device.
        argument: the argument's name, for the error message.

    Raises ValueError naming ``argument`` for anything torch.device does not accept. Whether a
    named CUDA device exists is not checked here (the command line checks it, see
    :func:`tts_fast._user_errors.user_device`).
    """
    if device is None or device == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{argument} must be 'auto', None, 'cpu', 'cuda', 'cuda:1', ... or a torch.device, got {device!r}") from None
