// Golden test of the notebook model's train stage: the printed train graph of
// models/mnist_mlp.nn checked by FileCheck against train_mnist_mlp.ir-check.
#include "compiler/ir/printer.h"
#include "compiler/passes/train_graph.h"
#include "helpers.h"

#include <cstdlib>
#include <filesystem>
#include <unistd.h>

using namespace descent;
using namespace descent::test;

namespace {

/// Writes `text` to a temp file and runs FileCheck on it with `check_file`'s
/// lines of the given prefix. Returns FileCheck's exit status (0: passed).
int fileCheck(const std::string& text, const std::string& check_file, const std::string& prefix) {
  auto tmp = std::filesystem::temp_directory_path() /
             ("descent_autodiff_" + prefix + "_" + std::to_string(::getpid()) + ".ir");
  {
    std::ofstream f(tmp);
    f << text;
  }
  std::string cmd = std::string(DESCENT_FILECHECK) + " --dump-input=fail --check-prefix=" + prefix + " " + check_file +
                    " --input-file=" + tmp.string();
  int rc = std::system(cmd.c_str());
  std::filesystem::remove(tmp);
  return rc;
}

} // namespace

TEST_CASE("train stage of the notebook model (FileCheck)", "[golden]") {
  ModelSpec spec = loadModel(sourceDir() + "/models/mnist_mlp.nn");
  BuildOptions opts;
  opts.batch = spec.batch;
  opts.input_u8 = true; // IDX images arrive as bytes
  std::string text = printGraph(*buildTrainGraph(spec, opts));
  INFO(text);
  std::string check = sourceDir() + "/tests/autodiff/train_mnist_mlp.ir-check";
  CHECK(fileCheck(text, check, "CHECK") == 0);
  CHECK(fileCheck(text, check, "WAR") == 0);
}
