// Stand-in for the CUDA runtime header under the emulator (cuda_emu.h): the launch types and the
// built-in thread coordinates, nothing that needs a GPU.
#pragma once

#include <cstddef>

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
typedef struct CUstream_st* cudaStream_t;
typedef int cudaError_t;

// Per emulated thread, set by emu::run_grid before the kernel body runs.
inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;
