"""The public helpers of tts_fast.rl, tts_fast.maze and the zoo's loaders refuse bad arguments
before any work, with an error that names the argument (the simulator-free parts: no extra needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tts_fast as tts

rl, mz = tts.rl, tts.maze
STATE = np.zeros(17, dtype=np.float32)

RL_CASES = [
    (lambda v: rl.ActionScoreNet(v, 6), "obs_dim", [0, -1, 2.5, True, "3"]),
    (lambda v: rl.ActionScoreNet(17, v), "act_dim", [0, -1, 2.5, True]),
    (lambda v: rl.ActionScoreNet(17, 6, width=v), "width", [0, -1, 2.5, True]),
    (lambda v: rl.ActionScoreNet(17, 6, blocks=v), "blocks", [-1, 2.5, True]),
    (lambda v: rl.ActionScoreNet(17, 6, temb=v), "temb", [0, 3, 2.5, True, "32"]),
    (lambda v: rl.TwinQ(v, 6), "obs_dim", [0, -1, 2.5, True]),
    (lambda v: rl.TwinQ(17, v), "act_dim", [0, -1, True]),
    (lambda v: rl.TwinQ(17, 6, width=v), "width", [0, 2.5]),
    (lambda v: rl.TwinQ(17, 6, layers=v), "layers", [0, -1, 2.5, True]),
    (lambda v: rl.OneStepPolicy(v, 6), "obs_dim", [0, True]),
    (lambda v: rl.OneStepPolicy(17, 6, layers=v), "layers", [0, -1, True]),
    (lambda v: rl.normalized_score("halfcheetah", v), "returns", ["ab", [1.0, math.nan], [math.inf]]),
    (lambda v: rl.load_policy("halfcheetah", "medium", v), "states", ["x", np.zeros((2, 3)), [np.zeros(4)], [[math.nan] * 17]]),
    (lambda v: rl.q_verifier("halfcheetah", "medium", v), "states", ["x", np.zeros((2, 3))]),
    (lambda v: rl.load_critic("halfcheetah", "medium", weights_dir=v), "weights_dir", [5, "", ["a"]]),
    (lambda v: rl.trained_agents(weights_dir=v), "weights_dir", [5, b"x"]),
]

MAZE_CASES = [
    (lambda v: mz.maze(v), "name", [5, None, "nope", ""]),
    (lambda v: mz.WallPenalty(v), "maze_name", [5, "nope"]),
    (lambda v: mz.load_planner(v), "maze_name", [None, "umaze"]),
    (lambda v: mz.load_planner("large", horizon=v), "horizon", [0, -4, 6, 2.5, True]),
    (lambda v: mz.load_planner("large", tasks=v), "tasks", ["ab", [[1.0, 2.0]], np.zeros((1, 3, 2))]),
    (lambda v: mz.load_planner("large", weights_dir=v), "weights_dir", [5, ""]),
    (lambda v: mz.trained_mazes(weights_dir=v), "weights_dir", [5]),
    (lambda v: mz.WallPenalty("large", open_faces=v), "open_faces", [1, "yes", None]),
    (lambda v: mz.WallPenalty("large", radius=v), "radius", [-1.0, math.nan, math.inf]),
    (lambda v: mz.WallPenalty("large", substeps=v), "substeps", [0, 2.5, True]),
    (lambda v: mz.Smoothness(v), "unit", [0.0, -1.0, math.nan]),
    (lambda v: mz.GoalReached(v), "goals", ["ab", [1.0], [[1.0, math.nan]]]),
    (lambda v: mz.GoalReached([1.0, 2.0], tol=v), "tol", [-1.0, math.inf]),
    (lambda v: mz.plan_stats("large", v), "xy", [[1, 2], torch.zeros(3), torch.zeros(2, 5, 3)]),
    (lambda v: mz.TemporalUnet(transition_dim=v), "transition_dim", [0, -1, 2.5, True]),
    (lambda v: mz.TemporalUnet(dim=v), "dim", [0, -1, 12, 2.5, True]),
    (lambda v: mz.TemporalUnet(dim_mults=v), "dim_mults", [5, "ab", [], [1, 0], [1.0, 2.0]]),
]

ZOO_CASES = [
    (lambda v: tts.zoo.digits(weights_dir=v), "weights_dir", [5, ""]),
]


@pytest.mark.parametrize("call, name, bad", [pytest.param(*c, id=f"{i}-{c[1]}") for i, c in enumerate(RL_CASES + MAZE_CASES + ZOO_CASES)])
def test_bad_arguments_are_refused_by_name(call, name, bad):
    for v in bad:
        with pytest.raises((ValueError, TypeError), match=name):
            call(v)


def test_the_edges_stay_allowed():
    """What the checks must let through: zero residual blocks, a scalar return, an empty list of
    returns, a single state, horizon given explicitly as the training horizon."""
    assert rl.ActionScoreNet(17, 6, blocks=0, temb=2) is not None
    assert float(rl.normalized_score("halfcheetah", 0.0)) == pytest.approx(100 * -rl.task("halfcheetah").random_score
                                                                           / (rl.task("halfcheetah").expert_score - rl.task("halfcheetah").random_score))
    assert rl.normalized_score("halfcheetah", []).shape == (0,)
    assert rl.load_policy("halfcheetah", "medium", STATE).num_prompts == 1
    horizon = mz.load_planner("large").horizon
    assert mz.load_planner("large", horizon=horizon).horizon == horizon
    assert mz.TemporalUnet(transition_dim=2, dim=8, dim_mults=[1]) is not None
    assert mz.WallPenalty("large", open_faces=False).maze.name == "large"
    # a folder without weights is the loaders' FileNotFoundError, which says how to train them
    assert rl.trained_agents(weights_dir="/nonexistent/folder") == [] and mz.trained_mazes(weights_dir="/nonexistent/folder") == []
    with pytest.raises(FileNotFoundError, match="train"):
        mz.load_planner("large", weights_dir="/nonexistent/folder")
