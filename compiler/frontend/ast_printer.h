// Prints the syntax tree of a model file as an indented tree with locations
// (`descent ir model.nn --stage ast`).
#pragma once

#include "compiler/frontend/ast.h"

#include <string>

namespace descent {

/// One node per line, children indented by two spaces, each with its line:col.
std::string printAst(const ast::File& file);

} // namespace descent
