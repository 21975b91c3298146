// Gradient rules of the graph IR, as data: one small function per differentiable
// op kind, looked up by OpKind. The differentiate pass walks the graph backwards
// and asks each op's rule for its operands' gradients; the rules only emit ops.
#pragma once

#include "compiler/ir/graph.h"

#include <vector>

namespace descent {

/// Emits backward ops for one forward op: each carries the forward op's loc
/// and `from` = the forward op's result, so printed train graphs show where
/// every backward op comes from.
class GradEmitter {
public:
  GradEmitter(Graph& g, const Op& forward) : g_(g), fwd_(forward) {}
  /// Appends `kind(operands) {attrs}` and returns its result.
  Value* emit(OpKind kind, std::vector<Value*> operands, Attrs attrs = {}) {
    return g_.add(kind, std::move(operands), std::move(attrs), fwd_.loc, fwd_.result);
  }

private:
  Graph& g_;
  const Op& fwd_;
};

/// What a rule sees: the forward op, the gradient of its result (nullptr for
/// the loss at the root, whose seed gradient is 1: loss-gradient ops take no
/// upstream operand), and which operands need a gradient.
struct GradContext {
  const Op& op;
  Value* dy;
  std::vector<bool> needs; ///< one flag per operand
  GradEmitter& out;
};

/// A gradient rule: returns one gradient per operand (nullptr where
/// `needs[i]` is false or the operand has no gradient).
using GradRule = std::vector<Value*> (*)(GradContext& ctx);

/// The rule of an op kind, or nullptr when the op has no gradient: normalize
/// (it only touches the input batch), dropout_mask (integer operands),
/// count_correct (a metric), and the grad and update ops themselves.
GradRule gradRule(OpKind kind);

} // namespace descent
