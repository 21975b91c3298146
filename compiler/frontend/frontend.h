// Entry points of the frontend: source text -> AST (for `descent ir --stage
// ast`) or -> checked ModelSpec (for everything else). Reading the file is the
// caller's job; so is printing the diagnostics.
#pragma once

#include "compiler/frontend/ast.h"
#include "compiler/frontend/model_spec.h"
#include "compiler/support/diagnostics.h"

#include <optional>
#include <string>

namespace descent {

/// Lexes and parses `source`. Returns nullopt iff syntax errors were reported
/// to `diags` (they all are, not just the first).
std::optional<ast::File> parseSource(const std::string& path, const std::string& source,
                                     Diagnostics& diags);

/// Lexes, parses and checks `source`. On success the spec's name is the stem of
/// `path` ("models/mnist_mlp.nn" -> "mnist_mlp") and its path is `path`.
/// Returns nullopt iff errors were reported to `diags`; syntax errors do not
/// stop semantic checks of the statements that parsed.
std::optional<ModelSpec> analyzeSource(const std::string& path, const std::string& source,
                                       Diagnostics& diags);

} // namespace descent
