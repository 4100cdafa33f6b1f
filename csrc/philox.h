// Philox4x32-10 counter-based generator shared by the CPU and CUDA kernels.
//
// Bit-identical to tts_fast/_philox.py (the reference): element e of a call uses the block with
// 128-bit counter (lo32(offset + e/4), hi32(offset + e/4), 0, 0), key (lo32(seed), hi32(seed)),
// and lane e % 4 of the four output words. Uniforms for resampling are word * 2^-32 in double
// (exact). Normals are Box-Muller in float32 on the lane pairs (0, 1) and (2, 3) of one block.
// Because the counter is per block of four, a thread that owns elements [4q, 4q + 4) draws all
// four values with one call.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define TTS_HD __host__ __device__ __forceinline__
#else
#define TTS_HD inline
#endif

namespace tts_fast {

struct Philox4 {
  uint32_t w[4];
};

// High and low halves of the 64-bit product a * b.
TTS_HD void mulhilo32(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
#if defined(__CUDA_ARCH__)
  lo = a * b;
  hi = __umulhi(a, b);
#else
  const uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  lo = static_cast<uint32_t>(p);
  hi = static_cast<uint32_t>(p >> 32);
#endif
}

// The four words of block `counter` under key `seed` (both taken as 64-bit patterns).
TTS_HD Philox4 philox4x32_10(uint64_t seed, uint64_t counter) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32);
  uint32_t c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      k0 += kW0;
      k1 += kW1;
    }
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo32(kM0, c0, hi0, lo0);
    mulhilo32(kM1, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0;
    const uint32_t n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Uniform in [0, 1) for element e of a call: word * 2^-32, exact in double.
TTS_HD double philox_uniform(uint64_t seed, uint64_t offset, uint64_t e) {
  const Philox4 b = philox4x32_10(seed, offset + e / 4);
  return static_cast<double>(b.w[e % 4]) * 0x1p-32;
}

// Four float32 standard normals of block `counter`, in lane order (r0 cos, r0 sin, r1 cos, r1 sin).
// Same float32 operations as the reference: u_log = ((w >> 8) + 1) * 2^-24 in (0, 1],
// u_ang = (w >> 8) * 2^-24 in [0, 1), radius = sqrt(-2 log u_log), angle = u_ang * float(2 pi).
TTS_HD void philox_normal4(uint64_t seed, uint64_t counter, float z[4]) {
  const Philox4 b = philox4x32_10(seed, counter);
  constexpr float kTwoPi = static_cast<float>(6.283185307179586);
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int p = 0; p < 2; ++p) {
    const float u_log = static_cast<float>((b.w[2 * p] >> 8) + 1u) * 0x1p-24f;
    const float u_ang = static_cast<float>(b.w[2 * p + 1] >> 8) * 0x1p-24f;
#if defined(__CUDA_ARCH__)
    const float radius = sqrtf(-2.0f * logf(u_log));
    float s, c;
    sincosf(u_ang * kTwoPi, &s, &c);
#else
    const float radius = std::sqrt(-2.0f * std::log(u_log));
    const float theta = u_ang * kTwoPi;
    const float c = std::cos(theta), s = std::sin(theta);
#endif
    z[2 * p] = radius * c;
    z[2 * p + 1] = radius * s;
  }
}

}  // namespace tts_fast
