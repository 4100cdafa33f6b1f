"""Check a regenerated offline dataset against the fingerprint recorded when the shipped agents' data was made.

    python -m tts_fast.rl.check_data --env halfcheetah --dataset medium --data ~/rl_data/minari

``tts_fast/rl/fingerprints.json`` records, per dataset id, what :func:`tts_fast.rl.datasets.fingerprint`
gave on the datasets this project generated (the sha256 of the observation, action, reward,
next-observation and terminal arrays, the sizes and the return statistics; they are also in
docs/locomotion.md's data table). The recipe is seeded, so a regeneration on another machine should
reproduce them bit for bit; MuJoCo or library versions may not. Exit status: 0 when every field
matches, 1 when one differs (each difference printed), 2 for a user mistake (an unknown or
missing dataset, no recorded fingerprint).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

from .. import _threads as threads
from .._user_errors import UserError, command
from .datasets import dataset_id, fingerprint, load
from .envs import DATASETS, TASKS

FINGERPRINTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fingerprints.json")


def recorded(ds_id: str) -> dict:
    """The recorded fingerprint of dataset ``ds_id`` (e.g. 'tts_fast/halfcheetah/medium-v0'); KeyError naming those recorded."""
    with open(FINGERPRINTS, encoding="utf-8") as f:
        table = json.load(f)
    if ds_id not in table:
        raise KeyError(f"no recorded fingerprint for {ds_id!r}; recorded: {', '.join(sorted(table))}")
    return table[ds_id]


def differences(got: dict, want: dict) -> list[str]:
    """'field: got X, recorded Y' for every recorded field that differs (return statistics to 1e-9 relative)."""
    out = []
    for k, w in want.items():
        g = got.get(k)
        same = (g is not None and math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-9)) if isinstance(w, float) else g == w
        if not same:
            out.append(f"{k}: got {g!r}, recorded {w!r}")
    return out


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m tts_fast.rl.check_data``."""
    p = argparse.ArgumentParser(prog="python -m tts_fast.rl.check_data",
                                description="Check a regenerated offline dataset against its recorded fingerprint (sha256 of its arrays, "
                                "sizes, return statistics). Exit status 0: it matches; 1: it differs (each field printed).")
    p.add_argument("--env", required=True, choices=sorted(TASKS), help="the MuJoCo task")
    p.add_argument("--dataset", required=True, choices=DATASETS, help="which dataset of the task")
    p.add_argument("--data", required=True, metavar="DIR", help="the local Minari data folder (the one holding tts_fast/ENV/...)")
    threads.add_argument(p)
    return p


@command("python -m tts_fast.rl.check_data")
def main(argv=None) -> int:
    """``python -m tts_fast.rl.check_data``: parse ``argv``, fingerprint the dataset, compare. Returns the exit status."""
    a = build_parser().parse_args(argv)
    threads.apply(a.threads)
    ds_id = dataset_id(a.env, a.dataset, "tts_fast")
    try:
        want = recorded(ds_id)
    except KeyError as e:
        raise UserError(str(e.args[0])) from None
    try:
        got = fingerprint(load(a.env, a.dataset, path=a.data))
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    diff = differences(got, want)
    if diff:
        print(f"{ds_id} differs from its recorded fingerprint:")
        for line in diff:
            print("  " + line)
        return 1
    print(f"{ds_id} matches its recorded fingerprint (sha256 {want['sha256'][:16]}..., {want['transitions']:,} transitions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
