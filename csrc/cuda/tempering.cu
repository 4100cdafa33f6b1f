// CUDA kernel of tts_fast::adaptive_increment: one warp per prompt row, the whole bisection of
// tempering_math.h in one launch (no host read, a fixed iteration count: capturable in a CUDA
// graph). Lane l holds particles l, l + 32, ...; every sum and maximum is reduced by the xor
// butterfly, which leaves the same bits in every lane, so the bisection's branches are
// warp-uniform and the row's result equals the CPU kernel's (SerialLanes replays this order).
#include <math_constants.h>

#include "../tempering_math.h"
#include "device_utils.cuh"
#include "launch.h"

namespace tts_fast {
namespace cuda {
namespace {

constexpr int kWarpsPerBlock = 4;

struct WarpLanes {
  int lane;
  template <typename F>
  __device__ tempering::Pair sum2(int64_t n, F f) const {
    double a = 0.0, b = 0.0;
    for (int64_t k = lane; k < n; k += 32) {
      const tempering::Pair v = f(k);
      a = a + v.a;
      b = b + v.b;
    }
    for (int o = 16; o > 0; o >>= 1) {
      a = a + __shfl_xor_sync(kFullMask, a, o);
      b = b + __shfl_xor_sync(kFullMask, b, o);
    }
    return tempering::Pair{a, b};
  }
  template <typename F>
  __device__ tempering::Pair max2(int64_t n, F f) const {
    double a = -tempering::inf(), b = -tempering::inf();
    for (int64_t k = lane; k < n; k += 32) {
      const tempering::Pair v = f(k);
      a = tempering::nan_max(a, v.a);
      b = tempering::nan_max(b, v.b);
    }
    for (int o = 16; o > 0; o >>= 1) {
      a = tempering::nan_max(a, __shfl_xor_sync(kFullMask, a, o));
      b = tempering::nan_max(b, __shfl_xor_sync(kFullMask, b, o));
    }
    return tempering::Pair{a, b};
  }
};

__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    adaptive_increment_kernel(const double* __restrict__ log_w, const double* __restrict__ base,
                              const double* __restrict__ key, const bool* __restrict__ alive,
                              const double* __restrict__ target, const double* __restrict__ cap, int64_t B, int64_t N,
                              double* __restrict__ out) {
  const int lane = threadIdx.x & 31;
  const int64_t b = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (b >= B) return;  // the whole warp leaves together
  const WarpLanes lanes{lane};
  const tempering::Row row{log_w + b * N, base + b * N, key + b * N, alive + b * N, N};
  double delta;
  if (tempering::row_fault(lanes, row, target[b], cap[b]) != tempering::Fault::kNone) {
    delta = CUDART_NAN;  // inputs outside the method: the CPU kernel raises here
  } else {
    delta = tempering::increment(lanes, row, target[b], cap[b]);
  }
  if (lane == 0) out[b] = delta;
}

}  // namespace

void launch_adaptive_increment(const double* log_w, const double* base, const double* key, const bool* alive,
                               const double* target, const double* cap, int64_t B, int64_t N, double* out,
                               cudaStream_t stream) {
  if (B == 0) return;
  const unsigned blocks = static_cast<unsigned>((B + kWarpsPerBlock - 1) / kWarpsPerBlock);
  adaptive_increment_kernel<<<blocks, kWarpsPerBlock * 32, 0, stream>>>(log_w, base, key, alive, target, cap, B, N, out);
}

}  // namespace cuda
}  // namespace tts_fast
