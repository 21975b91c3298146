// Frontend entry points (see frontend.h): lexer -> parser -> sema.
#include "compiler/frontend/frontend.h"

#include "compiler/frontend/lexer.h"
#include "compiler/frontend/parser.h"
#include "compiler/frontend/sema.h"

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

} // namespace

std::optional<ast::File> parseSource(const std::string& /*path*/, const std::string& source,
                                     Diagnostics& diags) {
  size_t before = diags.errors().size();
  std::vector<Token> tokens = lex(source, diags);
  ast::File file = parse(tokens, diags);
  if (diags.errors().size() != before) return std::nullopt;
  return file;
}

std::optional<ModelSpec> analyzeSource(const std::string& path, const std::string& source,
                                       Diagnostics& diags) {
  std::vector<Token> tokens = lex(source, diags);
  ast::File file = parse(tokens, diags);
  // Sema runs even after syntax errors: broken statements are skipped quietly,
  // so the user sees the errors of the rest of the file in the same run.
  std::optional<ModelSpec> spec = analyze(file, diags);
  if (!spec) return std::nullopt;
  spec->name = fileStem(path);
  spec->path = path;
  return spec;
}

} // namespace descent
