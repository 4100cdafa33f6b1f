// The Python module tts_fast._C: reports how tts_fast's op libraries (_ops, _ops_cuda: ops.cpp,
// cpu/, cuda/, on the LibTorch stable ABI) were built. It includes no torch header and links no
// torch library, so it depends on the CPython version only; tts_fast.ops loads the op libraries
// with torch.ops.load_library.
//
// Build facts arrive as -D macros from setup.py, each string hex-encoded (TTS_FAST_*_HEX): a hex
// string is a single preprocessor number, so it survives shells, ninja and macro expansion intact,
// whatever characters the version or the architecture list holds.
#include <pybind11/pybind11.h>

#include <string>

#define TTS_FAST_STR_(x) #x
#define TTS_FAST_STR(x) TTS_FAST_STR_(x)

#ifndef TTS_FAST_TORCH_VERSION_HEX
#define TTS_FAST_TORCH_VERSION_HEX 0
#endif
#ifndef TTS_FAST_CUDA_VERSION_HEX
#define TTS_FAST_CUDA_VERSION_HEX 0
#endif
#ifndef TTS_FAST_CUDA_ARCHS_HEX
#define TTS_FAST_CUDA_ARCHS_HEX 0
#endif
#ifndef TTS_FAST_MIN_TORCH_HEX
#define TTS_FAST_MIN_TORCH_HEX 0
#endif
#ifndef TTS_FAST_WITH_CUDA
#define TTS_FAST_WITH_CUDA 0
#endif

namespace {

std::string unhex(const char* s) {
  std::string in(s), out;
  if (in == "0") return out;  // not set
  auto nib = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  for (size_t i = 0; i + 1 < in.size(); i += 2) out.push_back(static_cast<char>(nib(in[i]) * 16 + nib(in[i + 1])));
  return out;
}

std::string compiler() {
#if defined(__clang__)
  return "clang " __clang_version__;
#elif defined(__GNUC__)
  return "g++ " TTS_FAST_STR(__GNUC__) "." TTS_FAST_STR(__GNUC_MINOR__) "." TTS_FAST_STR(__GNUC_PATCHLEVEL__);
#elif defined(_MSC_VER)
  return "msvc " TTS_FAST_STR(_MSC_VER);
#else
  return "unknown";
#endif
}

pybind11::dict build_info() {
  pybind11::dict d;
  d["cpu"] = true;
  d["cuda"] = static_cast<bool>(TTS_FAST_WITH_CUDA);
  pybind11::list archs;
  const std::string arch_list = unhex(TTS_FAST_STR(TTS_FAST_CUDA_ARCHS_HEX));
  size_t start = 0;
  while (start < arch_list.size()) {  // ';'- or ' '-separated, as TORCH_CUDA_ARCH_LIST
    size_t end = arch_list.find_first_of("; ", start);
    if (end == std::string::npos) end = arch_list.size();
    if (end > start) archs.append(arch_list.substr(start, end - start));
    start = end + 1;
  }
  d["cuda_archs"] = archs;
  d["torch_version"] = unhex(TTS_FAST_STR(TTS_FAST_TORCH_VERSION_HEX));
  const std::string cuda_version = unhex(TTS_FAST_STR(TTS_FAST_CUDA_VERSION_HEX));
  d["cuda_version"] = cuda_version.empty() ? pybind11::object(pybind11::none()) : pybind11::str(cuda_version);
  d["min_torch"] = unhex(TTS_FAST_STR(TTS_FAST_MIN_TORCH_HEX));
  d["compiler"] = compiler();
#ifdef NDEBUG
  d["debug"] = false;
#else
  d["debug"] = true;
#endif
  return d;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "How tts_fast's op libraries were built (tts_fast.ops loads them under torch.ops.tts_fast)";
  m.def("build_info", &build_info,
        "dict: cpu, cuda (CUDA kernels compiled), cuda_archs, torch_version (built against), cuda_version, "
        "min_torch (oldest torch served), compiler, debug");
}
