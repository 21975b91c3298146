// First-fit buffer placement over kernel lifetimes (see plan_buffers.h).
#include "compiler/passes/plan_buffers.h"

#include <algorithm>
#include <vector>

namespace descent {

namespace {

int64_t align64(int64_t v) { return (v + 63) / 64 * 64; }

bool overlaps(const Buffer& a, const Buffer& b) {
  return a.first_use <= b.last_use && b.first_use <= a.last_use;
}

} // namespace

void planBuffers(KernelGraph& kg) {
  // Largest first: the classic greedy that keeps big activations packed.
  std::vector<int> order;
  for (size_t i = 0; i < kg.buffers.size(); ++i) {
    const Buffer& b = kg.buffers[i];
    if (!b.persistent && !b.input && b.first_use >= 0) order.push_back(int(i));
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return kg.buffers[a].bytes > kg.buffers[b].bytes; });
  std::vector<int> placed;
  int64_t top = 0;
  for (int i : order) {
    Buffer& b = kg.buffers[i];
    int64_t size = align64(b.bytes);
    // Candidate offsets: 0 and the end of every placed buffer whose lifetime overlaps.
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (int p : placed)
      if (overlaps(kg.buffers[p], b)) busy.push_back({kg.buffers[p].offset, align64(kg.buffers[p].bytes)});
    std::sort(busy.begin(), busy.end());
    int64_t at = 0;
    for (auto [off, sz] : busy) {
      if (at + size <= off) break;
      at = std::max(at, off + sz);
    }
    b.offset = at;
    top = std::max(top, at + size);
    placed.push_back(i);
  }
  kg.scratch_bytes = top;
}

} // namespace descent
