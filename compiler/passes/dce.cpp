// DCE (see dce.h): one backward walk marking what outputs and updates use.
#include "compiler/passes/dce.h"

#include <unordered_set>

namespace descent {

int eliminateDeadCode(Graph& g) {
  std::unordered_set<const Value*> live;
  for (const auto& [name, v] : g.outputs()) live.insert(v);
  std::unordered_set<const Op*> keep;
  const auto& ops = g.ops();
  for (auto it = ops.rbegin(); it != ops.rend(); ++it) {
    const Op& op = **it;
    if (op.result && !live.count(op.result)) continue;
    keep.insert(&op);
    live.insert(op.operands.begin(), op.operands.end());
  }
  size_t before = ops.size();
  g.removeOpsIf([&](const Op& op) { return !keep.count(&op); });
  return int(before - g.ops().size());
}

} // namespace descent
