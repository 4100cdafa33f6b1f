// Per-row resampling arithmetic shared by the CPU and CUDA kernels.
//
// Every function here reproduces one expression of tts_fast/_reference.py in the same float64
// operations and order, so that the kernels return the reference's indices bit for bit given the
// same uniforms. Sources that include this file are compiled without floating-point contraction
// (-ffp-contract=off, nvcc --fmad=false): a fused multiply-add would round differently.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "philox.h"

namespace tts_fast {

enum class Scheme : int { kMultinomial = 0, kStratified = 1, kSystematic = 2, kResidual = 3, kSsp = 4 };

TTS_HD double inf64() { return std::numeric_limits<double>::infinity(); }

// NaN counts as -inf (row_weights).
TTS_HD double clean_log_weight(double v) { return v != v ? -inf64() : v; }

// Exponent whose exp() is the row weight under the conventions of row_weights: lw - m for a
// finite row max m; for m = +inf the +inf entries get exp(0) = 1 and the rest exp(-inf) = 0; for
// an all -inf row every entry gets exp(0) = 1. exp(0) and exp(-inf) are exact in any libm, and
// lw - m is the reference's subtraction, so exp() of this equals the reference's weight whenever
// both use the same exp.
TTS_HD double weight_exponent(double lw, double m) {
  const double v = clean_log_weight(lw);
  if (m == -inf64()) return 0.0;
  if (m == inf64()) return v == inf64() ? 0.0 : -inf64();
  return v - m;
}

// torch.searchsorted(right=True) on one sorted row: the first k with a[k] > v, else n. Written as
// ATen's CPU binary search (same comparisons, `!(a[mid] > v)` moves right), so NaN targets and any
// non-monotone input give the same answer as the reference.
template <typename T>
TTS_HD int64_t upper_bound(const T* a, int64_t n, T v) {
  int64_t start = 0, end = n;
  while (start < end) {
    const int64_t mid = start + ((end - start) >> 1);
    if (!(a[mid] > v)) {
      start = mid + 1;
    } else {
      end = mid;
    }
  }
  return start;
}

// The same answer for a non-decreasing row (every cdf here), where the predicate a[k] > v is
// monotone in k and any correct search agrees with ATen's. The trip count depends on n only (no
// unpredictable loop exit on a CPU, no divergence in a warp) and the step is a select.
// Invariant: the answer lies in [lo, lo + len].
template <typename T>
TTS_HD int64_t upper_bound_sorted(const T* a, int64_t n, T v) {
  int64_t lo = 0, len = n;
  while (len > 1) {
    const int64_t half = len >> 1;
    lo = !(a[lo + half - 1] > v) ? lo + half : lo;
    len -= half;
  }
  return n == 0 ? 0 : lo + (!(a[lo] > v) ? 1 : 0);
}

// torch.minimum: NaN if either is NaN.
TTS_HD double nan_minimum(double a, double b) {
  if (a != a || b != b) return a + b;
  return a < b ? a : b;
}

// Resampling targets of the inverse-CDF schemes for output slot i (reference `resample`).
TTS_HD double multinomial_target(double u, double total) { return u * total; }
TTS_HD double stratified_target(int64_t i, int64_t n, double u, double total) {
  return ((static_cast<double>(i) + u) / static_cast<double>(n)) * total;
}

// Expected offspring count N*w/W split into floor and fraction (_floor_and_fraction).
TTS_HD void floor_and_fraction(double w, double total, int64_t n, int64_t& count, double& frac) {
  const double scaled = (static_cast<double>(n) * w) / total;
  const double fl = floor(scaled);
  count = static_cast<int64_t>(fl);
  frac = scaled - fl;
}

// One pairwise rounding step of the Srinivasan sampling process between the open unit i (fraction
// xi_i) and the next unit j (fraction xi_j), with uniform u: exactly the branch conditions and
// update expressions of the reference loop. Returns the fraction of the unit left open and says
// which unit gets an extra child and whether i stays open (keep_i) or j replaces it.
struct SspStep {
  double xi_open;
  bool i_child;
  bool j_child;
  bool keep_i;
};

TTS_HD SspStep ssp_step(double xi_i, double xi_j, double u) {
  const double a = nan_minimum(xi_j, 1.0 - xi_i);   // mass j can give to i
  const double bb = nan_minimum(xi_i, 1.0 - xi_j);  // mass i can give to j
  const double s = a + bb;
  const bool move_a = (s > 0) && (u < bb / (s > 0 ? s : 1.0));
  const bool j_closes0 = xi_j <= 1.0 - xi_i;
  const bool i_closes0 = xi_i <= 1.0 - xi_j;
  const double new_xi_i = move_a ? xi_i + xi_j : xi_i - (1.0 - xi_j);
  const double new_xi_j = move_a ? xi_j - (1.0 - xi_i) : xi_j + xi_i;
  SspStep r;
  r.i_child = move_a && !j_closes0;
  r.j_child = !move_a && !i_closes0;
  r.keep_i = (move_a && j_closes0) || r.j_child;
  r.xi_open = r.keep_i ? new_xi_i : new_xi_j;
  return r;
}

}  // namespace tts_fast
