// Weight panels (see weight_panels.h): a param qualifies when every kernel
// touching its buffer is a GEMM reading it as B (the forward X·W, or dX
// packing Wᵀ from it) or a dW GEMM updating it in the epilogue, and it is
// two or more whole panels wide.
#include "compiler/passes/weight_panels.h"

#include <algorithm>
#include <map>

namespace descent {

void chooseWeightPanels(KernelGraph& kg) {
  // Per buffer: still a candidate? (absent: not looked at yet)
  std::map<int, bool> ok;
  auto bufferOf = [&](const Value* v) {
    auto it = kg.buffer_of.find(v);
    return it == kg.buffer_of.end() ? -1 : it->second;
  };
  // Whole panels, and more than one (one panel is the row-major layout).
  auto shapeFits = [](const Value* v) {
    if (v->type.rank() != 2) return false;
    const int64_t N = v->type.shape[1];
    return N % kPanelCols == 0 && N > kPanelCols;
  };
  // Buffers of params (and their state) and the kernels allowed to touch them.
  std::map<int, std::vector<const Kernel*>> allowed;
  for (const Kernel& k : kg.kernels) {
    if (k.kind != KernelKind::Gemm) continue;
    const GemmInfo& g = k.gemm;
    const Value* b = kg.buffers[size_t(g.b_buffer)].value;
    if (b && b->kind == ValueKind::Param && !g.k_batched && g.a_buffer != g.b_buffer &&
        shapeFits(b))
      allowed[g.b_buffer].push_back(&k);
    if (k.sink && k.sink->operands[0]->kind == ValueKind::Param && shapeFits(k.sink->operands[0]))
      for (size_t i = 0; i < k.sink->operands.size(); ++i) {
        const Value* v = k.sink->operands[i];
        if (i == 1 || (v->kind != ValueKind::Param && v->kind != ValueKind::State)) continue;
        if (v->type.shape != k.sink->operands[0]->type.shape) continue;
        allowed[bufferOf(v)].push_back(&k);
      }
  }
  for (auto& [b, ks] : allowed) {
    if (b < 0) continue;
    bool fine = true;
    // No other kernel may read or write it (a transposed copy, a separate
    // update, an allreduce, a view's reader), and no view may alias it.
    for (const Kernel& k : kg.kernels) {
      bool touches = false;
      for (int r : k.reads)
        touches |= r == b;
      for (int w : k.writes)
        touches |= w == b;
      if (touches && std::find(ks.begin(), ks.end(), &k) == ks.end()) fine = false;
    }
    for (const auto& [view, root] : kg.alias_of)
      if (bufferOf(root) == b) fine = false;
    ok[b] = fine;
  }
  // The optimizer state follows its param: in panels only together.
  for (const Kernel& k : kg.kernels)
    if (k.sink) {
      const int w = bufferOf(k.sink->operands[0]);
      for (size_t i = 2; i < k.sink->operands.size(); ++i)
        if (int b = bufferOf(k.sink->operands[i]); b != w && ok.count(b))
          ok[b] = ok[b] && ok.count(w) && ok[w];
    }
  for (auto [b, fine] : ok)
    if (fine) kg.buffers[size_t(b)].panels = true;
}

} // namespace descent
