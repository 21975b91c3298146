// The example models in models/: each passes sema, with the expected shapes,
// parameter counts and summary rows.
#include "compiler/frontend/frontend.h"
#include "compiler/frontend/summary.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace descent;
namespace fs = std::filesystem;

namespace {

ModelSpec load(const std::string& name) {
  std::string rel = "models/" + name + ".nn";
  std::ifstream in(fs::path(DESCENT_SOURCE_DIR) / rel, std::ios::binary);
  REQUIRE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  Diagnostics d(rel, ss.str());
  auto spec = analyzeSource(rel, ss.str(), d);
  INFO(d.render());
  REQUIRE(spec);
  return *spec;
}

// Parameters computed independently of ModelSpec::parameterCount.
int64_t mlpParams(std::initializer_list<int64_t> widths) {
  int64_t total = 0;
  const int64_t* w = widths.begin();
  for (size_t i = 0; i + 1 < widths.size(); ++i) total += w[i] * w[i + 1] + w[i + 1];
  return total;
}

} // namespace

TEST_CASE("models: every file in models/ passes sema and starts with a comment") {
  int count = 0;
  for (const auto& e : fs::directory_iterator(fs::path(DESCENT_SOURCE_DIR) / "models")) {
    if (e.path().extension() != ".nn") continue;
    ++count;
    std::ifstream in(e.path());
    std::string first;
    std::getline(in, first);
    CHECK(first.rfind("# ", 0) == 0);
    ModelSpec s = load(e.path().stem().string());
    CHECK(s.name == e.path().stem().string());
    CHECK(s.outputSize() == s.target_size);
  }
  CHECK(count >= 4);
}

TEST_CASE("models: mnist_mlp is the notebook's network") {
  ModelSpec s = load("mnist_mlp");
  CHECK(s.input_size == 784);
  CHECK(s.target_kind == TargetKind::Class);
  CHECK(s.target_size == 10);
  CHECK(s.outputSize() == 10);
  CHECK(s.parameterCount() == mlpParams({784, 128, 64, 10}));
  CHECK(s.parameterCount() == 109386);
  REQUIRE(s.layers.size() == 6);
  std::vector<LayerKind> kinds;
  for (const Layer& l : s.layers) kinds.push_back(l.kind);
  CHECK(kinds == std::vector<LayerKind>{LayerKind::Linear, LayerKind::ReLU, LayerKind::Linear,
                                        LayerKind::ReLU, LayerKind::Linear, LayerKind::LogSoftmax});
  CHECK(s.layers[2].in_features == 128);
  CHECK(s.layers[2].out_features == 64);
  CHECK(s.layers[4].index == 4);
  CHECK(s.layers[0].loc == SourceLoc{6, 5});
  CHECK(s.loss.kind == LossKind::NLLLoss);
  CHECK(s.optimizer.kind == OptimizerKind::SGD);
  CHECK(s.optimizer.lr == Approx(0.003));
  REQUIRE(s.transform);
  CHECK(s.transform->mean == std::vector<double>{0.5});
  CHECK(s.transform->std == std::vector<double>{0.5});
  CHECK(s.batch == 64);
  CHECK(s.epochs == 5);
}

TEST_CASE("models: the other examples") {
  ModelSpec ce = load("mnist_ce");
  CHECK(ce.loss.kind == LossKind::CrossEntropyLoss);
  CHECK(ce.optimizer.kind == OptimizerKind::Adam);
  CHECK(ce.parameterCount() == mlpParams({784, 256, 10}));
  bool hasDropout = false;
  for (const Layer& l : ce.layers) hasDropout |= l.kind == LayerKind::Dropout;
  CHECK(hasDropout);

  ModelSpec mse = load("regression_mse");
  CHECK(mse.loss.kind == LossKind::MSELoss);
  CHECK(mse.target_kind == TargetKind::Real);
  CHECK(mse.outputSize() == 1);
  CHECK(mse.optimizer.momentum > 0);
  CHECK(mse.parameterCount() == mlpParams({8, 32, 1}));

  ModelSpec bce = load("binary_bce");
  CHECK(bce.loss.kind == LossKind::BCELoss);
  CHECK(bce.target_kind == TargetKind::Real);
  CHECK(bce.layers.back().kind == LayerKind::Sigmoid);
  CHECK(bce.parameterCount() == mlpParams({2, 16, 1}));
}

TEST_CASE("summary: rows, totals and FLOPs of mnist_mlp") {
  ModelSpec s = load("mnist_mlp");
  std::string out = renderSummary(s);
  INFO(out);
  CHECK(out.find("Linear(784, 128)") != std::string::npos);
  CHECK(out.find("[64, 128]") != std::string::npos);
  CHECK(out.find("100,480") != std::string::npos);
  CHECK(out.find("LogSoftmax(dim=1)") != std::string::npos);
  CHECK(out.find("Total params:              109,386") != std::string::npos);
  CHECK(out.find("NLLLoss(reduction='mean')") != std::string::npos);
  CHECK(out.find("SGD(lr=0.003") != std::string::npos);
  CHECK(out.find("Epochs:    5") != std::string::npos);

  FlopCounts f = countFlops(s);
  // Matmuls: forward 2*in*out per Linear, backward dW for all, dX for all but the first.
  int64_t mm = 2 * (784 * 128 + 128 * 64 + 64 * 10);
  int64_t dx = 2 * (128 * 64 + 64 * 10);
  CHECK(f.matmul_train == 2 * mm + dx);
  CHECK(f.matmul_train == 454400); // design.md §8: "about 454 kFLOP per sample"
  CHECK(f.forward > mm);
  CHECK(f.train_step > f.matmul_train);
  CHECK(out.find("454,400 in matmuls") != std::string::npos);

  // The batch in the spec drives the shapes and the activation memory.
  s.batch = 32;
  std::string out32 = renderSummary(s);
  CHECK(out32.find("[32, 128]") != std::string::npos);
  CHECK(out32.find("[64, 128]") == std::string::npos);
}

TEST_CASE("summary: human-readable bytes") {
  CHECK(humanBytes(512) == "512 B");
  CHECK(humanBytes(437544) == "427.3 KiB");
  CHECK(humanBytes(3 * 1024 * 1024) == "3.0 MiB");
}

TEST_CASE("models: mnist_flatten is the notebook's network on [1, 28, 28] images") {
  ModelSpec s = load("mnist_flatten");
  CHECK(s.input_shape == std::vector<int64_t>{1, 28, 28});
  CHECK(s.input_size == 784);
  CHECK(s.fitsDefaultData());
  REQUIRE(s.layers.size() == 7);
  CHECK(s.layers[0].kind == LayerKind::Flatten);
  CHECK(s.layers[0].out_shape == std::vector<int64_t>{784});
  CHECK(s.layers[1].index == 1); // PyTorch's state_dict prefix: "1.weight"
  CHECK(s.parameterCount() == mlpParams({784, 128, 64, 10}));
}
