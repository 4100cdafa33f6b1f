"""The argument checks of the method dataclasses: tts_fast._arguments, shared with ops and schedules."""

from .._arguments import check_bool, check_choice, check_eta, check_float, check_int

__all__ = ["check_bool", "check_choice", "check_eta", "check_float", "check_int"]
