// CPU kernel of tts_fast::resample: ancestors [B, N] int64 from log_weights [B, N] (float32/64)
// and uniforms [B, N] (float32/64) or rng int64 [seed, offset]. Rows run in parallel
// (at::parallel_for); each row is the reference algorithm in float64, sequential left to right.
//
// Bit-exactness with tts_fast._reference.resample: the weights are exp(lw - max) computed by
// at::exp over the whole [B, N] exponent tensor, i.e. by the same vectorised ATen kernel that
// torch.exp uses in the reference (libm's exp differs from it in the last bit for ~0.5% of inputs);
// everything after that is scalar float64 arithmetic in the reference's order (resample_math.h).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/exp.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../checks.h"
#include "../resample_math.h"

namespace tts_fast {
namespace {

// Row b's uniforms, converted to float64 (exactly, as uniforms.to(float64) does).
struct RowUniforms {
  const double* table = nullptr;  // [B, N] float64, when uniforms were given
  HostRng rng{};                  // else Philox: element b * N + k
  int64_t n = 0;
  double at(int64_t b, int64_t k) const {
    if (table != nullptr) return table[b * n + k];
    return philox_uniform(rng.seed, rng.offset, static_cast<uint64_t>(b * n + k));
  }
};

// Per-thread scratch for one row.
struct RowScratch {
  std::vector<double> cdf;
  std::vector<int64_t> counts, cum, det;
  explicit RowScratch(int64_t n) : cdf(n), counts(n), cum(n), det(n) {}
};

// Last k with w[k] > 0, else n - 1 (the reference's fallback for targets at or past the total).
int64_t last_positive(const double* w, int64_t n) {
  for (int64_t k = n - 1; k >= 0; --k)
    if (w[k] > 0) return k;
  return n - 1;
}

// _counts_to_ancestors: slot s goes to the first k with cum[k] > s, clamped to n - 1.
void counts_to_ancestors(const int64_t* counts, int64_t n, int64_t* cum, int64_t* out) {
  int64_t acc = 0;
  for (int64_t k = 0; k < n; ++k) cum[k] = acc += counts[k];
  for (int64_t s = 0; s < n; ++s) out[s] = std::min(upper_bound<int64_t>(cum, n, s), n - 1);
}

void resample_row(const double* w, int64_t n, int64_t b, const RowUniforms& u, Scheme scheme, RowScratch& sc,
                  int64_t* out) {
  double* cdf = sc.cdf.data();
  if (scheme == Scheme::kMultinomial || scheme == Scheme::kStratified || scheme == Scheme::kSystematic) {
    double acc = 0.0;
    for (int64_t k = 0; k < n; ++k) cdf[k] = acc += w[k];
    const double total = cdf[n - 1];
    const int64_t last = last_positive(w, n);
    const double u0 = scheme == Scheme::kSystematic ? u.at(b, 0) : 0.0;
    for (int64_t i = 0; i < n; ++i) {
      double t;
      if (scheme == Scheme::kMultinomial) {
        t = multinomial_target(u.at(b, i), total);
      } else {
        t = stratified_target(i, n, scheme == Scheme::kSystematic ? u0 : u.at(b, i), total);
      }
      const int64_t idx = upper_bound<double>(cdf, n, t);
      out[i] = idx >= n ? last : idx;
    }
    return;
  }

  // residual and ssp: floor counts and fractional parts of N*w/W (W = the sequential cumsum's end).
  double total = 0.0;
  for (int64_t k = 0; k < n; ++k) total += w[k];
  int64_t* counts = sc.counts.data();
  double* frac = cdf;
  for (int64_t k = 0; k < n; ++k) floor_and_fraction(w[k], total, n, counts[k], frac[k]);

  if (scheme == Scheme::kResidual) {
    int64_t* cum = sc.cum.data();
    int64_t* det = sc.det.data();
    counts_to_ancestors(counts, n, cum, det);
    const int64_t n_det = cum[n - 1];
    const int64_t last = last_positive(frac, n);
    double* fcdf = frac;  // in place: frac is not needed past its cumsum and last positive
    double acc = 0.0;
    for (int64_t k = 0; k < n; ++k) fcdf[k] = acc += fcdf[k];
    const double ftotal = fcdf[n - 1];
    for (int64_t s = 0; s < n; ++s) {
      if (s < n_det) {
        out[s] = det[s];
        continue;
      }
      const int64_t j = std::clamp<int64_t>(s - n_det, 0, n - 1);
      const int64_t idx = upper_bound<double>(fcdf, n, u.at(b, j) * ftotal);
      out[s] = idx >= n ? last : idx;
    }
    return;
  }

  // ssp: sequential pairing in index order; unit i is the one left open.
  int64_t i = 0;
  double xi_open = frac[0];
  for (int64_t j = 1; j < n; ++j) {
    const SspStep st = ssp_step(xi_open, frac[j], u.at(b, j - 1));
    counts[i] += st.i_child ? 1 : 0;
    counts[j] += st.j_child ? 1 : 0;
    xi_open = st.xi_open;
    if (!st.keep_i) i = j;
  }
  int64_t sum = 0;
  for (int64_t k = 0; k < n; ++k) sum += counts[k];
  counts[i] += n - sum;  // leftover (round-off) to the last open unit
  counts_to_ancestors(counts, n, sc.cum.data(), out);
}

at::Tensor resample_cpu(const at::Tensor& log_weights, const std::optional<at::Tensor>& uniforms,
                        const std::optional<at::Tensor>& rng, c10::string_view scheme_name) {
  const Scheme scheme = check_resample(log_weights, uniforms, rng, scheme_name);
  const int64_t B = log_weights.size(0), N = log_weights.size(1);
  at::Tensor out = at::empty({B, N}, log_weights.options().dtype(c10::kLong));
  if (B == 0) return out;

  // Exponents of the weights (float64, contiguous), then one at::exp over all of them.
  const at::Tensor lw = log_weights.to(c10::kDouble).contiguous();
  at::Tensor w = at::empty({B, N}, lw.options());
  const double* lwp = lw.const_data_ptr<double>();
  double* wp = w.data_ptr<double>();
  const int64_t row_grain = std::max<int64_t>(1, 4096 / N);
  at::parallel_for(0, B, row_grain, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const double* row = lwp + b * N;
      double m = -inf64();
      for (int64_t k = 0; k < N; ++k) m = std::max(m, clean_log_weight(row[k]));
      for (int64_t k = 0; k < N; ++k) wp[b * N + k] = weight_exponent(row[k], m);
    }
  });
  w.exp_();

  RowUniforms u;
  u.n = N;
  at::Tensor u64;
  if (uniforms.has_value()) {
    u64 = uniforms->to(c10::kDouble).contiguous();
    u.table = u64.const_data_ptr<double>();
  } else {
    u.rng = read_cpu_rng(*rng);
  }
  int64_t* op = out.data_ptr<int64_t>();
  at::parallel_for(0, B, row_grain, [&](int64_t b0, int64_t b1) {
    RowScratch sc(N);
    for (int64_t b = b0; b < b1; ++b) resample_row(wp + b * N, N, b, u, scheme, sc, op + b * N);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(tts_fast, CPU, m) { m.impl("resample", &resample_cpu); }

}  // namespace tts_fast
