// C entry points over tts_fast's CUDA launchers (csrc/cuda/launch.h), for ctypes (emu.py) and for
// the sanitizer driver (driver.cpp). Each takes raw pointers to host memory laid out as the CUDA
// glue (csrc/cuda/register.cpp) lays out device memory, runs the launch under the emulator and
// returns. emu_take_errors() returns what the emulator reported since the last call.
#include <cstdint>
#include <string>

#include "emu_args.h"
#include "launch.h"

using tts_fast::cuda::DType;

namespace {
thread_local std::string last_errors;
}  // namespace

extern "C" {

const char* emu_take_errors() {
  last_errors = emu::take_reports();
  return last_errors.c_str();
}

int64_t emu_launches(const char* kernel) { return emu::launches_of(kernel); }

void emu_resample(const void* log_weights, int lw_dtype, const void* uniforms, int u_dtype, const int64_t* rng_device,
                  uint64_t seed, uint64_t offset, int64_t B, int64_t N, int scheme, double* ws_w, int64_t* ws_i,
                  double* ws_u, int64_t* out) {
  tts_fast::cuda::ResampleArgs a;
  a.log_weights = log_weights;
  a.lw_dtype = static_cast<DType>(lw_dtype);
  a.uniforms = uniforms;
  a.u_dtype = static_cast<DType>(u_dtype);
  a.rng = emu::rng_arg(rng_device, seed, offset);
  a.B = B;
  a.N = N;
  a.scheme = scheme;
  a.ws_w = ws_w;
  a.ws_i = ws_i;
  a.ws_u = ws_u;
  a.out = out;
  tts_fast::cuda::launch_resample(a, nullptr);
}

// op: 0 renoise, 1 ddim, 2 langevin (FusedOp). Unused pointers are null.
void emu_fused(EMU_FUSED_PARAMS) { tts_fast::cuda::launch_fused(emu::fused_args(EMU_FUSED_ARGS), nullptr); }

int64_t emu_grad_norm_partials_count(int64_t B, int64_t inner) { return tts_fast::cuda::grad_norm_partials(B, inner); }

void emu_grad_norm_partials(const void* grad, int dtype, int64_t B, int64_t inner, double* partials) {
  tts_fast::cuda::launch_grad_norm_partials(grad, static_cast<DType>(dtype), B, inner, partials, nullptr);
}

void emu_ess(const void* log_weights, int dtype, int64_t B, int64_t N, void* out) {
  tts_fast::cuda::launch_ess(log_weights, static_cast<DType>(dtype), B, N, out, nullptr);
}

void emu_normalize(const void* log_weights, int dtype, int64_t B, int64_t N, void* out) {
  tts_fast::cuda::launch_normalize(log_weights, static_cast<DType>(dtype), B, N, out, nullptr);
}

void emu_adaptive_increment(const double* log_w, const double* base, const double* key, const bool* alive,
                            const double* target, const double* cap, int64_t B, int64_t N, double* out) {
  tts_fast::cuda::launch_adaptive_increment(log_w, base, key, alive, target, cap, B, N, out, nullptr);
}

}  // extern "C"
