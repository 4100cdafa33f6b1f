"""Pure-PyTorch references of every tts_fast op, and the argument checks they share with C++.

Each function here is the specification of the op of the same name: the C++/CUDA kernels must
return the same indices bit for bit (given the same uniforms) and the same floats within rounding.
They also serve ``torch.ops.tts_fast.*`` when the compiled extension is absent (see ops.py), so
they run on any device, without host syncs (value checks read CPU tensors only). Clarity comes
before speed: cumulative sums and SSP's pairing loop over the N columns in Python, one vector op
over the B rows per column, which is fine for a fallback.

Conventions shared with the kernels:
- log-weights: NaN counts as -inf; a row that is all -inf has equal weights; if a row holds +inf,
  the +inf entries share the weight equally and the rest get none. Weights are exp(lw - max) in
  float64 and cumulated sequentially (left to right) in float64.
- levels index a schedule table: ``alpha[level]`` and ``sigma[level]`` give x = alpha*x0 + sigma*eps.
- random numbers come from ``uniforms``/``noise`` tensors or from ``rng`` = int64 tensor
  [seed, offset] through Philox4x32-10 (see _philox.py for the layout).
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from . import _philox

SCHEMES = ("multinomial", "stratified", "systematic", "residual", "ssp")
_FLOAT_X = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_FLOAT_W = (torch.float32, torch.float64)


# ----------------------------------------------------------------------------------------------
# argument checks (messages name the argument; C++ mirrors them)


def _check_float(t: torch.Tensor, name: str, allowed) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(t).__name__}")
    if t.dtype not in allowed:
        names = ", ".join(str(d).replace("torch.", "") for d in allowed)
        raise TypeError(f"{name} must have dtype in ({names}), got {str(t.dtype).replace('torch.', '')}")


def _check_same_device(t: torch.Tensor, name: str, ref: torch.Tensor, ref_name: str) -> None:
    if t.device != ref.device:
        raise ValueError(f"{name} is on {t.device} but {ref_name} is on {ref.device}; they must share a device")


def check_rng(rng: torch.Tensor, ref: torch.Tensor, ref_name: str) -> None:
    if not isinstance(rng, torch.Tensor):
        raise TypeError(f"rng must be an int64 tensor [seed, offset], got {type(rng).__name__}")
    if rng.dtype != torch.int64 or rng.shape != (2,):
        raise ValueError(f"rng must be an int64 tensor of shape [2] (seed, offset), got {rng.dtype} {tuple(rng.shape)}")
    if rng.device.type != "cpu" and rng.device != ref.device:
        raise ValueError(f"rng is on {rng.device}; it must be on the CPU or on {ref_name}'s device {ref.device}")


def _check_one_source(a, a_name: str, rng, required: bool = True) -> None:
    if a is not None and rng is not None:
        raise ValueError(f"pass either {a_name} or rng, not both")
    if required and a is None and rng is None:
        raise ValueError(f"a random source is required: pass {a_name} (a tensor) or rng (int64 [seed, offset])")


def check_log_weights(log_weights: torch.Tensor) -> None:
    _check_float(log_weights, "log_weights", _FLOAT_W)
    if log_weights.dim() != 2:
        raise ValueError(f"log_weights must be 2-D [B, N], got shape {tuple(log_weights.shape)}")
    if log_weights.shape[1] < 1:
        raise ValueError("log_weights must have at least one particle per row (N >= 1)")


def check_resample(log_weights, uniforms, rng, scheme) -> None:
    check_log_weights(log_weights)
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}; got {scheme!r}")
    _check_one_source(uniforms, "uniforms", rng)
    if uniforms is not None:
        _check_float(uniforms, "uniforms", _FLOAT_W)
        if uniforms.shape != log_weights.shape:
            raise ValueError(
                f"uniforms must have the shape of log_weights {tuple(log_weights.shape)}, got {tuple(uniforms.shape)}"
            )
        _check_same_device(uniforms, "uniforms", log_weights, "log_weights")
        # values on the CPU only (a device read would sync; the CUDA kernel asserts instead)
        if uniforms.device.type == "cpu" and uniforms.numel():
            bad = ~((uniforms >= 0) & (uniforms < 1))
            if bool(bad.any()):
                r, c = (int(i) for i in bad.nonzero()[0])
                raise ValueError(f"uniforms must lie in [0, 1), got {float(uniforms[r, c])} at [{r}, {c}]")
    else:
        check_rng(rng, log_weights, "log_weights")


def _check_levels(x, level_from, level_to, alpha, sigma) -> None:
    _check_float(alpha, "alpha", (torch.float64,))
    _check_float(sigma, "sigma", (torch.float64,))
    if alpha.dim() != 1 or sigma.shape != alpha.shape or alpha.numel() < 1:
        raise ValueError(
            f"alpha and sigma must be 1-D tables of the same length >= 1, got {tuple(alpha.shape)} and {tuple(sigma.shape)}"
        )
    _check_same_device(alpha, "alpha", x, "x")
    _check_same_device(sigma, "sigma", x, "x")
    n_levels = alpha.numel()
    for name, lv in (("level_from", level_from), ("level_to", level_to)):
        if not isinstance(lv, torch.Tensor) or lv.dtype != torch.int64:
            raise TypeError(f"{name} must be an int64 tensor of level indices")
        if lv.shape != (x.shape[0],):
            raise ValueError(f"{name} must have shape [B] = [{x.shape[0]}], got {tuple(lv.shape)}")
        _check_same_device(lv, name, x, "x")
        # Only checked on the host for CPU tensors: reading device values would sync.
        if lv.device.type == "cpu" and lv.numel() and (int(lv.min()) < 0 or int(lv.max()) >= n_levels):
            raise ValueError(f"{name} values must lie in [0, {n_levels}) (the length of alpha/sigma)")


def _check_x(x: torch.Tensor, name: str = "x") -> None:
    _check_float(x, name, _FLOAT_X)
    if x.dim() < 1:
        raise ValueError(f"{name} must have a leading batch dimension, got a 0-d tensor")


def _check_like(t, name: str, x: torch.Tensor) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a tensor")
    if t.shape != x.shape or t.dtype != x.dtype:
        raise ValueError(f"{name} must match x in shape and dtype: {tuple(x.shape)} {x.dtype}, got {tuple(t.shape)} {t.dtype}")
    _check_same_device(t, name, x, "x")


def _check_level_pairs(level_from, level_to, alpha, sigma, coefficients, rule: str) -> None:
    """Finite tables (alpha, sigma >= 0) and finite per-sample coefficients, on CPU tensors only
    (csrc/checks.h: check_level_pairs): the target level lies on the right side of the source."""
    if any(t.device.type != "cpu" for t in (level_from, level_to, alpha, sigma)):
        return
    for name, table in (("alpha", alpha), ("sigma", sigma)):
        bad = ~((table >= 0) & torch.isfinite(table))
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise ValueError(f"{name} must hold finite values >= 0, got {float(table[i])} at {i}")
    finite = torch.ones_like(level_from, dtype=torch.bool)
    for c in coefficients(level_from, level_to, alpha, sigma):
        finite &= torch.isfinite(c)
    if not bool(finite.all()):
        b = int((~finite).nonzero()[0, 0])
        raise ValueError(f"{rule} (sample {b}: level_from {int(level_from[b])}, level_to {int(level_to[b])})")


def renoise_coefficients(level_from, level_to, alpha, sigma):
    """Per-sample (ratio, std) with x_to = ratio * x + std * z (float64 [B])."""
    a_f, s_f, a_t, s_t = alpha[level_from], sigma[level_from], alpha[level_to], sigma[level_to]
    ratio = a_t / a_f
    return ratio, torch.sqrt(s_t * s_t - ratio * ratio * (s_f * s_f))


def check_renoise(x, level_from, level_to, alpha, sigma, noise, rng) -> None:
    _check_x(x)
    _check_levels(x, level_from, level_to, alpha, sigma)
    _check_level_pairs(level_from, level_to, alpha, sigma, renoise_coefficients,
                       "level_to must be at least as noisy as level_from, with alpha[level_from] > 0")
    _check_one_source(noise, "noise", rng)
    if noise is not None:
        _check_like(noise, "noise", x)
    else:
        check_rng(rng, x, "x")


def check_ddim_step(x, x0_hat, level_from, level_to, alpha, sigma, eta, noise, rng) -> None:
    _check_x(x)
    _check_like(x0_hat, "x0_hat", x)
    _check_levels(x, level_from, level_to, alpha, sigma)
    if not (0.0 <= eta <= 1.0):
        raise ValueError(f"eta must lie in [0, 1], got {eta}")
    _check_level_pairs(level_from, level_to, alpha, sigma,
                       lambda lf, lt, a, s: ddim_coefficients(lf, lt, a, s, eta),
                       "level_to must be at most as noisy as level_from, with sigma[level_from] > 0")
    if eta == 0 and (noise is not None or rng is not None):
        raise ValueError("eta = 0 draws no noise: pass neither noise nor rng")
    _check_one_source(noise, "noise", rng, required=eta > 0)
    if noise is not None:
        _check_like(noise, "noise", x)
    elif rng is not None:
        check_rng(rng, x, "x")


def check_langevin_step(x, grad, step_size, noise, rng, max_norm) -> None:
    _check_x(x)
    _check_like(grad, "grad", x)
    _check_float(step_size, "step_size", _FLOAT_W)
    if step_size.shape != (x.shape[0],):
        raise ValueError(f"step_size must have shape [B] = [{x.shape[0]}], got {tuple(step_size.shape)}")
    _check_same_device(step_size, "step_size", x, "x")
    if step_size.device.type == "cpu" and step_size.numel():
        bad = ~((step_size >= 0) & torch.isfinite(step_size))
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise ValueError(f"step_size must be finite and >= 0, got {float(step_size[i])} at {i}")
    if max_norm is not None and not (max_norm > 0):
        raise ValueError(f"max_norm must be > 0 or None, got {max_norm}")
    _check_one_source(noise, "noise", rng)
    if noise is not None:
        _check_like(noise, "noise", x)
    else:
        check_rng(rng, x, "x")


def check_adaptive_increment(log_w, base, key, alive, target, cap) -> None:
    _check_float(log_w, "log_w", (torch.float64,))
    if log_w.dim() != 2 or log_w.shape[1] < 1:
        raise ValueError(f"log_w must be 2-D [B, N] with N >= 1, got shape {tuple(log_w.shape)}")
    for name, t, dtypes in (("base", base, (torch.float64,)), ("key", key, (torch.float64,)), ("alive", alive, (torch.bool,))):
        _check_float(t, name, dtypes)
        if t.shape != log_w.shape:
            raise ValueError(f"{name} must have the shape of log_w {tuple(log_w.shape)}, got {tuple(t.shape)}")
        _check_same_device(t, name, log_w, "log_w")
    for name, t in (("target", target), ("cap", cap)):
        _check_float(t, name, (torch.float64,))
        if t.shape != (log_w.shape[0],):
            raise ValueError(f"{name} must have shape [B] = [{log_w.shape[0]}], got {tuple(t.shape)}")
        _check_same_device(t, name, log_w, "log_w")
    if log_w.device.type != "cpu":
        return  # values on a device are not read (a sync); the op returns NaN for a bad row instead
    for b, fault in enumerate(_adaptive_faults(log_w, base, key, alive, target, cap).tolist()):
        if fault:
            value = {4: f", got {float(target[b])}", 5: f", got {float(cap[b])}"}.get(fault, "")
            raise ValueError(f"{_ADAPTIVE_FAULTS[fault]}{value} (row {b})")


# The rules of tempering_math.h's row_fault, by code (first failing rule of a row wins).
_ADAPTIVE_FAULTS = {
    1: "log_w must not hold NaN or +inf",
    2: "base must be finite where alive",
    3: "key must be finite where alive",
    4: "target must be finite and >= 0",
    5: "cap must be >= 0 (or +inf)",
}


def _adaptive_faults(log_w, base, key, alive, target, cap) -> torch.Tensor:
    """[B] int64: 0 for a row the method defines, else the code of its first broken rule."""
    rules = [
        (torch.isnan(log_w) | (log_w == math.inf)).any(1),
        (alive & ~torch.isfinite(base)).any(1),
        (alive & ~torch.isfinite(key)).any(1),
        ~(torch.isfinite(target) & (target >= 0)),
        ~(cap >= 0),
    ]
    fault = torch.zeros_like(target, dtype=torch.int64)
    for code in range(len(rules), 0, -1):
        fault = torch.where(rules[code - 1], torch.full_like(fault, code), fault)
    return fault


# ----------------------------------------------------------------------------------------------
# shared pieces


def row_weights(log_weights: torch.Tensor) -> torch.Tensor:
    """Unnormalised float64 weights [B, N] under the NaN / -inf / +inf conventions above."""
    lw = log_weights.to(torch.float64)
    lw = torch.where(torch.isnan(lw), torch.full_like(lw, -math.inf), lw)
    m = lw.amax(dim=1, keepdim=True)
    finite = torch.exp(lw - torch.where(torch.isfinite(m), m, torch.zeros_like(m)))
    w = torch.where(m == math.inf, (lw == math.inf).to(lw.dtype), finite)
    return torch.where(m == -math.inf, torch.ones_like(w), w)


def _uniforms(log_weights, uniforms, rng) -> torch.Tensor:
    if uniforms is not None:
        return uniforms.to(torch.float64)
    b, n = log_weights.shape
    return _philox.philox_uniform(rng, b * n, device=log_weights.device).view(b, n)


def _normals(x: torch.Tensor, noise, rng) -> torch.Tensor:
    if noise is not None:
        return noise
    return _philox.philox_normal(rng, x.numel(), device=x.device).view(x.shape)


def _acc(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _per_sample(c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return c.to(_acc(x.dtype)).view(-1, *([1] * (x.dim() - 1)))


def _inverse_cdf(cdf: torch.Tensor, targets: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """First k with cdf[k] > target per row; a target at or past the total picks the last k with w > 0."""
    n = cdf.shape[1]
    idx = torch.searchsorted(cdf, targets, right=True)
    last_pos = (n - 1) - torch.flip(w > 0, dims=[1]).to(torch.int8).argmax(dim=1, keepdim=True)
    return torch.where(idx >= n, last_pos.expand_as(idx), idx)


def cumsum_left_to_right(x: torch.Tensor) -> torch.Tensor:
    """Row-wise cumulative sum of a [B, N] float64 tensor, accumulated left to right: [B, N].

    The resampling spec cumulates weights sequentially (the kernels' order). torch.cumsum does
    so on the CPU but is a parallel scan on CUDA, which rounds differently and moves indices; so
    the references sum column by column, one vector add over the B rows per column (no host sync).
    """
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)  # contiguous, for searchsorted
    acc = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for k in range(x.shape[1]):
        acc = acc + x[:, k]
        out[:, k] = acc
    return out


def _counts_to_ancestors(counts: torch.Tensor, n_out: int) -> torch.Tensor:
    """Index k repeated counts[k] times, per row, in index order (first n_out slots)."""
    cum = counts.cumsum(dim=1)  # int64: exact in any order
    slots = torch.arange(n_out, device=counts.device, dtype=torch.int64).expand(counts.shape[0], n_out)
    return torch.searchsorted(cum, slots.contiguous(), right=True).clamp_max(counts.shape[1] - 1)


def _floor_and_fraction(w: torch.Tensor, total: torch.Tensor):
    n = w.shape[1]
    scaled = (float(n) * w) / total
    floor = torch.floor(scaled)
    return floor.to(torch.int64), scaled - floor


# ----------------------------------------------------------------------------------------------
# ops


def resample(log_weights: torch.Tensor, uniforms: Optional[torch.Tensor], rng: Optional[torch.Tensor], scheme: str) -> torch.Tensor:
    check_resample(log_weights, uniforms, rng, scheme)
    b, n = log_weights.shape
    dev = log_weights.device
    if b == 0:
        return torch.empty(0, n, dtype=torch.int64, device=dev)
    w = row_weights(log_weights)
    cdf = cumsum_left_to_right(w)
    total = cdf[:, -1:]
    u = _uniforms(log_weights, uniforms, rng)
    ar = torch.arange(n, device=dev, dtype=torch.float64)
    if scheme == "multinomial":
        return _inverse_cdf(cdf, (u * total).contiguous(), w)
    if scheme == "stratified":
        return _inverse_cdf(cdf, (((ar + u) / n) * total).contiguous(), w)
    if scheme == "systematic":
        return _inverse_cdf(cdf, (((ar + u[:, :1]) / n) * total).contiguous(), w)
    counts, frac = _floor_and_fraction(w, total)
    if scheme == "residual":
        det = _counts_to_ancestors(counts, n)
        n_det = counts.sum(dim=1, keepdim=True)
        fcdf = cumsum_left_to_right(frac)
        slot = torch.arange(n, device=dev, dtype=torch.int64).expand(b, n)
        j = (slot - n_det).clamp(0, n - 1)
        draws = _inverse_cdf(fcdf, (u.gather(1, j) * fcdf[:, -1:]).contiguous(), frac)
        return torch.where(slot < n_det, det, draws)
    # ssp: Srinivasan sampling process, sequential pairing in index order (particles.resampling.ssp).
    rows = torch.arange(b, device=dev)
    xi = frac.clone()
    counts = counts.clone()
    i = torch.zeros(b, dtype=torch.int64, device=dev)
    for j in range(1, n):
        uj = u[:, j - 1]
        xi_i = xi[rows, i]
        xi_j = xi[:, j]
        a = torch.minimum(xi_j, 1.0 - xi_i)
        bb = torch.minimum(xi_i, 1.0 - xi_j)
        s = a + bb
        move_a = (s > 0) & (uj < bb / torch.where(s > 0, s, torch.ones_like(s)))
        j_closes0 = xi_j <= 1.0 - xi_i  # under move_a: j empties into i
        i_closes0 = xi_i <= 1.0 - xi_j  # under move_b: i empties into j
        # move_a & j_closes0: xi_i += xi_j, i stays.   move_a & ~j_closes0: i gets a child, xi_j -= 1 - xi_i, i <- j
        # move_b & i_closes0: xi_j += xi_i, i <- j.     move_b & ~i_closes0: j gets a child, xi_i -= 1 - xi_j
        new_xi_i = torch.where(move_a, xi_i + xi_j, xi_i - (1.0 - xi_j))
        new_xi_j = torch.where(move_a, xi_j - (1.0 - xi_i), xi_j + xi_i)
        i_child = move_a & ~j_closes0
        j_child = ~move_a & ~i_closes0
        keep_i = (move_a & j_closes0) | j_child
        xi[rows, i] = torch.where(keep_i, new_xi_i, xi_i)
        xi[:, j] = torch.where(keep_i, xi_j, new_xi_j)
        counts[rows, i] += i_child.to(torch.int64)
        counts[:, j] += j_child.to(torch.int64)
        i = torch.where(keep_i, i, torch.full_like(i, j))
    counts[rows, i] += n - counts.sum(dim=1)
    return _counts_to_ancestors(counts, n)


def renoise(x, level_from, level_to, alpha, sigma, noise=None, rng=None) -> torch.Tensor:
    check_renoise(x, level_from, level_to, alpha, sigma, noise, rng)
    ratio, std = renoise_coefficients(level_from, level_to, alpha, sigma)
    z = _normals(x, noise, rng)
    acc = _acc(x.dtype)
    out = _per_sample(ratio, x) * x.to(acc) + _per_sample(std, x) * z.to(acc)
    return out.to(x.dtype)


def ddim_coefficients(level_from, level_to, alpha, sigma, eta: float):
    """Per-sample (c_x, c_x0, c_z) with x_to = c_x*x + c_x0*x0_hat + c_z*z (float64 [B])."""
    a_i, s_i, a_j, s_j = alpha[level_from], sigma[level_from], alpha[level_to], sigma[level_to]
    r = a_i / a_j
    v = s_i * s_i - r * r * (s_j * s_j)  # variance of q(x_from | x_to)
    frac = v / (s_i * s_i)
    c_eps = s_j * torch.sqrt(1.0 - (eta * eta) * frac)
    c_z = (eta * s_j) * torch.sqrt(frac)
    c_x = c_eps / s_i
    c_x0 = a_j - c_x * a_i
    return c_x, c_x0, c_z


def ddim_step(x, x0_hat, level_from, level_to, alpha, sigma, eta: float = 1.0, noise=None, rng=None) -> torch.Tensor:
    check_ddim_step(x, x0_hat, level_from, level_to, alpha, sigma, eta, noise, rng)
    c_x, c_x0, c_z = ddim_coefficients(level_from, level_to, alpha, sigma, eta)
    acc = _acc(x.dtype)
    out = _per_sample(c_x, x) * x.to(acc) + _per_sample(c_x0, x) * x0_hat.to(acc)
    if eta > 0:
        out = out + _per_sample(c_z, x) * _normals(x, noise, rng).to(acc)
    return out.to(x.dtype)


def langevin_step(x, grad, step_size, noise=None, rng=None, max_norm: Optional[float] = None) -> torch.Tensor:
    check_langevin_step(x, grad, step_size, noise, rng, max_norm)
    eta = step_size.to(torch.float64)
    scale = torch.ones_like(eta)
    if max_norm is not None:
        norm = grad.to(torch.float64).reshape(grad.shape[0], -1).pow(2).sum(dim=1).sqrt()
        scale = torch.where(norm > max_norm, max_norm / norm, scale)
    z = _normals(x, noise, rng)
    acc = _acc(x.dtype)
    out = x.to(acc) + _per_sample(eta * scale, x) * grad.to(acc) + _per_sample(torch.sqrt(2.0 * eta), x) * z.to(acc)
    return out.to(x.dtype)


def ess(log_weights: torch.Tensor) -> torch.Tensor:
    check_log_weights(log_weights)
    w = row_weights(log_weights)
    return (w.sum(dim=1) ** 2 / (w * w).sum(dim=1)).to(log_weights.dtype)


def normalize_log_weights(log_weights: torch.Tensor) -> torch.Tensor:
    check_log_weights(log_weights)
    n = log_weights.shape[1]
    lw = log_weights.to(torch.float64)
    lw = torch.where(torch.isnan(lw), torch.full_like(lw, -math.inf), lw)
    m = lw.amax(dim=1, keepdim=True)
    m_safe = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    # Subtract the log-sum-exp in log space so that tiny weights keep their log value.
    out = lw - (m_safe + torch.log(torch.exp(lw - m_safe).sum(dim=1, keepdim=True)))
    n_inf = (lw == math.inf).sum(dim=1, keepdim=True).to(torch.float64)
    out = torch.where(m == math.inf, torch.where(lw == math.inf, -torch.log(n_inf), torch.full_like(lw, -math.inf)), out)
    out = torch.where(m == -math.inf, torch.full_like(lw, -math.log(n)), out)
    return out.to(log_weights.dtype)


# ----------------------------------------------------------------------------------------------
# adaptive tempering (tts_fast/search/tempering.py explains the method)

# u = delta * spread is searched in [U_MIN, U_MAX] on a log scale. Below U_MIN the weights differ
# by a factor below 1 + 1e-6 and the ESS by less than N * 1e-12 from N: no target in (0, 1) is met
# there. At U_MAX keys that differ by 1e-10 of the spread differ by e^100 in weight. 48 halvings of
# the log-bracket (ln 1e18 = 41.4) leave u to a relative 1.5e-13. csrc/tempering_math.h shares them.
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


def adaptive_increment(log_w, base, key, alive, target, cap) -> torch.Tensor:
    """Reference of the op ``adaptive_increment``: the temperature increment [B] float64 of each
    row, by bisection on the conditional ESS in [B]-shaped tensor ops (no host read).

    Args:
        log_w: [B, N] float64 current (unnormalised) log-weights; -inf for dead particles.
        base: [B, N] float64, the incremental log-weight at delta = 0 (finite where alive).
        key: [B, N] float64, what the temperature multiplies (reward or running max; finite where alive).
        alive: [B, N] bool, the live particles.
        target: [B] float64, the CESS to reach, in particles (target_ess times the live count).
        cap: [B] float64, the largest increment allowed (lam - lam_prev; +inf when the final tilt is free).

    Returns ``cap`` itself where CESS(cap) >= target (the tilt is reached), else the lower end of the
    bisection bracket, a delta with CESS(delta) >= target within a relative 1.5e-13 of the crossing,
    or 0 when the CESS is below the target already at the bracket's low end (CESS need not be
    monotone when ``base`` is not constant). A row whose live keys are all equal gets ``cap`` if
    finite (every delta gives the same weights) and 0 otherwise. With cap = +inf the increment is at
    most U_MAX / spread. A row outside the method (see check_adaptive_increment) gets NaN; on CPU
    tensors it raises ValueError instead.
    """
    check_adaptive_increment(log_w, base, key, alive, target, cap)
    bad = _adaptive_faults(log_w, base, key, alive, target, cap) != 0
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
    delta = torch.where(flat, torch.where(finite, cap, torch.zeros_like(cap)), delta)
    return torch.where(bad, torch.full_like(delta, math.nan), delta)
