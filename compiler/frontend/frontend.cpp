// Frontend entry points (see frontend.h): lexer -> parser -> sema.
#include "compiler/frontend/frontend.h"

#include "compiler/frontend/lexer.h"
#include "compiler/frontend/parser.h"
#include "compiler/frontend/sema.h"

#include <algorithm>
#include <climits>
#include <fmt/format.h>
#include <tuple>

namespace descent {

namespace {

// "models/mnist_mlp.nn" -> "mnist_mlp" (no std::filesystem: paths are just text here).
std::string fileStem(const std::string& path) {
  size_t slash = path.find_last_of("/\\");
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  size_t dot = base.rfind('.');
  if (dot != std::string::npos && dot > 0) base = base.substr(0, dot);
  return base;
}

// Copies `errors` in the given order into `diags`, at most kMaxErrors of them
// and then one saying that the rest was cut.
void copyCapped(std::vector<Diagnostic>& errors,
                const std::vector<std::tuple<int, int, size_t>>& order, Diagnostics& diags) {
  size_t n = 0;
  for (const auto& [line, col, i] : order) {
    if (n++ == kMaxErrors) {
      diags.error(errors[i].loc, fmt::format("too many errors; stopping after {}", kMaxErrors),
                  "is this a model file?");
      return;
    }
    diags.error(errors[i].loc, std::move(errors[i].message), std::move(errors[i].hint));
  }
}

} // namespace

std::optional<ast::File> parseSource(const std::string& /*path*/, const std::string& source,
                                     Diagnostics& diags) {
  Diagnostics local(diags.path(), diags.source());
  std::vector<Token> tokens = lex(source, local);
  ast::File file = parse(tokens, local);
  if (!local.hasErrors()) return file;
  // Lexer and parser errors arrive in source order already.
  std::vector<Diagnostic> errors = local.errors();
  std::vector<std::tuple<int, int, size_t>> order;
  for (size_t i = 0; i < errors.size(); ++i) order.emplace_back(0, 0, i);
  copyCapped(errors, order, diags);
  return std::nullopt;
}

std::optional<ModelSpec> analyzeSource(const std::string& path, const std::string& source,
                                       Diagnostics& diags) {
  Diagnostics local(diags.path(), diags.source());
  std::vector<Token> tokens = lex(source, local);
  ast::File file = parse(tokens, local);
  // Sema runs even after syntax errors: broken statements are skipped quietly,
  // so the user sees the errors of the rest of the file in the same run.
  std::optional<ModelSpec> spec = analyze(file, local);
  // Stages and cross-checks find problems in their own order; the user reads
  // the file top to bottom, so report in source order (stable for ties).
  // std::sort on (line, col, arrival) rather than std::stable_sort, whose
  // libstdc++ 12 implementation warns under clang (get_temporary_buffer).
  std::vector<Diagnostic> errors = local.errors();
  std::vector<std::tuple<int, int, size_t>> order;
  for (size_t i = 0; i < errors.size(); ++i) {
    SourceLoc l = errors[i].loc;
    order.emplace_back(l.known() ? l.line : INT_MAX, l.known() ? l.col : 0, i);
  }
  std::sort(order.begin(), order.end());
  copyCapped(errors, order, diags);
  if (!spec) return std::nullopt;
  spec->name = fileStem(path);
  spec->path = path;
  return spec;
}

} // namespace descent
