// Whole-file reads and crash-safe whole-file writes (temp file, fsync, rename),
// used for checkpoints and metrics so a killed run never leaves a half-written file.
#pragma once

#include <string>
#include <string_view>

namespace descent {

/// Writes `bytes` to `path` atomically: writes `path.tmp-<pid>`, fsyncs it,
/// renames it over `path` and fsyncs the directory. On failure the temporary is
/// removed and DataError names the path and the system error.
void writeFileAtomic(const std::string& path, std::string_view bytes);

/// Reads the whole file. Throws DataError("path: <strerror>") when it cannot be
/// opened or read (e.g. "x.bin: No such file or directory").
std::string readFile(const std::string& path);

} // namespace descent
