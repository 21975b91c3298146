// Parser for model files: tokens -> ast::File (grammar in docs/language.md).
// It recovers at statement boundaries so that every syntax error of a file is
// reported in one run.
#pragma once

#include "compiler/frontend/ast.h"
#include "compiler/frontend/lexer.h"
#include "compiler/support/diagnostics.h"

#include <vector>

namespace descent {

/// Maximum nesting of parentheses and brackets; deeper input is an error
/// (this bounds the parser's recursion).
inline constexpr int kMaxNesting = 64;

/// After this many syntax errors the parser stops, and the frontend reports at
/// most this many diagnostics: a text file that is not a model would otherwise
/// produce one error per line (and rendering each costs a scan of the file).
inline constexpr size_t kMaxErrors = 50;

/// Parses `tokens` (from lex(), ending with End). Syntax errors go to `diags`;
/// the returned File holds every statement that could be recognized.
ast::File parse(const std::vector<Token>& tokens, Diagnostics& diags);

} // namespace descent
