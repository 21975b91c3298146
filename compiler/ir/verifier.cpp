// Graph verifier (see verifier.h).
#include "compiler/ir/verifier.h"

#include "compiler/ir/printer.h"

#include <fmt/format.h>
#include <unordered_set>

namespace descent {

std::string verifyGraph(const Graph& g) {
  std::string errors;
  auto report = [&](const Op* op, const std::string& msg) {
    errors += op ? fmt::format("{}: {}\n", printOp(g, *op), msg) : msg + "\n";
  };
  std::unordered_set<const Value*> defined(g.inputs().begin(), g.inputs().end());
  defined.insert(g.params().begin(), g.params().end());
  defined.insert(g.states().begin(), g.states().end());
  // Later stages find inputs by role: each role names at most one input, and
  // the step counter and seed are i32 scalars.
  std::unordered_set<int> roles;
  for (const Value* v : g.inputs()) {
    if (v->role == InputRole::None) continue;
    if (!roles.insert(int(v->role)).second)
      report(nullptr, fmt::format("two inputs have the role '{}'", inputRoleName(v->role)));
    if ((v->role == InputRole::Step || v->role == InputRole::Seed) && v->type != i32({}))
      report(nullptr, fmt::format("input %{} with the role '{}' must be i32[], not {}", v->name,
                                  inputRoleName(v->role), v->type.str()));
  }
  std::unordered_set<const Value*> updated;
  std::unordered_set<const Value*> states_used;
  for (const auto& op : g.ops()) {
    bool is_update = opInfo(op->kind).category == OpCategory::Update;
    for (size_t i = 0; i < op->operands.size(); ++i) {
      const Value* v = op->operands[i];
      if (!defined.count(v)) report(op.get(), fmt::format("%{} is used before it is defined", v->name));
      if (updated.count(v)) report(op.get(), fmt::format("%{} is read after its update", v->name));
      // Buffers (BatchNorm's running statistics) are read by the eval step's ops.
      const bool buffer = v->kind == ValueKind::State && v->desc.buffer != BufferKind::None;
      if (v->kind == ValueKind::State && !is_update && !buffer)
        report(op.get(), fmt::format("optimizer state %{} read outside an update", v->name));
      if (v->kind == ValueKind::State && is_update) {
        if (!states_used.insert(v).second)
          report(op.get(), fmt::format("optimizer state %{} used by two updates", v->name));
      }
    }
    TensorType t;
    std::string err = inferType(*op, t);
    if (!err.empty()) report(op.get(), err);
    else if (op->result && op->result->type != t)
      report(op.get(), fmt::format("result type should be {}", t.str()));
    if (is_update) {
      if (op->result) report(op.get(), "an update has no result");
      updated.insert(op->operands[0]);
    } else if (!op->result) {
      report(op.get(), "op has no result");
    }
    if (op->result) {
      if (defined.count(op->result)) report(op.get(), "result defined twice");
      defined.insert(op->result);
    }
  }
  for (const auto& [name, v] : g.outputs())
    if (!defined.count(v)) report(nullptr, fmt::format("output {} is not defined", name));
  return errors;
}

} // namespace descent
