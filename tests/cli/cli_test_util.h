// Helpers for the end-to-end tests of the `descent` binary: run a command and
// capture its exit code, stdout and stderr; scratch directories; small data sets.
#pragma once

#include "runtime/dataset.h"
#include "tests/common/test_support.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace descent::testing {

struct RunResult {
  int code = -1;
  std::string out, err;
};

using descent::testsupport::readText;

/// A fresh directory under the system temp dir, removed with the object.
struct ScratchDir {
  std::filesystem::path path;
  ScratchDir() {
    static int counter = 0; // tests in one process run sequentially
    path = std::filesystem::temp_directory_path() /
           ("descent-cli-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
    std::filesystem::create_directories(path);
  }
  ~ScratchDir() { std::filesystem::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

/// The first `train` training and `test` test images of Fashion-MNIST (the
/// default data set) written to `dir` as raw IDX files: a slice `--data` reads.
inline void writeIdxSlice(const std::string& dir, int64_t train, int64_t test = 100) {
  static const DataSplit full = loadIdxDir(defaultDataDir());
  auto put32 = [](std::ofstream& f, uint32_t v) {
    unsigned char b[4] = {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
    f.write(reinterpret_cast<char*>(b), 4);
  };
  auto write = [&](const Dataset& d, const std::string& prefix, int64_t m) {
    std::ofstream im(dir + "/" + prefix + "-images-idx3-ubyte", std::ios::binary);
    for (uint32_t v : {0x803u, uint32_t(m), 28u, 28u})
      put32(im, v);
    im.write(reinterpret_cast<const char*>(d.u8.data()), m * 784);
    std::ofstream lb(dir + "/" + prefix + "-labels-idx1-ubyte", std::ios::binary);
    put32(lb, 0x801);
    put32(lb, uint32_t(m));
    for (int64_t i = 0; i < m; ++i)
      lb.put(char(d.labels[size_t(i)]));
  };
  write(full.train, "train", train);
  write(*full.test, "t10k", test);
}

/// Runs the shell command `command` with the repository as working directory,
/// capturing its exit code, stdout and stderr.
inline RunResult runInRepo(const std::string& command) {
  ScratchDir tmp;
  std::string cmd =
      "cd " DESCENT_SOURCE_DIR " && " + command + " > " + (tmp / "out") + " 2> " + (tmp / "err");
  int status = std::system(cmd.c_str());
  RunResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = readText(tmp / "out");
  r.err = readText(tmp / "err");
  return r;
}

/// Runs `descent ARGS` (from the build dir) with the repository as working directory.
inline RunResult runDescent(const std::string& args) {
  return runInRepo(DESCENT_BINARY_DIR "/descent " + args);
}

/// One JSON object per line.
inline std::vector<nlohmann::json> readJsonl(const std::string& path) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

/// A CSV regression set: y = sin(x0) + 0.5*x1*x2 - 0.3*sum(rest), features in [-1, 1].
inline void writeRegressionCsv(const std::string& path, int rows, int features, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  std::ofstream f(path);
  for (int j = 0; j < features; ++j) f << "x" << j << ",";
  f << "y\n";
  for (int i = 0; i < rows; ++i) {
    std::vector<float> x(static_cast<size_t>(features));
    for (float& v : x) v = u(rng);
    float y = std::sin(x[0]) + 0.5f * x[1] * x[2];
    for (int j = 3; j < features; ++j) y -= 0.3f * x[size_t(j)];
    for (float v : x) f << v << ",";
    f << y << "\n";
  }
}

/// Two Gaussian blobs with 0/1 targets.
inline void writeBinaryCsv(const std::string& path, int rows, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0, 0.7f);
  std::ofstream f(path);
  f << "a,b,label\n";
  for (int i = 0; i < rows; ++i) {
    int c = i % 2;
    float cx = c ? 1.0f : -1.0f;
    f << cx + n(rng) << "," << -cx + n(rng) << "," << c << "\n";
  }
}

} // namespace descent::testing
