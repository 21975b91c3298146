// User-facing data errors: every loader (IDX, CSV, safetensors, plain files)
// throws DataError with a one-line message that already names the file and the
// problem, so the CLI can print it as is.
#pragma once

#include <stdexcept>
#include <string>

namespace descent {

/// A problem with a user's file (missing, truncated, malformed, inconsistent).
/// what() is one line, e.g. "data/train-images-idx3-ubyte.gz: truncated gzip stream".
struct DataError : std::runtime_error {
  explicit DataError(const std::string& message) : std::runtime_error(message) {}
};

} // namespace descent
