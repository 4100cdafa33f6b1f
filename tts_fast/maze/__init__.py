"""Long-horizon planning on the real PointMaze (ogbench): a trajectory diffusion planner, its
verifiers, and plan execution in the MuJoCo simulator.

    import tts_fast as tts
    planner = tts.maze.load_planner("large")            # a tts.Denoiser; prompt rows = the 5 tasks
    verifier = tts.maze.WallPenalty("large")            # -sum of squared wall depths (differentiable)
    res = tts.search(planner, verifier, "dfs", threshold=verifier.threshold(), start=12, backtrack=12,
                     every=1, n_particles=4, num_steps=16, budget=5 * 4 * 16 * 4)
    plans_xy = res.samples                              # [5, H, 2] world coordinates

Modules: ``envs`` (layouts, the ogbench environments, the registered 'ultra' maze), ``data``
(the regenerated offline dataset), ``planner`` (the temporal UNet and :class:`MazePlanner`),
``weights`` (the shipped planners: ``load_planner``), ``verifiers`` (WallPenalty, Smoothness,
GoalReached), ``execute`` (tracking controller, rollouts), ``train``. Only the simulator parts (``make_env``, ``data.generate``, ``execute``) need ogbench
(``pip install --no-build-isolation 'tts_fast[maze]'``); the planner, verifiers and inpainting work without it.

Renamed: ``maze.planner(...)`` is ``maze.load_planner`` (the old name, a function, hid the module
``maze.planner``; calling the module still works, with a DeprecationWarning).
"""

from .._callable_module import make_callable
from .envs import MAZES, Maze, make_env, maze, ogbench_available
from .planner import MazePlanner, TemporalUnet
from .verifiers import GoalReached, Smoothness, Sum, WallPenalty, plan_stats
from .weights import load_checkpoint, load_planner, trained_mazes

__all__ = [
    "MAZES", "Maze", "maze", "make_env", "ogbench_available", "MazePlanner", "TemporalUnet", "load_planner", "load_checkpoint",
    "trained_mazes", "WallPenalty", "Smoothness", "Sum", "GoalReached", "plan_stats",
]

# the deprecation path of the old function name (see the module docstring)
make_callable(__name__ + ".planner", load_planner, renamed_to="tts_fast.maze.load_planner")
