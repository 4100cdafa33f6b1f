// CPU kernel of tts_fast::adaptive_increment: the temperature increment of each prompt row chosen
// by bisection on its conditional ESS (tempering_math.h), rows in parallel
// (torch::stable::parallel_for). Inputs: log_w, base, key [B, N] float64, alive [B, N] bool,
// target, cap [B] float64; output [B] float64. A row whose inputs the method does not define
// (checks.h: check_adaptive_increment_values) raises ValueError naming the argument.
#include <algorithm>

#include "../checks.h"
#include "../stable_api.h"
#include "../tempering_math.h"

namespace tts_fast {
namespace {

Tensor adaptive_increment_cpu(const Tensor& log_w_in, const Tensor& base_in, const Tensor& key_in,
                              const Tensor& alive_in, const Tensor& target_in, const Tensor& cap_in) {
  check_adaptive_increment(log_w_in, base_in, key_in, alive_in, target_in, cap_in);
  const int64_t B = log_w_in.size(0), N = log_w_in.size(1);
  const Tensor log_w = torch::stable::contiguous(log_w_in), base = torch::stable::contiguous(base_in),
               key = torch::stable::contiguous(key_in), alive = torch::stable::contiguous(alive_in),
               target = torch::stable::contiguous(target_in), cap = torch::stable::contiguous(cap_in);
  Tensor out = empty_on(log_w, {B}, ScalarType::Double);
  const double *lw = log_w.const_data_ptr<double>(), *bs = base.const_data_ptr<double>(),
               *ky = key.const_data_ptr<double>(), *tg = target.const_data_ptr<double>(),
               *cp = cap.const_data_ptr<double>();
  const bool* al = alive.const_data_ptr<bool>();
  double* o = out.mutable_data_ptr<double>();
  const tempering::SerialLanes lanes;
  auto row = [&](int64_t b) {
    return tempering::Row{lw + b * N, bs + b * N, ky + b * N, al + b * N, N};
  };
  // Checked before any work, row by row, so the error names the first bad row.
  for (int64_t b = 0; b < B; ++b) check_adaptive_increment_row(lanes, row(b), tg[b], cp[b], b);
  torch::stable::parallel_for(0, B, std::max<int64_t>(1, 256 / N), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) o[b] = tempering::increment(lanes, row(b), tg[b], cp[b]);
  });
  return out;
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(tts_fast, CPU, m) { m.impl("adaptive_increment", TORCH_BOX(&adaptive_increment_cpu)); }

}  // namespace tts_fast
