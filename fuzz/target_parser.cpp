// Fuzz target "parser": runs the whole frontend (lexer, parser, sema) on
// arbitrary bytes, and on success the summary and AST printer too. Any crash,
// sanitizer report, or a result without diagnostics for a rejected input is a bug.
#include "compiler/frontend/ast_printer.h"
#include "compiler/frontend/frontend.h"
#include "compiler/frontend/summary.h"
#include "fuzz/fuzz_support.h"

#include <string>

namespace descent::fuzz {

void modelParser(const uint8_t* data, size_t size) {
  std::string source(reinterpret_cast<const char*>(data), size);
  descent::Diagnostics diags("fuzz.nn", source);
  std::optional<descent::ModelSpec> spec = descent::analyzeSource("fuzz.nn", source, diags);
  // The contract of analyzeSource: nullopt iff errors were reported.
  if (spec.has_value() == diags.hasErrors()) fail("analyzeSource: result and diagnostics disagree");
  std::string rendered = diags.render();
  if (diags.hasErrors() && rendered.empty()) fail("errors reported without a message");
  if (spec) {
    std::string summary = descent::renderSummary(*spec);
    if (spec->parameterCount() <= 0 || spec->outputSize() != spec->target_size)
      fail("accepted model with no parameters or an output/target size mismatch");
  }
  descent::Diagnostics astDiags("fuzz.nn", source);
  if (auto file = descent::parseSource("fuzz.nn", source, astDiags)) {
    std::string ast = descent::printAst(*file);
  }
}

} // namespace descent::fuzz
