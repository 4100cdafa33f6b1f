// Per-sample coefficients of the fused elementwise ops, shared by the CPU and CUDA kernels.
//
// Each op writes out = (c0 * x + c1 * y) + c2 * z in the accumulation type (float32, or float64
// for float64 x), with z standard normal. The coefficients are computed in float64 from the
// float64 schedule tables exactly as the reference formulas in tts_fast/_reference.py (same
// operations, same order), then cast to the accumulation type, as `_per_sample` does.
#pragma once

#include <cmath>

#include "philox.h"

namespace tts_fast {

struct Coef3 {
  double c0, c1, c2;
};

// renoise: x_to = r * x + sqrt(s_t^2 - r^2 s_f^2) * z, r = a_t / a_f (no y term).
TTS_HD Coef3 renoise_coef(double a_f, double s_f, double a_t, double s_t) {
  const double ratio = a_t / a_f;
  const double std_ = sqrt(s_t * s_t - ratio * ratio * (s_f * s_f));
  return Coef3{ratio, 0.0, std_};
}

// ddim_step: x_to = c_x * x + c_x0 * x0_hat + c_z * z (ddim_coefficients).
TTS_HD Coef3 ddim_coef(double a_i, double s_i, double a_j, double s_j, double eta) {
  const double r = a_i / a_j;
  const double v = s_i * s_i - r * r * (s_j * s_j);
  const double frac = v / (s_i * s_i);
  const double c_eps = s_j * sqrt(1.0 - (eta * eta) * frac);
  const double c_z = (eta * s_j) * sqrt(frac);
  const double c_x = c_eps / s_i;
  const double c_x0 = a_j - c_x * a_i;
  return Coef3{c_x, c_x0, c_z};
}

// langevin_step: x + (eta * scale) * g + sqrt(2 eta) * z, scale = max_norm / ||g|| when the norm
// exceeds max_norm (has_max_norm), else 1. c0 = 1 keeps x exact (1 * x == x).
TTS_HD Coef3 langevin_coef(double eta, double norm, bool has_max_norm, double max_norm) {
  double scale = 1.0;
  if (has_max_norm && norm > max_norm) scale = max_norm / norm;
  return Coef3{1.0, eta * scale, sqrt(2.0 * eta)};
}

}  // namespace tts_fast
