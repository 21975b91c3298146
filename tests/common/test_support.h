// What every test executable shares: repository paths, reading files, loading
// model files through the frontend, parsing IR text, the list of models and
// PyTorch fixtures, and running LLVM's FileCheck. Header-only (this directory
// has no .cpp, so it is not a test executable of its own).
#pragma once

#include "compiler/frontend/frontend.h"
#include "compiler/ir/model_builder.h"
#include "compiler/ir/op_defs.h"
#include "compiler/ir/parser.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace descent::testsupport {

inline std::string sourceDir() { return DESCENT_SOURCE_DIR; }

inline std::string readText(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

/// Loads and checks a model file; fails the test with the diagnostics otherwise.
/// `path` is printed in messages as given.
inline ModelSpec loadModel(const std::string& path, const std::string& display_path = {}) {
  std::string src = readText(path);
  REQUIRE(!src.empty());
  Diagnostics diags(display_path.empty() ? path : display_path, src);
  auto spec = analyzeSource(display_path.empty() ? path : display_path, src, diags);
  INFO(diags.render());
  REQUIRE(spec);
  return *spec;
}

/// A model file of the repository, named by its path relative to the root
/// (so locations print as "models/mnist_mlp.nn").
inline ModelSpec loadRepoModel(const std::string& rel) { return loadModel(sourceDir() + "/" + rel, rel); }

inline std::unique_ptr<Graph> parseIr(const std::string& text) {
  std::string err;
  auto g = parseGraph(text, err);
  INFO(err);
  REQUIRE(g);
  return g;
}

/// models/*.nn and tests/reference/fixtures/*/model.nn, sorted. With
/// DESCENT_TEST_SWEEP=models in the environment, models/*.nn only: `make
/// test-sanitize` sets it, because under ASan at -O0 the every-model sweeps
/// spent about 7 of CI's 30 minutes on the fixtures, whose graphs the normal
/// build sweeps and whose ops the fixture tests still run under ASan
/// (docs/testing.md).
inline std::vector<std::string> allModelFiles() {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  // mnist_flatten.nn lowers to mnist_mlp.nn's graph plus one flatten view
  // (same kernels; the CLI's N-D test checks the two train to the same bytes),
  // so the every-model tests leave the second copy of the largest model out.
  for (const auto& e : fs::directory_iterator(sourceDir() + "/models"))
    if (e.path().extension() == ".nn" && e.path().filename() != "mnist_flatten.nn")
      out.push_back(e.path().string());
  fs::path fx = sourceDir() + "/tests/reference/fixtures";
  const char* sweep = std::getenv("DESCENT_TEST_SWEEP");
  if (fs::exists(fx) && !(sweep && std::string(sweep) == "models"))
    for (const auto& e : fs::directory_iterator(fx))
      if (fs::exists(e.path() / "model.nn")) out.push_back((e.path() / "model.nn").string());
  std::sort(out.begin(), out.end());
  return out;
}

/// Whether the JIT compiles the model: false when its graph has an op with
/// no JIT kernel yet (the InterpOnly trait: convolution and pooling, which
/// run in the interpreter at issue #12's first stage). The JIT refuses such
/// a model with a one-line error (tests/cli: "the JIT refuses ...").
inline bool jitCompiles(const ModelSpec& spec) {
  BuildOptions opts;
  opts.batch = 2;
  auto g = buildForwardGraph(spec, opts);
  return std::none_of(g->ops().begin(), g->ops().end(),
                      [](const auto& op) { return hasTrait(op->kind, optrait::InterpOnly); });
}

/// allModelFiles() that the JIT compiles (the compiled-engine tests' list).
inline std::vector<std::string> jitModelFiles() {
  std::vector<std::string> out;
  for (const std::string& path : allModelFiles()) {
    Diagnostics diags(path, readText(path));
    auto spec = analyzeSource(path, readText(path), diags);
    if (spec && jitCompiles(*spec)) out.push_back(path);
  }
  return out;
}

/// Runs FileCheck with the `prefix` lines of `check_file` on `text`. Returns
/// its exit status (0: every line matched); its report goes to `report`.
inline int fileCheck(const std::string& text, const std::string& check_file, std::string& report,
                     const std::string& prefix = "CHECK") {
  static int counter = 0; // tests within one executable run one at a time
  auto dir = std::filesystem::temp_directory_path();
  std::string tag = std::to_string(getpid()) + "-" + std::to_string(counter++);
  std::string in = (dir / ("descent-fc-in-" + tag)).string();
  std::string out = (dir / ("descent-fc-out-" + tag)).string();
  std::ofstream(in) << text;
  std::string cmd = std::string(DESCENT_FILECHECK) + " --dump-input=fail --check-prefix=" + prefix +
                    " " + check_file + " --input-file=" + in + " > " + out + " 2>&1";
  int rc = std::system(cmd.c_str());
  report = readText(out);
  std::filesystem::remove(in);
  std::filesystem::remove(out);
  return rc;
}

} // namespace descent::testsupport
