// CPU kernels of the fused elementwise ops renoise, ddim_step and langevin_step.
//
// x [B, ...] float16/bfloat16/float32/float64 (computed in float32, or float64 for float64 x);
// per-sample levels [B] int64 into float64 tables alpha/sigma [L]; noise like x, or rng int64
// [seed, offset] for Philox normals (element e = flat index in x). Every op is
//   out = (c0 * x + c1 * y) + c2 * z
// with per-sample coefficients from coefficients.h, run over chunks of Philox blocks (four
// elements each) with torch::stable::parallel_for (at::parallel_for behind the stable ABI).
#include <algorithm>
#include <vector>

#include "../checks.h"
#include "../coefficients.h"
#include "../stable_api.h"

namespace tts_fast {
namespace {

template <typename T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

struct Sources {
  const void* y = nullptr;      // second operand (x0_hat, grad) or null
  const void* noise = nullptr;  // normals like x, or null
  bool use_rng = false;         // Philox normals when noise is null
  HostRng rng{};
};

// Philox normals of blocks [q0, q0 + nb) into z[4 * nb], bit-identical to _philox.philox_normal on
// the CPU: the integer part and the exact float32 scalings are done here, and log, sqrt, cos and
// sin are applied by ATen's (vectorised) in-place kernels, called through the stable dispatcher:
// the same kernels the reference's torch.log/sqrt/cos/sin run. About 3x faster than scalar libm
// calls, and libm's float log/sqrt/sin/cos differ from ATen's in the last bit for some inputs.
// Buffers are per thread and reused across chunks.
struct NormalScratch {
  std::vector<float> radius, angle, cosine;
  void fill(uint64_t seed, uint64_t offset, int64_t q0, int64_t nb, float* z) {
    radius.resize(2 * nb);
    angle.resize(2 * nb);
    cosine.resize(2 * nb);
    constexpr float kTwoPi = static_cast<float>(6.283185307179586);
    for (int64_t i = 0; i < nb; ++i) {
      const Philox4 w = philox4x32_10(seed, offset + static_cast<uint64_t>(q0 + i));
      for (int p = 0; p < 2; ++p) {
        radius[2 * i + p] = static_cast<float>((w.w[2 * p] >> 8) + 1u) * 0x1p-24f;
        angle[2 * i + p] = static_cast<float>(w.w[2 * p + 1] >> 8) * 0x1p-24f * kTwoPi;
      }
    }
    const Tensor r = cpu_blob(radius.data(), 2 * nb, ScalarType::Float);
    aten_call("aten::log_", "", r);
    for (float& v : radius) v *= -2.0f;  // exact, as the reference's -2.0 * log(u)
    aten_call("aten::sqrt_", "", r);     // ATen's float sqrt, like the reference's
    std::copy(angle.begin(), angle.end(), cosine.begin());
    aten_call("aten::cos_", "", cpu_blob(cosine.data(), 2 * nb, ScalarType::Float));
    aten_call("aten::sin_", "", cpu_blob(angle.data(), 2 * nb, ScalarType::Float));
    for (int64_t k = 0; k < 2 * nb; ++k) {
      z[2 * k] = radius[k] * cosine[k];
      z[2 * k + 1] = radius[k] * angle[k];
    }
  }
};

// out[e] = (c0 x + c1 y) + c2 z over all elements, coef = [B, 3] in the accumulation type.
template <typename T>
void fused_affine(const Tensor& x, const Sources& src, const std::vector<acc_t<T>>& coef, Tensor& out) {
  using Acc = acc_t<T>;
  const int64_t numel = x.numel();
  const int64_t B = x.size(0);
  if (numel == 0) return;
  const int64_t inner = numel / B;
  const T* xp = static_cast<const T*>(x.const_data_ptr());
  const T* yp = static_cast<const T*>(src.y);
  const T* np = static_cast<const T*>(src.noise);
  T* op = static_cast<T*>(out.mutable_data_ptr());
  const Acc* cp = coef.data();
  const bool has_z = np != nullptr || src.use_rng;
  const int64_t n_blocks = (numel + 3) / 4;
  constexpr int64_t kChunkBlocks = 1024;  // normals are made per chunk of 4096 elements (cache-sized)
  torch::stable::parallel_for(0, n_blocks, kChunkBlocks, [&](int64_t q_begin, int64_t q_end) {
    NormalScratch scratch;
    std::vector<float> zbuf(src.use_rng ? 4 * kChunkBlocks : 0);
    for (int64_t q0 = q_begin; q0 < q_end; q0 += kChunkBlocks) {
      const int64_t q1 = std::min(q_end, q0 + kChunkBlocks);
      const T* zp_t = np;
      const float* zp_f = nullptr;  // Philox normals of this chunk: element e at zp_f[e - z_base]
      const int64_t z_base = 4 * q0;
      if (src.use_rng) {
        scratch.fill(src.rng.seed, src.rng.offset, q0, q1 - q0, zbuf.data());
        zp_f = zbuf.data();
      }
      const int64_t e_end = std::min(numel, 4 * q1);
      for (int64_t e0 = 4 * q0; e0 < e_end;) {
        // One run of elements that share a sample (so its coefficients).
        const int64_t b = e0 / inner;
        const int64_t run_end = std::min(e_end, (b + 1) * inner);
        const Acc c0 = cp[3 * b], c1 = cp[3 * b + 1], c2 = cp[3 * b + 2];
        if (yp != nullptr && has_z) {
          for (int64_t e = e0; e < run_end; ++e) {
            const Acc z = zp_f != nullptr ? static_cast<Acc>(zp_f[e - z_base]) : static_cast<Acc>(zp_t[e]);
            op[e] = static_cast<T>((c0 * static_cast<Acc>(xp[e]) + c1 * static_cast<Acc>(yp[e])) + c2 * z);
          }
        } else if (yp != nullptr) {
          for (int64_t e = e0; e < run_end; ++e)
            op[e] = static_cast<T>(c0 * static_cast<Acc>(xp[e]) + c1 * static_cast<Acc>(yp[e]));
        } else {
          for (int64_t e = e0; e < run_end; ++e) {
            const Acc z = zp_f != nullptr ? static_cast<Acc>(zp_f[e - z_base]) : static_cast<Acc>(zp_t[e]);
            op[e] = static_cast<T>(c0 * static_cast<Acc>(xp[e]) + c2 * z);
          }
        }
        e0 = run_end;
      }
    }
  });
}

Sources make_sources(const Tensor* y, const std::optional<Tensor>& noise, const std::optional<Tensor>& rng,
                     bool want_noise, std::vector<Tensor>& keep) {
  Sources s;
  if (y != nullptr) {
    keep.push_back(torch::stable::contiguous(*y));
    s.y = keep.back().const_data_ptr();
  }
  if (!want_noise) return s;
  if (noise.has_value()) {
    keep.push_back(torch::stable::contiguous(*noise));
    s.noise = keep.back().const_data_ptr();
  } else {
    s.use_rng = true;
    s.rng = read_cpu_rng(*rng);
  }
  return s;
}

// Runs the fused kernel for x's dtype with coefficients coef_of(b) -> Coef3 (float64).
template <typename CoefFn>
Tensor run_fused(const Tensor& x_in, const Sources& src, int64_t B, CoefFn coef_of) {
  const Tensor x = torch::stable::contiguous(x_in);
  // The output has x's layout (empty_like, as the fake kernel), computed in row-major order.
  Tensor result = torch::stable::empty_like(x_in);
  const bool direct = result.is_contiguous();
  Tensor out = direct ? result : torch::stable::empty_like(x);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    using Acc = acc_t<T>;
    std::vector<Acc> coef(3 * B);
    for (int64_t b = 0; b < B; ++b) {
      const Coef3 c = coef_of(b);
      coef[3 * b] = static_cast<Acc>(c.c0);
      coef[3 * b + 1] = static_cast<Acc>(c.c1);
      coef[3 * b + 2] = static_cast<Acc>(c.c2);
    }
    fused_affine<T>(x, src, coef, out);
  };
  switch (x.scalar_type()) {  // check_x admitted these four
    case ScalarType::Half: run(Half{}); break;
    case ScalarType::BFloat16: run(BFloat16{}); break;
    case ScalarType::Float: run(float{}); break;
    default: run(double{}); break;
  }
  if (!direct) torch::stable::copy_(result, out);
  return result;
}

struct Levels {
  Tensor lf, lt, alpha, sigma;
  Levels(const Tensor& f, const Tensor& t, const Tensor& a, const Tensor& s)
      : lf(torch::stable::contiguous(f)),
        lt(torch::stable::contiguous(t)),
        alpha(torch::stable::contiguous(a)),
        sigma(torch::stable::contiguous(s)) {}
};

Tensor renoise_cpu(const Tensor& x, const Tensor& level_from, const Tensor& level_to,
                       const Tensor& alpha, const Tensor& sigma, const std::optional<Tensor>& noise,
                       const std::optional<Tensor>& rng) {
  check_renoise(x, level_from, level_to, alpha, sigma, noise, rng);
  std::vector<Tensor> keep;
  const Sources src = make_sources(nullptr, noise, rng, true, keep);
  const Levels L(level_from, level_to, alpha, sigma);
  const int64_t *lf = L.lf.const_data_ptr<int64_t>(), *lt = L.lt.const_data_ptr<int64_t>();
  const double *a = L.alpha.const_data_ptr<double>(), *s = L.sigma.const_data_ptr<double>();
  return run_fused(x, src, x.size(0), [&](int64_t b) { return renoise_coef(a[lf[b]], s[lf[b]], a[lt[b]], s[lt[b]]); });
}

Tensor ddim_step_cpu(const Tensor& x, const Tensor& x0_hat, const Tensor& level_from,
                         const Tensor& level_to, const Tensor& alpha, const Tensor& sigma, double eta,
                         const std::optional<Tensor>& noise, const std::optional<Tensor>& rng) {
  check_ddim_step(x, x0_hat, level_from, level_to, alpha, sigma, eta, noise, rng);
  std::vector<Tensor> keep;
  const Sources src = make_sources(&x0_hat, noise, rng, /*want_noise=*/eta > 0, keep);
  const Levels L(level_from, level_to, alpha, sigma);
  const int64_t *lf = L.lf.const_data_ptr<int64_t>(), *lt = L.lt.const_data_ptr<int64_t>();
  const double *a = L.alpha.const_data_ptr<double>(), *s = L.sigma.const_data_ptr<double>();
  return run_fused(x, src, x.size(0),
                   [&](int64_t b) { return ddim_coef(a[lf[b]], s[lf[b]], a[lt[b]], s[lt[b]], eta); });
}

Tensor langevin_step_cpu(const Tensor& x, const Tensor& grad, const Tensor& step_size,
                             const std::optional<Tensor>& noise, const std::optional<Tensor>& rng,
                             std::optional<double> max_norm) {
  check_langevin_step(x, grad, step_size, noise, rng, max_norm);
  std::vector<Tensor> keep;
  const Sources src = make_sources(&grad, noise, rng, true, keep);
  const int64_t B = x.size(0);
  const Tensor eta = torch::stable::contiguous(torch::stable::to(step_size, ScalarType::Double));
  const double* ep = eta.const_data_ptr<double>();
  std::optional<Tensor> norm;
  const double* np = nullptr;
  if (max_norm.has_value() && B > 0) {
    // The reference's own composite, grad.double().reshape(B, -1).pow(2).sum(1).sqrt(), in ATen's
    // kernels, so the clipping decision matches it exactly; g * g is what ATen's pow(g, 2) computes.
    const int64_t shape[2] = {B, -1};
    const Tensor g = torch::stable::reshape(torch::stable::to(grad, ScalarType::Double), shape);
    const int64_t dim1[1] = {1};
    const Tensor sq_sum = torch::stable::sum(aten_call("aten::mul", "Tensor", g, g), dim1);
    norm = torch::stable::contiguous(aten_call("aten::sqrt", "", sq_sum));
    np = norm->const_data_ptr<double>();
  }
  const bool clip = max_norm.has_value();
  const double mn = max_norm.value_or(0.0);
  return run_fused(x, src, B, [&](int64_t b) { return langevin_coef(ep[b], clip ? np[b] : 0.0, clip, mn); });
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(tts_fast, CPU, m) {
  m.impl("renoise", TORCH_BOX(&renoise_cpu));
  m.impl("ddim_step", TORCH_BOX(&ddim_step_cpu));
  m.impl("langevin_step", TORCH_BOX(&langevin_step_cpu));
}

}  // namespace tts_fast
