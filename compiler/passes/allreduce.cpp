// The allreduce pass (see allreduce.h).
#include "compiler/passes/allreduce.h"

#include <algorithm>

namespace descent {

int insertAllReduce(Graph& g) {
  std::vector<Op*> updates;
  for (const auto& op : g.ops())
    // BatchNorm's running-statistics update takes batch statistics, not a
    // gradient (synchronizing them is SyncBatchNorm's job, not this pass's).
    if (opInfo(op->kind).category == OpCategory::Update && op->kind != OpKind::BatchNormUpdateStats)
      updates.push_back(op.get());
  int added = 0;
  for (Op* u : updates) {
    Value* grad = u->operands.at(1);
    if (grad->def && grad->def->kind == OpKind::AllReduce) continue; // already reduced
    Value* sum = g.add(OpKind::AllReduce, {grad}, {}, u->loc, u->from);
    // g.add appended the op: move it right before its update, which already
    // follows the gradient's definition (placeUpdates).
    auto& ops = g.mutableOps();
    std::unique_ptr<Op> ar = std::move(ops.back());
    ops.pop_back();
    auto at = std::find_if(ops.begin(), ops.end(), [&](const auto& o) { return o.get() == u; });
    ops.insert(at, std::move(ar));
    u->operands[1] = sum;
    ++added;
  }
  return added;
}

} // namespace descent
