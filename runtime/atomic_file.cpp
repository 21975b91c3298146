// Implementation of readFile / PendingFile / writeFileAtomic with POSIX calls:
// we need O_EXCL|O_NOFOLLOW, fchmod, fsync and rename, which iostreams do not offer.
#include "runtime/atomic_file.h"

#include "runtime/errors.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <random>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

namespace descent {
namespace {

std::string sysError(const std::string& path, int err) {
  return path + ": " + std::strerror(err);
}

/// Closes the descriptor on every exit path.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::string parentDir(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

/// Creates a new temporary next to `path` that nobody could have predicted or
/// planted (O_EXCL|O_NOFOLLOW: an existing file or symlink of that name is an
/// error, and we try another name). Returns the descriptor; sets `tmp`.
int createTemporary(const std::string& path, std::string& tmp) {
  struct stat st {};
  bool replace = false;
  if (::lstat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) throw DataError(sysError(path, EISDIR));
    replace = S_ISREG(st.st_mode);
  }
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    uint64_t r = (uint64_t(rd()) << 32) ^ rd();
    tmp = fmt::format("{}.tmp-{:016x}", path, r);
    // Replacing a file: create it private, then give it the old file's mode, so
    // the new contents are never more widely readable than the old ones.
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    replace ? 0600 : 0666);
    if (fd >= 0) {
      if (replace && ::fchmod(fd, st.st_mode & 07777) != 0) {
        int err = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        throw DataError(sysError(path, err));
      }
      return fd;
    }
    if (errno != EEXIST && errno != ELOOP) throw DataError(sysError(path, errno));
  }
  throw DataError(sysError(path, EEXIST));
}

} // namespace

PendingFile::PendingFile(const std::string& path, std::string_view bytes, const WriteFaults* faults)
    : path_(path), faults_(faults) {
  Fd f;
  f.fd = createTemporary(path, tmp_);
  auto fail = [&](int err) {
    ::close(f.fd);
    f.fd = -1;
    ::unlink(tmp_.c_str());
    throw DataError(sysError(path_, err));
  };
  auto write = faults && faults->write ? faults->write : ::write;
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = write(f.fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(errno);
    }
    done += static_cast<size_t>(n);
  }
  // fsync before rename: otherwise a crash can leave the new name pointing at
  // an empty file on some filesystems.
  if (::fsync(f.fd) != 0) fail(errno);
  int fd = f.fd;
  f.fd = -1;
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp_.c_str());
    throw DataError(sysError(path_, err));
  }
}

PendingFile::~PendingFile() {
  if (!committed_) ::unlink(tmp_.c_str());
}

void PendingFile::commit() {
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) throw DataError(sysError(path_, errno));
  committed_ = true;
  // Persist the directory entry too; failure here is not worth an error
  // (some filesystems refuse fsync on directories).
  Fd dir;
  dir.fd = ::open(parentDir(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir.fd >= 0) ::fsync(dir.fd);
  if (faults_ && faults_->after_rename) faults_->after_rename(path_);
}

void writeFileAtomic(const std::string& path, std::string_view bytes, const WriteFaults* faults) {
  PendingFile(path, bytes, faults).commit();
}

void checkWritable(const std::string& path) {
  PendingFile probe(path, {}); // never committed: the destructor removes it
}

std::string readFile(const std::string& path) {
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) throw DataError(sysError(path, errno));
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) throw DataError(sysError(path, errno));
  if (S_ISDIR(st.st_mode)) throw DataError(sysError(path, EISDIR));
  std::string out;
  if (st.st_size > 0) out.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(f.fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw DataError(sysError(path, errno));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

} // namespace descent
