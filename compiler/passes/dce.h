// Dead-code elimination over the graph IR.
#pragma once

#include "compiler/ir/graph.h"

namespace descent {

/// Removes every op whose result no output and no update (transitively)
/// uses. Update ops are always kept. Returns the number of ops removed.
int eliminateDeadCode(Graph& g);

} // namespace descent
