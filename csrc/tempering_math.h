// The adaptive-tempering increment of one prompt row, shared by the CPU and CUDA kernels of
// tts_fast::adaptive_increment (tts_fast/search/tempering.py explains the method; the reference
// is tts_fast._reference.adaptive_increment).
//
// Every sum and maximum over the row's N particles is taken in one fixed order: 32 lanes, lane l
// accumulating particles l, l + 32, l + 64, ... in turn, then the lanes combined pairwise as a warp
// butterfly does (lane i takes lane i + 16, then i + 8, ... own value first). The CUDA kernel does
// exactly this with one warp per row; the CPU kernel replays it (SerialLanes below), so the two
// return the same bits whenever exp and log agree (glibc on the CPU; CUDA's libdevice on a GPU).
// The arithmetic of each step is the reference's, in the same order: the op equals the reference
// to rounding (tests/test_tempering_op.py states how closely).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "philox.h"  // TTS_HD

namespace tts_fast {
namespace tempering {

// u = delta * spread is searched on [kUMin, kUMax] on a log scale with kIterations halvings
// (tempering.py says why); the op and the reference share these numbers.
constexpr double kUMin = 1e-6;
constexpr double kUMax = 1e12;
constexpr int kIterations = 48;
constexpr int kLanes = 32;

struct Pair {
  double a, b;
};

TTS_HD double inf() { return std::numeric_limits<double>::infinity(); }

// Neither infinite nor NaN (written out: the same on the host and in device code).
TTS_HD bool is_finite(double v) { return v - v == 0.0; }

// torch.amax's maximum: NaN if either is NaN.
TTS_HD double nan_max(double x, double y) { return x != x ? x : (y != y ? y : (y > x ? y : x)); }

// The 32-lane order on one thread (the CPU kernel).
struct SerialLanes {
  template <typename F>
  TTS_HD Pair sum2(int64_t n, F f) const {
    double a[kLanes], b[kLanes];
    for (int l = 0; l < kLanes; ++l) a[l] = b[l] = 0.0;
    for (int64_t k = 0; k < n; ++k) {
      const Pair v = f(k);
      a[k % kLanes] = a[k % kLanes] + v.a;
      b[k % kLanes] = b[k % kLanes] + v.b;
    }
    for (int o = kLanes / 2; o > 0; o >>= 1)
      for (int i = 0; i < o; ++i) {
        a[i] = a[i] + a[i + o];
        b[i] = b[i] + b[i + o];
      }
    return Pair{a[0], b[0]};
  }
  template <typename F>
  TTS_HD Pair max2(int64_t n, F f) const {
    double a[kLanes], b[kLanes];
    for (int l = 0; l < kLanes; ++l) a[l] = b[l] = -inf();
    for (int64_t k = 0; k < n; ++k) {
      const Pair v = f(k);
      a[k % kLanes] = nan_max(a[k % kLanes], v.a);
      b[k % kLanes] = nan_max(b[k % kLanes], v.b);
    }
    for (int o = kLanes / 2; o > 0; o >>= 1)
      for (int i = 0; i < o; ++i) {
        a[i] = nan_max(a[i], a[i + o]);
        b[i] = nan_max(b[i], b[i + o]);
      }
    return Pair{a[0], b[0]};
  }
};

// One row: log_w (current log-weights, -inf when dead), base and key (the incremental log-weight
// is base + delta * key), alive, N particles.
struct Row {
  const double* log_w;
  const double* base;
  const double* key;
  const bool* alive;
  int64_t n;
};

// torch.logsumexp's shift: the maximum, or 0 when it is infinite.
TTS_HD double lse_shift(double m) { return (m == inf() || m == -inf()) ? 0.0 : m; }

// Conditional ESS (in particles) of the incremental log-weights base + scale * key, given the
// normalising constant lse_w of log_w and the live count m_alive: the reference's conditional_ess.
template <typename Lanes>
TTS_HD double cess(const Lanes& lanes, const Row& r, double lse_w, double m_alive, double scale) {
  auto terms = [&](int64_t k) {
    const double g = r.alive[k] ? r.base[k] + scale * r.key[k] : -inf();
    const double w = r.log_w[k] - lse_w;
    return Pair{w + g, w + 2.0 * g};
  };
  const Pair m = lanes.max2(r.n, terms);
  const double s1 = lse_shift(m.a), s2 = lse_shift(m.b);
  const Pair s = lanes.sum2(r.n, [&](int64_t k) {
    const Pair t = terms(k);
    return Pair{exp(t.a - s1), exp(t.b - s2)};
  });
  const double lse1 = log(s.a) + s1, lse2 = log(s.b) + s2;
  return m_alive * exp(2.0 * lse1 - lse2);
}

// What is wrong with a row's inputs, if anything: the method is defined for log_w below +inf and
// not NaN, finite base and key where alive, a finite target >= 0 and a cap >= 0 (+inf allowed).
// The CPU kernel raises naming the argument (checks.h); the CUDA kernel, which cannot tell the
// host without a sync, returns NaN for the row.
enum class Fault : int { kNone = 0, kLogW, kBase, kKey, kTarget, kCap };

template <typename Lanes>
TTS_HD Fault row_fault(const Lanes& lanes, const Row& r, double target, double cap) {
  const Pair bad_w = lanes.sum2(r.n, [&](int64_t k) {
    const double v = r.log_w[k];
    return Pair{(v != v || v == inf()) ? 1.0 : 0.0, 0.0};
  });
  const Pair bad_live = lanes.sum2(r.n, [&](int64_t k) {
    return Pair{r.alive[k] && !is_finite(r.base[k]) ? 1.0 : 0.0, r.alive[k] && !is_finite(r.key[k]) ? 1.0 : 0.0};
  });
  if (bad_w.a != 0.0) return Fault::kLogW;
  if (bad_live.a != 0.0) return Fault::kBase;
  if (bad_live.b != 0.0) return Fault::kKey;
  if (!(is_finite(target) && target >= 0.0)) return Fault::kTarget;
  if (!(cap >= 0.0)) return Fault::kCap;
  return Fault::kNone;
}

// The increment delta >= 0 of one row (reference: tts_fast._reference.adaptive_increment): the cap
// where CESS(cap) >= target, else the bisection's lower end (0 when even the bracket's low end
// misses the target); cap for a row whose live keys are all equal (0 if the cap is +inf).
template <typename Lanes>
TTS_HD double increment(const Lanes& lanes, const Row& r, double target, double cap) {
  const Pair keys = lanes.max2(r.n, [&](int64_t k) {
    return r.alive[k] ? Pair{r.key[k], -r.key[k]} : Pair{-inf(), -inf()};
  });
  const double spread = keys.a - (-keys.b);
  const bool finite = is_finite(cap);
  if (spread <= 0) return finite ? cap : 0.0;  // flat row: every delta gives the same weights
  const double safe = spread;
  double u_cap = cap * safe;
  u_cap = u_cap < kUMin * 1e-3 ? kUMin * 1e-3 : u_cap;
  u_cap = u_cap > kUMax ? kUMax : u_cap;
  if (cap <= 0) return (finite && cap * safe <= kUMax) ? cap : u_cap / safe;

  const Pair mw = lanes.max2(r.n, [&](int64_t k) { return Pair{r.log_w[k], -inf()}; });
  const double shift = lse_shift(mw.a);
  const Pair sw = lanes.sum2(r.n, [&](int64_t k) { return Pair{exp(r.log_w[k] - shift), r.alive[k] ? 1.0 : 0.0}; });
  const double lse_w = log(sw.a) + shift;
  const double m_alive = sw.b;

  const double log_u_cap = log(u_cap);
  if (cess(lanes, r, lse_w, m_alive, exp(log_u_cap) / safe) >= target)
    return (finite && cap * safe <= kUMax) ? cap : u_cap / safe;  // the tilt is reached
  double lo = log(u_cap < kUMin ? u_cap : kUMin), hi = log_u_cap;
  if (!(cess(lanes, r, lse_w, m_alive, exp(lo) / safe) >= target)) return 0.0;
  for (int it = 0; it < kIterations; ++it) {
    const double mid = 0.5 * (lo + hi);
    if (cess(lanes, r, lse_w, m_alive, exp(mid) / safe) >= target) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return exp(lo) / safe;
}

}  // namespace tempering
}  // namespace tts_fast
