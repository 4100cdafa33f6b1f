// CUDA kernels of the fused elementwise ops renoise, ddim_step and langevin_step.
//
// One launch computes out = (c0 * x + c1 * y) + c2 * z for every element; each thread owns one
// block of four consecutive elements, which is also one Philox block (philox.h), loaded and stored
// with vector instructions when the pointers allow. A CTA covers 1024 elements: its threads first
// compute the float64 coefficients (coefficients.h) of the samples the tile touches into shared
// memory -- usually one or two samples, so the per-sample math is paid once per tile, not per
// element -- then stream the tile. langevin_step with max_norm runs a second, earlier launch
// (launch_grad_norm_partials) that writes per-sample partial sums of grad^2; the coefficient step
// adds a sample's partials in a fixed order, so results are deterministic.
#include <torch/headeronly/macros/Macros.h>  // CUDA_KERNEL_ASSERT (kept on in release builds)

#include <math_constants.h>

#include <cmath>

#include "../coefficients.h"
#include "device_utils.cuh"
#include "launch.h"

namespace tts_fast {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kTile = 4 * kThreads;

struct KernelArgs {
  FusedOp op;
  const void* x;
  const void* y;
  const void* noise;
  bool use_rng;
  RngArg rng;
  int64_t numel, inner;
  const int64_t* level_from;
  const int64_t* level_to;
  const double* alpha;
  const double* sigma;
  int64_t n_levels;
  double eta;
  const void* step_size;
  bool step_is_double;
  const double* norm_partials;
  int64_t n_partials;
  double max_norm;
  void* out;
  bool vec_ok;
};

// Four consecutive elements, aligned so the compiler emits vector loads and stores.
template <typename T>
struct alignas(sizeof(T) * 4 > 16 ? 16 : sizeof(T) * 4) Vec4 {
  T v[4];
};

__device__ Coef3 sample_coef(const KernelArgs& a, int64_t b) {
  const double kNaN = CUDART_NAN;
  if (a.op == FusedOp::kLangevin) {
    const double eta = a.step_is_double ? static_cast<const double*>(a.step_size)[b]
                                        : static_cast<double>(static_cast<const float*>(a.step_size)[b]);
    // The CPU kernel raises on a bad step; here it is a caller bug the host cannot see without a sync.
    CUDA_KERNEL_ASSERT(eta >= 0 && eta - eta == 0 && "step_size must be finite and >= 0");
    double norm = 0.0;
    if (a.norm_partials != nullptr) {
      double s = 0.0;
      for (int64_t p = 0; p < a.n_partials; ++p) s += a.norm_partials[b * a.n_partials + p];
      norm = sqrt(s);
    }
    return langevin_coef(eta, norm, a.norm_partials != nullptr, a.max_norm);
  }
  const int64_t lf = a.level_from[b], lt = a.level_to[b];
  // Out-of-range levels are a caller bug that the host cannot check without a sync: assert, and
  // never read outside the tables (NaN coefficients if asserts are compiled out).
  const bool ok = lf >= 0 && lf < a.n_levels && lt >= 0 && lt < a.n_levels;
  CUDA_KERNEL_ASSERT(ok && "level_from/level_to must lie in [0, len(alpha))");
  if (!ok) return Coef3{kNaN, kNaN, kNaN};
  const Coef3 c = a.op == FusedOp::kRenoise ? renoise_coef(a.alpha[lf], a.sigma[lf], a.alpha[lt], a.sigma[lt])
                                            : ddim_coef(a.alpha[lf], a.sigma[lf], a.alpha[lt], a.sigma[lt], a.eta);
  // Non-finite coefficients: a target level on the wrong side of the source (or bad tables), which
  // the CPU kernel refuses before any work (checks.h: check_level_pairs).
  CUDA_KERNEL_ASSERT(c.c0 - c.c0 == 0 && c.c1 - c.c1 == 0 && c.c2 - c.c2 == 0 &&
                     "renoise needs level_to at least as noisy as level_from, ddim_step at most as noisy");
  return c;
}

template <typename T, typename Idx>
__global__ void __launch_bounds__(kThreads) fused_affine_kernel(KernelArgs a) {
  using Acc = acc_t<T>;
  extern __shared__ __align__(16) unsigned char smem_raw[];  // holds float or double coefficients
  Acc* coef = reinterpret_cast<Acc*>(smem_raw);  // [samples in tile][3]

  const Idx numel = static_cast<Idx>(a.numel);
  const Idx inner = static_cast<Idx>(a.inner);
  const Idx tile0 = static_cast<Idx>(blockIdx.x) * kTile;
  const Idx tile_last = (tile0 + kTile < numel ? tile0 + kTile : numel) - 1;
  const Idx b_first = tile0 / inner;
  const Idx n_samples = tile_last / inner - b_first + 1;
  for (Idx s = threadIdx.x; s < n_samples; s += kThreads) {
    const Coef3 c = sample_coef(a, static_cast<int64_t>(b_first + s));
    coef[3 * s] = static_cast<Acc>(c.c0);
    coef[3 * s + 1] = static_cast<Acc>(c.c1);
    coef[3 * s + 2] = static_cast<Acc>(c.c2);
  }
  __syncthreads();

  const Idx e0 = tile0 + 4 * static_cast<Idx>(threadIdx.x);
  if (e0 >= numel) return;
  const bool full = e0 + 4 <= numel;
  const bool vec = full && a.vec_ok;
  const T* x = static_cast<const T*>(a.x);
  const T* y = static_cast<const T*>(a.y);
  const T* noise = static_cast<const T*>(a.noise);

  Acc xv[4], yv[4] = {0, 0, 0, 0}, zv[4] = {0, 0, 0, 0};
  if (vec) {
    const Vec4<T> v = *reinterpret_cast<const Vec4<T>*>(x + e0);
#pragma unroll
    for (int l = 0; l < 4; ++l) xv[l] = to_acc(v.v[l]);
  } else {
#pragma unroll
    for (int l = 0; l < 4; ++l) xv[l] = e0 + l < numel ? to_acc(x[e0 + l]) : Acc(0);
  }
  if (y != nullptr) {
    if (vec) {
      const Vec4<T> v = *reinterpret_cast<const Vec4<T>*>(y + e0);
#pragma unroll
      for (int l = 0; l < 4; ++l) yv[l] = to_acc(v.v[l]);
    } else {
#pragma unroll
      for (int l = 0; l < 4; ++l) yv[l] = e0 + l < numel ? to_acc(y[e0 + l]) : Acc(0);
    }
  }
  const bool has_z = noise != nullptr || a.use_rng;
  if (noise != nullptr) {
    if (vec) {
      const Vec4<T> v = *reinterpret_cast<const Vec4<T>*>(noise + e0);
#pragma unroll
      for (int l = 0; l < 4; ++l) zv[l] = to_acc(v.v[l]);
    } else {
#pragma unroll
      for (int l = 0; l < 4; ++l) zv[l] = e0 + l < numel ? to_acc(noise[e0 + l]) : Acc(0);
    }
  } else if (a.use_rng) {
    // Read in-kernel so CUDA-graph replays see the tensor's current (seed, offset).
    const uint64_t seed = a.rng.device_ptr ? static_cast<uint64_t>(a.rng.device_ptr[0]) : a.rng.seed;
    const uint64_t offset = a.rng.device_ptr ? static_cast<uint64_t>(a.rng.device_ptr[1]) : a.rng.offset;
    float z[4];
    philox_normal4(seed, offset + static_cast<uint64_t>(e0 / 4), z);
#pragma unroll
    for (int l = 0; l < 4; ++l) zv[l] = static_cast<Acc>(z[l]);
  }

  Vec4<T> res;
  Idx b = e0 / inner;
  Idx next = (b + 1) * inner;
#pragma unroll
  for (int l = 0; l < 4; ++l) {
    if (e0 + l >= numel) break;  // past the end: no sample, and no coefficient slot was written for it
    while (e0 + l >= next) {  // a block of four may straddle samples when inner is small
      ++b;
      next += inner;
    }
    const Acc* c = coef + 3 * (b - b_first);
    Acc v = c[0] * xv[l];
    if (y != nullptr) v = v + c[1] * yv[l];
    if (has_z) v = v + c[2] * zv[l];
    res.v[l] = from_acc<T>(v);
  }
  T* out = static_cast<T*>(a.out);
  if (vec) {
    *reinterpret_cast<Vec4<T>*>(out + e0) = res;
  } else {
#pragma unroll
    for (int l = 0; l < 4; ++l)
      if (e0 + l < numel) out[e0 + l] = res.v[l];
  }
}

bool aligned(const void* p, int64_t bytes) { return p == nullptr || reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// The kernel's arguments for x's dtype T (vector loads only where every pointer allows them).
template <typename T>
KernelArgs kernel_args(const FusedArgs& f) {
  KernelArgs a{};
  a.op = f.op;
  a.x = f.x;
  a.y = f.y;
  a.noise = f.noise;
  a.use_rng = f.use_rng && f.noise == nullptr;
  a.rng = f.rng;
  a.numel = f.numel;
  a.inner = f.inner;
  a.level_from = f.level_from;
  a.level_to = f.level_to;
  a.alpha = f.alpha;
  a.sigma = f.sigma;
  a.n_levels = f.n_levels;
  a.eta = f.eta;
  a.step_size = f.step_size;
  a.step_is_double = f.step_dtype == DType::kDouble;
  a.norm_partials = f.norm_partials;
  a.n_partials = f.n_partials;
  a.max_norm = f.max_norm;
  a.out = f.out;
  const int64_t align = alignof(Vec4<T>);
  a.vec_ok = aligned(f.x, align) && aligned(f.y, align) && aligned(f.noise, align) && aligned(f.out, align);
  return a;
}

// One launch over every tile, indexing with Idx (32-bit whenever the element count allows).
template <typename T, typename Idx>
void launch_tiles(const KernelArgs& a, cudaStream_t stream) {
  using Acc = acc_t<T>;
  const int64_t tiles = (a.numel + kTile - 1) / kTile;
  // Samples one tile of kTile consecutive elements can touch (2 once inner >= kTile).
  const int64_t max_samples = (kTile - 1) / a.inner + 2;
  const size_t smem = static_cast<size_t>(3 * max_samples) * sizeof(Acc);
  fused_affine_kernel<T, Idx><<<static_cast<unsigned>(tiles), kThreads, smem, stream>>>(a);
}

template <typename T>
void launch_fused_typed(const FusedArgs& f, cudaStream_t stream) {
  const KernelArgs a = kernel_args<T>(f);
  if (f.numel + kTile < (int64_t{1} << 31)) {
    launch_tiles<T, uint32_t>(a, stream);
  } else {
    launch_tiles<T, int64_t>(a, stream);
  }
}

// ---- gradient norms (langevin_step with max_norm) ----

constexpr int kNormThreads = 256;
constexpr int64_t kNormChunk = 16384;  // elements per partial sum
constexpr int64_t kMaxPartials = 64;

template <typename T>
__global__ void __launch_bounds__(kNormThreads)
    grad_norm_partials_kernel(const T* __restrict__ grad, int64_t inner, int64_t n_partials, double* partials) {
  __shared__ double warp_sums[kNormThreads / 32];
  const int64_t b = blockIdx.x / n_partials, p = blockIdx.x % n_partials;
  const int64_t chunk = (inner + n_partials - 1) / n_partials;
  const int64_t start = p * chunk;
  const int64_t end = start + chunk < inner ? start + chunk : inner;
  const T* g = grad + b * inner;
  double s = 0.0;
  for (int64_t i = start + threadIdx.x; i < end; i += kNormThreads) {
    const double v = static_cast<double>(to_acc(g[i]));
    s += v * v;
  }
  s = warp_sum(s);
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    double t = 0.0;
    for (int w = 0; w < kNormThreads / 32; ++w) t += warp_sums[w];
    partials[blockIdx.x] = t;
  }
}

}  // namespace

void launch_fused(const FusedArgs& f, cudaStream_t stream) {
  if (f.numel == 0) return;
  switch (f.dtype) {
    case DType::kHalf: launch_fused_typed<__half>(f, stream); break;
    case DType::kBFloat16: launch_fused_typed<__nv_bfloat16>(f, stream); break;
    case DType::kFloat: launch_fused_typed<float>(f, stream); break;
    case DType::kDouble: launch_fused_typed<double>(f, stream); break;
  }
}

int64_t grad_norm_partials(int64_t B, int64_t inner) {
  (void)B;
  const int64_t p = (inner + kNormChunk - 1) / kNormChunk;
  return p < 1 ? 1 : (p > kMaxPartials ? kMaxPartials : p);
}

void launch_grad_norm_partials(const void* grad, DType dtype, int64_t B, int64_t inner, double* partials,
                               cudaStream_t stream) {
  if (B == 0) return;
  const int64_t P = grad_norm_partials(B, inner);
  // One block per (sample, partial); register.cpp checks B * P against the grid limit (2^31 - 1).
  const unsigned blocks = static_cast<unsigned>(B * P);
  switch (dtype) {
    case DType::kHalf:
      grad_norm_partials_kernel<<<blocks, kNormThreads, 0, stream>>>(static_cast<const __half*>(grad), inner, P,
                                                                      partials);
      break;
    case DType::kBFloat16:
      grad_norm_partials_kernel<<<blocks, kNormThreads, 0, stream>>>(static_cast<const __nv_bfloat16*>(grad), inner,
                                                                      P, partials);
      break;
    case DType::kFloat:
      grad_norm_partials_kernel<<<blocks, kNormThreads, 0, stream>>>(static_cast<const float*>(grad), inner, P,
                                                                      partials);
      break;
    case DType::kDouble:
      grad_norm_partials_kernel<<<blocks, kNormThreads, 0, stream>>>(static_cast<const double*>(grad), inner, P,
                                                                      partials);
      break;
  }
}

}  // namespace cuda
}  // namespace tts_fast
