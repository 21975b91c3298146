// The thread pool's protocol under stress: every work item of a run is done
// exactly once whichever threads take part (workers may join a run late or
// not at all), no worker is inside a run after run() returns, and a pool that
// sleeps (futex) between runs wakes up for the next one.
#include "runtime/thread_pool.h"

#include <catch2/catch.hpp>

#include <chrono>
#include <thread>
#include <vector>

using namespace descent;

namespace {

/// Runs `runs` jobs of `items` claimable items on `pool`, as Program does
/// (own item first, then steal), and checks that each item ran once.
void stress(ThreadPool& pool, int runs, int items, bool pause_between) {
  const size_t n = static_cast<size_t>(items);
  std::vector<PaddedAtomic> claim(n), count(n);
  for (int r = 0; r < runs; ++r) {
    for (auto& c : claim) c.v.store(0, std::memory_order_relaxed);
    std::atomic<int> inside{0};
    pool.run([&](int self, int) {
      inside.fetch_add(1);
      for (int i = 0; i < items; ++i) {
        int c = (self + i) % items;
        if (claim[size_t(c)].v.exchange(1) == 0) count[size_t(c)].v.fetch_add(1);
      }
      inside.fetch_sub(1);
    });
    // run() returned: nobody may still be inside this run's job.
    REQUIRE(inside.load() == 0);
    if (pause_between && r % 50 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (auto& c : count) REQUIRE(c.v.load() == runs);
}

} // namespace

TEST_CASE("thread pool: every item runs exactly once, run() waits for joined workers", "[codegen][threads]") {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    REQUIRE(pool.size() == threads);
    stress(pool, 20000, 4, false);
    // Sleeping between runs: the workers go to the futex and must wake again.
    stress(pool, 400, 4, true);
  }
}
