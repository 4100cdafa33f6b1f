// The argument list of the emulated fused elementwise launch (emu_api.cpp's emu_fused and the
// wide-index hook of hooks/elementwise.inc), and the FusedArgs it describes.
#pragma once

#include <cstdint>

#include "launch.h"

#define EMU_FUSED_PARAMS                                                                                          \
  int op, int dtype, const void *x, const void *y, const void *noise, int use_rng, const int64_t *rng_device,     \
      uint64_t seed, uint64_t offset, int64_t numel, int64_t B, int64_t inner, const int64_t *level_from,          \
      const int64_t *level_to, const double *alpha, const double *sigma, int64_t n_levels, double eta,             \
      const void *step_size, int step_dtype, const double *norm_partials, int64_t n_partials, double max_norm,    \
      void *out
#define EMU_FUSED_ARGS                                                                                          \
  op, dtype, x, y, noise, use_rng, rng_device, seed, offset, numel, B, inner, level_from, level_to, alpha, sigma, \
      n_levels, eta, step_size, step_dtype, norm_partials, n_partials, max_norm, out

namespace emu {

inline tts_fast::cuda::RngArg rng_arg(const int64_t* rng_device, uint64_t seed, uint64_t offset) {
  tts_fast::cuda::RngArg r;
  r.device_ptr = rng_device;
  r.seed = seed;
  r.offset = offset;
  return r;
}

inline tts_fast::cuda::FusedArgs fused_args(EMU_FUSED_PARAMS) {
  tts_fast::cuda::FusedArgs a;
  a.op = static_cast<tts_fast::cuda::FusedOp>(op);
  a.dtype = static_cast<tts_fast::cuda::DType>(dtype);
  a.x = x;
  a.y = y;
  a.noise = noise;
  a.use_rng = use_rng != 0;
  a.rng = rng_arg(rng_device, seed, offset);
  a.numel = numel;
  a.B = B;
  a.inner = inner;
  a.level_from = level_from;
  a.level_to = level_to;
  a.alpha = alpha;
  a.sigma = sigma;
  a.n_levels = n_levels;
  a.eta = eta;
  a.step_size = step_size;
  a.step_dtype = static_cast<tts_fast::cuda::DType>(step_dtype);
  a.norm_partials = norm_partials;
  a.n_partials = n_partials;
  a.max_norm = max_norm;
  a.out = out;
  return a;
}

}  // namespace emu
