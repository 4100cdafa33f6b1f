// Bad-input errors of the ops, raised in Python as ValueError or TypeError like the references'.
//
// The LibTorch stable ABI has no typed errors (STD_TORCH_CHECK throws std::runtime_error, which
// Python sees as RuntimeError). A C++ exception thrown by a kernel reaches Python through torch's
// pybind11 op binding, so we throw what pybind11 translates:
//  - ValueError: std::invalid_argument (pybind11's standard translation).
//  - TypeError: a subclass of pybind11::builtin_exception, the exported base class through which
//    pybind11 modules raise Python exceptions across shared objects; pybind11 calls its
//    set_error(), which sets TypeError through the interpreter's own C API, looked up at run time
//    so that this library links no libpython and needs no Python header. The declaration below
//    is pybind11's (unchanged since pybind11 2.2). Outside a Python process the error is still a
//    std::runtime_error with the same message.
// tests/test_ops.py::test_bad_input_names_the_argument checks the Python types.
#pragma once

#include <dlfcn.h>

#include <sstream>
#include <stdexcept>
#include <string>

namespace pybind11 {
class __attribute__((visibility("default"))) builtin_exception : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  virtual void set_error() const = 0;
};
}  // namespace pybind11

namespace tts_fast {

class TypeError final : public pybind11::builtin_exception {
 public:
  using pybind11::builtin_exception::builtin_exception;
  void set_error() const override {
    using SetString = void (*)(void*, const char*);
    const auto set = reinterpret_cast<SetString>(dlsym(RTLD_DEFAULT, "PyErr_SetString"));
    const auto type_error = static_cast<void**>(dlsym(RTLD_DEFAULT, "PyExc_TypeError"));
    if (set != nullptr && type_error != nullptr) set(*type_error, what());
  }
};

template <typename... Args>
std::string cat(const Args&... args) {
  std::ostringstream s;
  ((s << args), ...);
  return s.str();
}

}  // namespace tts_fast

// TTS_CHECK_VALUE(cond, parts...) / TTS_CHECK_TYPE(cond, parts...): raise ValueError / TypeError
// with the concatenated message parts when cond is false.
#define TTS_CHECK_VALUE(cond, ...)                                           \
  do {                                                                       \
    if (!(cond)) throw std::invalid_argument(::tts_fast::cat(__VA_ARGS__)); \
  } while (0)
#define TTS_CHECK_TYPE(cond, ...)                                          \
  do {                                                                     \
    if (!(cond)) throw ::tts_fast::TypeError(::tts_fast::cat(__VA_ARGS__)); \
  } while (0)
