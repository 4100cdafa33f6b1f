// The parts of the LibTorch stable ABI (torch/csrc/stable, torch/headeronly) that the kernels use,
// plus the few helpers it lacks: torch-style dtype and device names, and calls of ATen ops through
// the stable dispatcher (the same ATen kernels that the references' torch calls run).
//
// The library is compiled with TORCH_TARGET_VERSION = 2.10 (setup.py, CMakeLists.txt), so only
// the API of torch 2.10 is visible here and the binary loads in every torch >= 2.10; including a
// non-stable torch header is then a compile error.
#pragma once

#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/ScalarType.h>
#include <torch/headeronly/util/BFloat16.h>
#include <torch/headeronly/util/Half.h>

#include <array>
#include <cstdint>
#include <string>

namespace tts_fast {

using Tensor = torch::stable::Tensor;
using ScalarType = torch::headeronly::ScalarType;
using DeviceType = torch::headeronly::DeviceType;
using Half = c10::Half;
using BFloat16 = c10::BFloat16;

// torch-style dtype names ("float32"), as the reference prints them.
inline std::string dtype_name(ScalarType t) {
  switch (t) {
    case ScalarType::Half: return "float16";
    case ScalarType::BFloat16: return "bfloat16";
    case ScalarType::Float: return "float32";
    case ScalarType::Double: return "float64";
    case ScalarType::Long: return "int64";
    case ScalarType::Int: return "int32";
    case ScalarType::Short: return "int16";
    case ScalarType::Char: return "int8";
    case ScalarType::Byte: return "uint8";
    case ScalarType::Bool: return "bool";
    default: return torch::headeronly::toString(t);
  }
}

// A device as torch prints it: "cpu", "cuda:0", "meta".
inline std::string device_str(const torch::stable::Device& d) {
  std::string s;
  switch (d.type()) {
    case DeviceType::CPU: s = "cpu"; break;
    case DeviceType::CUDA: s = "cuda"; break;
    case DeviceType::Meta: s = "meta"; break;
    case DeviceType::MPS: s = "mps"; break;
    case DeviceType::XPU: s = "xpu"; break;
    case DeviceType::HIP: s = "hip"; break;
    default: s = "device_type_" + std::to_string(static_cast<int>(d.type()));
  }
  return d.has_index() ? s + ":" + std::to_string(d.index()) : s;
}

// A shape as Python prints a tuple: (), (3,), (2, 3).
inline std::string shape_str(const Tensor& t) {
  std::string s = "(";
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (d > 0) s += ", ";
    s += std::to_string(t.size(d));
  }
  return s + (t.dim() == 1 ? ",)" : ")");
}

inline bool same_sizes(const Tensor& a, const Tensor& b) {
  if (a.dim() != b.dim()) return false;
  for (int64_t d = 0; d < a.dim(); ++d)
    if (a.size(d) != b.size(d)) return false;
  return true;
}

// ATen op `name.overload` called through the stable dispatcher with tensor arguments; returns its
// (single) tensor result. The stable ABI wraps only some ATen ops (torch::stable::empty, to, ...);
// this reaches the others, with the kernels ATen itself runs.
template <typename... Args>
Tensor aten_call(const char* name, const char* overload, const Args&... args) {
  std::array<StableIValue, sizeof...(Args)> stack{torch::stable::detail::from(args)...};
  STABLE_TORCH_ERROR_CODE_CHECK(torch_call_dispatcher(name, overload, stack.data(), TORCH_ABI_VERSION));
  return torch::stable::detail::to<Tensor>(stack[0]);
}

// A 1-D CPU tensor viewing n elements at `data`; the caller keeps the buffer alive.
inline Tensor cpu_blob(void* data, int64_t n, ScalarType dtype) {
  const int64_t sizes[1] = {n}, strides[1] = {1};
  return torch::stable::from_blob(data, sizes, strides, torch::stable::Device(DeviceType::CPU), dtype);
}

// An uninitialised contiguous tensor of `dtype` on `like`'s device.
inline Tensor empty_on(const Tensor& like, torch::headeronly::IntHeaderOnlyArrayRef sizes, ScalarType dtype) {
  return torch::stable::empty(sizes, dtype, std::nullopt, like.device());
}

}  // namespace tts_fast
