// Host-side entry points of the CUDA kernels (resample.cu, elementwise.cu, weights.cu, tempering.cu).
//
// This header deliberately includes no torch header: the .cu files are compiled by nvcc once per
// GPU architecture, and keeping ATen out of them keeps that cheap. The torch-facing glue
// (argument checks, allocation, device guard, current stream, launch checks, registration) lives
// in register.cpp, which the host compiler builds once. Every launcher enqueues work on `stream`
// and returns without synchronising.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace tts_fast {
namespace cuda {

enum class DType : int { kHalf = 0, kBFloat16 = 1, kFloat = 2, kDouble = 3 };

// Philox (seed, offset): read from `device_ptr` (int64[2] on the GPU) inside the kernel when it is
// set, so that a CUDA-graph replay sees the tensor's current value; else the host values.
struct RngArg {
  const int64_t* device_ptr = nullptr;
  uint64_t seed = 0;
  uint64_t offset = 0;
};

struct ResampleArgs {
  const void* log_weights = nullptr;  // [B, N] float32/float64, contiguous
  DType lw_dtype = DType::kFloat;
  const void* uniforms = nullptr;  // [B, N] float32/float64, contiguous; null: Philox from rng
  DType u_dtype = DType::kFloat;
  RngArg rng;
  int64_t B = 0, N = 0;
  int scheme = 0;              // tts_fast::Scheme
  double* ws_w = nullptr;      // [B, N] scratch: weights, then cdf or fractions
  int64_t* ws_i = nullptr;     // [B, N] scratch: counts (residual, ssp); may be null otherwise
  double* ws_u = nullptr;      // [B, N] scratch: Philox uniforms (rng mode); may be null otherwise
  int64_t* out = nullptr;      // [B, N] int64 ancestors
};
void launch_resample(const ResampleArgs& a, cudaStream_t stream);

enum class FusedOp : int { kRenoise = 0, kDdim = 1, kLangevin = 2 };

struct FusedArgs {
  FusedOp op = FusedOp::kRenoise;
  DType dtype = DType::kFloat;  // of x, y, noise and out
  const void* x = nullptr;      // [B, inner] contiguous
  const void* y = nullptr;      // x0_hat (ddim) or grad (langevin); null for renoise
  const void* noise = nullptr;  // normals like x; null: Philox from rng when use_rng
  bool use_rng = false;
  RngArg rng;
  int64_t numel = 0, B = 0, inner = 0;
  // renoise / ddim: levels [B] int64 into tables alpha, sigma [n_levels] float64
  const int64_t* level_from = nullptr;
  const int64_t* level_to = nullptr;
  const double* alpha = nullptr;
  const double* sigma = nullptr;
  int64_t n_levels = 0;
  double eta = 0.0;
  // langevin: step_size [B] float32/float64; optional gradient-norm partial sums [B, n_partials]
  const void* step_size = nullptr;
  DType step_dtype = DType::kFloat;
  const double* norm_partials = nullptr;
  int64_t n_partials = 0;
  double max_norm = 0.0;
  void* out = nullptr;
};
void launch_fused(const FusedArgs& a, cudaStream_t stream);

// Number of partial sums per sample that launch_grad_norm_partials writes for this shape.
int64_t grad_norm_partials(int64_t B, int64_t inner);
// partials[b * P + p] = sum of grad[b, chunk p]^2 in float64, P = grad_norm_partials(B, inner).
void launch_grad_norm_partials(const void* grad, DType dtype, int64_t B, int64_t inner, double* partials,
                               cudaStream_t stream);

// log_weights [B, N] float32/float64 contiguous -> out [B] (ess) / [B, N] (normalize), same dtype.
void launch_ess(const void* log_weights, DType dtype, int64_t B, int64_t N, void* out, cudaStream_t stream);
void launch_normalize(const void* log_weights, DType dtype, int64_t B, int64_t N, void* out, cudaStream_t stream);

// adaptive_increment: log_w, base, key [B, N] float64, alive [B, N] bool, target, cap [B] float64,
// all contiguous -> out [B] float64 (NaN for a row whose inputs the method does not define).
void launch_adaptive_increment(const double* log_w, const double* base, const double* key, const bool* alive,
                               const double* target, const double* cap, int64_t B, int64_t N, double* out,
                               cudaStream_t stream);

}  // namespace cuda
}  // namespace tts_fast
