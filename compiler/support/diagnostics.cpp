// Rendering of user-facing diagnostics (see diagnostics.h).
#include "compiler/support/diagnostics.h"

#include <fmt/format.h>

namespace descent {

namespace {

// Returns line `line` (1-based) of `text` without its newline; empty if out of range.
std::string sourceLine(const std::string& text, int line) {
  size_t start = 0;
  for (int i = 1; i < line; ++i) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) return {};
    start = nl + 1;
  }
  size_t end = text.find('\n', start);
  std::string s = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
  // The lexer skips a UTF-8 byte-order mark without counting columns.
  if (line == 1 && s.compare(0, 3, "\xEF\xBB\xBF") == 0) s.erase(0, 3);
  if (!s.empty() && s.back() == '\r') s.pop_back();
  return s;
}

// Printable form of a source line: control and non-ASCII bytes become '?', tabs
// become one space, so the caret under it lines up column for column.
std::string printable(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) out += (c == '\t') ? ' ' : (c < 0x20 || c >= 0x7f) ? '?' : char(c);
  return out;
}

} // namespace

Diagnostics::Diagnostics(std::string path, std::string source)
    : path_(std::move(path)), source_(std::move(source)) {}

void Diagnostics::error(SourceLoc loc, std::string message, std::string hint) {
  errors_.push_back({loc, std::move(message), std::move(hint)});
}

std::string Diagnostics::firstLine() const {
  if (errors_.empty()) return {};
  const Diagnostic& d = errors_.front();
  if (!d.loc.known()) return fmt::format("{}: error: {}", path_, d.message);
  return fmt::format("{}:{}:{}: error: {}", path_, d.loc.line, d.loc.col, d.message);
}

std::string Diagnostics::render() const {
  std::string out;
  for (const Diagnostic& d : errors_) {
    if (!d.loc.known()) {
      out += fmt::format("{}: error: {}\n", path_, d.message);
    } else {
      out += fmt::format("{}:{}:{}: error: {}\n", path_, d.loc.line, d.loc.col, d.message);
      std::string line = printable(sourceLine(source_, d.loc.line));
      // Very long lines are cut around the caret so the output stays readable.
      int col = d.loc.col;
      if (line.size() > 160) {
        size_t from = col > 80 ? size_t(col - 80) : 0;
        line = line.substr(from, 160);
        col -= int(from);
      }
      out += fmt::format("  {}\n  {}^\n", line, std::string(size_t(std::max(col - 1, 0)), ' '));
    }
    if (!d.hint.empty()) out += fmt::format("note: {}\n", d.hint);
  }
  return out;
}

} // namespace descent
