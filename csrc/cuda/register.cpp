// CUDA entry points of the tts_fast ops: argument checks (checks.h), device guard, contiguous
// inputs, allocation of outputs and scratch (sizes depend on shapes only), launch on the current
// stream, launch check. No host sync, no .item(): the only host reads are of an rng tensor that
// already lives on the CPU; an rng on the GPU is read inside the kernels.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGraphsC10Utils.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../checks.h"
#include "launch.h"

namespace tts_fast {
namespace {

cuda::DType dtype_of(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case c10::kHalf: return cuda::DType::kHalf;
    case c10::kBFloat16: return cuda::DType::kBFloat16;
    case c10::kFloat: return cuda::DType::kFloat;
    case c10::kDouble: return cuda::DType::kDouble;
    default: TORCH_CHECK_TYPE(false, "unsupported dtype ", dtype_name(t.scalar_type()));
  }
}

// The checks have established that every tensor is on `t`'s device or (rng only) on the CPU;
// a CPU primary tensor reaches this backend only through a CUDA argument that the checks reject.
void expect_cuda(const at::Tensor& t, const char* name) {
  TORCH_CHECK_VALUE(t.is_cuda(), name, " must be a CUDA tensor for the CUDA kernels, got ", t.device().str());
}

cuda::RngArg rng_arg(const at::Tensor& rng, std::vector<at::Tensor>& keep) {
  cuda::RngArg r;
  if (rng.is_cpu()) {
    // A CPU (seed, offset) becomes a kernel argument: a CUDA graph would freeze it and every
    // replay would draw the same numbers. Refuse instead of silently repeating.
    TORCH_CHECK_VALUE(c10::cuda::currentStreamCaptureStatusMayInitCtx() == c10::cuda::CaptureStatus::None,
                      "rng on the CPU would be frozen into a CUDA graph being captured; put it on the GPU "
                      "(tts_fast.ops.Philox keeps its counter on the device)");
    const HostRng h = read_cpu_rng(rng);
    r.seed = h.seed;
    r.offset = h.offset;
  } else {
    keep.push_back(rng.contiguous());
    r.device_ptr = keep.back().const_data_ptr<int64_t>();
  }
  return r;
}

// resample: log_weights [B, N] float32/64 (CUDA), uniforms [B, N] float32/64 or rng int64[2]
// -> ancestors [B, N] int64.
at::Tensor resample_cuda(const at::Tensor& log_weights, const std::optional<at::Tensor>& uniforms,
                         const std::optional<at::Tensor>& rng, c10::string_view scheme_name) {
  const Scheme scheme = check_resample(log_weights, uniforms, rng, scheme_name);
  expect_cuda(log_weights, "log_weights");
  const c10::cuda::CUDAGuard guard(log_weights.device());
  const int64_t B = log_weights.size(0), N = log_weights.size(1);
  at::Tensor out = at::empty({B, N}, log_weights.options().dtype(c10::kLong));
  if (B == 0) return out;
  std::vector<at::Tensor> keep;
  const at::Tensor lw = log_weights.contiguous();
  const at::Tensor ws_w = at::empty({B, N}, lw.options().dtype(c10::kDouble));
  at::Tensor ws_i, ws_u, u;
  cuda::ResampleArgs a;
  a.log_weights = lw.const_data_ptr();
  a.lw_dtype = dtype_of(lw);
  if (uniforms.has_value()) {
    u = uniforms->contiguous();
    a.uniforms = u.const_data_ptr();
    a.u_dtype = dtype_of(u);
  } else {
    a.rng = rng_arg(*rng, keep);
    ws_u = at::empty({B, N}, lw.options().dtype(c10::kDouble));
    a.ws_u = ws_u.data_ptr<double>();
  }
  if (scheme == Scheme::kResidual || scheme == Scheme::kSsp) {
    ws_i = at::empty({B, N}, lw.options().dtype(c10::kLong));
    a.ws_i = ws_i.data_ptr<int64_t>();
  }
  a.B = B;
  a.N = N;
  a.scheme = static_cast<int>(scheme);
  a.ws_w = ws_w.data_ptr<double>();
  a.out = out.data_ptr<int64_t>();
  cuda::launch_resample(a, c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

// Shared tail of the three fused elementwise ops: x [B, ...] contiguous, noise / rng.
at::Tensor run_fused(cuda::FusedArgs& a, const at::Tensor& x_in, const at::Tensor* y,
                     const std::optional<at::Tensor>& noise, const std::optional<at::Tensor>& rng, bool want_noise,
                     std::vector<at::Tensor>& keep) {
  const at::Tensor x = x_in.contiguous();
  // The output has x's layout (empty_like, as the fake kernel), computed in row-major order.
  at::Tensor result = at::empty_like(x_in);
  at::Tensor out = result.is_contiguous() ? result : at::empty_like(x);
  a.dtype = dtype_of(x);
  a.x = x.const_data_ptr();
  a.numel = x.numel();
  a.B = x.size(0);
  a.inner = a.B > 0 ? a.numel / a.B : 0;
  if (y != nullptr) {
    keep.push_back(y->contiguous());
    a.y = keep.back().const_data_ptr();
  }
  if (want_noise) {
    if (noise.has_value()) {
      keep.push_back(noise->contiguous());
      a.noise = keep.back().const_data_ptr();
    } else {
      a.use_rng = true;
      a.rng = rng_arg(*rng, keep);
    }
  }
  a.out = out.data_ptr();
  if (a.numel == 0) return result;
  cuda::launch_fused(a, c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  if (!result.is_same(out)) result.copy_(out);
  return result;
}

void set_levels(cuda::FusedArgs& a, const at::Tensor& level_from, const at::Tensor& level_to,
                const at::Tensor& alpha, const at::Tensor& sigma, std::vector<at::Tensor>& keep) {
  keep.push_back(level_from.contiguous());
  a.level_from = keep.back().const_data_ptr<int64_t>();
  keep.push_back(level_to.contiguous());
  a.level_to = keep.back().const_data_ptr<int64_t>();
  keep.push_back(alpha.contiguous());
  a.alpha = keep.back().const_data_ptr<double>();
  keep.push_back(sigma.contiguous());
  a.sigma = keep.back().const_data_ptr<double>();
  a.n_levels = alpha.numel();
}

// renoise: x [B, ...] float16/bfloat16/float32/float64, levels [B] int64, alpha/sigma [L] float64.
at::Tensor renoise_cuda(const at::Tensor& x, const at::Tensor& level_from, const at::Tensor& level_to,
                        const at::Tensor& alpha, const at::Tensor& sigma, const std::optional<at::Tensor>& noise,
                        const std::optional<at::Tensor>& rng) {
  check_renoise(x, level_from, level_to, alpha, sigma, noise, rng);
  expect_cuda(x, "x");
  const c10::cuda::CUDAGuard guard(x.device());
  std::vector<at::Tensor> keep;
  cuda::FusedArgs a;
  a.op = cuda::FusedOp::kRenoise;
  set_levels(a, level_from, level_to, alpha, sigma, keep);
  return run_fused(a, x, nullptr, noise, rng, true, keep);
}

// ddim_step: x, x0_hat [B, ...] same dtype, levels as renoise, eta in [0, 1].
at::Tensor ddim_step_cuda(const at::Tensor& x, const at::Tensor& x0_hat, const at::Tensor& level_from,
                          const at::Tensor& level_to, const at::Tensor& alpha, const at::Tensor& sigma, double eta,
                          const std::optional<at::Tensor>& noise, const std::optional<at::Tensor>& rng) {
  check_ddim_step(x, x0_hat, level_from, level_to, alpha, sigma, eta, noise, rng);
  expect_cuda(x, "x");
  const c10::cuda::CUDAGuard guard(x.device());
  std::vector<at::Tensor> keep;
  cuda::FusedArgs a;
  a.op = cuda::FusedOp::kDdim;
  a.eta = eta;
  set_levels(a, level_from, level_to, alpha, sigma, keep);
  return run_fused(a, x, &x0_hat, noise, rng, /*want_noise=*/eta > 0, keep);
}

// langevin_step: x, grad [B, ...] same dtype, step_size [B] float32/64. With max_norm, two
// launches: per-sample partial sums of grad^2, then the fused update (which clips with them).
at::Tensor langevin_step_cuda(const at::Tensor& x, const at::Tensor& grad, const at::Tensor& step_size,
                              const std::optional<at::Tensor>& noise, const std::optional<at::Tensor>& rng,
                              std::optional<double> max_norm) {
  check_langevin_step(x, grad, step_size, noise, rng, max_norm);
  expect_cuda(x, "x");
  const c10::cuda::CUDAGuard guard(x.device());
  std::vector<at::Tensor> keep;
  cuda::FusedArgs a;
  a.op = cuda::FusedOp::kLangevin;
  keep.push_back(step_size.contiguous());
  a.step_size = keep.back().const_data_ptr();
  a.step_dtype = dtype_of(step_size);
  const int64_t B = x.size(0);
  const int64_t inner = B > 0 ? x.numel() / B : 0;
  if (max_norm.has_value() && x.numel() > 0) {
    const at::Tensor g = grad.contiguous();
    keep.push_back(g);
    a.n_partials = cuda::grad_norm_partials(B, inner);
    // one block per (sample, partial): the grid's x-dimension holds at most 2^31 - 1 blocks
    TORCH_CHECK_VALUE(B * a.n_partials <= 2147483647LL, "langevin_step with max_norm: ", B, " samples x ",
                      a.n_partials, " partial norms exceed the CUDA grid limit; split the batch");
    at::Tensor partials = at::empty({B * a.n_partials}, x.options().dtype(c10::kDouble));
    keep.push_back(partials);
    a.norm_partials = partials.const_data_ptr<double>();
    a.max_norm = *max_norm;
    cuda::launch_grad_norm_partials(g.const_data_ptr(), dtype_of(g), B, inner, partials.data_ptr<double>(),
                                    c10::cuda::getCurrentCUDAStream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return run_fused(a, x, &grad, noise, rng, true, keep);
}

// ess: log_weights [B, N] float32/64 -> [B] same dtype.
at::Tensor ess_cuda(const at::Tensor& log_weights) {
  check_log_weights(log_weights);
  expect_cuda(log_weights, "log_weights");
  const c10::cuda::CUDAGuard guard(log_weights.device());
  const at::Tensor lw = log_weights.contiguous();
  at::Tensor out = at::empty({lw.size(0)}, lw.options());
  cuda::launch_ess(lw.const_data_ptr(), dtype_of(lw), lw.size(0), lw.size(1), out.data_ptr(),
                   c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

// normalize_log_weights: [B, N] float32/64 -> [B, N] same dtype.
at::Tensor normalize_log_weights_cuda(const at::Tensor& log_weights) {
  check_log_weights(log_weights);
  expect_cuda(log_weights, "log_weights");
  const c10::cuda::CUDAGuard guard(log_weights.device());
  const at::Tensor lw = log_weights.contiguous();
  at::Tensor result = at::empty_like(log_weights);  // input layout, as the fake kernel
  at::Tensor out = result.is_contiguous() ? result : at::empty_like(lw);
  cuda::launch_normalize(lw.const_data_ptr(), dtype_of(lw), lw.size(0), lw.size(1), out.data_ptr(),
                         c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  if (!result.is_same(out)) result.copy_(out);
  return result;
}

}  // namespace

TORCH_LIBRARY_IMPL(tts_fast, CUDA, m) {
  m.impl("resample", &resample_cuda);
  m.impl("renoise", &renoise_cuda);
  m.impl("ddim_step", &ddim_step_cuda);
  m.impl("langevin_step", &langevin_step_cuda);
  m.impl("ess", &ess_cuda);
  m.impl("normalize_log_weights", &normalize_log_weights_cuda);
}

}  // namespace tts_fast
