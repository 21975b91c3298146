// Semantic analysis: ast::File -> ModelSpec. Resolves names against PyTorch's
// layers, losses and optimizers, binds arguments with PyTorch's parameter names
// and defaults, checks ranges, the shape chain and the target against the loss.
#pragma once

#include "compiler/frontend/ast.h"
#include "compiler/frontend/model_spec.h"
#include "compiler/support/diagnostics.h"

#include <optional>
#include <string>
#include <vector>

namespace descent {

/// Checks `file` and builds its ModelSpec (name and path are left empty: the
/// caller knows them). Every problem is reported to `diags`; returns nullopt
/// iff `diags` holds errors afterwards (including earlier syntax errors).
std::optional<ModelSpec> analyze(const ast::File& file, Diagnostics& diags);

/// "did you mean 'X'?" for the candidate closest to `name` (case-insensitive
/// edit distance), or an empty string when none is close enough.
std::string didYouMean(const std::string& name, const std::vector<std::string>& candidates);

} // namespace descent
