// Parser of the graph IR text form written by printer.h. It is used by the
// golden tests (round trip) and lets users feed an edited graph back in.
#pragma once

#include "compiler/ir/graph.h"

#include <memory>
#include <string>
#include <string_view>

namespace descent {

/// Parses one graph. On a syntax or type error returns nullptr and sets
/// `error` to "line:col: message" (positions in `text`).
std::unique_ptr<Graph> parseGraph(std::string_view text, std::string& error);

} // namespace descent
