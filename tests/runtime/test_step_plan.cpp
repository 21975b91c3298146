// The step plan (runtime/step_plan.h): dependencies on shared arena bytes
// (read after write, write after read, write after write, including buffers
// that plan_buffers placed on the same bytes), and the choice to run two
// independent 1-4 MFLOP kernels whole side by side instead of each split.
#include <catch2/catch.hpp>

#include "runtime/step_plan.h"

#include <algorithm>

using namespace descent;

namespace {

bool has(const std::vector<int>& v, int x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

/// A kernel graph of `kernels` empty kernels over buffers placed at (offset, bytes).
KernelGraph graph(size_t kernels, const std::vector<std::pair<int64_t, int64_t>>& placed) {
  KernelGraph kg;
  kg.kernels.resize(kernels);
  for (const auto& [off, bytes] : placed) {
    Buffer b;
    b.offset = off;
    b.bytes = bytes;
    kg.buffers.push_back(b);
  }
  return kg;
}

} // namespace

TEST_CASE("step plan: a kernel waits for the kernels whose bytes it reads or overwrites",
          "[runtime][plan]") {
  // Buffer 0 [0, 400) and buffer 1 [0, 200) share bytes (disjoint lifetimes);
  // buffer 2 [400, 800) is apart; buffer 3 is the batch input (no bytes).
  KernelGraph kg = graph(5, {{0, 400}, {0, 200}, {400, 400}, {-1, 1000}});
  kg.buffers[3].input = true;
  kg.kernels[0].reads = {3};
  kg.kernels[0].writes = {0}; // k0: x -> b0
  kg.kernels[1].reads = {0};
  kg.kernels[1].writes = {2}; // k1: b0 -> b2 (after k0: read after write)
  kg.kernels[2].reads = {3};
  kg.kernels[2].writes = {
      1}; // k2 overwrites b0's bytes: after k0 (write after write) and k1 (write after read)
  kg.kernels[3].reads = {3}; // k3: reads only the input: waits for nothing
  kg.kernels[4].reads = {2};
  kg.kernels[4].writes = {2}; // k4 updates b2 in place: after k1 only
  const std::vector<int> chunks(5, 1);
  StepPlan p = planStep(kg, chunks, std::vector<double>(5, 0.0), std::vector<bool>(5, false), 2);
  CHECK(p.deps[0].empty());
  CHECK(p.deps[1] == std::vector<int>{0});
  CHECK(has(p.deps[2], 0));
  CHECK(has(p.deps[2], 1));
  CHECK(p.deps[2].size() == 2);
  CHECK(p.deps[3].empty());
  CHECK(p.deps[4] == std::vector<int>{1});
  REQUIRE(p.owner.size() == 5);
  for (int o : p.owner)
    CHECK((o == 0 || o == 1));
  CHECK(p.chunks == chunks);
}

TEST_CASE("step plan: two independent 1-4 MFLOP GEMMs run whole on different threads",
          "[runtime][plan]") {
  // k0 produces b0; k1 and k2 both read it and write apart (a layer's dX
  // and dW); k3 reads both results.
  KernelGraph kg = graph(4, {{0, 4096}, {4096, 4096}, {8192, 4096}});
  kg.kernels[0].writes = {0};
  kg.kernels[1].reads = {0};
  kg.kernels[1].writes = {1};
  kg.kernels[2].reads = {0};
  kg.kernels[2].writes = {2};
  kg.kernels[3].reads = {1, 2};
  const std::vector<double> flops = {0, 2e6, 2e6, 0};
  StepPlan p = planStep(kg, {1, 2, 2, 1}, flops, {false, true, true, false}, 2);
  CHECK(p.chunks == std::vector<int>{1, 1, 1, 1});
  CHECK(p.owner[1] != p.owner[2]);
  CHECK(p.deps[3] == std::vector<int>{1, 2});
  // Dependent GEMMs gain nothing whole: they stay split.
  kg.kernels[2].reads = {1};
  p = planStep(kg, {1, 2, 2, 1}, flops, {false, true, true, false}, 2);
  CHECK(p.chunks == std::vector<int>{1, 2, 2, 1});
  CHECK(p.owner[1] == -1);
}
