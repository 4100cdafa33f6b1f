// Stand-in for CUDA's cuda_bf16.h under the emulator: __nv_bfloat16 as 16 bits of storage with
// the conversions tts_fast's kernels use (round to nearest even, NaN to the canonical quiet NaN,
// as c10::BFloat16 and CUDA's __float2bfloat16_rn).
#pragma once

#include <cstdint>
#include <cstring>

struct __nv_bfloat16 {
  uint16_t bits;
};

inline float __bfloat162float(__nv_bfloat16 h) {
  const uint32_t u = static_cast<uint32_t>(h.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  if (f != f) return __nv_bfloat16{0x7FC0};
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return __nv_bfloat16{static_cast<uint16_t>(u >> 16)};
}
