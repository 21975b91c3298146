// Whole-file reads and crash-safe whole-file writes (temp file, fsync, rename),
// used for checkpoints and metrics so a killed run never leaves a half-written file.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <sys/types.h>

namespace descent {

/// Test seams for fault injection (production code passes none): a stand-in
/// for write(2), e.g. one failing with ENOSPC, and a callback run right after
/// a PendingFile is renamed into place, e.g. one that kills the process
/// between the two files of a checkpoint.
struct WriteFaults {
  ssize_t (*write)(int fd, const void* buf, size_t n) = nullptr;
  std::function<void(const std::string& path)> after_rename;
};

/// The new contents of `path`, written and fsynced to a temporary in the same
/// directory, waiting for commit() to rename it over `path`. The temporary has
/// an unpredictable name and is created with O_CREAT|O_EXCL|O_NOFOLLOW, so a
/// planted file or symlink is never written through; it takes the permissions
/// of the file it replaces (a 0600 checkpoint stays 0600), else 0666 & ~umask.
/// The destructor removes the temporary if commit() did not happen, so no
/// error path leaves one behind. Errors are DataError("path: <strerror>").
class PendingFile {
public:
  PendingFile(const std::string& path, std::string_view bytes, const WriteFaults* faults = nullptr);
  ~PendingFile();
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;

  /// Renames the temporary over the target and fsyncs the directory.
  void commit();

private:
  std::string path_, tmp_;
  const WriteFaults* faults_;
  bool committed_ = false;
};

/// Writes `bytes` to `path` atomically: a PendingFile committed at once.
void writeFileAtomic(const std::string& path, std::string_view bytes,
                     const WriteFaults* faults = nullptr);

/// Checks, before any work is done, that `path` could be written later: it is
/// not a directory and its directory exists and accepts a new file (tested by
/// creating and removing a temporary, which also catches read-only mounts).
/// Throws DataError("path: <strerror>") otherwise.
void checkWritable(const std::string& path);

/// Reads the whole file. Throws DataError("path: <strerror>") when it cannot be
/// opened or read (e.g. "x.bin: No such file or directory").
std::string readFile(const std::string& path);

} // namespace descent
