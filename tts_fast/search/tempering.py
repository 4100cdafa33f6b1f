"""Adaptive tempering: the next temperature of a prompt row, chosen on the device by its ESS.

Classical SMC chooses each temperature increment so that the effective sample size of the
incremental weights hits a target (Jasra et al. 2011; Del Moral, Doucet & Jasra 2012). When the
population carries weights from earlier levels (an ESS gate held off resampling), the quantity
to control is the *conditional* ESS of Zhou, Johansen & Aston (2016),

    CESS(delta) = M (sum_j W_j G_j(delta))^2 / sum_j W_j G_j(delta)^2,   sum_j W_j = 1,

with W the normalised current weights and log G_j(delta) = base_j + delta * key_j the incremental
log-weights at temperature lam_prev + delta; CESS is in (0, M] (M live particles) and equals the
plain ESS of the incremental weights (in [1, M]) right after a resampling. The increment solving
CESS(delta) = target * M is found by bisection with a fixed number of iterations on [B]-shaped
tensors: no host read, no data-dependent shape, so a search step stays capturable in a CUDA graph.

Bisection runs on log u, u = delta * spread (spread = max - min of the row's live keys; u is the
log-range of the increment's weights), so that the bracket and the tolerance are the same whatever
the reward's units: multiplying the rewards by c > 0 divides every increment by c and leaves every
weight, and so the whole search, unchanged (bit for bit when c is a power of two). The bracket is
wide in u because the spread can be set by a few outliers while the particles that matter sit
close together: then the ESS falls only once u is many times larger than the outliers' log-range.
"""

from __future__ import annotations

import math

import torch

# u = delta * spread is searched in [U_MIN, U_MAX] on a log scale. Below U_MIN the weights differ
# by a factor below 1 + 1e-6 and the ESS by less than N * 1e-12 from N: no target in (0, 1) is met
# there. At U_MAX keys that differ by 1e-10 of the spread differ by e^100 in weight. 48 halvings of
# the log-bracket (ln 1e18 = 41.4) leave u to a relative 1.5e-13.
U_MIN = 1e-6
U_MAX = 1e12
ITERATIONS = 48


def conditional_ess(log_w: torch.Tensor, log_g: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """CESS of incremental log-weights ``log_g`` under current log-weights ``log_w`` (both [B, N]): [B].

    ``alive`` [B, N] marks the M live particles of each row (dead ones carry log_w = -inf). The
    value is in particles, in (0, M]: at least M min_j W_j, and the plain ESS when W is uniform.
    """
    w = log_w - torch.logsumexp(log_w, dim=1, keepdim=True)
    m = alive.sum(1).to(log_w.dtype)
    return m * torch.exp(2.0 * torch.logsumexp(w + log_g, dim=1) - torch.logsumexp(w + 2.0 * log_g, dim=1))


def adaptive_increment(log_w: torch.Tensor, base: torch.Tensor, key: torch.Tensor, alive: torch.Tensor,
                       target: torch.Tensor, cap: torch.Tensor) -> torch.Tensor:
    """The temperature increment delta [B] (float64) of each row, found by bisection on the device.

    Args:
        log_w: [B, N] current (unnormalised) log-weights; -inf for dead particles.
        base: [B, N] the incremental log-weight at delta = 0 (finite where alive).
        key: [B, N] what the temperature multiplies (reward or running max; finite where alive).
        alive: [B, N] bool, the live particles.
        target: [B] the CESS to reach, in particles (target_ess times the live count).
        cap: [B] the largest increment allowed (lam - lam_prev; +inf when the final tilt is free).

    Returns ``cap`` itself where CESS(cap) >= target (the tilt is reached), else the lower end of the
    bisection bracket, a delta with CESS(delta) >= target within a relative 1.5e-13 of the crossing,
    or 0 when the CESS is below the target already at the bracket's low end (CESS need not be
    monotone when ``base`` is not constant). A row whose live keys are all equal gets ``cap`` if
    finite (every delta gives the same weights) and 0 otherwise. With cap = +inf the increment is at
    most U_MAX / spread.
    """
    neg = torch.full_like(key, -math.inf)
    key = torch.where(alive, key, torch.zeros_like(key))
    base = torch.where(alive, base, neg)
    spread = torch.where(alive, key, neg).amax(1) - torch.where(alive, key, -neg).amin(1)  # [B]
    flat = spread <= 0
    safe = torch.where(flat, torch.ones_like(spread), spread)
    u_cap = torch.clamp(cap * safe, min=U_MIN * 1e-3, max=U_MAX)  # cap * spread is inf when cap is

    def cess(log_u):
        return conditional_ess(log_w, base + (log_u.exp() / safe)[:, None] * key, alive)

    lo, hi = torch.clamp(u_cap, max=U_MIN).log(), u_cap.log()
    start_ok = cess(lo) >= target
    for _ in range(ITERATIONS):
        mid = 0.5 * (lo + hi)
        up = cess(mid) >= target
        lo, hi = torch.where(up, mid, lo), torch.where(up, hi, mid)
    finite = torch.isfinite(cap)
    reach = (cess(u_cap.log()) >= target) | (cap <= 0)
    # the cap itself (not u_cap / spread, which rounds) so that a row lands exactly on lam
    below = torch.where(start_ok, lo.exp() / safe, torch.zeros_like(lo))
    delta = torch.where(reach, torch.where(finite & (cap * safe <= U_MAX), cap, u_cap / safe), below)
    return torch.where(flat, torch.where(finite, cap, torch.zeros_like(cap)), delta)
