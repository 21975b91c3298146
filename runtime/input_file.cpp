// openInputFile: open(2) with O_NONBLOCK so a FIFO cannot block, fstat(2) the
// descriptor that will be read (no check-then-open race), then hand it to stdio.
#include "runtime/input_file.h"

#include "runtime/errors.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

namespace descent {
namespace {

const char* fileKind(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a file";
}

} // namespace

InputFile openInputFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) throw DataError(fmt::format("{}: {}", path, std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw DataError(fmt::format("{}: {}", path, std::strerror(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    if (S_ISDIR(st.st_mode)) throw DataError(fmt::format("{}: {}", path, std::strerror(EISDIR)));
    throw DataError(fmt::format("{}: not a regular file (it is {})", path, fileKind(st.st_mode)));
  }
  // Regular files never block; clear the flag so stdio sees ordinary reads.
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  InputFile in;
  in.file.reset(::fdopen(fd, "rb"));
  if (!in.file) {
    int err = errno;
    ::close(fd);
    throw DataError(fmt::format("{}: {}", path, std::strerror(err)));
  }
  in.size = static_cast<uint64_t>(st.st_size);
  return in;
}

std::string readInputFile(const std::string& path) {
  InputFile in = openInputFile(path);
  std::string out;
  out.resize(static_cast<size_t>(in.size));
  size_t got = std::fread(out.data(), 1, out.size(), in.file.get());
  if (std::ferror(in.file.get()))
    throw DataError(fmt::format("{}: read error: {}", path, std::strerror(errno)));
  // A file that shrank since fstat: keep what is there (the format checks
  // then report it as truncated). One that grew: its size at open is used.
  out.resize(got);
  return out;
}

} // namespace descent
