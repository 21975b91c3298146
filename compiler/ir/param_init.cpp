// Fan-in of the graph's parameters (see param_init.h).
#include "compiler/ir/param_init.h"

#include <unordered_map>

namespace descent {

std::vector<int64_t> paramFanIns(const Graph& g) {
  std::unordered_map<const Value*, int64_t> fan_in;
  for (const auto& op : g.ops()) {
    if (op->kind == OpKind::MatMul && op->operands[1]->kind == ValueKind::Param &&
        !op->attrs.getBool("transpose_a") && !op->attrs.getBool("transpose_b"))
      fan_in.emplace(op->operands[1], op->operands[1]->type.shape[0]);
    if (op->kind == OpKind::AddBias && op->operands[1]->kind == ValueKind::Param) {
      const Op* mm = op->operands[0]->def;
      if (mm && mm->kind == OpKind::MatMul && fan_in.count(mm->operands[1]))
        fan_in.emplace(op->operands[1], fan_in.at(mm->operands[1]));
    }
  }
  std::vector<int64_t> out;
  for (const Value* p : g.params()) out.push_back(fan_in.count(p) ? fan_in.at(p) : 1);
  return out;
}

} // namespace descent
