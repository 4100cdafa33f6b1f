// The emulated kernels under a sanitizer, with no Python in the process: every launcher of
// csrc/cuda on a small case set that takes each kernel down its paths (rows of one and of several
// warps, partial blocks, tails, a tile straddling samples, misaligned / scalar paths, several
// norm partials, the 64-bit-index instance, special rows). Every buffer is a heap allocation of
// exactly its size, so AddressSanitizer sees a read or write one element past any end; outputs
// start undefined (valgrind's memcheck sees any use of what no kernel wrote). Checks only what
// holds whatever the arithmetic (ancestors in range, finite outputs from finite inputs); the
// values themselves are compared with the CPU ops by tests/test_cuda_emu.py.
//
//   emu_driver [filter]     runs the cases whose name contains filter; exit 0 when clean.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

#include "emu_args.h"

extern "C" {
const char* emu_take_errors();
void emu_resample(const void*, int, const void*, int, const int64_t*, uint64_t, uint64_t, int64_t, int64_t, int, double*,
                  int64_t*, double*, int64_t*);
void emu_fused(EMU_FUSED_PARAMS);
void emu_fused_wide_index(EMU_FUSED_PARAMS);
int64_t emu_grad_norm_partials_count(int64_t, int64_t);
void emu_grad_norm_partials(const void*, int, int64_t, int64_t, double*);
void emu_ess(const void*, int, int64_t, int64_t, void*);
void emu_normalize(const void*, int, int64_t, int64_t, void*);
void emu_adaptive_increment(const double*, const double*, const double*, const bool*, const double*, const double*,
                            int64_t, int64_t, double*);
}

namespace {

int failures = 0;
int cases = 0;
const char* filter = "";

// A heap buffer of exactly n elements (n = 0 allocates one, never read).
template <typename T>
struct Buf {
  explicit Buf(int64_t n) : n(n), p(new T[n > 0 ? n : 1]) {}
  int64_t n;
  std::unique_ptr<T[]> p;
  T* get() { return p.get(); }
};

uint64_t state = 0x9E3779B97F4A7C15ull;
double uniform() {  // xorshift64*, [0, 1)
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return static_cast<double>((state * 0x2545F4914F6CDD1Dull) >> 11) * 0x1p-53;
}
double normal() { return std::sqrt(-2.0 * std::log(1.0 - uniform())) * std::cos(6.283185307179586 * uniform()); }

bool selected(const std::string& name) { return name.find(filter) != std::string::npos; }

void finish(const std::string& name, bool ok, const char* why = "") {
  ++cases;
  const std::string errors = emu_take_errors();
  if (!ok || !errors.empty()) {
    ++failures;
    std::fprintf(stderr, "FAIL %s: %s%s\n", name.c_str(), why, errors.c_str());
  }
}

// ---- resample ----
void resample_cases() {
  const char* schemes[] = {"multinomial", "stratified", "systematic", "residual", "ssp"};
  for (int scheme = 0; scheme < 5; ++scheme)
    for (int64_t n : {1, 5, 33, 100})
      for (int lw64 = 0; lw64 < 2; ++lw64)
        for (int src = 0; src < 4; ++src) {  // float32 table, float64 table, Philox host, Philox device
          const std::string name = std::string("resample/") + schemes[scheme] + "/N" + std::to_string(n) +
                                   (lw64 ? "/f64" : "/f32") + "/src" + std::to_string(src);
          if (!selected(name)) continue;
          const int64_t b = 5;  // two blocks of four warps, the second partial
          Buf<float> lw32(b * n);
          Buf<double> lw_64(b * n);
          for (int64_t i = 0; i < b * n; ++i) {
            double v = 2.0 * normal();
            const int64_t row = i / n;
            if (row == 1) v = -std::numeric_limits<double>::infinity();                                   // all -inf
            if (row == 2 && i % 3 == 0) v = std::numeric_limits<double>::quiet_NaN();                     // NaN = -inf
            if (row == 3 && i % 4 == 1) v = std::numeric_limits<double>::infinity();                      // +inf share
            lw32.get()[i] = static_cast<float>(v);
            lw_64.get()[i] = v;
          }
          Buf<float> u32(b * n);
          Buf<double> u64(b * n);
          for (int64_t i = 0; i < b * n; ++i) u64.get()[i] = u32.get()[i] = static_cast<float>(uniform());
          Buf<int64_t> rng_dev(2);
          rng_dev.get()[0] = 1234;
          rng_dev.get()[1] = 77;
          const bool philox = src >= 2;
          Buf<double> ws_w(b * n), ws_u(philox ? b * n : 0);
          Buf<int64_t> ws_i(scheme >= 3 ? b * n : 0), out(b * n);
          emu_resample(lw64 ? static_cast<const void*>(lw_64.get()) : lw32.get(), lw64 ? 3 : 2,
                       philox ? nullptr : (src == 1 ? static_cast<const void*>(u64.get()) : u32.get()), src == 1 ? 3 : 2,
                       src == 3 ? rng_dev.get() : nullptr, 1234, 77, b, n, scheme, ws_w.get(),
                       scheme >= 3 ? ws_i.get() : nullptr, philox ? ws_u.get() : nullptr, out.get());
          bool ok = true;
          for (int64_t i = 0; i < b * n; ++i) ok = ok && out.get()[i] >= 0 && out.get()[i] < n;
          finish(name, ok, "ancestor out of range; ");
        }
}

// ---- ess and normalize ----
void weight_cases() {
  for (int64_t n : {1, 33, 100})
    for (int f64 = 0; f64 < 2; ++f64) {
      const std::string name = "weights/N" + std::to_string(n) + (f64 ? "/f64" : "/f32");
      if (!selected(name)) continue;
      const int64_t b = 5;
      Buf<float> lw32(b * n), out32(b * n), ess32(b);
      Buf<double> lw_64(b * n), out64(b * n), ess64(b);
      for (int64_t i = 0; i < b * n; ++i) {
        double v = normal();
        if (i / n == 1) v = -std::numeric_limits<double>::infinity();
        if (i / n == 2 && i % 2 == 0) v = std::numeric_limits<double>::infinity();
        if (i / n == 3 && i % 3 == 0) v = std::numeric_limits<double>::quiet_NaN();
        lw32.get()[i] = static_cast<float>(v);
        lw_64.get()[i] = v;
      }
      const void* lw = f64 ? static_cast<const void*>(lw_64.get()) : lw32.get();
      emu_ess(lw, f64 ? 3 : 2, b, n, f64 ? static_cast<void*>(ess64.get()) : ess32.get());
      emu_normalize(lw, f64 ? 3 : 2, b, n, f64 ? static_cast<void*>(out64.get()) : out32.get());
      bool ok = true;
      for (int64_t r = 0; r < b; ++r) {
        const double e = f64 ? ess64.get()[r] : ess32.get()[r];
        ok = ok && e >= 1.0 - 1e-6 && e <= static_cast<double>(n) * (1 + 1e-6);
      }
      finish(name, ok, "ess outside [1, N]; ");
    }
}

// ---- fused elementwise ----
template <typename T>
T from_double(double v);
template <>
float from_double<float>(double v) { return static_cast<float>(v); }
template <>
double from_double<double>(double v) { return v; }
template <>
__half from_double<__half>(double v) { return __float2half_rn(static_cast<float>(v)); }
template <>
__nv_bfloat16 from_double<__nv_bfloat16>(double v) { return __float2bfloat16_rn(static_cast<float>(v)); }

template <typename T>
void fused_cases(int dtype, const char* dname) {
  const int64_t shapes[][2] = {{3, 5}, {2, 1025}, {5, 700}, {1, 20000}};
  const char* ops[] = {"renoise", "ddim", "langevin", "langevin_clip"};
  for (const auto& shape : shapes)
    for (int op = 0; op < 4; ++op)
      for (int mode = 0; mode < 4; ++mode) {  // noise aligned, noise misaligned, Philox host, wide index + Philox device
        const int64_t B = shape[0], inner = shape[1], numel = B * inner;
        const std::string name = std::string("fused/") + ops[op] + "/" + dname + "/" + std::to_string(B) + "x" +
                                 std::to_string(inner) + "/mode" + std::to_string(mode);
        if (!selected(name)) continue;
        const int64_t shift = mode == 1 ? 1 : 0;  // misaligned views: one element into the allocation
        Buf<T> x(numel + shift), y(numel + shift), z(numel + shift), out(numel + shift);
        for (int64_t i = 0; i < numel + shift; ++i) {
          x.get()[i] = from_double<T>(normal());
          y.get()[i] = from_double<T>(normal());
          z.get()[i] = from_double<T>(normal());
        }
        const int64_t n_levels = 10;
        Buf<double> alpha(n_levels), sigma(n_levels);
        for (int64_t l = 0; l < n_levels; ++l) {
          alpha.get()[l] = 1.0 - 0.09 * static_cast<double>(l);
          sigma.get()[l] = std::sqrt(1.0 - alpha.get()[l] * alpha.get()[l]);
        }
        Buf<int64_t> lf(B), lt(B), rng_dev(2);
        Buf<double> step(B);
        for (int64_t b = 0; b < B; ++b) {
          lf.get()[b] = (op == 1) ? 5 + b % 4 : b % 5;  // ddim steps down, renoise up
          lt.get()[b] = (op == 1) ? lf.get()[b] - 2 : lf.get()[b] + 3;
          step.get()[b] = 0.01 * static_cast<double>(b + 1);
        }
        rng_dev.get()[0] = 99;
        rng_dev.get()[1] = 5;
        const bool clip = op == 3;
        const int64_t P = clip ? emu_grad_norm_partials_count(B, inner) : 0;
        Buf<double> partials(B * P);
        if (clip) emu_grad_norm_partials(y.get() + shift, dtype, B, inner, partials.get());
        const bool use_rng = mode >= 2;
        const int fused_op = op > 2 ? 2 : op;
        auto run = mode == 3 ? emu_fused_wide_index : emu_fused;
        run(fused_op, dtype, x.get() + shift, fused_op == 0 ? nullptr : y.get() + shift, use_rng ? nullptr : z.get() + shift,
            use_rng, mode == 3 ? rng_dev.get() : nullptr, 99, 5, numel, B, inner, fused_op == 2 ? nullptr : lf.get(),
            fused_op == 2 ? nullptr : lt.get(), alpha.get(), sigma.get(), n_levels, 0.7, step.get(), 3,
            clip ? partials.get() : nullptr, P, 1.0, out.get() + shift);
        bool ok = true;
        for (int64_t i = 0; i < numel; ++i) {
          const T v = out.get()[i + shift];
          double d;
          if constexpr (std::is_same_v<T, __half>) d = __half2float(v);
          else if constexpr (std::is_same_v<T, __nv_bfloat16>) d = __bfloat162float(v);
          else d = static_cast<double>(v);
          ok = ok && std::isfinite(d);
        }
        finish(name, ok, "non-finite output from finite inputs; ");
      }
}

// ---- adaptive tempering increment ----
void tempering_cases() {
  for (int64_t n : {1, 8, 33, 100}) {
    const std::string name = "tempering/N" + std::to_string(n);
    if (!selected(name)) continue;
    const int64_t b = 6;
    Buf<double> log_w(b * n), base(b * n), key(b * n), target(b), cap(b), out(b);
    Buf<bool> alive(b * n);
    for (int64_t i = 0; i < b * n; ++i) {
      const int64_t row = i / n;
      alive.get()[i] = !(row == 2 && i % 3 == 0) && row != 5;  // dead slots; an all-dead row
      log_w.get()[i] = alive.get()[i] ? 0.3 * normal() : -std::numeric_limits<double>::infinity();
      base.get()[i] = row == 4 ? 0.1 * normal() : 0.0;
      key.get()[i] = row == 3 ? 1.5 : normal();  // row 3: flat keys
    }
    for (int64_t r = 0; r < b; ++r) {
      target.get()[r] = 0.5 * static_cast<double>(n);
      cap.get()[r] = r == 0 ? std::numeric_limits<double>::infinity() : (r == 1 ? 0.0 : 2.0 * static_cast<double>(r));
    }
    emu_adaptive_increment(log_w.get(), base.get(), key.get(), alive.get(), target.get(), cap.get(), b, n, out.get());
    bool ok = true;
    for (int64_t r = 0; r < b; ++r) ok = ok && out.get()[r] >= 0 && !std::isnan(out.get()[r]);
    finish(name, ok, "increment negative or NaN; ");
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) filter = argv[1];
  resample_cases();
  weight_cases();
  fused_cases<__half>(0, "f16");
  fused_cases<__nv_bfloat16>(1, "bf16");
  fused_cases<float>(2, "f32");
  fused_cases<double>(3, "f64");
  tempering_cases();
  std::printf("%d cases, %d failed\n", cases, failures);
  return failures == 0 && cases > 0 ? 0 : 1;
}
