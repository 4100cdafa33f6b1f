// CUDA kernels of the per-row log-weight reductions ess and normalize_log_weights: one warp per
// row, float64 arithmetic, results in the input dtype. Conventions as
// tts_fast._reference.row_weights (NaN = -inf, all -inf row = equal weights, +inf entries share).
#include "../resample_math.h"
#include "device_utils.cuh"
#include "launch.h"

namespace tts_fast {
namespace cuda {
namespace {

constexpr int kWarpsPerBlock = 4;

template <typename T>
__device__ double row_max(const T* row, int64_t N, int lane) {
  double m = -inf64();
  for (int64_t k = lane; k < N; k += 32) {
    const double v = clean_log_weight(static_cast<double>(row[k]));
    m = v > m ? v : m;
  }
  return warp_max(m);
}

template <typename T>
__global__ void __launch_bounds__(kWarpsPerBlock * 32) ess_kernel(const T* __restrict__ lw, int64_t B, int64_t N,
                                                                  T* __restrict__ out) {
  const int lane = threadIdx.x & 31;
  const int64_t b = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (b >= B) return;
  const T* row = lw + b * N;
  const double m = row_max(row, N, lane);
  double s = 0.0, s2 = 0.0;
  for (int64_t k = lane; k < N; k += 32) {
    const double w = exp(weight_exponent(static_cast<double>(row[k]), m));
    s += w;
    s2 += w * w;
  }
  s = warp_sum(s);
  s2 = warp_sum(s2);
  if (lane == 0) out[b] = static_cast<T>(s * s / s2);
}

template <typename T>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    normalize_kernel(const T* __restrict__ lw, int64_t B, int64_t N, T* __restrict__ out) {
  const int lane = threadIdx.x & 31;
  const int64_t b = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (b >= B) return;
  const T* row = lw + b * N;
  T* orow = out + b * N;
  const double m = row_max(row, N, lane);
  if (m == -inf64()) {  // all -inf: equal weights
    const T v = static_cast<T>(-log(static_cast<double>(N)));
    for (int64_t k = lane; k < N; k += 32) orow[k] = v;
  } else if (m == inf64()) {  // the +inf entries share the weight
    int64_t n_inf = 0;
    for (int64_t k = lane; k < N; k += 32) n_inf += static_cast<double>(row[k]) == inf64();
    n_inf = warp_sum(n_inf);
    const T v = static_cast<T>(-log(static_cast<double>(n_inf)));
    for (int64_t k = lane; k < N; k += 32) orow[k] = static_cast<double>(row[k]) == inf64() ? v : static_cast<T>(-inf64());
  } else {
    double s = 0.0;
    for (int64_t k = lane; k < N; k += 32) s += exp(clean_log_weight(static_cast<double>(row[k])) - m);
    const double lse = m + log(warp_sum(s));
    for (int64_t k = lane; k < N; k += 32)
      orow[k] = static_cast<T>(clean_log_weight(static_cast<double>(row[k])) - lse);
  }
}

unsigned row_blocks(int64_t B) { return static_cast<unsigned>((B + kWarpsPerBlock - 1) / kWarpsPerBlock); }

}  // namespace

void launch_ess(const void* lw, DType dtype, int64_t B, int64_t N, void* out, cudaStream_t stream) {
  if (B == 0) return;
  if (dtype == DType::kDouble) {
    ess_kernel<<<row_blocks(B), kWarpsPerBlock * 32, 0, stream>>>(static_cast<const double*>(lw), B, N,
                                                                   static_cast<double*>(out));
  } else {
    ess_kernel<<<row_blocks(B), kWarpsPerBlock * 32, 0, stream>>>(static_cast<const float*>(lw), B, N,
                                                                   static_cast<float*>(out));
  }
}

void launch_normalize(const void* lw, DType dtype, int64_t B, int64_t N, void* out, cudaStream_t stream) {
  if (B == 0) return;
  if (dtype == DType::kDouble) {
    normalize_kernel<<<row_blocks(B), kWarpsPerBlock * 32, 0, stream>>>(static_cast<const double*>(lw), B, N,
                                                                         static_cast<double*>(out));
  } else {
    normalize_kernel<<<row_blocks(B), kWarpsPerBlock * 32, 0, stream>>>(static_cast<const float*>(lw), B, N,
                                                                         static_cast<float*>(out));
  }
}

}  // namespace cuda
}  // namespace tts_fast
