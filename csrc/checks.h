// Argument checks shared by the CPU and CUDA entry points; they mirror tts_fast/_reference.py's
// check_* functions (same order, messages that name the argument). TORCH_CHECK_TYPE raises
// TypeError in Python, TORCH_CHECK_VALUE ValueError. Checks that would read tensor values (level
// ranges, step_size >= 0) run only for CPU tensors: on a GPU they would sync the host, so the CUDA
// kernels assert in-kernel instead.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "resample_math.h"

namespace tts_fast {

// torch-style dtype names ("float32"), as the reference prints them.
inline std::string dtype_name(c10::ScalarType t) {
  switch (t) {
    case c10::ScalarType::Half: return "float16";
    case c10::ScalarType::BFloat16: return "bfloat16";
    case c10::ScalarType::Float: return "float32";
    case c10::ScalarType::Double: return "float64";
    case c10::ScalarType::Long: return "int64";
    case c10::ScalarType::Int: return "int32";
    case c10::ScalarType::Bool: return "bool";
    default: return c10::toString(t);
  }
}

// A shape as Python prints a tuple: (), (3,), (2, 3).
inline std::string shape_str(const at::Tensor& t) {
  std::string s = "(";
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (d > 0) s += ", ";
    s += std::to_string(t.size(d));
  }
  return s + (t.dim() == 1 ? ",)" : ")");
}

inline bool is_x_dtype(c10::ScalarType t) {
  return t == c10::kHalf || t == c10::kBFloat16 || t == c10::kFloat || t == c10::kDouble;
}
inline bool is_w_dtype(c10::ScalarType t) { return t == c10::kFloat || t == c10::kDouble; }

inline void check_x_dtype(const at::Tensor& t, const char* name) {
  TORCH_CHECK_TYPE(is_x_dtype(t.scalar_type()), name,
                   " must have dtype in (float16, bfloat16, float32, float64), got ", dtype_name(t.scalar_type()));
}
inline void check_w_dtype(const at::Tensor& t, const char* name) {
  TORCH_CHECK_TYPE(is_w_dtype(t.scalar_type()), name, " must have dtype in (float32, float64), got ",
                   dtype_name(t.scalar_type()));
}

inline void check_same_device(const at::Tensor& t, const char* name, const at::Tensor& ref, const char* ref_name) {
  TORCH_CHECK_VALUE(t.device() == ref.device(), name, " is on ", t.device().str(), " but ", ref_name, " is on ",
                    ref.device().str(), "; they must share a device");
}

inline void check_rng(const at::Tensor& rng, const at::Tensor& ref, const char* ref_name) {
  TORCH_CHECK_VALUE(rng.scalar_type() == c10::kLong && rng.dim() == 1 && rng.size(0) == 2,
                    "rng must be an int64 tensor of shape [2] (seed, offset), got ", dtype_name(rng.scalar_type()), " ",
                    shape_str(rng));
  TORCH_CHECK_VALUE(rng.device().is_cpu() || rng.device() == ref.device(), "rng is on ", rng.device().str(),
                    "; it must be on the CPU or on ", ref_name, "'s device ", ref.device().str());
}

inline void check_one_source(bool has_a, const char* a_name, bool has_rng, bool required = true) {
  TORCH_CHECK_VALUE(!(has_a && has_rng), "pass either ", a_name, " or rng, not both");
  TORCH_CHECK_VALUE(!required || has_a || has_rng, "a random source is required: pass ", a_name,
                    " (a tensor) or rng (int64 [seed, offset])");
}

inline void check_log_weights(const at::Tensor& lw) {
  check_w_dtype(lw, "log_weights");
  TORCH_CHECK_VALUE(lw.dim() == 2, "log_weights must be 2-D [B, N], got shape ", shape_str(lw));
  TORCH_CHECK_VALUE(lw.size(1) >= 1, "log_weights must have at least one particle per row (N >= 1)");
}

inline Scheme parse_scheme(std::string_view s) {
  if (s == "multinomial") return Scheme::kMultinomial;
  if (s == "stratified") return Scheme::kStratified;
  if (s == "systematic") return Scheme::kSystematic;
  if (s == "residual") return Scheme::kResidual;
  if (s == "ssp") return Scheme::kSsp;
  TORCH_CHECK_VALUE(false, "scheme must be one of multinomial, stratified, systematic, residual, ssp; got '", s, "'");
}

inline Scheme check_resample(const at::Tensor& lw, const std::optional<at::Tensor>& uniforms,
                             const std::optional<at::Tensor>& rng, std::string_view scheme) {
  check_log_weights(lw);
  const Scheme sc = parse_scheme(scheme);
  check_one_source(uniforms.has_value(), "uniforms", rng.has_value());
  if (uniforms.has_value()) {
    check_w_dtype(*uniforms, "uniforms");
    TORCH_CHECK_VALUE(uniforms->sizes() == lw.sizes(), "uniforms must have the shape of log_weights ", shape_str(lw),
                      ", got ", shape_str(*uniforms));
    check_same_device(*uniforms, "uniforms", lw, "log_weights");
  } else {
    check_rng(*rng, lw, "log_weights");
  }
  return sc;
}

inline void check_x(const at::Tensor& x) {
  check_x_dtype(x, "x");
  TORCH_CHECK_VALUE(x.dim() >= 1, "x must have a leading batch dimension, got a 0-d tensor");
}

inline void check_like(const at::Tensor& t, const char* name, const at::Tensor& x) {
  TORCH_CHECK_VALUE(t.sizes() == x.sizes() && t.scalar_type() == x.scalar_type(), name,
                    " must match x in shape and dtype: ", shape_str(x), " ", dtype_name(x.scalar_type()), ", got ",
                    shape_str(t), " ", dtype_name(t.scalar_type()));
  check_same_device(t, name, x, "x");
}

inline void check_levels(const at::Tensor& x, const at::Tensor& level_from, const at::Tensor& level_to,
                         const at::Tensor& alpha, const at::Tensor& sigma) {
  TORCH_CHECK_TYPE(alpha.scalar_type() == c10::kDouble, "alpha must have dtype in (float64), got ",
                   dtype_name(alpha.scalar_type()));
  TORCH_CHECK_TYPE(sigma.scalar_type() == c10::kDouble, "sigma must have dtype in (float64), got ",
                   dtype_name(sigma.scalar_type()));
  TORCH_CHECK_VALUE(alpha.dim() == 1 && sigma.sizes() == alpha.sizes() && alpha.numel() >= 1,
                    "alpha and sigma must be 1-D tables of the same length >= 1, got ", shape_str(alpha), " and ",
                    shape_str(sigma));
  check_same_device(alpha, "alpha", x, "x");
  check_same_device(sigma, "sigma", x, "x");
  const int64_t n_levels = alpha.numel();
  const std::pair<const char*, const at::Tensor*> levels[] = {{"level_from", &level_from}, {"level_to", &level_to}};
  for (const auto& [name, lv] : levels) {
    TORCH_CHECK_TYPE(lv->scalar_type() == c10::kLong, name, " must be an int64 tensor of level indices");
    TORCH_CHECK_VALUE(lv->dim() == 1 && lv->size(0) == x.size(0), name, " must have shape [B] = [", x.size(0),
                      "], got ", shape_str(*lv));
    check_same_device(*lv, name, x, "x");
    if (lv->device().is_cpu() && lv->numel() > 0) {
      const at::Tensor c = lv->contiguous();
      const int64_t* p = c.data_ptr<int64_t>();
      bool ok = true;
      for (int64_t i = 0; i < c.numel(); ++i) ok = ok && p[i] >= 0 && p[i] < n_levels;
      TORCH_CHECK_VALUE(ok, name, " values must lie in [0, ", n_levels, ") (the length of alpha/sigma)");
    }
  }
}

inline void check_renoise(const at::Tensor& x, const at::Tensor& level_from, const at::Tensor& level_to,
                          const at::Tensor& alpha, const at::Tensor& sigma, const std::optional<at::Tensor>& noise,
                          const std::optional<at::Tensor>& rng) {
  check_x(x);
  check_levels(x, level_from, level_to, alpha, sigma);
  check_one_source(noise.has_value(), "noise", rng.has_value());
  if (noise.has_value()) {
    check_like(*noise, "noise", x);
  } else {
    check_rng(*rng, x, "x");
  }
}

inline void check_ddim_step(const at::Tensor& x, const at::Tensor& x0_hat, const at::Tensor& level_from,
                            const at::Tensor& level_to, const at::Tensor& alpha, const at::Tensor& sigma, double eta,
                            const std::optional<at::Tensor>& noise, const std::optional<at::Tensor>& rng) {
  check_x(x);
  check_like(x0_hat, "x0_hat", x);
  check_levels(x, level_from, level_to, alpha, sigma);
  TORCH_CHECK_VALUE(eta >= 0.0 && eta <= 1.0, "eta must lie in [0, 1], got ", eta);
  check_one_source(noise.has_value(), "noise", rng.has_value(), /*required=*/eta > 0);
  if (noise.has_value()) {
    check_like(*noise, "noise", x);
  } else if (rng.has_value()) {
    check_rng(*rng, x, "x");
  }
}

inline void check_langevin_step(const at::Tensor& x, const at::Tensor& grad, const at::Tensor& step_size,
                                const std::optional<at::Tensor>& noise, const std::optional<at::Tensor>& rng,
                                std::optional<double> max_norm) {
  check_x(x);
  check_like(grad, "grad", x);
  check_w_dtype(step_size, "step_size");
  TORCH_CHECK_VALUE(step_size.dim() == 1 && step_size.size(0) == x.size(0), "step_size must have shape [B] = [",
                    x.size(0), "], got ", shape_str(step_size));
  check_same_device(step_size, "step_size", x, "x");
  if (step_size.device().is_cpu() && step_size.numel() > 0) {
    const at::Tensor c = step_size.to(c10::kDouble).contiguous();
    const double* p = c.data_ptr<double>();
    bool ok = true;
    for (int64_t i = 0; i < c.numel(); ++i) ok = ok && !(p[i] < 0);
    TORCH_CHECK_VALUE(ok, "step_size must be >= 0");
  }
  TORCH_CHECK_VALUE(!max_norm.has_value() || *max_norm > 0, "max_norm must be > 0 or None, got ",
                    max_norm.value_or(0.0));
  check_one_source(noise.has_value(), "noise", rng.has_value());
  if (noise.has_value()) {
    check_like(*noise, "noise", x);
  } else {
    check_rng(*rng, x, "x");
  }
}

// (seed, offset) of an rng tensor that lives on the CPU (no device read, no sync).
struct HostRng {
  uint64_t seed;
  uint64_t offset;
};
inline HostRng read_cpu_rng(const at::Tensor& rng) {
  const at::Tensor c = rng.contiguous();
  const int64_t* p = c.data_ptr<int64_t>();
  return HostRng{static_cast<uint64_t>(p[0]), static_cast<uint64_t>(p[1])};
}

}  // namespace tts_fast
