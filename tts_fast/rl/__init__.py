"""Offline RL on MuJoCo locomotion: a state-conditioned action diffusion policy searched with a
Q-function verifier, and self-distillation of the search into a one-step policy.

    import tts_fast as tts
    env = tts.rl.make_env("halfcheetah")
    s, _ = env.reset(seed=0)
    policy = tts.rl.load_policy("halfcheetah", "medium", [s]) # a tts.Denoiser; prompt rows = states
    q = tts.rl.q_verifier("halfcheetah", "medium", [s])       # min(Q1, Q2)(s, a0), differentiable
    res = tts.search(policy, q, "bon", n_particles=8, num_steps=15, batch_size=1)
    action = res.samples[0]

Modules: ``envs`` (tasks, D4RL normalisation), ``generate`` (the seeded SAC + Minari dataset
recipe), ``datasets`` (local Minari loading, transitions, fingerprints), ``policy`` (the action
diffusion net and :class:`DiffusionPolicy`), ``critic`` (IQL twin-Q and :class:`QVerifier`),
``train``, ``weights`` (the shipped agents: ``load_policy``, ``load_critic``, ``q_verifier``),
``evaluate`` (the batched evaluation loop, ``evaluate_actor``), ``distill`` (the one-step policy of a
search). The simulator, datasets and SAC need the extra
``rl`` (``pip install --no-build-isolation 'tts_fast[rl]'``: gymnasium[mujoco], minari, stable-baselines3); the
policy, critic and search run without it.

Renamed (the old names were functions that hid the modules of the same name; calling the module
still works, with a DeprecationWarning): ``rl.policy(...)`` -> ``rl.load_policy``, ``rl.critic(...)``
-> ``rl.load_critic``, ``rl.evaluate(...)`` -> ``rl.evaluate_actor``.
"""

from .._callable_module import make_callable

from .critic import QVerifier, TwinQ
from .distill import TEACHERS, OneStepPolicy, distilled_actor, distilled_policy, distilled_teachers
from .envs import DATASETS, TASKS, Task, make_env, normalized_score, task
from .evaluate import PAPER_LOCAL, Evaluation, evaluate_actor, paper_local, search_actor
from .policy import SAMPLING_STEPS, ActionScoreNet, DiffusionPolicy, policy_schedule
from .weights import load_checkpoint, load_critic, load_policy, q_verifier, trained_agents

__all__ = [
    "TASKS", "DATASETS", "Task", "task", "make_env", "normalized_score", "ActionScoreNet", "DiffusionPolicy", "policy_schedule",
    "TwinQ", "QVerifier", "load_policy", "load_critic", "q_verifier", "load_checkpoint", "trained_agents", "Evaluation", "evaluate_actor",
    "search_actor", "PAPER_LOCAL", "paper_local", "TEACHERS", "OneStepPolicy", "distilled_policy", "distilled_actor",
    "distilled_teachers", "SAMPLING_STEPS",
]

# the deprecation path of the old function names (see the module docstring)
make_callable(__name__ + ".policy", load_policy, renamed_to="tts_fast.rl.load_policy")
make_callable(__name__ + ".critic", load_critic, renamed_to="tts_fast.rl.load_critic")
make_callable(__name__ + ".evaluate", evaluate_actor, renamed_to="tts_fast.rl.evaluate_actor")
