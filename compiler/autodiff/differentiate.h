// The differentiate pass: appends the backward ops of a forward graph
// (reverse-mode autodiff from the "loss" output, seed gradient 1).
#pragma once

#include "compiler/ir/graph.h"

#include <utility>
#include <vector>

namespace descent {

/// Appends to `g` the ops computing d loss / d param for every param, where
/// loss is g.output("loss") (the result of a Loss-category op). Gradients are
/// only computed for values that depend on a param (no dX for the first layer,
/// nothing for the batch or labels); contributions to one value are summed with
/// `add`. Returns (param, gradient) in g.params() order; the gradient is
/// nullptr for a param the loss does not depend on.
/// Throws std::logic_error when the graph has no loss output.
std::vector<std::pair<Value*, Value*>> differentiate(Graph& g);

} // namespace descent
