"""What search needs from a critic: does Q rank the candidate actions of one state as their returns do?

Search by Q keeps, among N actions the policy proposes in a state, the one Q likes best. That pays
only if Q orders a state's candidates as the returns they lead to order them; Q's calibration
across states does not matter. The measure, for a critic and a policy in a live environment:

1. **States**: ``states`` episodes of the policy (ancestral sampling, eta = 1; reset seeds
   ``seed * 1000 + 50_000 + i``), each stopped at a step drawn uniformly from the steps it lived
   (at most ``max_start``); the MuJoCo state (qpos, qvel) there is the snapshot.
2. **Candidates**: ``candidates`` actions per state from the policy (eta = 1), as search sees them.
3. **Returns**: from each snapshot, each candidate taken first, then ``continuations`` rollouts of
   the policy with DDIM (eta = 0) from seeded noise; the m-th continuation of every candidate of a
   state draws the same noise (common random numbers: the noise common to the candidates cancels
   from their differences). The discounted return sum_{t < h} gamma^t r_t is read at several
   horizons h (no bootstrap: the weight gamma^h beyond it is reported) and averaged over the
   continuations: R_h[s, k]. Short horizons see the action's immediate effect with little noise;
   long ones see more of what Q estimates, through more noise (the reliability says how much).
4. **Figures** at each horizon, each a mean over states with its standard error over states:
   - ``spearman``: rank correlation of Q(s, a_k) and R[s, k] over the k of a state;
   - ``pairwise``: the fraction of a state's candidate pairs that Q orders as R does;
   - ``selection_gain``: R of Q's favourite minus the mean R of the state's candidates (what
     best-of-N by Q gains over one policy sample, in return units), and ``oracle_gain``: the same
     for the truly best candidate (what a perfect verifier would gain);
   - ``reliability``: the rank correlation between R estimated from the even and from the odd
     continuations, the ceiling the measure can see at this many continuations.
   States whose candidates all have the same R (e.g. all fall at once) have no ranking and are
   counted in ``ties`` instead. Besides, ``q_vs_action_size``: the rank correlation of Q with the
   candidates' norm |a| within a state (a critic that prefers large actions for their size).

``benchmarks/critic_ranking.py`` runs it on the shipped critics and over training.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from .. import schedules
from .._arguments import check_int
from .envs import make_env, task
from .policy import SAMPLING_STEPS


def _sample(policy, states: np.ndarray, per_state: int, gen: torch.Generator, eta: float, noise: Optional[torch.Tensor] = None):
    """Actions [len(states) * per_state, act_dim] (state-major) from the policy, DDIM(eta) over its sampling grid."""
    p = policy.with_states(torch.as_tensor(states, dtype=torch.float32))
    rows = torch.arange(len(states)).repeat_interleave(per_state)
    x = noise if noise is not None else torch.randn((len(rows), *p.sample_shape), generator=gen)
    grid = p.schedule.grid(SAMPLING_STEPS)
    with torch.no_grad():
        return schedules.sample(p, x, grid, rows, eta=eta, generator=gen if eta > 0 else None).numpy().astype(np.float64)


def snapshots(env: str, policy, *, states: int, seed: int = 0, max_start: int = 200) -> list:
    """``states`` snapshots {'qpos', 'qvel', 'obs', 'step'} of policy episodes (see the module doc, step 1)."""
    check_int(states, "states", 1)
    check_int(max_start, "max_start", 0)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    envs = [make_env(env) for _ in range(states)]
    obs = np.stack([e.reset(seed=seed * 1000 + 50_000 + i)[0] for i, e in enumerate(envs)])
    stops = rng.integers(0, max_start + 1, states)
    out: list = [None] * states
    live = np.ones(states, bool)
    last = [None] * states
    for step in range(max_start + 1):
        for i in np.flatnonzero(live):
            u = envs[i].unwrapped
            last[i] = {"qpos": u.data.qpos.copy(), "qvel": u.data.qvel.copy(), "obs": obs[i].copy(), "step": step}
            if step == stops[i]:
                out[i], live[i] = last[i], False
        idx = np.flatnonzero(live)
        if not len(idx):
            break
        actions = np.clip(_sample(policy, obs[idx], 1, gen, 1.0), -1, 1)
        for j, i in enumerate(idx):
            o, _, term, trunc, _ = envs[i].step(actions[j])
            obs[i] = o
            if term or trunc:  # fell before its drawn step: the last state it lived in
                out[i], live[i] = last[i], False
    for e in envs:
        e.close()
    return out


def _check_horizons(horizons) -> tuple:
    hs = tuple(horizons)
    if not hs or any(not isinstance(h, int) or isinstance(h, bool) or h < 1 for h in hs) or list(hs) != sorted(set(hs)):
        raise ValueError(f"horizons must be increasing integers >= 1, got {horizons!r}")
    return hs


def continuation_returns(env: str, policy, snaps: list, actions: np.ndarray, *, continuations: int, horizons=(1, 3, 10, 30),
                         gamma: float = 0.99, seed: int = 0, max_envs: int = 1024) -> np.ndarray:
    """Discounted returns [len(horizons), S, K, M] of taking actions[s, k] in snapshot s, then the policy
    (DDIM eta = 0, common noise per (s, m) across k) up to each horizon (module doc, step 3): one rollout
    of max(horizons) steps, its discounted sum read at every horizon.

    The states run in chunks of at most ``max_envs`` environments (K * M per state) at a time; the
    noise of state s depends on ``seed`` and s only, so the chunking changes nothing in the result.
    """
    S, K, act_dim = actions.shape
    check_int(continuations, "continuations", 1)
    M = continuations
    hs = _check_horizons(horizons)
    check_int(max_envs, "max_envs", 1)
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
    per = max(1, max_envs // (K * M))
    return np.concatenate([_continue(env, policy, snaps[i:i + per], actions[i:i + per], M, hs, gamma, seed, i)
                           for i in range(0, S, per)], axis=1)


def _continue(env, policy, snaps, actions, M, horizons, gamma, seed, first_state) -> np.ndarray:
    S, K, act_dim = actions.shape
    B = S * K * M
    horizon = horizons[-1]
    envs = [make_env(env) for _ in range(B)]
    obs = np.zeros((B, task(env).obs_dim))
    for b, e in enumerate(envs):
        e.reset(seed=seed)
        snap = snaps[b // (K * M)]
        e.unwrapped.set_state(snap["qpos"], snap["qvel"])
    # noise per (state, continuation, step), shared by the candidates: one generator per state, drawn step by
    # step, so that neither the chunking nor the longest horizon changes a state's noise
    gens = [torch.Generator().manual_seed(seed * 1_000_003 + first_state + i + 7) for i in range(S)]
    returns = np.zeros(B)
    out = np.zeros((len(horizons), B))
    live = np.ones(B, bool)
    first = np.repeat(actions.reshape(S * K, act_dim), M, axis=0)
    for t in range(horizon):
        noise = torch.stack([torch.randn((1, M, act_dim), generator=g) for g in gens]).expand(S, K, M, act_dim).reshape(B, act_dim)
        idx = np.flatnonzero(live)
        if len(idx):
            a = first[idx] if t == 0 else _sample(policy, obs[idx], 1, None, 0.0, noise=noise[torch.from_numpy(idx)].contiguous())
            a = np.clip(a, -1, 1)
            for j, b in enumerate(idx):
                o, r, term, trunc, _ = envs[b].step(a[j])
                returns[b] += gamma ** t * r
                obs[b] = o
                if term or trunc:
                    live[b] = False
        if t + 1 in horizons:
            out[horizons.index(t + 1)] = returns
    for e in envs:
        e.close()
    return out.reshape(len(horizons), S, K, M)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks along the last axis, ties averaged."""
    order = np.argsort(x, axis=-1, kind="stable")
    r = np.empty_like(x, dtype=np.float64)
    np.put_along_axis(r, order, np.arange(x.shape[-1], dtype=np.float64)[None, :].repeat(x.shape[0], 0), axis=-1)
    for i in range(x.shape[0]):  # average the ranks of tied values
        vals, inv, counts = np.unique(x[i], return_inverse=True, return_counts=True)
        if (counts > 1).any():
            sums = np.bincount(inv, weights=r[i])
            r[i] = (sums / counts)[inv]
    return r


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row Spearman correlation of a and b [S, K] (NaN for a row where either is constant)."""
    ra, rb = _ranks(a), _ranks(b)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    den = np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(1) / np.where(den > 0, den, 1.0), np.nan)


def pairwise_agreement(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Per-row fraction of pairs (i < j) with r_i != r_j that q orders as r does (a q tie counts half)."""
    i, j = np.triu_indices(q.shape[1], 1)
    dr, dq = np.sign(r[:, i] - r[:, j]), np.sign(q[:, i] - q[:, j])
    valid = dr != 0
    score = np.where(dq == 0, 0.5, (dq == dr).astype(np.float64))
    n = valid.sum(1)
    with np.errstate(invalid="ignore"):
        return np.where(n > 0, (score * valid).sum(1) / np.maximum(n, 1), np.nan)


def _mean_se(v: np.ndarray) -> tuple[float, float]:
    v = v[np.isfinite(v)]
    if not len(v):
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0


def summarize(q: np.ndarray, returns: np.ndarray) -> dict:
    """The module doc's figures from Q [S, K] and continuation returns [S, K, M] (M >= 2 for the reliability)."""
    r = returns.mean(2)
    tied = np.array([np.all(row == row[0]) for row in r])
    q_, r_ = q[~tied], r[~tied]
    out = {"states": int(q.shape[0]), "candidates": int(q.shape[1]), "continuations": int(returns.shape[2]), "ties": int(tied.sum())}
    for name, v in (("spearman", spearman(q_, r_)), ("pairwise", pairwise_agreement(q_, r_)),
                    ("selection_gain", r[np.arange(len(r)), q.argmax(1)] - r.mean(1)), ("oracle_gain", r.max(1) - r.mean(1))):
        out[name], out[name + "_se"] = _mean_se(v)
    if returns.shape[2] >= 2:
        out["reliability"], out["reliability_se"] = _mean_se(spearman(returns[:, :, 0::2].mean(2)[~tied], returns[:, :, 1::2].mean(2)[~tied]))
    return out


def ranking_measure(env: str, policy, critic, *, states: int = 32, candidates: int = 8, continuations: int = 16,
                    horizons=(1, 3, 10, 30), gamma: float = 0.99, seed: int = 0, max_start: int = 200, snaps: Optional[list] = None,
                    candidate_actions: Optional[np.ndarray] = None, returns: Optional[np.ndarray] = None) -> dict:
    """The ranking figures of ``critic`` (a :class:`tts_fast.rl.critic.TwinQ`) on ``policy``'s candidates (module doc).

    Returns {'by_horizon': {h: figures at horizon h}, 'gamma', 'horizons', 'mean_q', 'q_vs_action_size'
    (and its '_se'), 'data'}. ``snaps``,
    ``candidate_actions`` [S, K, act_dim] and ``returns`` [len(horizons), S, K, M]: reuse what an earlier
    call returned (in its 'data') to score another critic on the same states, candidates and returns
    (the expensive part).
    """
    check_int(candidates, "candidates", 2)
    hs = _check_horizons(horizons)
    if snaps is None:
        snaps = snapshots(env, policy, states=states, seed=seed, max_start=max_start)
    S = len(snaps)
    obs = np.stack([s["obs"] for s in snaps]).astype(np.float32)
    if candidate_actions is None:
        gen = torch.Generator().manual_seed(seed + 3)
        candidate_actions = np.clip(_sample(policy, obs, candidates, gen, 1.0), -1, 1).reshape(S, candidates, -1)
    K = candidate_actions.shape[1]
    if returns is None:
        returns = continuation_returns(env, policy, snaps, candidate_actions, continuations=continuations, horizons=hs, gamma=gamma,
                                       seed=seed)
    if returns.shape[:3] != (len(hs), S, K):
        raise ValueError(f"returns must be [{len(hs)}, {S}, {K}, M] (horizons, states, candidates, continuations), got {returns.shape}")
    with torch.no_grad():
        s = torch.from_numpy(np.repeat(obs, K, axis=0))
        a = torch.as_tensor(candidate_actions.reshape(S * K, -1), dtype=torch.float32)
        q = critic.q(s, a).double().numpy().reshape(S, K)
    by = {}
    for i, h in enumerate(hs):
        by[h] = summarize(q, returns[i])
        by[h].update(gamma_horizon=gamma ** h, mean_return=float(returns[i].mean()))
    size_rho, size_se = _mean_se(spearman(q, np.linalg.norm(candidate_actions, axis=2)))
    return {"by_horizon": by, "gamma": gamma, "horizons": list(hs), "mean_q": float(q.mean()), "q_vs_action_size": size_rho,
            "q_vs_action_size_se": size_se,
            "data": {"snaps": snaps, "candidate_actions": candidate_actions, "returns": returns, "q": q}}
