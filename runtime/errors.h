// User-facing data errors: every loader (IDX, CSV, safetensors, plain files)
// throws DataError with a one-line message that already names the file and the
// problem, so the CLI can print it as is.
#pragma once

#include <stdexcept>
#include <string>

namespace descent {

/// A problem with a user's file (missing, truncated, malformed, inconsistent).
/// what() is one line, e.g. "data/train-images-idx3-ubyte.gz: truncated gzip stream".
/// The constructor escapes control characters (a newline or a terminal escape
/// copied from a tensor name or a CSV header), so a file can never split the
/// message over lines or restyle the user's terminal.
struct DataError : std::runtime_error {
  explicit DataError(const std::string& message) : std::runtime_error(oneLine(message)) {}

  /// `message` with each control byte (< 0x20 and 0x7f) written as \n, \t, \r
  /// or \xHH; other bytes (UTF-8 included) unchanged.
  static std::string oneLine(const std::string& message) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(message.size());
    for (unsigned char c : message) {
      if (c >= 0x20 && c != 0x7f) out += char(c);
      else if (c == '\n') out += "\\n";
      else if (c == '\t') out += "\\t";
      else if (c == '\r') out += "\\r";
      else out += {'\\', 'x', kHex[c >> 4], kHex[c & 15]};
    }
    return out;
  }
};

} // namespace descent
