// Graph verifier: run after every pass in tests and debug builds.
#pragma once

#include "compiler/ir/graph.h"

#include <string>

namespace descent {

/// Checks types (each op against its shape rule), SSA order (every operand is
/// defined before use), outputs, and the update discipline: params and state
/// are written only by update ops, each param at most once, and nothing reads
/// a param after its update (the write-after-read hazard).
/// Returns "" when valid, otherwise the problems, one per line.
std::string verifyGraph(const Graph& g);

} // namespace descent
