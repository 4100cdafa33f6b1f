// CPU kernel of tts_fast::resample: ancestors [B, N] int64 from log_weights [B, N] (float32/64)
// and uniforms [B, N] (float32/64) or rng int64 [seed, offset]. Rows run in parallel
// (torch::stable::parallel_for, i.e. at::parallel_for behind the stable ABI); each row is the
// reference algorithm in float64, sequential left to right.
//
// Bit-exactness with tts_fast._reference.resample: the weights are exp(lw - max) computed by
// ATen's exp_ (called through the stable dispatcher) over chunks of rows, i.e. by the same
// vectorised kernel that torch.exp uses in the reference (libm's exp differs from it in the last
// bit for ~0.5% of inputs);
// everything after that is scalar float64 arithmetic in the reference's order (resample_math.h).
#include <algorithm>
#include <vector>

#include "../checks.h"
#include "../resample_math.h"
#include "../stable_api.h"

namespace tts_fast {
namespace {

// Per-thread scratch for one row.
struct RowScratch {
  std::vector<double> cdf, u, t;
  std::vector<int64_t> counts, cum, det;
  explicit RowScratch(int64_t n) : cdf(n), u(n), t(n), counts(n), cum(n), det(n) {}
};

// Philox uniforms of row b in float64: element b * N + k, one generator call per block of four.
struct PhiloxRows {
  HostRng rng{};
  int64_t n = 0;
  const double* row(int64_t b, RowScratch& sc) const {
    const uint64_t e0 = static_cast<uint64_t>(b * n);
    for (int64_t k = 0; k < n;) {
      const uint64_t e = e0 + static_cast<uint64_t>(k);
      const Philox4 w = philox4x32_10(rng.seed, rng.offset + e / 4);
      for (uint64_t lane = e % 4; lane < 4 && k < n; ++lane, ++k) sc.u[k] = static_cast<double>(w.w[lane]) * 0x1p-32;
    }
    return sc.u.data();
  }
};

// Last k with w[k] > 0, else n - 1 (the reference's fallback for targets at or past the total).
int64_t last_positive(const double* w, int64_t n) {
  for (int64_t k = n - 1; k >= 0; --k)
    if (w[k] > 0) return k;
  return n - 1;
}

// _counts_to_ancestors: slot s goes to the first k with cum[k] > s, clamped to n - 1. With no
// negative count (always, short of round-off pathologies in the SSP leftover) cum is sorted and
// that is "k repeated counts[k] times, then n - 1": written out directly.
void counts_to_ancestors(const int64_t* counts, int64_t n, int64_t* cum, int64_t* out) {
  int64_t acc = 0;
  bool sorted = true;
  for (int64_t k = 0; k < n; ++k) {
    sorted = sorted && counts[k] >= 0;
    cum[k] = acc += counts[k];
  }
  if (!sorted) {
    for (int64_t s = 0; s < n; ++s) out[s] = std::min(upper_bound<int64_t>(cum, n, s), n - 1);
    return;
  }
  int64_t s = 0;
  for (int64_t k = 0; k < n && s < n; ++k)
    for (int64_t c = 0; c < counts[k] && s < n; ++c) out[s++] = k;
  for (; s < n; ++s) out[s] = n - 1;
}

// idx[i] = first k with cdf[k] > t[i] (else n) for all slots, as torch.searchsorted(right=True).
// Non-decreasing targets (stratified and systematic ones increase with the slot) are merged with
// the sorted cdf in one branch-free pass; anything else (decreasing or NaN targets, possible only
// with out-of-range uniforms) falls back to a search per slot.
void search_targets(const double* cdf, const double* t, int64_t n, int64_t* idx) {
  bool sorted = !(t[0] != t[0]);
  for (int64_t i = 1; i < n; ++i) sorted = sorted && t[i] >= t[i - 1];
  if (!sorted) {
    for (int64_t i = 0; i < n; ++i) idx[i] = upper_bound_sorted<double>(cdf, n, t[i]);
    return;
  }
  int64_t i = 0, k = 0;
  while (i < n && k < n) {
    const bool take = cdf[k] > t[i];  // t[i]'s answer is k
    idx[i] = k;                        // kept once i moves on
    i += take;
    k += !take;
  }
  for (; i < n; ++i) idx[i] = n;
}

void resample_row(const double* w, int64_t n, const double* u, Scheme scheme, RowScratch& sc, int64_t* out) {
  double* cdf = sc.cdf.data();
  if (scheme == Scheme::kMultinomial || scheme == Scheme::kStratified || scheme == Scheme::kSystematic) {
    double acc = 0.0;
    for (int64_t k = 0; k < n; ++k) cdf[k] = acc += w[k];
    const double total = cdf[n - 1];
    const int64_t last = last_positive(w, n);
    double* t = sc.t.data();
    int64_t* idx = sc.det.data();
    for (int64_t i = 0; i < n; ++i) {
      t[i] = scheme == Scheme::kMultinomial
                 ? multinomial_target(u[i], total)
                 : stratified_target(i, n, scheme == Scheme::kSystematic ? u[0] : u[i], total);
    }
    if (scheme == Scheme::kMultinomial) {
      for (int64_t i = 0; i < n; ++i) idx[i] = upper_bound_sorted<double>(cdf, n, t[i]);
    } else {
      search_targets(cdf, t, n, idx);
    }
    for (int64_t i = 0; i < n; ++i) out[i] = idx[i] >= n ? last : idx[i];
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
      const int64_t idx = upper_bound_sorted<double>(fcdf, n, u[j] * ftotal);
      out[s] = idx >= n ? last : idx;
    }
    return;
  }

  // ssp: sequential pairing in index order; unit i is the one left open.
  int64_t i = 0;
  double xi_open = frac[0];
  for (int64_t j = 1; j < n; ++j) {
    const SspStep st = ssp_step(xi_open, frac[j], u[j - 1]);
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

// Rows [b0, b1) of a [B, N] table as float64 (exact conversion) into dst.
void rows_to_double(const Tensor& t, int64_t b0, int64_t b1, double* dst) {
  const int64_t n = t.size(1);
  if (t.scalar_type() == ScalarType::Double) {
    std::copy(t.const_data_ptr<double>() + b0 * n, t.const_data_ptr<double>() + b1 * n, dst);
  } else {
    const float* src = t.const_data_ptr<float>();
    for (int64_t i = b0 * n; i < b1 * n; ++i) dst[i - b0 * n] = static_cast<double>(src[i]);
  }
}

Tensor resample_cpu(const Tensor& log_weights, const std::optional<Tensor>& uniforms, const std::optional<Tensor>& rng,
                    const std::string& scheme_name) {
  const Scheme scheme = check_resample(log_weights, uniforms, rng, scheme_name);
  const int64_t B = log_weights.size(0), N = log_weights.size(1);
  Tensor out = empty_on(log_weights, {B, N}, ScalarType::Long);
  if (B == 0) return out;

  const Tensor lw = torch::stable::contiguous(log_weights);
  std::optional<Tensor> u_table;  // given uniforms, or Philox ones made per row
  PhiloxRows philox;
  philox.n = N;
  if (uniforms.has_value()) {
    u_table = torch::stable::contiguous(*uniforms);
  } else {
    philox.rng = read_cpu_rng(*rng);
  }
  int64_t* op = out.mutable_data_ptr<int64_t>();
  // Rows are processed in chunks of ~4096 weights per thread, in buffers that stay in cache: no
  // [B, N] temporaries (whose fresh pages cost more than the arithmetic).
  const int64_t chunk_rows = std::max<int64_t>(1, 4096 / N);
  torch::stable::parallel_for(0, B, chunk_rows, [&](int64_t begin, int64_t end) {
    RowScratch sc(N);
    std::vector<double> w(chunk_rows * N), u_rows(u_table.has_value() ? chunk_rows * N : 0);
    for (int64_t b0 = begin; b0 < end; b0 += chunk_rows) {
      const int64_t b1 = std::min(end, b0 + chunk_rows);
      // Exponents of the weights, then one ATen exp_ over the chunk: the kernel torch.exp uses.
      rows_to_double(lw, b0, b1, w.data());
      for (int64_t r = 0; r < b1 - b0; ++r) {
        double* row = w.data() + r * N;
        double m = -inf64();
        for (int64_t k = 0; k < N; ++k) m = std::max(m, clean_log_weight(row[k]));
        for (int64_t k = 0; k < N; ++k) row[k] = weight_exponent(row[k], m);
      }
      aten_call("aten::exp_", "", cpu_blob(w.data(), (b1 - b0) * N, ScalarType::Double));
      if (u_table.has_value()) rows_to_double(*u_table, b0, b1, u_rows.data());
      for (int64_t b = b0; b < b1; ++b) {
        const double* u_row = u_table.has_value() ? u_rows.data() + (b - b0) * N : philox.row(b, sc);
        resample_row(w.data() + (b - b0) * N, N, u_row, scheme, sc, op + b * N);
      }
    }
  });
  return out;
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(tts_fast, CPU, m) { m.impl("resample", TORCH_BOX(&resample_cpu)); }

}  // namespace tts_fast
