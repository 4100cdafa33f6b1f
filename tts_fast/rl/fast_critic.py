"""IQL critic training as one batched computation: the algorithm of :func:`tts_fast.rl.train.train_critic`, less overhead.

The same updates in the same order, on the same batches (the same generator draws), from the same
initial weights: V by expectile regression of the target min(Q1, Q2), then Q1 and Q2 by MSE to
r + gamma (1 - terminal) V(s') with the just-updated V, then the Polyak step of the targets. What
differs is how the work is laid out (tests/test_rl_fast_critic.py checks the weights against the
reference loop):

- the two Q networks (and their targets) are one :class:`tts_fast.rl.stacked.StackedMLP`: one
  ``baddbmm`` per layer for both, forward and backward;
- the states are normalised once, and the five arrays packed into one [n, columns] tensor, so a
  step gathers its batch with one index (state and action columns side by side are the Q input);
- Adam updates all parameters of an optimiser with fused (or foreach) kernels, and the Polyak step
  is one ``_foreach_lerp_``;
- no host synchronisation per step: losses go into preallocated tensors, read at log points only.

The result is written back into a plain :class:`tts_fast.rl.critic.TwinQ`, so files and verifiers
do not change. ``benchmarks/critic_training.py`` measures both side by side: at the shipped batch
(256) the matmuls dominate a CPU step and the gain is small; it is large at small batches, where
the overhead dominates (docs/locomotion.md, "Critic training speed").
"""

from __future__ import annotations

import time

import numpy as np
import torch

from .._arguments import check_int
from .critic import TwinQ
from .stacked import StackedMLP


def _adam(params, lr: float) -> torch.optim.Adam:
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):  # a torch without fused Adam on this device
        return torch.optim.Adam(params, lr=lr, foreach=True)


def _packed(tr, normalizer) -> tuple[torch.Tensor, dict]:
    """[n, obs + act + 1 + obs + 1] float32: normalised s, a, r, normalised s', terminal; and the column slices."""
    s = normalizer(torch.from_numpy(tr.observations))
    s2 = normalizer(torch.from_numpy(tr.next_observations))
    a = torch.from_numpy(tr.actions)
    r = torch.from_numpy(tr.rewards)[:, None]
    done = torch.from_numpy(tr.terminals)[:, None]
    o, k = s.shape[1], a.shape[1]
    cols = {"s": slice(0, o), "sa": slice(0, o + k), "r": o + k, "s2": slice(o + k + 1, 2 * o + k + 1), "done": 2 * o + k + 1}
    return torch.cat([s, a, r.to(s.dtype), s2, done.to(s.dtype)], 1).contiguous(), cols


def train_critic_fast(tr, steps: int, *, batch: int, lr: float, gamma: float, tau: float, polyak: float, seed: int,
                      width: int = 256, layers: int = 2, activation: str = "mish", log=print, log_every: int = 0,
                      callback=None) -> tuple[TwinQ, dict]:
    """An IQL :class:`TwinQ` trained on transitions ``tr`` for ``steps`` steps, and its log.

    Args: as :func:`tts_fast.rl.train.train_critic` (same defaults there); ``width`` / ``layers`` /
    ``activation``: the MLPs' shape; ``log_every``: steps between log lines (0: ten lines);
    ``callback(step, critic)``: called at each log point with a :class:`TwinQ` holding the weights
    of that step (e.g. to measure the critic's ranking over training). Returns the critic and
    {'steps', 'seconds', 'steps_per_second', 'v_loss', 'q_loss' (means of the last 500 steps),
    'mean_q_on_data', 'losses' (per-log-point means)}.
    """
    check_int(steps, "steps", 1)
    check_int(batch, "batch", 1)
    torch.manual_seed(seed + 1)
    gen = torch.Generator().manual_seed(seed + 1)
    critic = TwinQ(tr.observations.shape[1], tr.actions.shape[1], width=width, layers=layers, activation=activation)
    critic.normalizer.set(tr.observations.mean(0), tr.observations.std(0))
    q = StackedMLP.from_mlps([critic.q1, critic.q2])
    q_target = StackedMLP.from_mlps([critic.q1, critic.q2]).requires_grad_(False)
    v = critic.v
    data, c = _packed(tr, critic.normalizer)
    n = data.shape[0]
    opt_v, opt_q = _adam(list(v.parameters()), lr), _adam(list(q.parameters()), lr)
    q_params, t_params = list(q.parameters()), list(q_target.parameters())
    lv, lq = torch.zeros(steps), torch.zeros(steps)
    every = log_every or max(1, steps // 10)
    points = []
    t0, paused = time.perf_counter(), 0.0  # paused: seconds spent in the callback, not training
    for step in range(steps):
        x = data[torch.randint(0, n, (batch,), generator=gen)]
        sa, s, s2, r, done = x[:, c["sa"]], x[:, c["s"]], x[:, c["s2"]], x[:, c["r"]], x[:, c["done"]]
        with torch.no_grad():
            q_t = q_target(sa).squeeze(-1).amin(0)
        diff = q_t - v(s).squeeze(1)
        loss_v = (torch.where(diff < 0, 1.0 - tau, tau) * diff.pow(2)).mean()
        opt_v.zero_grad(set_to_none=True)
        loss_v.backward()
        opt_v.step()
        with torch.no_grad():
            y = r + gamma * (1.0 - done) * v(s2).squeeze(1)
        loss_q = (q(sa).squeeze(-1) - y).pow(2).mean(1).sum()
        opt_q.zero_grad(set_to_none=True)
        loss_q.backward()
        opt_q.step()
        with torch.no_grad():
            torch._foreach_lerp_(t_params, q_params, polyak)
            lv[step] = loss_v.detach()
            lq[step] = loss_q.detach()
        if (step + 1) % every == 0:
            lo = max(0, step + 1 - 500)
            point = {"step": step + 1, "v_loss": float(lv[lo:step + 1].mean()), "q_loss": float(lq[lo:step + 1].mean()),
                     "seconds": time.perf_counter() - t0 - paused}
            points.append(point)
            log(f"critic step {step + 1}/{steps}: V loss {point['v_loss']:.3f}, Q loss {point['q_loss']:.3f} ({point['seconds']:.0f} s)")
            if callback is not None:
                t_cb = time.perf_counter()
                q.to_mlps([critic.q1, critic.q2])
                point.update(callback(step + 1, critic.eval()) or {})
                critic.train()
                paused += time.perf_counter() - t_cb
    seconds = time.perf_counter() - t0 - paused
    q.to_mlps([critic.q1, critic.q2])
    with torch.no_grad():
        q_data = float(critic.q(torch.from_numpy(tr.observations[:10_000]), torch.from_numpy(tr.actions[:10_000])).mean())
    lo = max(0, steps - 500)
    return critic.eval(), {"steps": steps, "seconds": seconds, "steps_per_second": steps / seconds, "trainer": "fast",
                           "v_loss": float(np.mean(lv[lo:].numpy())), "q_loss": float(np.mean(lq[lo:].numpy())),
                           "mean_q_on_data": q_data, "losses": points}
