// CPU kernels of the per-row log-weight reductions ess and normalize_log_weights.
// log_weights [B, N] float32/float64; rows in parallel; float64 arithmetic; results in the input
// dtype. Conventions (NaN = -inf, all -inf row = equal weights, +inf entries share the weight) as
// in tts_fast._reference.row_weights.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>

#include "../checks.h"
#include "../resample_math.h"

namespace tts_fast {
namespace {

double row_max(const double* row, int64_t n) {
  double m = -inf64();
  for (int64_t k = 0; k < n; ++k) m = std::max(m, clean_log_weight(row[k]));
  return m;
}

template <typename F>
void for_rows(int64_t B, int64_t N, F f) {
  at::parallel_for(0, B, std::max<int64_t>(1, 8192 / N), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) f(b);
  });
}

// [B] = (sum w)^2 / sum w^2 per row, in [1, N].
at::Tensor ess_cpu(const at::Tensor& log_weights) {
  check_log_weights(log_weights);
  const int64_t B = log_weights.size(0), N = log_weights.size(1);
  const at::Tensor lw = log_weights.to(c10::kDouble).contiguous();
  at::Tensor out = at::empty({B}, lw.options());
  const double* p = lw.const_data_ptr<double>();
  double* o = out.data_ptr<double>();
  for_rows(B, N, [&](int64_t b) {
    const double* row = p + b * N;
    const double m = row_max(row, N);
    double s = 0.0, s2 = 0.0;
    for (int64_t k = 0; k < N; ++k) {
      const double w = std::exp(weight_exponent(row[k], m));
      s += w;
      s2 += w * w;
    }
    o[b] = s * s / s2;
  });
  return out.to(log_weights.scalar_type());
}

// [B, N] = log_weights minus the row's log-sum-exp; NaN -> -inf, all -inf row -> -log N,
// rows holding +inf -> -log(#inf) on the +inf entries and -inf elsewhere.
at::Tensor normalize_log_weights_cpu(const at::Tensor& log_weights) {
  check_log_weights(log_weights);
  const int64_t B = log_weights.size(0), N = log_weights.size(1);
  const at::Tensor lw = log_weights.to(c10::kDouble).contiguous();
  at::Tensor out = at::empty({B, N}, lw.options());
  const double* p = lw.const_data_ptr<double>();
  double* o = out.data_ptr<double>();
  for_rows(B, N, [&](int64_t b) {
    const double* row = p + b * N;
    double* orow = o + b * N;
    const double m = row_max(row, N);
    if (m == -inf64()) {
      std::fill(orow, orow + N, -std::log(static_cast<double>(N)));
    } else if (m == inf64()) {
      int64_t n_inf = 0;
      for (int64_t k = 0; k < N; ++k) n_inf += row[k] == inf64();
      const double v = -std::log(static_cast<double>(n_inf));
      for (int64_t k = 0; k < N; ++k) orow[k] = row[k] == inf64() ? v : -inf64();
    } else {
      double s = 0.0;
      for (int64_t k = 0; k < N; ++k) s += std::exp(clean_log_weight(row[k]) - m);
      const double lse = m + std::log(s);
      for (int64_t k = 0; k < N; ++k) orow[k] = clean_log_weight(row[k]) - lse;
    }
  });
  // log_weights' dtype and layout (empty_like, as the fake kernel).
  at::Tensor result = at::empty_like(log_weights);
  result.copy_(out);
  return result;
}

}  // namespace

TORCH_LIBRARY_IMPL(tts_fast, CPU, m) {
  m.impl("ess", &ess_cpu);
  m.impl("normalize_log_weights", &normalize_log_weights_cpu);
}

}  // namespace tts_fast
