// Shared helpers for the runtime tests: a self-deleting temporary directory,
// file writing, and IDX/gzip file builders.
#pragma once

#include <catch2/catch.hpp>

#include "runtime/errors.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>
#include <zlib.h>

namespace descent::testutil {

/// A fresh directory under the build tree, removed with its contents at scope exit.
class TempDir {
public:
  TempDir() {
    std::string tmpl = std::string(DESCENT_BINARY_DIR) + "/rt-test-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    REQUIRE(::mkdtemp(buf.data()) != nullptr);
    path_ = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

private:
  std::string path_;
};

inline void writeBytes(const std::string& path, const std::string& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(f.good());
}

inline std::string readBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

inline void putBigEndian32(std::string& s, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>((v >> shift) & 0xff));
}

/// An IDX image file: magic 0x803, count x rows x cols, pixel i = (7*i + 3) mod 256.
inline std::string idxImages(uint32_t count, uint32_t rows, uint32_t cols) {
  std::string s;
  putBigEndian32(s, 0x00000803);
  putBigEndian32(s, count);
  putBigEndian32(s, rows);
  putBigEndian32(s, cols);
  for (uint64_t i = 0; i < uint64_t(count) * rows * cols; ++i)
    s.push_back(static_cast<char>((7 * i + 3) % 256));
  return s;
}

/// An IDX label file: magic 0x801, label i = i mod classes.
inline std::string idxLabels(uint32_t count, uint32_t classes) {
  std::string s;
  putBigEndian32(s, 0x00000801);
  putBigEndian32(s, count);
  for (uint32_t i = 0; i < count; ++i) s.push_back(static_cast<char>(i % classes));
  return s;
}

/// gzip-compresses `raw` into `path` with zlib's gzopen/gzwrite.
inline void writeGzip(const std::string& path, const std::string& raw) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  gzFile g = gzopen(path.c_str(), "wb9");
  REQUIRE(g != nullptr);
  REQUIRE(gzwrite(g, raw.data(), static_cast<unsigned>(raw.size())) == static_cast<int>(raw.size()));
  REQUIRE(gzclose(g) == Z_OK);
}

/// The message of the DataError `f` throws; fails the test if it throws none.
inline std::string messageOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const DataError& e) {
    return e.what();
  }
  FAIL("expected a DataError");
  return {};
}

/// The file names in `dir`, sorted (to see what a write left behind).
inline std::vector<std::string> listDir(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

} // namespace descent::testutil
