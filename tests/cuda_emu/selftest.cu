// Kernels that test the emulator itself (tests/test_cuda_emu.py): what it must compute (shuffles,
// barriers, shared memory, the 16-bit conversions) and what it must refuse, as a GPU would.
// Compiled through hostify.py like the project's kernels; not part of tts_fast.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include <torch/headeronly/macros/Macros.h>

namespace {

// out[t] = lane t's value after __shfl_sync from src and a full xor butterfly sum.
__global__ void shuffle_kernel(int src, int64_t* out) {
  int64_t v = 100 * static_cast<int64_t>(threadIdx.x);
  const int64_t from_src = __shfl_sync(0xffffffffu, v, src);
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  out[2 * threadIdx.x] = from_src;
  out[2 * threadIdx.x + 1] = v;
}

// Each thread writes its slot of static shared memory; after __syncthreads, reads its neighbour's.
__global__ void shared_kernel(int64_t* out) {
  __shared__ int64_t slots[1024];
  slots[threadIdx.x] = 7 * static_cast<int64_t>(threadIdx.x) + blockIdx.x;
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = slots[(threadIdx.x + 1) % blockDim.x];
}

// Reads dynamic shared memory nobody wrote (the poison) and reports its address modulo 64.
__global__ void dynamic_smem_kernel(uint8_t* first_bytes, int64_t* address_mod) {
  extern __shared__ __align__(16) unsigned char smem[];
  if (threadIdx.x < 8) first_bytes[threadIdx.x] = smem[threadIdx.x];
  if (threadIdx.x == 0) *address_mod = static_cast<int64_t>(reinterpret_cast<uintptr_t>(smem) % 64);
}

// Odd threads return; even ones wait at a barrier the odd ones never reach.
__global__ void early_return_syncthreads_kernel() {
  if (threadIdx.x & 1) return;
  __syncthreads();
}

// Lane 5 returns; the others start a full-mask shuffle.
__global__ void early_return_shuffle_kernel(double* out) {
  if (threadIdx.x == 5) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0, 1);
}

// A full-mask shuffle in whatever block size the launch gives.
__global__ void any_block_shuffle_kernel(double* out) { out[threadIdx.x] = __shfl_sync(0xffffffffu, 2.0, 0); }

__global__ void assert_kernel(int value) { CUDA_KERNEL_ASSERT(value == 0 && "value must be 0"); }

__global__ void empty_kernel() {}

// out[i] = the emulator's float -> half / bfloat16 -> float round trips of in[i].
__global__ void convert_kernel(const float* in, int64_t n, float* half_out, float* bf16_out) {
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    half_out[i] = __half2float(__float2half_rn(in[i]));
    bf16_out[i] = __bfloat162float(__float2bfloat16_rn(in[i]));
  }
}

}  // namespace

extern "C" {

void selftest_shuffle(int src, int64_t* out) { shuffle_kernel<<<1, 32>>>(src, out); }
void selftest_shared(unsigned blocks, unsigned threads, int64_t* out) { shared_kernel<<<blocks, threads>>>(out); }
void selftest_dynamic_smem(uint8_t* first_bytes, int64_t* address_mod) {
  dynamic_smem_kernel<<<1, 32, 64>>>(first_bytes, address_mod);
}
void selftest_early_return_syncthreads() { early_return_syncthreads_kernel<<<1, 64>>>(); }
void selftest_early_return_shuffle(double* out) { early_return_shuffle_kernel<<<1, 32>>>(out); }
void selftest_any_block_shuffle(unsigned threads, double* out) { any_block_shuffle_kernel<<<1, threads>>>(out); }
void selftest_assert(int value) { assert_kernel<<<1, 1>>>(value); }
// A launch of an empty kernel with this configuration (the emulator refuses what a GPU refuses).
void selftest_launch(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, uint64_t smem) {
  empty_kernel<<<dim3(gx, gy, gz), dim3(bx, by, bz), smem>>>();
}
void selftest_convert(const float* in, int64_t n, float* half_out, float* bf16_out) {
  convert_kernel<<<1, 64>>>(in, n, half_out, bf16_out);
}

}  // extern "C"
