// The op schemas of tts_fast, defined once for every backend (CPU kernels in cpu/, CUDA kernels in
// cuda/, fake kernels and the pure-PyTorch references in tts_fast/ops.py). The strings must stay
// identical to tts_fast.ops.SCHEMAS; tests/test_ops_build.py compares them.
//
// All ops are functional (no input is mutated) and read randomness from tensors: `uniforms` /
// `noise`, or `rng` = int64 [seed, offset] for the in-kernel Philox4x32-10 generator (philox.h).
// Registered through the LibTorch stable ABI (STABLE_TORCH_LIBRARY): see stable_api.h.
#include "stable_api.h"

STABLE_TORCH_LIBRARY(tts_fast, m) {
  // log_weights [B, N] float32/64, uniforms [B, N] float32/64 -> ancestors [B, N] int64.
  m.def("resample(Tensor log_weights, Tensor? uniforms, Tensor? rng, str scheme) -> Tensor");
  // x [B, ...] float16/bfloat16/float32/float64; level_* [B] int64; alpha, sigma [L] float64.
  m.def(
      "renoise(Tensor x, Tensor level_from, Tensor level_to, Tensor alpha, Tensor sigma, Tensor? noise, "
      "Tensor? rng) -> Tensor");
  m.def(
      "ddim_step(Tensor x, Tensor x0_hat, Tensor level_from, Tensor level_to, Tensor alpha, Tensor sigma, "
      "float eta, Tensor? noise, Tensor? rng) -> Tensor");
  // step_size [B] float32/64.
  m.def(
      "langevin_step(Tensor x, Tensor grad, Tensor step_size, Tensor? noise, Tensor? rng, float? max_norm) -> "
      "Tensor");
  // log_weights [B, N] -> [B] (ess) or [B, N] (normalize_log_weights), in log_weights' dtype.
  m.def("ess(Tensor log_weights) -> Tensor");
  m.def("normalize_log_weights(Tensor log_weights) -> Tensor");
  // log_w, base, key [B, N] float64, alive [B, N] bool, target, cap [B] float64 -> increments [B] float64.
  m.def("adaptive_increment(Tensor log_w, Tensor base, Tensor key, Tensor alive, Tensor target, Tensor cap) -> Tensor");
}
