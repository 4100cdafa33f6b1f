// Argument checks shared by the CPU and CUDA entry points; they mirror tts_fast/_reference.py's
// check_* functions (same order, messages that name the argument). TTS_CHECK_TYPE raises
// TypeError in Python, TTS_CHECK_VALUE ValueError (errors.h). Checks that would read tensor values
// (level ranges, step_size >= 0) run only for CPU tensors: on a GPU they would sync the host, so
// the CUDA kernels assert in-kernel instead.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "coefficients.h"
#include "errors.h"
#include "resample_math.h"
#include "stable_api.h"
#include "tempering_math.h"

namespace tts_fast {

inline bool is_x_dtype(ScalarType t) {
  return t == ScalarType::Half || t == ScalarType::BFloat16 || t == ScalarType::Float || t == ScalarType::Double;
}
inline bool is_w_dtype(ScalarType t) { return t == ScalarType::Float || t == ScalarType::Double; }

inline void check_x_dtype(const Tensor& t, const char* name) {
  TTS_CHECK_TYPE(is_x_dtype(t.scalar_type()), name,
                   " must have dtype in (float16, bfloat16, float32, float64), got ", dtype_name(t.scalar_type()));
}
inline void check_w_dtype(const Tensor& t, const char* name) {
  TTS_CHECK_TYPE(is_w_dtype(t.scalar_type()), name, " must have dtype in (float32, float64), got ",
                   dtype_name(t.scalar_type()));
}

inline void check_same_device(const Tensor& t, const char* name, const Tensor& ref, const char* ref_name) {
  TTS_CHECK_VALUE(t.device() == ref.device(), name, " is on ", device_str(t.device()), " but ", ref_name, " is on ",
                    device_str(ref.device()), "; they must share a device");
}

inline void check_rng(const Tensor& rng, const Tensor& ref, const char* ref_name) {
  TTS_CHECK_VALUE(rng.scalar_type() == ScalarType::Long && rng.dim() == 1 && rng.size(0) == 2,
                    "rng must be an int64 tensor of shape [2] (seed, offset), got ", dtype_name(rng.scalar_type()), " ",
                    shape_str(rng));
  TTS_CHECK_VALUE(rng.is_cpu() || rng.device() == ref.device(), "rng is on ", device_str(rng.device()),
                    "; it must be on the CPU or on ", ref_name, "'s device ", device_str(ref.device()));
}

inline void check_one_source(bool has_a, const char* a_name, bool has_rng, bool required = true) {
  TTS_CHECK_VALUE(!(has_a && has_rng), "pass either ", a_name, " or rng, not both");
  TTS_CHECK_VALUE(!required || has_a || has_rng, "a random source is required: pass ", a_name,
                    " (a tensor) or rng (int64 [seed, offset])");
}

inline void check_log_weights(const Tensor& lw) {
  check_w_dtype(lw, "log_weights");
  TTS_CHECK_VALUE(lw.dim() == 2, "log_weights must be 2-D [B, N], got shape ", shape_str(lw));
  TTS_CHECK_VALUE(lw.size(1) >= 1, "log_weights must have at least one particle per row (N >= 1)");
}

inline Scheme parse_scheme(std::string_view s) {
  if (s == "multinomial") return Scheme::kMultinomial;
  if (s == "stratified") return Scheme::kStratified;
  if (s == "systematic") return Scheme::kSystematic;
  if (s == "residual") return Scheme::kResidual;
  if (s == "ssp") return Scheme::kSsp;
  throw std::invalid_argument(cat("scheme must be one of multinomial, stratified, systematic, residual, ssp; got '", s, "'"));
}

inline Scheme check_resample(const Tensor& lw, const std::optional<Tensor>& uniforms,
                             const std::optional<Tensor>& rng, std::string_view scheme) {
  check_log_weights(lw);
  const Scheme sc = parse_scheme(scheme);
  check_one_source(uniforms.has_value(), "uniforms", rng.has_value());
  if (uniforms.has_value()) {
    check_w_dtype(*uniforms, "uniforms");
    TTS_CHECK_VALUE(same_sizes(*uniforms, lw), "uniforms must have the shape of log_weights ", shape_str(lw),
                      ", got ", shape_str(*uniforms));
    check_same_device(*uniforms, "uniforms", lw, "log_weights");
    // Values on the CPU only (on a GPU the kernel asserts): out of [0, 1) the inverse-cdf targets
    // leave the row's total and the ancestors are skewed, not an error of any later step.
    if (uniforms->is_cpu() && uniforms->numel() > 0) {
      const Tensor c = torch::stable::contiguous(torch::stable::to(*uniforms, ScalarType::Double));
      const double* p = c.const_data_ptr<double>();
      const int64_t n = lw.size(1);
      for (int64_t i = 0; i < c.numel(); ++i)
        TTS_CHECK_VALUE(p[i] >= 0.0 && p[i] < 1.0, "uniforms must lie in [0, 1), got ", p[i], " at [", i / n, ", ",
                        i % n, "]");
    }
  } else {
    check_rng(*rng, lw, "log_weights");
  }
  return sc;
}

inline void check_x(const Tensor& x) {
  check_x_dtype(x, "x");
  TTS_CHECK_VALUE(x.dim() >= 1, "x must have a leading batch dimension, got a 0-d tensor");
}

inline void check_like(const Tensor& t, const char* name, const Tensor& x) {
  TTS_CHECK_VALUE(same_sizes(t, x) && t.scalar_type() == x.scalar_type(), name,
                    " must match x in shape and dtype: ", shape_str(x), " ", dtype_name(x.scalar_type()), ", got ",
                    shape_str(t), " ", dtype_name(t.scalar_type()));
  check_same_device(t, name, x, "x");
}

inline void check_levels(const Tensor& x, const Tensor& level_from, const Tensor& level_to,
                         const Tensor& alpha, const Tensor& sigma) {
  TTS_CHECK_TYPE(alpha.scalar_type() == ScalarType::Double, "alpha must have dtype in (float64), got ",
                   dtype_name(alpha.scalar_type()));
  TTS_CHECK_TYPE(sigma.scalar_type() == ScalarType::Double, "sigma must have dtype in (float64), got ",
                   dtype_name(sigma.scalar_type()));
  TTS_CHECK_VALUE(alpha.dim() == 1 && same_sizes(sigma, alpha) && alpha.numel() >= 1,
                    "alpha and sigma must be 1-D tables of the same length >= 1, got ", shape_str(alpha), " and ",
                    shape_str(sigma));
  check_same_device(alpha, "alpha", x, "x");
  check_same_device(sigma, "sigma", x, "x");
  const int64_t n_levels = alpha.numel();
  const std::pair<const char*, const Tensor*> levels[] = {{"level_from", &level_from}, {"level_to", &level_to}};
  for (const auto& [name, lv] : levels) {
    TTS_CHECK_TYPE(lv->scalar_type() == ScalarType::Long, name, " must be an int64 tensor of level indices");
    TTS_CHECK_VALUE(lv->dim() == 1 && lv->size(0) == x.size(0), name, " must have shape [B] = [", x.size(0),
                      "], got ", shape_str(*lv));
    check_same_device(*lv, name, x, "x");
    if (lv->is_cpu() && lv->numel() > 0) {
      const Tensor c = torch::stable::contiguous(*lv);
      const int64_t* p = c.const_data_ptr<int64_t>();
      bool ok = true;
      for (int64_t i = 0; i < c.numel(); ++i) ok = ok && p[i] >= 0 && p[i] < n_levels;
      TTS_CHECK_VALUE(ok, name, " values must lie in [0, ", n_levels, ") (the length of alpha/sigma)");
    }
  }
}

// The per-sample coefficients of renoise / ddim_step from CPU levels and tables (the ops' own
// formulas, coefficients.h): fn(b, a_from, s_from, a_to, s_to) -> Coef3. Checked before any work:
// finite tables (alpha, sigma >= 0) and finite coefficients for every sample, which is what "the
// target level lies on the right side of the source level" comes to for any Gaussian path.
template <typename CoefFn>
void check_level_pairs(const Tensor& level_from, const Tensor& level_to, const Tensor& alpha, const Tensor& sigma,
                       CoefFn coef_of, const char* rule) {
  if (!(level_from.is_cpu() && level_to.is_cpu() && alpha.is_cpu() && sigma.is_cpu())) return;
  const Tensor a = torch::stable::contiguous(alpha), s = torch::stable::contiguous(sigma);
  const double *ap = a.const_data_ptr<double>(), *sp = s.const_data_ptr<double>();
  for (int64_t l = 0; l < a.numel(); ++l) {
    TTS_CHECK_VALUE(ap[l] >= 0.0 && ap[l] - ap[l] == 0.0, "alpha must hold finite values >= 0, got ", ap[l], " at ", l);
    TTS_CHECK_VALUE(sp[l] >= 0.0 && sp[l] - sp[l] == 0.0, "sigma must hold finite values >= 0, got ", sp[l], " at ", l);
  }
  const Tensor f = torch::stable::contiguous(level_from), t = torch::stable::contiguous(level_to);
  const int64_t *fp = f.const_data_ptr<int64_t>(), *tp = t.const_data_ptr<int64_t>();
  for (int64_t b = 0; b < f.numel(); ++b) {
    const Coef3 c = coef_of(ap[fp[b]], sp[fp[b]], ap[tp[b]], sp[tp[b]]);
    const bool finite = c.c0 - c.c0 == 0.0 && c.c1 - c.c1 == 0.0 && c.c2 - c.c2 == 0.0;
    TTS_CHECK_VALUE(finite, rule, " (sample ", b, ": level_from ", fp[b], ", level_to ", tp[b], ")");
  }
}

inline void check_renoise(const Tensor& x, const Tensor& level_from, const Tensor& level_to,
                          const Tensor& alpha, const Tensor& sigma, const std::optional<Tensor>& noise,
                          const std::optional<Tensor>& rng) {
  check_x(x);
  check_levels(x, level_from, level_to, alpha, sigma);
  check_level_pairs(level_from, level_to, alpha, sigma, renoise_coef,
                    "level_to must be at least as noisy as level_from, with alpha[level_from] > 0");
  check_one_source(noise.has_value(), "noise", rng.has_value());
  if (noise.has_value()) {
    check_like(*noise, "noise", x);
  } else {
    check_rng(*rng, x, "x");
  }
}

inline void check_ddim_step(const Tensor& x, const Tensor& x0_hat, const Tensor& level_from,
                            const Tensor& level_to, const Tensor& alpha, const Tensor& sigma, double eta,
                            const std::optional<Tensor>& noise, const std::optional<Tensor>& rng) {
  check_x(x);
  check_like(x0_hat, "x0_hat", x);
  check_levels(x, level_from, level_to, alpha, sigma);
  TTS_CHECK_VALUE(eta >= 0.0 && eta <= 1.0, "eta must lie in [0, 1], got ", eta);
  check_level_pairs(
      level_from, level_to, alpha, sigma,
      [eta](double a_i, double s_i, double a_j, double s_j) { return ddim_coef(a_i, s_i, a_j, s_j, eta); },
      "level_to must be at most as noisy as level_from, with sigma[level_from] > 0");
  // eta = 0 is deterministic: a random source would be ignored, so it is refused
  TTS_CHECK_VALUE(eta > 0 || !(noise.has_value() || rng.has_value()),
                  "eta = 0 draws no noise: pass neither noise nor rng");
  check_one_source(noise.has_value(), "noise", rng.has_value(), /*required=*/eta > 0);
  if (noise.has_value()) {
    check_like(*noise, "noise", x);
  } else if (rng.has_value()) {
    check_rng(*rng, x, "x");
  }
}

inline void check_langevin_step(const Tensor& x, const Tensor& grad, const Tensor& step_size,
                                const std::optional<Tensor>& noise, const std::optional<Tensor>& rng,
                                std::optional<double> max_norm) {
  check_x(x);
  check_like(grad, "grad", x);
  check_w_dtype(step_size, "step_size");
  TTS_CHECK_VALUE(step_size.dim() == 1 && step_size.size(0) == x.size(0), "step_size must have shape [B] = [",
                    x.size(0), "], got ", shape_str(step_size));
  check_same_device(step_size, "step_size", x, "x");
  if (step_size.is_cpu() && step_size.numel() > 0) {
    const Tensor c = torch::stable::contiguous(torch::stable::to(step_size, ScalarType::Double));
    const double* p = c.const_data_ptr<double>();
    for (int64_t i = 0; i < c.numel(); ++i)
      TTS_CHECK_VALUE(p[i] >= 0.0 && p[i] - p[i] == 0.0, "step_size must be finite and >= 0, got ", p[i], " at ", i);
  }
  TTS_CHECK_VALUE(!max_norm.has_value() || *max_norm > 0, "max_norm must be > 0 or None, got ",
                    max_norm.value_or(0.0));
  check_one_source(noise.has_value(), "noise", rng.has_value());
  if (noise.has_value()) {
    check_like(*noise, "noise", x);
  } else {
    check_rng(*rng, x, "x");
  }
}

// adaptive_increment: log_w, base, key [B, N] float64, alive [B, N] bool, target, cap [B] float64,
// all on one device.
inline void check_adaptive_increment(const Tensor& log_w, const Tensor& base, const Tensor& key, const Tensor& alive,
                                     const Tensor& target, const Tensor& cap) {
  TTS_CHECK_TYPE(log_w.scalar_type() == ScalarType::Double, "log_w must have dtype in (float64), got ",
                 dtype_name(log_w.scalar_type()));
  TTS_CHECK_VALUE(log_w.dim() == 2 && log_w.size(1) >= 1, "log_w must be 2-D [B, N] with N >= 1, got shape ",
                  shape_str(log_w));
  const std::pair<const char*, const Tensor*> rows[] = {{"base", &base}, {"key", &key}, {"alive", &alive}};
  for (const auto& [name, t] : rows) {
    const bool want_bool = t == &alive;
    TTS_CHECK_TYPE(t->scalar_type() == (want_bool ? ScalarType::Bool : ScalarType::Double), name,
                   want_bool ? " must have dtype in (bool), got " : " must have dtype in (float64), got ",
                   dtype_name(t->scalar_type()));
    TTS_CHECK_VALUE(same_sizes(*t, log_w), name, " must have the shape of log_w ", shape_str(log_w), ", got ",
                    shape_str(*t));
    check_same_device(*t, name, log_w, "log_w");
  }
  const std::pair<const char*, const Tensor*> per_row[] = {{"target", &target}, {"cap", &cap}};
  for (const auto& [name, t] : per_row) {
    TTS_CHECK_TYPE(t->scalar_type() == ScalarType::Double, name, " must have dtype in (float64), got ",
                   dtype_name(t->scalar_type()));
    TTS_CHECK_VALUE(t->dim() == 1 && t->size(0) == log_w.size(0), name, " must have shape [B] = [", log_w.size(0),
                    "], got ", shape_str(*t));
    check_same_device(*t, name, log_w, "log_w");
  }
}

// The values of row b (CPU tensors only: on a GPU this would sync the host).
template <typename Lanes>
void check_adaptive_increment_row(const Lanes& lanes, const tempering::Row& r, double target, double cap, int64_t b) {
  switch (tempering::row_fault(lanes, r, target, cap)) {
    case tempering::Fault::kNone: return;
    case tempering::Fault::kLogW: throw std::invalid_argument(cat("log_w must not hold NaN or +inf (row ", b, ")"));
    case tempering::Fault::kBase: throw std::invalid_argument(cat("base must be finite where alive (row ", b, ")"));
    case tempering::Fault::kKey: throw std::invalid_argument(cat("key must be finite where alive (row ", b, ")"));
    case tempering::Fault::kTarget:
      throw std::invalid_argument(cat("target must be finite and >= 0, got ", target, " (row ", b, ")"));
    case tempering::Fault::kCap: throw std::invalid_argument(cat("cap must be >= 0 (or +inf), got ", cap, " (row ", b, ")"));
  }
}

// (seed, offset) of an rng tensor that lives on the CPU (no device read, no sync).
struct HostRng {
  uint64_t seed;
  uint64_t offset;
};
inline HostRng read_cpu_rng(const Tensor& rng) {
  const Tensor c = torch::stable::contiguous(rng);
  const int64_t* p = c.const_data_ptr<int64_t>();
  return HostRng{static_cast<uint64_t>(p[0]), static_cast<uint64_t>(p[1])};
}

}  // namespace tts_fast
