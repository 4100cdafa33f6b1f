// A CPU emulation of the CUDA execution model, enough to run tts_fast's .cu files unmodified.
//
// Included first into every translation unit (g++ -include cuda_emu.h) after hostify.py has turned
// each `kernel<<<grid, block, smem, stream>>>(args)` into `::emu::launch(kernel, grid, block, smem,
// stream)(args)` and each `extern __shared__ T name[];` into a pointer to the block's dynamic shared
// memory. Compiled with -D__CUDACC__ -D__CUDA_ARCH__=900, so the device branches of the shared
// headers (philox.h, coefficients.h, resample_math.h) are the ones that run.
//
// The model:
// - one OS thread per CUDA thread of a block (a pool, reused across launches); the blocks of a grid
//   run one after another, the threads of one block truly concurrently (a missing barrier shows
//   as a race, not as luck);
// - __syncthreads / __syncwarp are barriers of the block / warp (warps = 32 consecutive linear
//   thread ids, as on the hardware) and order memory between the threads they join;
// - full-mask shuffles exchange values through per-warp slots. They are NOT memory barriers (the
//   CUDA programming guide promises none): under ThreadSanitizer their internal synchronisation is
//   hidden, so shared or global memory that is ordered only by a shuffle is reported as a race;
// - static __shared__ arrays are function-local statics (one per kernel instantiation, shared by
//   the block's threads); dynamic shared memory is a fresh buffer per block, filled with 0xA5
//   (or left undefined under valgrind's memcheck, which then reports reads of unwritten bytes
//   that decide anything), and aligned to exactly what its declaration asks for, so a kernel that
//   stores doubles into an `unsigned char[]` declared without __align__ is caught by UBSan;
// - what a GPU refuses is refused here and reported: blocks of more than 1024 threads (or
//   blockDim.z > 64), grid.y / grid.z above 65535, grid.x above 2^31 - 1, empty grids or blocks,
//   dynamic shared memory above 48 KiB, a full-mask warp operation or __syncthreads that some
//   threads of the warp / block will never reach because they returned, partial warp masks (not
//   used by tts_fast, so not emulated), and failed CUDA_KERNEL_ASSERTs.
// Reports are collected (thread-safe) and read with emu_take_errors() (emu_api.cpp); a kernel that
// trips one still runs to completion, as far as it can.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "cuda_runtime_api.h"

#if defined(__SANITIZE_THREAD__)
#define EMU_TSAN 1
extern "C" {
void AnnotateIgnoreReadsBegin(const char* f, int l);
void AnnotateIgnoreReadsEnd(const char* f, int l);
void AnnotateIgnoreWritesBegin(const char* f, int l);
void AnnotateIgnoreWritesEnd(const char* f, int l);
void AnnotateIgnoreSyncBegin(const char* f, int l);
void AnnotateIgnoreSyncEnd(const char* f, int l);
}
#else
#define EMU_TSAN 0
#endif

#if defined(EMU_MEMCHECK)
#include <valgrind/memcheck.h>
#endif

// ---- the CUDA keywords as plain C++ ----
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) alignas(n)

namespace emu {

constexpr unsigned kWarpSize = 32;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr size_t kMaxDynamicSmem = 48 * 1024;  // without cudaFuncSetAttribute opt-in

// ---- error reports ----
struct Reports {
  std::mutex m;
  std::vector<std::string> items;
  size_t dropped = 0;
};
inline Reports& reports() {
  static Reports r;
  return r;
}
inline void report(const std::string& what) {
  Reports& r = reports();
  std::lock_guard<std::mutex> lk(r.m);
  if (r.items.size() < 64) {
    r.items.push_back(what);
  } else {
    ++r.dropped;
  }
}
// All reports since the last call, one per line ("" if none); clears them.
inline std::string take_reports() {
  Reports& r = reports();
  std::lock_guard<std::mutex> lk(r.m);
  std::string s;
  for (const auto& i : r.items) s += i + "\n";
  if (r.dropped) s += "... and " + std::to_string(r.dropped) + " more\n";
  r.items.clear();
  r.dropped = 0;
  return s;
}

// A barrier of a fixed set of threads that knows which ones have left for good. A phase that is
// completed partly by threads waiting at it and partly by threads that returned from the kernel is
// what the hardware does not promise (__syncthreads after an early return, or a full-mask warp op
// after some lanes exited): reported. Lock-free (one atomic word of counts, a futex on the phase):
// the emulated kernels cross thousands of barriers per launch.
class Barrier {
 public:
  Barrier(int expected, const char* what) : expected_(expected), what_(what) {}
  void arrive_and_wait() {
    const uint32_t my_phase = phase_.load(std::memory_order_acquire);
    if (!arrive(kWait)) {
      while (phase_.load(std::memory_order_acquire) == my_phase) phase_.wait(my_phase, std::memory_order_acquire);
    }
  }
  // The calling thread has returned from the kernel: it counts as arrived in this phase and takes
  // part in no later one.
  void drop() { arrive(kDrop); }

 private:
  // counts_: arrivals (bits 0-15), waiting arrivals (16-31), dropping arrivals (32-47)
  static constexpr uint64_t kWait = 1 | (uint64_t{1} << 16);
  static constexpr uint64_t kDrop = 1 | (uint64_t{1} << 32);
  // Adds this thread's arrival; returns true if it completed the phase.
  bool arrive(uint64_t how) {
    // Read before arriving: the phase (and with it expected_) cannot move on before this arrival.
    const int expected = expected_;
    const uint64_t now = counts_.fetch_add(how, std::memory_order_acq_rel) + how;
    const int arrived = static_cast<int>(now & 0xffff);
    if (arrived < expected) return false;
    const int waiting = static_cast<int>((now >> 16) & 0xffff), dropped = static_cast<int>((now >> 32) & 0xffff);
    if (waiting > 0 && dropped > 0)
      report(std::string(what_) + ": " + std::to_string(dropped) +
             " thread(s) returned from the kernel while others waited at it (a barrier every thread must reach)");
    // Every thread has arrived: no one touches counts_ or expected_ until the phase moves on.
    expected_ -= dropped;
    counts_.store(0, std::memory_order_relaxed);
    phase_.fetch_add(1, std::memory_order_acq_rel);
    phase_.notify_all();
    return true;
  }
  std::atomic<uint64_t> counts_{0};
  std::atomic<uint32_t> phase_{0};
  int expected_;
  const char* what_;
};

struct Warp {
  explicit Warp(int lanes) : lanes(lanes), bar(lanes, "warp barrier (__syncwarp / full-mask shuffle)") {}
  int lanes;
  Barrier bar;
  // Two sets of exchange slots, used alternately: a lane can write the set of the next-but-one
  // exchange only after every lane has passed the next one's barrier, i.e. has read this one.
  uint64_t slot[2][kWarpSize] = {};
};

struct Block {
  Block(int threads, size_t smem_bytes, size_t smem_align) : bar(threads, "__syncthreads") {
    for (int t = 0; t < threads; t += kWarpSize) warps.emplace_back(new Warp(std::min<int>(kWarpSize, threads - t)));
    // Room to place the buffer at exactly `smem_align` (aligned to it, not to twice it).
    storage.reset(new unsigned char[smem_bytes + 64]);
#if !defined(EMU_MEMCHECK)
    std::memset(storage.get(), 0xA5, smem_bytes + 64);
#else
    VALGRIND_MAKE_MEM_UNDEFINED(storage.get(), smem_bytes + 64);
#endif
    smem_size = smem_bytes;
    smem_base = storage.get();
    (void)smem_align;
  }
  unsigned char* dynamic_smem(size_t align) {
    if (!placed) {
      // aligned to `align` but not to 2 * align: a declaration that asks too little shows
      const uintptr_t p = reinterpret_cast<uintptr_t>(storage.get());
      uintptr_t q = (p + 2 * align - 1) / (2 * align) * (2 * align) + align;
      smem_base = reinterpret_cast<unsigned char*>(q);
      placed = true;
    }
    return smem_base;
  }
  Barrier bar;
  std::vector<std::unique_ptr<Warp>> warps;
  std::unique_ptr<unsigned char[]> storage;
  unsigned char* smem_base = nullptr;
  size_t smem_size = 0;
  bool placed = false;
};

// Per emulated thread.
struct ThreadState {
  Block* block = nullptr;
  Warp* warp = nullptr;
  unsigned lane = 0;
  uint64_t warp_syncs = 0;  // warp barriers passed in this block (the same count in every lane)
};
inline thread_local ThreadState tls;

// The launch in progress (one at a time: launches are serialised by the host thread).
struct Grid {
  std::mutex m;
  std::unique_ptr<Block> block;
  size_t smem_align = 1;
};

inline unsigned char* dynamic_smem(size_t align) {
  if (tls.block == nullptr) {
    report("dynamic shared memory used outside a kernel");
    return nullptr;
  }
  static std::mutex m;
  std::lock_guard<std::mutex> lk(m);
  return tls.block->dynamic_smem(align);
}

inline void kernel_assert(bool ok, const char* cond, const char* file, int line) {
  if (!ok) report(std::string("device-side assert failed: ") + cond + " at " + file + ":" + std::to_string(line));
}

// ---- warp-level operations ----
inline Warp& full_warp(unsigned mask, const char* op) {
  Warp& w = *tls.warp;
  if (mask != kFullMask) report(std::string(op) + ": only full masks are emulated (tts_fast uses no other)");
  if (w.lanes != static_cast<int>(kWarpSize))
    report(std::string(op) + " with a full mask in a warp of " + std::to_string(w.lanes) +
           " threads (the block size is not a multiple of 32)");
  return w;
}

inline void syncwarp(unsigned mask) {
  full_warp(mask, "__syncwarp").bar.arrive_and_wait();
  ++tls.warp_syncs;
}

// Value exchange without memory ordering (see the header comment).
template <typename T>
T shuffle(unsigned mask, T v, unsigned src_lane, const char* op) {
  static_assert(sizeof(T) <= sizeof(uint64_t), "shuffles move at most 64 bits");
  Warp& w = full_warp(mask, op);
#if EMU_TSAN
  AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
  AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
  AnnotateIgnoreSyncBegin(__FILE__, __LINE__);
#endif
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  uint64_t* slots = w.slot[tls.warp_syncs % 2];
  slots[tls.lane] = bits;
  w.bar.arrive_and_wait();
  ++tls.warp_syncs;
  const uint64_t got = slots[src_lane % kWarpSize];
#if EMU_TSAN
  AnnotateIgnoreSyncEnd(__FILE__, __LINE__);
  AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
  AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
#endif
  T r;
  std::memcpy(&r, &got, sizeof(T));
  return r;
}

// ---- launches ----
struct Config {
  dim3 grid, block;
  size_t smem = 0;
};

inline bool check_config(const Config& c, const char* kernel) {
  const uint64_t threads = uint64_t{c.block.x} * c.block.y * c.block.z;
  std::string why;
  if (c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0 || threads == 0) why = "an empty grid or block";
  else if (threads > 1024 || c.block.x > 1024 || c.block.y > 1024 || c.block.z > 64) why = "more than 1024 threads per block (or block.z > 64)";
  else if (c.grid.x > 2147483647u || c.grid.y > 65535 || c.grid.z > 65535) why = "a grid beyond 2^31-1 x 65535 x 65535 blocks";
  else if (c.smem > kMaxDynamicSmem) why = "more than 48 KiB of dynamic shared memory";
  if (why.empty()) return true;
  report(std::string("launch of ") + kernel + " refused (invalid configuration argument): " + why);
  return false;
}

// The OS threads that play CUDA threads: created once (as many as the largest block so far) and
// reused by every launch, since creating hundreds of threads per launch dominates the cost
// (ten times over under the sanitizers). Worker t plays the thread of linear index t.
class Pool {
 public:
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
      ++generation_;
    }
    work_.notify_all();
    for (auto& w : workers_) w.join();
  }
  // Runs job(t) for t in [0, n) on n workers at once; returns when all are done.
  void run(unsigned n, const std::function<void(unsigned)>& job) {
    std::unique_lock<std::mutex> lk(m_);
    while (workers_.size() < n) {
      const unsigned index = static_cast<unsigned>(workers_.size());
      const uint64_t before = generation_;  // the worker joins the next generation, this launch's
      workers_.emplace_back([this, index, before] { work(index, before); });
    }
    job_ = &job;
    active_ = n;
    finished_ = 0;
    ++generation_;
    work_.notify_all();
    done_.wait(lk, [&] { return finished_ == active_; });
    job_ = nullptr;
  }

 private:
  void work(unsigned index, uint64_t seen) {
    std::unique_lock<std::mutex> lk(m_);
    for (;;) {
      work_.wait(lk, [&] { return generation_ != seen; });
      seen = generation_;
      if (stop_) return;
      if (index >= active_) continue;
      const std::function<void(unsigned)>* job = job_;
      lk.unlock();
      (*job)(index);
      lk.lock();
      if (++finished_ == active_) done_.notify_one();
    }
  }
  std::mutex m_;
  std::condition_variable work_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(unsigned)>* job_ = nullptr;
  uint64_t generation_ = 0;
  unsigned active_ = 0, finished_ = 0;
  bool stop_ = false;
};

inline Pool& pool() {
  static Pool p;
  return p;
}

// Runs body() as every thread of every block of the grid.
inline void run_grid(const Config& c, const char* kernel, const std::function<void()>& body) {
  if (!check_config(c, kernel)) return;
  const unsigned nt = c.block.x * c.block.y * c.block.z;
  const uint64_t nb = uint64_t{c.grid.x} * c.grid.y * c.grid.z;
  // Between blocks every thread meets here; the last to arrive sets up the next block.
  std::unique_ptr<Block> block;
  uint64_t next = 0;
  std::mutex m;
  std::condition_variable cv;
  unsigned arrived = 0;
  uint64_t phase = 0;
  auto next_block = [&](uint64_t& b) {
    std::unique_lock<std::mutex> lk(m);
    const uint64_t my = phase;
    if (++arrived == nt) {
      arrived = 0;
      block.reset(next < nb ? new Block(static_cast<int>(nt), c.smem, 1) : nullptr);
      b = next++;
      ++phase;
      cv.notify_all();
    } else {
      cv.wait(lk, [&] { return phase != my; });
      b = next - 1;
    }
  };
  pool().run(nt, [&](unsigned t) {
    for (;;) {
      uint64_t b;
      next_block(b);
      if (b >= nb) return;
      Block* blk;
      {
        std::lock_guard<std::mutex> lk(m);
        blk = block.get();
      }
      threadIdx = uint3{t % c.block.x, (t / c.block.x) % c.block.y, t / (c.block.x * c.block.y)};
      blockIdx = uint3{static_cast<unsigned>(b % c.grid.x), static_cast<unsigned>((b / c.grid.x) % c.grid.y),
                       static_cast<unsigned>(b / (uint64_t{c.grid.x} * c.grid.y))};
      blockDim = c.block;
      gridDim = c.grid;
      tls.block = blk;
      tls.warp = blk->warps[t / kWarpSize].get();
      tls.lane = t % kWarpSize;
      tls.warp_syncs = 0;
      body();
      // returned: leaves every barrier it belongs to
      tls.warp->bar.drop();
      blk->bar.drop();
      tls.block = nullptr;
      tls.warp = nullptr;
    }
  });
}

// What hostify.py makes of `kernel<<<grid, block, smem, stream>>>(args)`:
// launch_named(<a lambda calling kernel>, "kernel", grid, block, smem, stream)(args). The lambda
// lets template kernels deduce their arguments as a CUDA launch does.
// Launches per kernel (the name as written before any template arguments), so a test can check
// that every kernel of the sources ran.
struct LaunchCounts {
  std::mutex m;
  std::vector<std::pair<std::string, int64_t>> items;
};
inline LaunchCounts& launch_counts() {
  static LaunchCounts c;
  return c;
}
inline void count_launch(const char* name) {
  std::string base(name);
  base = base.substr(0, base.find('<'));
  LaunchCounts& c = launch_counts();
  std::lock_guard<std::mutex> lk(c.m);
  for (auto& [n, k] : c.items)
    if (n == base) {
      ++k;
      return;
    }
  c.items.emplace_back(base, 1);
}
inline int64_t launches_of(const char* name) {
  LaunchCounts& c = launch_counts();
  std::lock_guard<std::mutex> lk(c.m);
  for (const auto& [n, k] : c.items)
    if (n == name) return k;
  return 0;
}

template <typename F>
struct Bound {
  F call;
  Config config;
  const char* name;
  template <typename... A>
  void operator()(A&&... args) const {
    const std::tuple<std::decay_t<A>...> params(std::forward<A>(args)...);
    count_launch(name);
    run_grid(config, name, [&] { std::apply(call, params); });  // each thread calls with its own copy
  }
};

template <typename F>
Bound<F> launch_named(F call, const char* name, dim3 grid, dim3 block, size_t smem = 0, cudaStream_t stream = nullptr) {
  (void)stream;  // one stream: launches run in program order
  return Bound<F>{call, Config{grid, block, smem}, name};
}

}  // namespace emu

// ---- CUDA device intrinsics used by tts_fast ----
inline void __syncthreads() { emu::tls.block->bar.arrive_and_wait(); }
inline void __syncwarp(unsigned mask = emu::kFullMask) { emu::syncwarp(mask); }
template <typename T>
inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
  if (width != 32) emu::report("__shfl_sync: only width 32 is emulated");
  return emu::shuffle(mask, v, static_cast<unsigned>(src_lane), "__shfl_sync");
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  if (width != 32) emu::report("__shfl_xor_sync: only width 32 is emulated");
  return emu::shuffle(mask, v, emu::tls.lane ^ static_cast<unsigned>(lane_mask), "__shfl_xor_sync");
}
inline unsigned __umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<uint64_t>(a) * static_cast<uint64_t>(b)) >> 32);
}
