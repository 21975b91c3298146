// End-to-end BatchNorm tests of the CLI: LeNet-5 with BatchNorm through check
// and the JIT (bitwise on 1 and 2 threads, close to the interpreter, buffers
// saved with PyTorch's names and dtypes), an exact resume with the running
// statistics, and the one-value-per-channel error before training.
#include "cli_test_util.h"
#include "runtime/safetensors.h"

#include <catch2/catch.hpp>
#include <fmt/format.h>

using namespace descent;
using namespace descent::testing;

namespace {

/// `rows` random 1x28x28 images in [0, 1) with labels 0..9, as CSV.
void writeImageCsv(const std::string& path, int rows, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0, 1);
  std::ofstream f(path);
  for (int j = 0; j < 784; ++j)
    f << "x" << j << ",";
  f << "y\n";
  for (int i = 0; i < rows; ++i) {
    for (int j = 0; j < 784; ++j)
      f << u(rng) << ",";
    f << i % 10 << "\n";
  }
}

} // namespace

TEST_CASE("BatchNorm: LeNet-5 with BatchNorm trains bitwise on 1 and 2 threads and close to "
          "the interpreter, saving PyTorch's buffers",
          "[cli][batchnorm]") {
  RunResult c = runDescent("check models/lenet5_bn.nn");
  INFO(c.err);
  REQUIRE(c.code == 0);
  // PyTorch's repr, and the shape unchanged (the column is as wide as the longest layer).
  const auto bn2d = c.out.find("\n1     BatchNorm2d(6, eps=1e-05, momentum=0.1, affine=True, "
                               "track_running_stats=True) ");
  const auto bn1d = c.out.find("\n13    BatchNorm1d(84, eps=1e-05, momentum=0.1, affine=True, "
                               "track_running_stats=True) ");
  REQUIRE(bn2d != std::string::npos);
  REQUIRE(bn1d != std::string::npos);
  CHECK(c.out.substr(bn2d, c.out.find('\n', bn2d + 1) - bn2d).find("[64, 6, 28, 28]") !=
        std::string::npos);
  CHECK(c.out.substr(bn1d, c.out.find('\n', bn1d + 1) - bn1d).find("[64, 84] ") !=
        std::string::npos);
  CHECK(c.out.find("Total params:              61,932") != std::string::npos); // PyTorch's count

  ScratchDir tmp;
  writeImageCsv(tmp / "d.csv", 20, 7); // batches of 8, 8 and 4
  const std::pair<const char*, const char*> runs[] = {
      {"jit --threads 1", "j1"}, {"jit --threads 2", "j2"}, {"interp", "i"}};
  for (const auto& [engine, name] : runs) {
    RunResult r = runDescent(fmt::format("train models/lenet5_bn.nn --data {} --epochs 1 --batch 8 "
                                         "--engine {} --save {}.safetensors",
                                         tmp / "d.csv", engine, tmp / name));
    INFO(engine << "\n" << r.err);
    REQUIRE(r.code == 0);
  }
  CHECK(readText(tmp / "j1.safetensors") == readText(tmp / "j2.safetensors"));
  SafeTensors j = readSafetensors(tmp / "j1.safetensors"),
              i = readSafetensors(tmp / "i.safetensors");
  CHECK(j.tensors.size() == 26); // 14 params and 4 x 3 buffers
  for (const char* bn : {"1", "5", "10", "13"}) {
    const std::string p = bn;
    REQUIRE(j.tensors.count(p + ".num_batches_tracked"));
    CHECK(j.tensors.at(p + ".num_batches_tracked").dtype == "I64");
    CHECK(j.tensors.at(p + ".num_batches_tracked").shape.empty());
    CHECK(toInt64s(j.tensors.at(p + ".num_batches_tracked"), "n", "j") == std::vector<int64_t>{3});
    CHECK(toInt64s(i.tensors.at(p + ".num_batches_tracked"), "n", "i") == std::vector<int64_t>{3});
  }
  // The JIT's numbers are the interpreter's up to the order of fp32 additions
  // (the BatchNorm kernels themselves compute in the interpreter's order).
  for (const auto& [name, t] : j.tensors) {
    if (t.dtype != "F32") continue;
    auto a = requireFloats(j, name, t.shape, "j"), b = requireFloats(i, name, t.shape, "i");
    INFO(name);
    for (size_t k = 0; k < a.size(); ++k)
      CHECK(a[k] == Approx(b[k]).margin(1e-4).epsilon(1e-3));
  }
}

TEST_CASE("BatchNorm: a resumed run continues the running statistics exactly", "[cli][batchnorm]") {
  const std::string f = "tests/reference/fixtures/bn2d_conv_ce_sgd";
  ScratchDir tmp;
  auto train = [&](int epochs, const std::string& init, const std::string& out) {
    RunResult r = runDescent(fmt::format("train {0}/model.nn --data {0}/data.csv --no-shuffle "
                                         "--epochs {1} {2} --save {3}",
                                         f, epochs, init.empty() ? "" : "--init " + init, out));
    INFO(r.err);
    REQUIRE(r.code == 0);
  };
  train(3, "", tmp / "a.safetensors");
  train(2, "", tmp / "b.safetensors");
  train(1, tmp / "b.safetensors", tmp / "c.safetensors");
  CHECK(readText(tmp / "c.safetensors") == readText(tmp / "a.safetensors"));
  SafeTensors a = readSafetensors(tmp / "a.safetensors");
  CHECK(toInt64s(a.tensors.at("1.num_batches_tracked"), "n", "a") == std::vector<int64_t>{3});
  // eval normalizes with the running statistics the checkpoint holds.
  RunResult ev = runDescent(
      fmt::format("eval {0}/model.nn --data {0}/data.csv --weights {1}", f, tmp / "a.safetensors"));
  INFO(ev.err);
  CHECK(ev.code == 0);
}

TEST_CASE("BatchNorm: a training batch with one value per channel is PyTorch's ValueError, "
          "before training",
          "[cli][batchnorm]") {
  // 6 samples in batches of 5: the last batch has 1 sample, and BatchNorm1d
  // on [N, 7] would see one value per channel.
  const std::string f = "tests/reference/fixtures/bn1d_linear_mse_adam";
  RunResult r = runDescent(fmt::format("train {0}/model.nn --data {0}/data.csv --batch 5", f));
  CHECK(r.code == 1);
  CHECK(r.err.find(f + "/model.nn:6:31: BatchNorm1d(7): Expected more than 1 value per channel "
                       "when training, got input size torch.Size([1, 7]): the last batch of an "
                       "epoch has 1 sample (6 samples in batches of 5); use another batch size") !=
        std::string::npos);
  CHECK(r.out.find("epoch") == std::string::npos); // no step was taken
  // 6 samples in batches of 4 (a last batch of 2) train.
  CHECK(runDescent(fmt::format("train {0}/model.nn --data {0}/data.csv --batch 4 --epochs 1", f))
            .code == 0);
  // BatchNorm2d has H·W values per channel: batch 1 is fine there.
  const std::string g = "tests/reference/fixtures/bn2d_conv_ce_sgd";
  CHECK(runDescent(fmt::format("train {0}/model.nn --data {0}/data.csv --batch 1 --epochs 1", g))
            .code == 0);
}
