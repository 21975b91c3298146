// Graphviz form of the graph IR, for `descent ir --dot`.
#pragma once

#include "compiler/ir/graph.h"

#include <string>

namespace descent {

/// A `digraph` with one node per op (colored by category) and per graph
/// argument, and one edge per operand use.
std::string graphToDot(const Graph& g);

} // namespace descent
