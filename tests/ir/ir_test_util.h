// Helpers shared by the IR tests: load a model file through the frontend, run
// FileCheck on a text.
#pragma once

#include "compiler/frontend/frontend.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unistd.h>

namespace descent::testing {

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Parses and checks a model file of the repository (path relative to its root).
inline ModelSpec loadRepoModel(const std::string& rel) {
  std::string path = std::string(DESCENT_SOURCE_DIR) + "/" + rel;
  std::string src = slurp(path);
  Diagnostics d(rel, src);
  auto spec = analyzeSource(rel, src, d);
  if (!spec) throw std::runtime_error(d.render());
  return *spec;
}

/// Runs LLVM's FileCheck with `check_file` on `text`; returns its exit status
/// (0 = all CHECK lines matched) and leaves its diagnostics in `output`.
inline int fileCheck(const std::string& check_file, const std::string& text, std::string& output) {
  auto dir = std::filesystem::temp_directory_path();
  std::string in = (dir / ("descent-fc-in-" + std::to_string(getpid()))).string();
  std::string out = (dir / ("descent-fc-out-" + std::to_string(getpid()))).string();
  std::ofstream(in) << text;
  std::string cmd = std::string(DESCENT_FILECHECK) + " " + check_file + " --input-file=" + in +
                    " > " + out + " 2>&1";
  int rc = std::system(cmd.c_str());
  output = slurp(out);
  std::filesystem::remove(in);
  std::filesystem::remove(out);
  return rc;
}

} // namespace descent::testing
