// A small spinning thread pool for the JIT's kernels: `run(f)` calls f on the
// caller and on the workers that are awake, and returns when the caller is
// done and no worker is still inside f (work is claimed dynamically, so a
// descheduled worker does not hold the others up). Every wait spins briefly,
// then sleeps on a futex (std::atomic::wait), so an idle pool costs nothing
// and an oversubscribed machine does not collapse.
// FTZ/DAZ are set in every worker and, for the duration of run(), in the caller.
//
// The implementation is in this header: it inlines into the executor's
// per-step loop (runtime/executor.cpp). It was header-only first because the
// executor lived in compiler/codegen, below runtime/; moving it out of line
// now would be possible, but its effect on step time was not measured.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <system_error>
#include <thread>
#include <type_traits>
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

/// How long a wait spins before it sleeps, by default: longer than any
/// kernel imbalance inside a step when the threads have their cores, far
/// shorter than a scheduler time slice when they do not. Measured in time,
/// not in pause instructions: a pause costs ~10 cycles on some x86 cores and
/// ~140 on others, so a count of pauses is a budget that varies 10x by machine.
constexpr int kSpinMicros = 50;
/// A worker's spin between two runs (see workerLoop).
constexpr int kGapSpinMicros = 200;

/// Waits until `ready()` holds: spins for up to `spin_us` microseconds first
/// (the fast path, when every thread has a core, costs ~0.1 us), then sleeps
/// on the futex of `word` so a descheduled peer gets the core instead of
/// competing with a spinning waiter (a pure spin wait cost ~5 ms per kernel
/// on an oversubscribed machine). `sleepers` counts sleeping waiters so the
/// waking side only makes the notify system call when someone sleeps.
template <typename T, typename Ready>
void spinThenWait(const std::atomic<T>& word, std::atomic<int>& sleepers, Ready ready,
                  int spin_us = kSpinMicros) {
  if (ready()) return;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us);
  for (int i = 1;; ++i) {
    if (ready()) return;
    _mm_pause();
    if ((i & 31) == 0 && std::chrono::steady_clock::now() >= deadline) break;
  }
  for (;;) {
    T seen = word.load(std::memory_order_seq_cst);
    if (ready()) return;
    // seq_cst on both sides (here and in wakeWaiters) makes this a Dekker
    // handshake: either the waker sees sleepers > 0 and notifies, or our
    // wait() sees the new value and returns at once.
    sleepers.fetch_add(1, std::memory_order_seq_cst);
    if (!ready()) word.wait(seen, std::memory_order_seq_cst);
    sleepers.fetch_sub(1, std::memory_order_seq_cst);
  }
}

/// The waking side of spinThenWait: call after changing `word`.
template <typename T> void wakeWaiters(std::atomic<T>& word, const std::atomic<int>& sleepers) {
  if (sleepers.load(std::memory_order_seq_cst) > 0) word.notify_all();
}

/// An atomic int alone on its cache line (per-kernel claim and done counters
/// are written by different threads; sharing lines would make them bounce).
struct alignas(64) PaddedAtomic {
  std::atomic<int> v{0};
};

/// Fork-join pool of `threads` threads including the caller, built for an
/// oversubscribed machine: run(f) does not wait for a worker that has not
/// woken up yet. f must therefore let any subset of the threads (the caller
/// always among them) finish the whole job: it claims its work items
/// dynamically (see Program's kernel loop), so a descheduled worker simply
/// leaves its items to the running threads instead of stalling them.
class ThreadPool {
public:
  /// threads <= 0: all hardware threads.
  explicit ThreadPool(int threads = 0) {
    n_ = threads > 0 ? threads : int(std::max(1u, std::thread::hardware_concurrency()));
    for (int i = 1; i < n_; ++i) {
      try {
        workers_.emplace_back([this, i] { workerLoop(i); });
      } catch (const std::system_error&) {
        // No thread for worker i (no memory for its stack, say): run with the
        // ones started (an exception would leave them unjoined: terminate);
        // the results do not depend on the thread count.
        n_ = i;
        break;
      }
    }
  }
  ~ThreadPool() {
    stop_.store(true, std::memory_order_seq_cst);
    generation_.fetch_add(1, std::memory_order_seq_cst);
    generation_.notify_all();
    for (auto& t : workers_) t.join();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  /// Number of threads (tasks per run).
  int size() const { return n_; }

  /// Calls f(thread, nthreads) on the caller (thread 0) and on every worker
  /// that wakes up before the caller's f returns; returns when the caller's f
  /// has returned and no worker is inside f.
  template <typename F> void run(F&& f) {
    unsigned old = enableFlushDenormals();
    if (n_ == 1) {
      f(0, 1);
    } else {
      fn_ = [](void* ctx, int task, int ntasks) { (*static_cast<std::remove_reference_t<F>*>(ctx))(task, ntasks); };
      ctx_ = const_cast<void*>(static_cast<const void*>(&f));
      uint64_t g = generation_.load(std::memory_order_relaxed) + 1;
      generation_.store(g, std::memory_order_seq_cst);
      wakeWaiters(generation_, worker_sleepers_);
      f(0, n_);
      // Close run g, then wait for the workers inside it. A worker enters only
      // after announcing itself in active_ and seeing the run still open
      // (seq_cst on both sides), so none can enter after this wait.
      finished_.store(g, std::memory_order_seq_cst);
      spinThenWait(active_, caller_sleeping_, [&] { return active_.load(std::memory_order_seq_cst) == 0; });
    }
    _mm_setcsr(old);
  }

private:
  void workerLoop(int id) {
    enableFlushDenormals();
    uint64_t seen = 0;
    for (;;) {
      // Between steps the caller gathers the next batch and does the step's
      // bookkeeping: spin through that gap (a worker that falls asleep there
      // costs the next step a futex wake-up, tens of us under a hypervisor);
      // an idle pool (evaluation, I/O, exit) then sleeps.
      spinThenWait(
          generation_, worker_sleepers_,
          [&] { return generation_.load(std::memory_order_acquire) != seen; }, kGapSpinMicros);
      uint64_t g = generation_.load(std::memory_order_acquire);
      seen = g;
      if (stop_.load(std::memory_order_acquire)) return;
      active_.fetch_add(1, std::memory_order_seq_cst);
      if (generation_.load(std::memory_order_seq_cst) == g && finished_.load(std::memory_order_seq_cst) != g)
        fn_(ctx_, id, n_);
      active_.fetch_sub(1, std::memory_order_seq_cst);
      wakeWaiters(active_, caller_sleeping_);
    }
  }

  int n_ = 1;
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> generation_{0}; ///< number of the current (or last) run
  std::atomic<uint64_t> finished_{0};   ///< number of the last run the caller has closed
  std::atomic<int> active_{0};          ///< workers inside fn_
  std::atomic<int> worker_sleepers_{0}, caller_sleeping_{0};
  std::atomic<bool> stop_{false};
  void (*fn_)(void*, int, int) = nullptr;
  void* ctx_ = nullptr;
};

} // namespace descent
