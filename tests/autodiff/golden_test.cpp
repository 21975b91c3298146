// Golden test of the notebook model's train stage: the printed train graph of
// models/mnist_mlp.nn checked by FileCheck against train_mnist_mlp.ir-check.
#include "compiler/ir/printer.h"
#include "compiler/passes/train_graph.h"
#include "tests/common/test_support.h"

#include <cstdlib>
#include <filesystem>
#include <unistd.h>

using namespace descent;
using namespace descent::testsupport;


TEST_CASE("train stage of the notebook model (FileCheck)", "[golden]") {
  ModelSpec spec = loadModel(sourceDir() + "/models/mnist_mlp.nn");
  BuildOptions opts;
  opts.batch = spec.batch;
  opts.input_u8 = true; // IDX images arrive as bytes
  std::string text = printGraph(*buildTrainGraph(spec, opts));
  INFO(text);
  std::string check = sourceDir() + "/tests/autodiff/train_mnist_mlp.ir-check";
  for (const char* prefix : {"CHECK", "WAR"}) {
    std::string report;
    int rc = fileCheck(text, check, report, prefix);
    INFO(prefix << ": " << report);
    CHECK(rc == 0);
  }
}
