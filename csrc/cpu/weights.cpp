// CPU kernels of the per-row log-weight reductions ess and normalize_log_weights.
// log_weights [B, N] float32/float64; rows in parallel (torch::stable::parallel_for, at::parallel_for
// behind the stable ABI); float64 arithmetic; results in the input
// dtype. Conventions (NaN = -inf, all -inf row = equal weights, +inf entries share the weight) as
// in tts_fast._reference.row_weights.
#include <algorithm>
#include <cmath>

#include "../checks.h"
#include "../resample_math.h"
#include "../stable_api.h"

namespace tts_fast {
namespace {

double row_max(const double* row, int64_t n) {
  double m = -inf64();
  for (int64_t k = 0; k < n; ++k) m = std::max(m, clean_log_weight(row[k]));
  return m;
}

template <typename F>
void for_rows(int64_t B, int64_t N, F f) {
  torch::stable::parallel_for(0, B, std::max<int64_t>(1, 8192 / N), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) f(b);
  });
}

// [B] = (sum w)^2 / sum w^2 per row, in [1, N].
Tensor ess_cpu(Tensor log_weights) {
  check_log_weights(log_weights);
  const int64_t B = log_weights.size(0), N = log_weights.size(1);
  const Tensor lw = torch::stable::contiguous(torch::stable::to(log_weights, ScalarType::Double));
  Tensor out = empty_on(lw, {B}, ScalarType::Double);
  const double* p = lw.const_data_ptr<double>();
  double* o = out.mutable_data_ptr<double>();
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
  return torch::stable::to(out, log_weights.scalar_type());
}

// [B, N] = log_weights minus the row's log-sum-exp; NaN -> -inf, all -inf row -> -log N,
// rows holding +inf -> -log(#inf) on the +inf entries and -inf elsewhere.
Tensor normalize_log_weights_cpu(Tensor log_weights) {
  check_log_weights(log_weights);
  const int64_t B = log_weights.size(0), N = log_weights.size(1);
  const Tensor lw = torch::stable::contiguous(torch::stable::to(log_weights, ScalarType::Double));
  Tensor out = empty_on(lw, {B, N}, ScalarType::Double);
  const double* p = lw.const_data_ptr<double>();
  double* o = out.mutable_data_ptr<double>();
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
  Tensor result = torch::stable::empty_like(log_weights);
  torch::stable::copy_(result, out);
  return result;
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(tts_fast, CPU, m) {
  m.impl("ess", TORCH_BOX(&ess_cpu));
  m.impl("normalize_log_weights", TORCH_BOX(&normalize_log_weights_cpu));
}

}  // namespace tts_fast
