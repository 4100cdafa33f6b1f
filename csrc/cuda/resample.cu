// CUDA kernel of tts_fast::resample: one launch for all B rows, one warp per row.
//
// Lanes share the parallel parts of a row (row max, weights, fractions, the N output slots, each a
// binary search); lane 0 runs the parts that the reference defines sequentially: the
// left-to-right float64 cumsum (a parallel scan would round differently) and SSP's pairwise sweep.
// The arithmetic is resample_math.h's, compiled with --fmad=false, so a row matches the CPU kernel
// and the reference bit for bit whenever exp() agrees (CUDA's exp and the CPU's may differ in the
// last bit). Scratch rows live in global memory (ws_*, allocated by the caller), so N is unbounded.
#include <torch/headeronly/macros/Macros.h>  // CUDA_KERNEL_ASSERT (kept on in release builds)

#include "../resample_math.h"
#include "device_utils.cuh"
#include "launch.h"

namespace tts_fast {
namespace cuda {
namespace {

constexpr int kWarpsPerBlock = 4;

template <typename T>
__device__ __forceinline__ double load64(const T* p, int64_t k) {
  return static_cast<double>(p[k]);
}

template <typename LW, typename U>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    resample_kernel(const LW* __restrict__ log_weights, const U* __restrict__ uniforms, RngArg rng, int64_t B,
                    int64_t N, int scheme_code, double* __restrict__ ws_w, int64_t* __restrict__ ws_i,
                    double* __restrict__ ws_u, int64_t* __restrict__ out_all) {
  const int lane = threadIdx.x & 31;
  const int64_t b = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (b >= B) return;  // the whole warp leaves together
  const Scheme scheme = static_cast<Scheme>(scheme_code);
  const LW* lw = log_weights + b * N;
  double* w = ws_w + b * N;
  int64_t* out = out_all + b * N;

  // Uniforms of this row: the given table, or Philox (element b * N + k) written to scratch.
  const double* u_rng = nullptr;
  const U* u_tab = nullptr;
  if (uniforms != nullptr) {
    u_tab = uniforms + b * N;
    // The CPU op refuses these before any work; the host cannot see them here without a sync.
    for (int64_t k = lane; k < N; k += 32) {
      const double u = static_cast<double>(u_tab[k]);
      CUDA_KERNEL_ASSERT(u >= 0.0 && u < 1.0 && "uniforms must lie in [0, 1)");
    }
  } else {
    const uint64_t seed = rng.device_ptr ? static_cast<uint64_t>(rng.device_ptr[0]) : rng.seed;
    const uint64_t offset = rng.device_ptr ? static_cast<uint64_t>(rng.device_ptr[1]) : rng.offset;
    double* u_row = ws_u + b * N;
    for (int64_t k = lane; k < N; k += 32) u_row[k] = philox_uniform(seed, offset, static_cast<uint64_t>(b * N + k));
    u_rng = u_row;
  }
  auto u_at = [&](int64_t k) -> double { return u_tab != nullptr ? static_cast<double>(u_tab[k]) : u_rng[k]; };

  // Weights exp(lw - max) under the NaN / -inf / +inf conventions.
  double m = -inf64();
  for (int64_t k = lane; k < N; k += 32) {
    const double v = clean_log_weight(load64(lw, k));
    m = v > m ? v : m;
  }
  m = warp_max(m);
  for (int64_t k = lane; k < N; k += 32) w[k] = exp(weight_exponent(load64(lw, k), m));
  __syncwarp();

  if (scheme == Scheme::kMultinomial || scheme == Scheme::kStratified || scheme == Scheme::kSystematic) {
    int64_t last = N - 1;
    if (lane == 0) {  // cdf in place, sequential; remember the last positive weight
      int64_t last_pos = -1;
      double acc = 0.0;
      for (int64_t k = 0; k < N; ++k) {
        const double wk = w[k];
        if (wk > 0) last_pos = k;
        acc += wk;
        w[k] = acc;
      }
      last = last_pos >= 0 ? last_pos : N - 1;
    }
    last = __shfl_sync(kFullMask, last, 0);
    __syncwarp();
    const double total = w[N - 1];
    const double u0 = scheme == Scheme::kSystematic ? u_at(0) : 0.0;
    for (int64_t i = lane; i < N; i += 32) {
      double t;
      if (scheme == Scheme::kMultinomial) {
        t = multinomial_target(u_at(i), total);
      } else {
        t = stratified_target(i, N, scheme == Scheme::kSystematic ? u0 : u_at(i), total);
      }
      const int64_t idx = upper_bound_sorted<double>(w, N, t);
      out[i] = idx >= N ? last : idx;
    }
    return;
  }

  // residual and ssp: floor counts and fractions of N*w/W, W the sequential sum.
  int64_t* counts = ws_i + b * N;
  double total = 0.0;
  if (lane == 0)
    for (int64_t k = 0; k < N; ++k) total += w[k];
  total = __shfl_sync(kFullMask, total, 0);
  __syncwarp();  // lane 0's reads of w above come before the lanes overwrite it: a shuffle orders no memory
  for (int64_t k = lane; k < N; k += 32) {
    int64_t c;
    double f;
    floor_and_fraction(w[k], total, N, c, f);
    counts[k] = c;
    w[k] = f;
  }
  __syncwarp();

  if (scheme == Scheme::kResidual) {
    int64_t last = N - 1;
    if (lane == 0) {  // cumulative counts and fraction cdf in place, sequential
      int64_t last_pos = -1, c_acc = 0;
      double f_acc = 0.0;
      for (int64_t k = 0; k < N; ++k) {
        const double fk = w[k];
        if (fk > 0) last_pos = k;
        f_acc += fk;
        w[k] = f_acc;
        counts[k] = c_acc += counts[k];
      }
      last = last_pos >= 0 ? last_pos : N - 1;
    }
    last = __shfl_sync(kFullMask, last, 0);
    __syncwarp();
    const int64_t n_det = counts[N - 1];
    const double ftotal = w[N - 1];
    for (int64_t s = lane; s < N; s += 32) {
      if (s < n_det) {
        const int64_t k = upper_bound<int64_t>(counts, N, s);
        out[s] = k < N - 1 ? k : N - 1;
      } else {
        int64_t j = s - n_det;
        j = j < 0 ? 0 : (j > N - 1 ? N - 1 : j);
        const int64_t idx = upper_bound_sorted<double>(w, N, u_at(j) * ftotal);
        out[s] = idx >= N ? last : idx;
      }
    }
    return;
  }

  // ssp: the sequential pairwise sweep, then the leftover to the last open unit.
  if (lane == 0) {
    int64_t i = 0;
    double xi_open = w[0];
    for (int64_t j = 1; j < N; ++j) {
      const SspStep st = ssp_step(xi_open, w[j], u_at(j - 1));
      if (st.i_child) counts[i] += 1;
      if (st.j_child) counts[j] += 1;
      xi_open = st.xi_open;
      if (!st.keep_i) i = j;
    }
    int64_t sum = 0;
    for (int64_t k = 0; k < N; ++k) sum += counts[k];
    counts[i] += N - sum;
    int64_t c_acc = 0;
    for (int64_t k = 0; k < N; ++k) counts[k] = c_acc += counts[k];
  }
  __syncwarp();
  for (int64_t s = lane; s < N; s += 32) {
    const int64_t k = upper_bound<int64_t>(counts, N, s);
    out[s] = k < N - 1 ? k : N - 1;
  }
}

template <typename LW, typename U>
void launch_typed(const ResampleArgs& a, cudaStream_t stream) {
  const int64_t blocks = (a.B + kWarpsPerBlock - 1) / kWarpsPerBlock;
  resample_kernel<LW, U><<<static_cast<unsigned>(blocks), kWarpsPerBlock * 32, 0, stream>>>(
      static_cast<const LW*>(a.log_weights), static_cast<const U*>(a.uniforms), a.rng, a.B, a.N, a.scheme, a.ws_w,
      a.ws_i, a.ws_u, a.out);
}

template <typename LW>
void launch_lw(const ResampleArgs& a, cudaStream_t stream) {
  if (a.uniforms != nullptr && a.u_dtype == DType::kFloat) {
    launch_typed<LW, float>(a, stream);
  } else {
    launch_typed<LW, double>(a, stream);  // float64 uniforms, or Philox (uniforms == nullptr)
  }
}

}  // namespace

void launch_resample(const ResampleArgs& a, cudaStream_t stream) {
  if (a.B == 0) return;
  if (a.lw_dtype == DType::kFloat) {
    launch_lw<float>(a, stream);
  } else {
    launch_lw<double>(a, stream);
  }
}

}  // namespace cuda
}  // namespace tts_fast
