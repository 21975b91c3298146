// Backward-graph simplifications (see simplify.h). The rewrites are a table of
// (outer gradient, inner loss gradient) -> fused op; adding one is one row.
#include "compiler/passes/simplify.h"

#include <string>

namespace descent {

namespace {

struct Pattern {
  OpKind outer;   ///< activation gradient (dy, saved output)
  OpKind inner;   ///< loss gradient (prediction, target) producing dy
  OpKind fused;   ///< replacement (prediction, target)
  const char* label;
};

constexpr Pattern kPatterns[] = {
    {OpKind::LogSoftmaxGrad, OpKind::NllLossGrad, OpKind::LogSoftmaxNllGrad,
     "log_softmax_grad+nll_loss_grad"},
    {OpKind::SigmoidGrad, OpKind::BceLossGrad, OpKind::SigmoidBceGrad, "sigmoid_grad+bce_loss_grad"},
};

const Pattern* match(const Op& op) {
  for (const Pattern& p : kPatterns) {
    if (op.kind != p.outer) continue;
    const Op* inner = op.operands[0]->def;
    // The loss gradient must be taken at the very output the activation saved.
    if (inner && inner->kind == p.inner && inner->operands[0] == op.operands[1]) return &p;
  }
  return nullptr;
}

} // namespace

int simplify(Graph& g) {
  int rewrites = 0;
  for (size_t i = 0; i < g.ops().size(); ++i) {
    Op& op = *g.mutableOps()[i];
    const Pattern* p = match(op);
    if (!p) continue;
    const Op& inner = *op.operands[0]->def;
    // The loss gradient's attributes (reduction, label_smoothing) carry over.
    Attrs a = inner.attrs;
    if (!a.find("reduction")) a.set("reduction", std::string("mean"));
    a.set("fused", std::string(p->label));
    Value* fused = g.add(p->fused, {inner.operands[0], inner.operands[1]}, a, op.loc, op.from);
    // Move the new op (appended last) to where the replaced one is, so every
    // use still follows its definition.
    auto& ops = g.mutableOps();
    std::unique_ptr<Op> moved = std::move(ops.back());
    ops.pop_back();
    ops.insert(ops.begin() + std::ptrdiff_t(i), std::move(moved));
    g.replaceAllUses(ops[i + 1]->result, fused);
    ++i; // skip the replaced op
    ++rewrites;
  }
  return rewrites;
}

} // namespace descent
