// Reverse-mode differentiation over the graph IR (see differentiate.h). The
// pass itself knows no op: it asks the rule table (grad_rules.h) for each op.
#include "compiler/autodiff/differentiate.h"

#include "compiler/autodiff/grad_rules.h"

#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

namespace descent {

namespace {

/// Values that depend on a param through differentiable ops: only these can
/// carry a gradient anybody needs (forward propagation from the params).
/// Throws when a param reaches the loss through an op without a gradient rule:
/// its gradient would silently miss that path (a compiler bug, not a user error).
std::unordered_set<const Value*> needsGradient(const Graph& g, const std::vector<Op*>& ops,
                                               const Value* root) {
  std::unordered_set<const Value*> reaches{root}; // values the loss depends on
  for (auto it = ops.rbegin(); it != ops.rend(); ++it)
    if ((*it)->result && reaches.count((*it)->result))
      reaches.insert((*it)->operands.begin(), (*it)->operands.end());
  std::unordered_set<const Value*> needs(g.params().begin(), g.params().end());
  for (const Op* op : ops) {
    if (!op->result) continue;
    bool any = false;
    for (const Value* v : op->operands) any |= needs.count(v) > 0;
    if (!any) continue;
    if (gradRule(op->kind)) needs.insert(op->result);
    else if (reaches.count(op->result))
      throw std::logic_error(std::string("autodiff: a param reaches the loss through ") +
                             opName(op->kind) + ", which has no gradient rule");
  }
  return needs;
}

} // namespace

std::vector<std::pair<Value*, Value*>> differentiate(Graph& g) {
  Value* root = g.output("loss");
  if (!root || !root->def || opInfo(root->def->kind).category != OpCategory::Loss)
    throw std::logic_error("autodiff: the graph has no loss output");

  // Snapshot the forward ops: the rules append to g.ops() while we walk.
  std::vector<Op*> forward;
  for (const auto& op : g.ops()) forward.push_back(op.get());
  auto needs = needsGradient(g, forward, root);

  std::unordered_map<const Value*, Value*> grad;
  auto accumulate = [&](Value* v, Value* dv, const Op& by) {
    auto [it, inserted] = grad.try_emplace(v, dv);
    if (!inserted) it->second = g.add(OpKind::Add, {it->second, dv}, {}, by.loc, v);
  };

  for (auto it = forward.rbegin(); it != forward.rend(); ++it) {
    const Op& op = **it;
    if (!op.result || !needs.count(op.result)) continue;
    Value* dy = nullptr;
    if (op.result != root) {
      auto found = grad.find(op.result);
      if (found == grad.end()) continue; // does not reach the loss
      dy = found->second;
    }
    GradEmitter emitter(g, op);
    GradContext ctx{op, dy, {}, emitter};
    for (const Value* v : op.operands) ctx.needs.push_back(needs.count(v) > 0);
    std::vector<Value*> dx = gradRule(op.kind)(ctx);
    for (size_t i = 0; i < op.operands.size() && i < dx.size(); ++i)
      if (ctx.needs[i] && dx[i]) accumulate(op.operands[i], dx[i], op);
  }

  std::vector<std::pair<Value*, Value*>> out;
  for (Value* p : g.params()) {
    auto found = grad.find(p);
    out.push_back({p, found == grad.end() ? nullptr : found->second});
  }
  return out;
}

} // namespace descent
