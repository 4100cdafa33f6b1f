// The Python module tts_fast._C. Importing it loads this shared library, whose static
// initialisers register the ops (ops.cpp, cpu/, cuda/) with the dispatcher; the module itself
// only reports how the library was built.
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
  m.doc() = "tts_fast compiled ops (registered under torch.ops.tts_fast on import)";
  m.def("build_info", &build_info,
        "dict: cpu, cuda (CUDA kernels compiled), cuda_archs, torch_version, cuda_version, compiler, debug");
}
