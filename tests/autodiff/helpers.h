// Shared helpers of the autodiff tests: loading model files through the
// frontend, parsing IR text, and the list of example and fixture models.
#pragma once

#include "compiler/frontend/frontend.h"
#include "compiler/ir/parser.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace descent::test {

inline std::string sourceDir() { return DESCENT_SOURCE_DIR; }

inline std::string readText(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

/// Loads and checks a model file; fails the test with the diagnostics otherwise.
inline ModelSpec loadModel(const std::string& path) {
  std::string src = readText(path);
  REQUIRE(!src.empty());
  Diagnostics diags(path, src);
  auto spec = analyzeSource(path, src, diags);
  INFO(diags.render());
  REQUIRE(spec);
  return *spec;
}

inline std::unique_ptr<Graph> parseIr(const std::string& text) {
  std::string err;
  auto g = parseGraph(text, err);
  INFO(err);
  REQUIRE(g);
  return g;
}

/// models/*.nn and tests/reference/fixtures/*/model.nn, sorted.
inline std::vector<std::string> allModelFiles() {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(sourceDir() + "/models"))
    if (e.path().extension() == ".nn") out.push_back(e.path().string());
  fs::path fx = sourceDir() + "/tests/reference/fixtures";
  if (fs::exists(fx))
    for (const auto& e : fs::directory_iterator(fx))
      if (fs::exists(e.path() / "model.nn")) out.push_back((e.path() / "model.nn").string());
  std::sort(out.begin(), out.end());
  return out;
}

} // namespace descent::test
