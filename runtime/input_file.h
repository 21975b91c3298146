// Opening a user's input file (data set or checkpoint) for reading. Only
// regular files are accepted: a device such as /dev/zero would be read until
// memory runs out, and opening a FIFO blocks until someone writes to it.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

namespace descent {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

/// An open regular file and its size when it was opened.
struct InputFile {
  FilePtr file;
  uint64_t size = 0;
};

/// Opens `path` for reading without blocking on a FIFO. Throws DataError
/// "path: No such file or directory" (or another strerror), "path: Is a
/// directory", or "path: not a regular file (it is a FIFO)" for a FIFO,
/// character or block device, or socket.
InputFile openInputFile(const std::string& path);

/// The whole content of the regular file `path` (see openInputFile).
std::string readInputFile(const std::string& path);

} // namespace descent
