// Source locations: every AST node and IR op carries one, so that errors and
// printed IR can point back at the model file.
#pragma once

#include <string>

namespace descent {

/// A position in a model file. line and col are 1-based; 0 means "unknown".
struct SourceLoc {
  int line = 0;
  int col = 0;
  bool known() const { return line > 0; }
  bool operator==(const SourceLoc&) const = default;
};

} // namespace descent
