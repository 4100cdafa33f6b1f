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
The whole bisection of every row is one custom op, ``tts_fast.ops.adaptive_increment`` (a C++
kernel, and a CUDA kernel with one warp per row); its pure-PyTorch reference,
``tts_fast._reference.adaptive_increment``, is the specification (about 200 small tensor ops).

Bisection runs on log u, u = delta * spread (spread = max - min of the row's live keys; u is the
log-range of the increment's weights), so that the bracket and the tolerance are the same whatever
the reward's units: multiplying the rewards by c > 0 divides every increment by c and leaves every
weight, and so the whole search, unchanged (bit for bit when c is a power of two). The bracket is
wide in u because the spread can be set by a few outliers while the particles that matter sit
close together: then the ESS falls only once u is many times larger than the outliers' log-range.
"""

from __future__ import annotations

from .._reference import ITERATIONS, U_MAX, U_MIN, conditional_ess
from ..ops import adaptive_increment

__all__ = ["adaptive_increment", "conditional_ess", "ITERATIONS", "U_MAX", "U_MIN"]
