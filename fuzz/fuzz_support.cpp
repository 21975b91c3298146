// Scratch files and the bad-input oracle shared by the fuzz targets.
#include "fuzz/fuzz_support.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <unistd.h>

namespace descent::fuzz {

namespace {

class ScratchDir {
public:
  ScratchDir() {
    std::string base = "/dev/shm";
    if (access(base.c_str(), W_OK) != 0) {
      const char* tmp = std::getenv("TMPDIR");
      base = tmp && *tmp ? tmp : "/tmp";
    }
    std::string pattern = base + "/descent-fuzz-XXXXXX";
    if (!mkdtemp(pattern.data())) fail("cannot create a scratch directory in " + base);
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

private:
  std::string path_;
};

} // namespace

void fail(std::string_view what) {
  std::fprintf(stderr, "fuzz: %.*s\n", static_cast<int>(what.size()), what.data());
  std::abort();
}

const std::string& scratchDir() {
  // One directory per process, created on first use and removed at exit.
  static const ScratchDir dir;
  return dir.path();
}

std::string writeScratch(const std::string& name, std::string_view bytes) {
  std::string path = scratchDir() + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) fail("cannot write " + path);
  return path;
}

void checkDataErrorMessage(const std::string& message) {
  if (message.find(scratchDir()) == std::string::npos)
    fail("DataError does not name the file: " + message);
  for (unsigned char c : message)
    if (c < 0x20 || c == 0x7f) fail("DataError is not one line of text: " + message);
}

} // namespace descent::fuzz
