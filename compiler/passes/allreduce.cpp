// The allreduce pass (see allreduce.h).
#include "compiler/passes/allreduce.h"

#include <algorithm>

namespace descent {

int insertAllReduce(Graph& g) {
  std::vector<Op*> updates;
  for (const auto& op : g.ops())
    // BatchNorm's running-statistics update takes batch statistics, not a
    // gradient (synchronizing them is insertSyncBatchNorm's job).
    if (opInfo(op->kind).category == OpCategory::Update && op->kind != OpKind::BatchNormUpdateStats)
      updates.push_back(op.get());
  int added = 0;
  auto& ops = g.mutableOps();
  auto find = [&](const Op* o) {
    return std::find_if(ops.begin(), ops.end(), [&](const auto& p) { return p.get() == o; });
  };
  for (Op* u : updates) {
    Value* grad = u->operands.at(1);
    if (grad->def && grad->def->kind == OpKind::AllReduce) continue; // already reduced
    Value* sum = g.add(OpKind::AllReduce, {grad}, {}, u->loc, u->from);
    // g.add appended the op: move it to where the update is, which already
    // follows the gradient's definition and its param's last reader
    // (placeUpdates): the reduction starts as soon as the gradient exists.
    std::unique_ptr<Op> ar = std::move(ops.back());
    ops.pop_back();
    ops.insert(find(u), std::move(ar));
    u->operands[1] = sum;
    ++added;
  }
  // The updates go last, in their order: between a reduction and its update
  // run the earlier layers' backward kernels, which the executor overlaps
  // with the reduction in flight (a non-blocking collective started by the
  // allreduce kernel, waited for by the update's kernel). Nothing reads an
  // update (it writes its param and state in place) and every reader of a
  // param precedes its update already, so the results are unchanged.
  std::vector<std::unique_ptr<Op>> moved;
  for (Op* u : updates) {
    auto it = find(u);
    moved.push_back(std::move(*it));
    ops.erase(it);
  }
  for (auto& u : moved)
    ops.push_back(std::move(u));
  return added;
}

int insertSyncBatchNorm(Graph& g) {
  int changed = 0;
  for (const auto& op : g.mutableOps())
    if (op->kind == OpKind::BatchNormStats) {
      op->kind = OpKind::BatchNormSyncStats;
      ++changed;
    } else if (op->kind == OpKind::BatchNormGrad) {
      op->kind = OpKind::BatchNormSyncGrad;
      ++changed;
    }
  return changed;
}

} // namespace descent
