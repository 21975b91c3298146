// A small spinning thread pool for the JIT's kernels: `run(f)` calls f(task,
// ntasks) on every thread (the caller is task 0) and returns when all are
// done; `SpinBarrier` separates the kernels of a step inside one run. Workers
// spin briefly, then sleep on an atomic wait, so an idle pool costs nothing.
// FTZ/DAZ are set in every worker and, for the duration of run(), in the caller.
//
// The implementation is in this header on purpose: descent_codegen (the JIT
// program) uses it, and descent_runtime links after descent_codegen, so an
// out-of-line definition in runtime/ would not resolve for codegen users.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>
#include <xmmintrin.h>

namespace descent {

/// Sets flush-to-zero and denormals-are-zero in this thread's MXCSR and
/// returns the previous MXCSR.
inline unsigned enableFlushDenormals() {
  unsigned old = _mm_getcsr();
  _mm_setcsr(old | 0x8040u); // FTZ (bit 15) | DAZ (bit 6)
  return old;
}

/// A sense-reversing barrier for `count` spinning threads.
class SpinBarrier {
public:
  explicit SpinBarrier(int count) : count_(count) {}
  void reset(int count) {
    count_ = count;
    waiting_.store(0, std::memory_order_relaxed);
  }
  /// Blocks until all `count` threads have arrived.
  void wait() {
    if (count_ <= 1) return;
    int gen = generation_.load(std::memory_order_acquire);
    if (waiting_.fetch_add(1, std::memory_order_acq_rel) == count_ - 1) {
      waiting_.store(0, std::memory_order_relaxed);
      generation_.store(gen + 1, std::memory_order_release);
      return;
    }
    // Spin (the common case: the other threads arrive within microseconds),
    // but yield when they do not, so an oversubscribed machine still progresses.
    for (int spins = 0; generation_.load(std::memory_order_acquire) == gen; ++spins) {
      if (spins < 4000) _mm_pause();
      else std::this_thread::yield();
    }
  }

private:
  int count_;
  std::atomic<int> waiting_{0};
  std::atomic<int> generation_{0};
};

/// Fork-join pool of `threads` threads including the caller.
class ThreadPool {
public:
  /// threads <= 0: all hardware threads.
  explicit ThreadPool(int threads = 0) {
    n_ = threads > 0 ? threads : std::max(1u, std::thread::hardware_concurrency());
    for (int i = 1; i < n_; ++i) workers_.emplace_back([this, i] { workerLoop(i); });
  }
  ~ThreadPool() {
    stop_.store(true, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_acq_rel);
    generation_.notify_all();
    for (auto& t : workers_) t.join();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  /// Number of threads (tasks per run).
  int size() const { return n_; }

  /// Calls f(task, ntasks) on every thread, the caller being task 0; returns when all have finished.
  template <typename F> void run(F&& f) {
    unsigned old = enableFlushDenormals();
    if (n_ == 1) {
      f(0, 1);
    } else {
      fn_ = [](void* ctx, int task, int ntasks) { (*static_cast<F*>(ctx))(task, ntasks); };
      ctx_ = &f;
      done_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_acq_rel);
      generation_.notify_all();
      f(0, n_);
      for (int spins = 0; done_.load(std::memory_order_acquire) != n_ - 1; ++spins) {
        if (spins < 4000) _mm_pause();
        else std::this_thread::yield();
      }
    }
    _mm_setcsr(old);
  }

private:
  void workerLoop(int id) {
    enableFlushDenormals();
    uint64_t seen = 0;
    for (;;) {
      uint64_t g;
      int spins = 0;
      while ((g = generation_.load(std::memory_order_acquire)) == seen) {
        if (++spins < 200000) _mm_pause();
        else generation_.wait(seen, std::memory_order_acquire);
      }
      seen = g;
      if (stop_.load(std::memory_order_acquire)) return;
      fn_(ctx_, id, n_);
      done_.fetch_add(1, std::memory_order_acq_rel);
    }
  }

  int n_ = 1;
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> done_{0};
  std::atomic<bool> stop_{false};
  void (*fn_)(void*, int, int) = nullptr;
  void* ctx_ = nullptr;
};

} // namespace descent
