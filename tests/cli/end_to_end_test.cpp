// End to end against PyTorch (issue #12, "Numbers"): models/lenet5.nn and
// models/lenet5_bn.nn, started from torch's initial weights and trained by
// `descent train --no-shuffle` for the files' 2 epochs on a Fashion-MNIST
// slice, give PyTorch's per-epoch train loss, test loss and test accuracy
// (tests/reference/make_end_to_end.py made the references: losses within 2e-3
// relative, accuracy within 0.5 points; the convolutions sum in another order
// than oneDNN's, so not bitwise).
#include "tests/cli/cli_test_util.h"

#include <catch2/catch.hpp>
#include <fmt/format.h>

using namespace descent;
using namespace descent::testing;

namespace {

void checkAgainstPyTorch(const std::string& model) {
  const std::string dir = std::string(DESCENT_SOURCE_DIR) + "/tests/reference/end_to_end/" + model;
  const nlohmann::json want = nlohmann::json::parse(readText(dir + "/expected.json"));
  ScratchDir tmp;
  writeIdxSlice(tmp.path.string(), want["train_samples"].get<int64_t>(),
                want["test_samples"].get<int64_t>());
  RunResult r = runDescent(fmt::format(
      "train {} --data {} --init {}/init.safetensors --no-shuffle --threads 1 --metrics {}",
      want["model"].get<std::string>(), tmp.path.string(), dir, tmp / "m.jsonl"));
  INFO(r.err);
  REQUIRE(r.code == 0);
  const auto got = readJsonl(tmp / "m.jsonl");
  const auto& epochs = want["epochs"];
  REQUIRE(got.size() == epochs.size());
  for (size_t e = 0; e < got.size(); ++e) {
    INFO(fmt::format("{} epoch {}: descent {}, PyTorch {}, PyTorch with oneDNN off {}", model,
                     e + 1, got[e].dump(), epochs[e].dump(), want["reordered"][e].dump()));
    for (const char* key : {"train_loss", "test_loss"})
      CHECK(got[e][key].get<double>() == Approx(epochs[e][key].get<double>()).epsilon(2e-3));
    CHECK(std::abs(got[e]["test_accuracy"].get<double>() -
                   epochs[e]["test_accuracy"].get<double>()) <= 0.005);
  }
}

} // namespace

TEST_CASE("end to end: LeNet-5 trains like PyTorch on a Fashion-MNIST slice", "[cli][reference]") {
  checkAgainstPyTorch("lenet5");
}

TEST_CASE("end to end: LeNet-5 with BatchNorm trains like PyTorch on a Fashion-MNIST slice",
          "[cli][reference]") {
  checkAgainstPyTorch("lenet5_bn");
}
