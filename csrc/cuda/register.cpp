// CUDA entry points of the tts_fast ops: argument checks (checks.h), device guard, contiguous
// inputs, allocation of outputs and scratch (sizes depend on shapes only), launch on the current
// stream, launch check. No host sync, no .item(): the only host reads are of an rng tensor that
// already lives on the CPU; an rng on the GPU is read inside the kernels.
//
// All of it through the LibTorch stable ABI: torch::stable::accelerator::DeviceGuard for the
// device, the AOTI shim's aoti_torch_get_current_cuda_stream for torch's current stream (the
// stable accelerator Stream exposes its native handle only from torch 2.13; this library targets
// 2.10), the CUDA runtime's own cudaStreamIsCapturing for the capture check, and
// STD_CUDA_KERNEL_LAUNCH_CHECK after each launch.
#include <cuda_runtime_api.h>
#include <torch/csrc/inductor/aoti_torch/c/shim.h>
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/macros.h>

#include <vector>

#include "../checks.h"
#include "../stable_api.h"
#include "launch.h"

namespace tts_fast {
namespace {

using torch::stable::accelerator::DeviceGuard;

// torch's current CUDA stream on `t`'s device (what c10::cuda::getCurrentCUDAStream returns).
cudaStream_t current_stream(const Tensor& t) {
  void* stream = nullptr;
  STABLE_TORCH_ERROR_CODE_CHECK(aoti_torch_get_current_cuda_stream(t.get_device_index(), &stream));
  return static_cast<cudaStream_t>(stream);
}

cuda::DType dtype_of(const Tensor& t) {
  switch (t.scalar_type()) {
    case ScalarType::Half: return cuda::DType::kHalf;
    case ScalarType::BFloat16: return cuda::DType::kBFloat16;
    case ScalarType::Float: return cuda::DType::kFloat;
    case ScalarType::Double: return cuda::DType::kDouble;
    default: throw TypeError(cat("unsupported dtype ", dtype_name(t.scalar_type())));
  }
}

// The checks have established that every tensor is on `t`'s device or (rng only) on the CPU;
// a CPU primary tensor reaches this backend only through a CUDA argument that the checks reject.
void expect_cuda(const Tensor& t, const char* name) {
  TTS_CHECK_VALUE(t.is_cuda(), name, " must be a CUDA tensor for the CUDA kernels, got ", device_str(t.device()));
}

cuda::RngArg rng_arg(const Tensor& rng, cudaStream_t stream, std::vector<Tensor>& keep) {
  cuda::RngArg r;
  if (rng.is_cpu()) {
    // A CPU (seed, offset) becomes a kernel argument: a CUDA graph would freeze it and every
    // replay would draw the same numbers. Refuse instead of silently repeating.
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    STD_CUDA_CHECK(cudaStreamIsCapturing(stream, &capture));
    TTS_CHECK_VALUE(capture == cudaStreamCaptureStatusNone,
                    "rng on the CPU would be frozen into a CUDA graph being captured; put it on the GPU "
                    "(tts_fast.ops.Philox keeps its counter on the device)");
    const HostRng h = read_cpu_rng(rng);
    r.seed = h.seed;
    r.offset = h.offset;
  } else {
    keep.push_back(torch::stable::contiguous(rng));
    r.device_ptr = keep.back().const_data_ptr<int64_t>();
  }
  return r;
}

// resample: log_weights [B, N] float32/64 (CUDA), uniforms [B, N] float32/64 or rng int64[2]
// -> ancestors [B, N] int64.
Tensor resample_cuda(const Tensor& log_weights, const std::optional<Tensor>& uniforms, const std::optional<Tensor>& rng,
                     const std::string& scheme_name) {
  const Scheme scheme = check_resample(log_weights, uniforms, rng, scheme_name);
  expect_cuda(log_weights, "log_weights");
  const DeviceGuard guard(log_weights.get_device_index());
  const int64_t B = log_weights.size(0), N = log_weights.size(1);
  Tensor out = empty_on(log_weights, {B, N}, ScalarType::Long);
  if (B == 0) return out;
  const cudaStream_t stream = current_stream(log_weights);
  std::vector<Tensor> keep;
  const Tensor lw = torch::stable::contiguous(log_weights);
  const Tensor ws_w = empty_on(lw, {B, N}, ScalarType::Double);
  cuda::ResampleArgs a;
  a.log_weights = lw.const_data_ptr();
  a.lw_dtype = dtype_of(lw);
  if (uniforms.has_value()) {
    keep.push_back(torch::stable::contiguous(*uniforms));
    a.uniforms = keep.back().const_data_ptr();
    a.u_dtype = dtype_of(keep.back());
  } else {
    a.rng = rng_arg(*rng, stream, keep);
    keep.push_back(empty_on(lw, {B, N}, ScalarType::Double));
    a.ws_u = keep.back().mutable_data_ptr<double>();
  }
  if (scheme == Scheme::kResidual || scheme == Scheme::kSsp) {
    keep.push_back(empty_on(lw, {B, N}, ScalarType::Long));
    a.ws_i = keep.back().mutable_data_ptr<int64_t>();
  }
  a.B = B;
  a.N = N;
  a.scheme = static_cast<int>(scheme);
  a.ws_w = ws_w.mutable_data_ptr<double>();
  a.out = out.mutable_data_ptr<int64_t>();
  cuda::launch_resample(a, stream);
  STD_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

// Shared tail of the three fused elementwise ops: x [B, ...] contiguous, noise / rng.
Tensor run_fused(cuda::FusedArgs& a, const Tensor& x_in, const Tensor* y, const std::optional<Tensor>& noise,
                 const std::optional<Tensor>& rng, bool want_noise, cudaStream_t stream, std::vector<Tensor>& keep) {
  const Tensor x = torch::stable::contiguous(x_in);
  // The output has x's layout (empty_like, as the fake kernel), computed in row-major order.
  Tensor result = torch::stable::empty_like(x_in);
  const bool direct = result.is_contiguous();
  Tensor out = direct ? result : torch::stable::empty_like(x);
  a.dtype = dtype_of(x);
  a.x = x.const_data_ptr();
  a.numel = x.numel();
  a.B = x.size(0);
  a.inner = a.B > 0 ? a.numel / a.B : 0;
  if (y != nullptr) {
    keep.push_back(torch::stable::contiguous(*y));
    a.y = keep.back().const_data_ptr();
  }
  if (want_noise) {
    if (noise.has_value()) {
      keep.push_back(torch::stable::contiguous(*noise));
      a.noise = keep.back().const_data_ptr();
    } else {
      a.use_rng = true;
      a.rng = rng_arg(*rng, stream, keep);
    }
  }
  a.out = out.mutable_data_ptr();
  if (a.numel == 0) return result;
  cuda::launch_fused(a, stream);
  STD_CUDA_KERNEL_LAUNCH_CHECK();
  if (!direct) torch::stable::copy_(result, out);
  return result;
}

void set_levels(cuda::FusedArgs& a, const Tensor& level_from, const Tensor& level_to, const Tensor& alpha,
                const Tensor& sigma, std::vector<Tensor>& keep) {
  keep.push_back(torch::stable::contiguous(level_from));
  a.level_from = keep.back().const_data_ptr<int64_t>();
  keep.push_back(torch::stable::contiguous(level_to));
  a.level_to = keep.back().const_data_ptr<int64_t>();
  keep.push_back(torch::stable::contiguous(alpha));
  a.alpha = keep.back().const_data_ptr<double>();
  keep.push_back(torch::stable::contiguous(sigma));
  a.sigma = keep.back().const_data_ptr<double>();
  a.n_levels = alpha.numel();
}

// renoise: x [B, ...] float16/bfloat16/float32/float64 on CUDA, levels [B] int64, tables [L] float64.
Tensor renoise_cuda(const Tensor& x, const Tensor& level_from, const Tensor& level_to, const Tensor& alpha,
                    const Tensor& sigma, const std::optional<Tensor>& noise, const std::optional<Tensor>& rng) {
  check_renoise(x, level_from, level_to, alpha, sigma, noise, rng);
  expect_cuda(x, "x");
  const DeviceGuard guard(x.get_device_index());
  std::vector<Tensor> keep;
  cuda::FusedArgs a;
  a.op = cuda::FusedOp::kRenoise;
  set_levels(a, level_from, level_to, alpha, sigma, keep);
  return run_fused(a, x, nullptr, noise, rng, true, current_stream(x), keep);
}

// ddim_step: x, x0_hat [B, ...] same dtype; noise / rng only when eta > 0.
Tensor ddim_step_cuda(const Tensor& x, const Tensor& x0_hat, const Tensor& level_from, const Tensor& level_to,
                      const Tensor& alpha, const Tensor& sigma, double eta, const std::optional<Tensor>& noise,
                      const std::optional<Tensor>& rng) {
  check_ddim_step(x, x0_hat, level_from, level_to, alpha, sigma, eta, noise, rng);
  expect_cuda(x, "x");
  const DeviceGuard guard(x.get_device_index());
  std::vector<Tensor> keep;
  cuda::FusedArgs a;
  a.op = cuda::FusedOp::kDdim;
  a.eta = eta;
  set_levels(a, level_from, level_to, alpha, sigma, keep);
  return run_fused(a, x, &x0_hat, noise, rng, /*want_noise=*/eta > 0, current_stream(x), keep);
}

// langevin_step: x, grad [B, ...] same dtype, step_size [B] float32/64. With max_norm, two
// launches: per-sample partial sums of grad^2, then the fused update (which clips with them).
Tensor langevin_step_cuda(const Tensor& x, const Tensor& grad, const Tensor& step_size,
                          const std::optional<Tensor>& noise, const std::optional<Tensor>& rng,
                          std::optional<double> max_norm) {
  check_langevin_step(x, grad, step_size, noise, rng, max_norm);
  expect_cuda(x, "x");
  const DeviceGuard guard(x.get_device_index());
  const cudaStream_t stream = current_stream(x);
  std::vector<Tensor> keep;
  cuda::FusedArgs a;
  a.op = cuda::FusedOp::kLangevin;
  keep.push_back(torch::stable::contiguous(step_size));
  a.step_size = keep.back().const_data_ptr();
  a.step_dtype = dtype_of(step_size);
  const int64_t B = x.size(0);
  const int64_t inner = B > 0 ? x.numel() / B : 0;
  if (max_norm.has_value() && x.numel() > 0) {
    const Tensor g = torch::stable::contiguous(grad);
    keep.push_back(g);
    a.n_partials = cuda::grad_norm_partials(B, inner);
    // one block per (sample, partial): the grid's x-dimension holds at most 2^31 - 1 blocks
    TTS_CHECK_VALUE(B * a.n_partials <= 2147483647LL, "langevin_step with max_norm: ", B, " samples x ", a.n_partials,
                    " partial norms exceed the CUDA grid limit; split the batch");
    const Tensor partials = empty_on(x, {B * a.n_partials}, ScalarType::Double);
    keep.push_back(partials);
    a.norm_partials = partials.const_data_ptr<double>();
    a.max_norm = *max_norm;
    cuda::launch_grad_norm_partials(g.const_data_ptr(), dtype_of(g), B, inner, partials.mutable_data_ptr<double>(),
                                    stream);
    STD_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return run_fused(a, x, &grad, noise, rng, true, stream, keep);
}

// ess: log_weights [B, N] float32/64 -> [B] same dtype.
Tensor ess_cuda(const Tensor& log_weights) {
  check_log_weights(log_weights);
  expect_cuda(log_weights, "log_weights");
  const DeviceGuard guard(log_weights.get_device_index());
  const Tensor lw = torch::stable::contiguous(log_weights);
  Tensor out = empty_on(lw, {lw.size(0)}, lw.scalar_type());
  cuda::launch_ess(lw.const_data_ptr(), dtype_of(lw), lw.size(0), lw.size(1), out.mutable_data_ptr(),
                   current_stream(lw));
  STD_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

// normalize_log_weights: [B, N] float32/64 -> [B, N] same dtype.
Tensor normalize_log_weights_cuda(const Tensor& log_weights) {
  check_log_weights(log_weights);
  expect_cuda(log_weights, "log_weights");
  const DeviceGuard guard(log_weights.get_device_index());
  const Tensor lw = torch::stable::contiguous(log_weights);
  Tensor result = torch::stable::empty_like(log_weights);  // input layout, as the fake kernel
  const bool direct = result.is_contiguous();
  Tensor out = direct ? result : torch::stable::empty_like(lw);
  cuda::launch_normalize(lw.const_data_ptr(), dtype_of(lw), lw.size(0), lw.size(1), out.mutable_data_ptr(),
                         current_stream(lw));
  STD_CUDA_KERNEL_LAUNCH_CHECK();
  if (!direct) torch::stable::copy_(result, out);
  return result;
}

// adaptive_increment: [B, N] float64 / bool rows, [B] float64 target and cap -> [B] float64.
Tensor adaptive_increment_cuda(const Tensor& log_w, const Tensor& base, const Tensor& key, const Tensor& alive,
                               const Tensor& target, const Tensor& cap) {
  check_adaptive_increment(log_w, base, key, alive, target, cap);
  expect_cuda(log_w, "log_w");
  const DeviceGuard guard(log_w.get_device_index());
  const Tensor lw = torch::stable::contiguous(log_w), bs = torch::stable::contiguous(base),
               ky = torch::stable::contiguous(key), al = torch::stable::contiguous(alive),
               tg = torch::stable::contiguous(target), cp = torch::stable::contiguous(cap);
  Tensor out = empty_on(lw, {lw.size(0)}, ScalarType::Double);
  cuda::launch_adaptive_increment(lw.const_data_ptr<double>(), bs.const_data_ptr<double>(), ky.const_data_ptr<double>(),
                                  al.const_data_ptr<bool>(), tg.const_data_ptr<double>(), cp.const_data_ptr<double>(),
                                  lw.size(0), lw.size(1), out.mutable_data_ptr<double>(), current_stream(lw));
  STD_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(tts_fast, CUDA, m) {
  m.impl("resample", TORCH_BOX(&resample_cuda));
  m.impl("renoise", TORCH_BOX(&renoise_cuda));
  m.impl("ddim_step", TORCH_BOX(&ddim_step_cuda));
  m.impl("langevin_step", TORCH_BOX(&langevin_step_cuda));
  m.impl("ess", TORCH_BOX(&ess_cuda));
  m.impl("normalize_log_weights", TORCH_BOX(&normalize_log_weights_cuda));
  m.impl("adaptive_increment", TORCH_BOX(&adaptive_increment_cuda));
}

}  // namespace tts_fast
