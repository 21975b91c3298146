// The memory experiment behind compiler/passes/weight_panels.h: how long a
// thread takes to read its share of a [784,128] f32 weight (the notebook
// model's first layer) right after writing it, as the forward GEMM does after
// the previous step's dW + SGD kernel, for three ways of sharing it between
// two threads pinned to two cores:
//
//   row-major halves  thread t owns columns [64t, 64t+64) of every 512-byte
//                     row: the two threads' lines alternate every 256 bytes
//   panels            thread t owns the contiguous [784,64] panel t
//   row halves        thread t writes rows [392t, 392t+392) and then reads
//                     all of W (a forward split over the batch rows)
//
// and one thread owning all of it. Prints the median over repetitions of
// microseconds per read pass. No descent code: plain loads and stores.
//
//   make bench-halves     (or: c++ -O2 -march=native -pthread this file)
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <pthread.h>
#include <sched.h>
#include <thread>
#include <vector>

namespace {

constexpr int kRows = 784, kCols = 128, kPanel = 64;
alignas(4096) float W[kRows * kCols];

struct Barrier {
  std::atomic<int> arrived{0};
  void wait(int threads, int& phase) {
    phase += threads;
    arrived.fetch_add(1);
    while (arrived.load() < phase) {
    }
  }
};

enum class Share { RowMajorHalves, Panels, RowHalves, Alone };

/// Index of element (r, c) of W in the layout of `s`.
int at(Share s, int r, int c) {
  if (s == Share::Panels) return ((c / kPanel) * kRows + r) * kPanel + c % kPanel;
  return r * kCols + c;
}

/// Median microseconds of thread `self`'s read pass over `iters` rounds of
/// (write own share, barrier, read, barrier).
double run(Share s, int self, int threads, int iters, Barrier& bar) {
  int phase = 0;
  std::vector<double> times;
  const bool alone = s == Share::Alone;
  const int c0 = alone || s == Share::RowHalves ? 0 : self * kPanel;
  const int c1 = alone || s == Share::RowHalves ? kCols : c0 + kPanel;
  const int w0 = s == Share::RowHalves ? self * kRows / 2 : 0;
  const int w1 = s == Share::RowHalves ? w0 + kRows / 2 : kRows;
  for (int it = 0; it < iters; ++it) {
    for (int r = w0; r < w1; ++r) // the update: W = W * 0.999 + 0.001
      for (int c = c0; c < c1; ++c)
        W[at(s, r, c)] = W[at(s, r, c)] * 0.999f + 1e-3f;
    bar.wait(threads, phase);
    auto t0 = std::chrono::steady_clock::now();
    float acc = 0;
    for (int r = 0; r < kRows; ++r) // the forward's reads: one load per line
      for (int c = c0; c < c1; c += 16)
        acc += W[at(s, r, c)];
    auto t1 = std::chrono::steady_clock::now();
    static volatile float sink;
    sink = acc; // keep the loads
    (void)sink;
    if (it >= 20) times.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    bar.wait(threads, phase);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

void report(const char* name, Share s, int threads, const char* what) {
  Barrier bar;
  std::vector<double> us(static_cast<size_t>(threads));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      pin(t);
      us[size_t(t)] = run(s, t, threads, 2000, bar);
    });
  for (auto& t : pool)
    t.join();
  std::printf("%-18s %-34s", name, what);
  for (double u : us)
    std::printf(" %7.2f", u);
  std::printf("\n");
}

} // namespace

int main() {
  if (std::thread::hardware_concurrency() < 2) {
    std::printf("needs 2 CPUs\n");
    return 1;
  }
  std::printf("read pass after the update, median us per thread (W: %d x %d f32, %d KB)\n", kRows,
              kCols, kRows * kCols * 4 / 1024);
  report("one thread", Share::Alone, 1, "reads all of W (its own)");
  report("row-major halves", Share::RowMajorHalves, 2, "reads its columns (200 KB)");
  report("panels", Share::Panels, 2, "reads its panel (200 KB)");
  report("row halves", Share::RowHalves, 2, "wrote half the rows, reads all");
  return 0;
}
