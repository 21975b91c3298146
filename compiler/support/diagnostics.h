// The one diagnostics engine: user errors are collected here with their
// location and rendered GCC/Clang style (path:line:col: error: message, the
// source line, a caret, an optional hint). Compiler bugs are asserts instead.
#pragma once

#include "compiler/support/source_loc.h"

#include <string>
#include <vector>

namespace descent {

/// One reported problem in the user's input.
struct Diagnostic {
  SourceLoc loc;
  std::string message;
  std::string hint; ///< printed as "note: ..." after the caret line; may be empty
};

/// Collects diagnostics for one source file and renders them.
class Diagnostics {
public:
  /// `path` is printed in messages; `source` is the file's text (for the caret line).
  Diagnostics(std::string path, std::string source);

  void error(SourceLoc loc, std::string message, std::string hint = {});

  bool hasErrors() const { return !errors_.empty(); }
  const std::vector<Diagnostic>& errors() const { return errors_; }
  const std::string& path() const { return path_; }
  const std::string& source() const { return source_; }

  /// All diagnostics, rendered: "path:line:col: error: msg\n  source line\n  ^\nnote: hint\n".
  std::string render() const;
  /// The first line of the first diagnostic ("path:line:col: error: msg").
  std::string firstLine() const;

private:
  std::string path_;
  std::string source_;
  std::vector<Diagnostic> errors_;
};

} // namespace descent
