// Text form of the graph IR (MLIR-like). The parser in parser.h reads it back:
// print(parse(print(g))) == print(g). docs/ir.md describes the syntax.
#pragma once

#include "compiler/ir/graph.h"

#include <string>

namespace descent {

/// The whole graph as text.
std::string printGraph(const Graph& g);
/// One attribute value as it appears in the text form (doubles always show '.' or 'e').
std::string printAttr(const Attr& a);
/// One op as one line, without indentation or newline.
std::string printOp(const Graph& g, const Op& op);

} // namespace descent
