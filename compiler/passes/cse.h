// Common-subexpression elimination over the graph IR.
#pragma once

#include "compiler/ir/graph.h"

namespace descent {

/// Replaces every op that repeats an earlier one (same kind, operands and
/// attributes; every op of the IR is pure except updates, which are kept) by
/// the earlier result, and removes it. Returns the number of ops removed.
int eliminateCommonSubexpressions(Graph& g);

} // namespace descent
