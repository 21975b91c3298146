// `descent compile` (docs/aot.md): the generated C library runs the JIT's
// kernels in the JIT's order and partition, so its train step, eval and
// predict are bitwise the JIT's (every model in models/, 1 and 2 threads);
// the C program links no LLVM; API misuse returns error codes.
#include "runtime/compiled_model.h"
#include "runtime/safetensors.h"
#include "tests/cli/cli_test_util.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <set>
#include <sstream>

using namespace descent;
using descent::testing::RunResult;
using descent::testing::ScratchDir;

namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

uint32_t hashOf(const float* p, int64_t n) {
  uint32_t h = 2166136261u;
  for (int64_t i = 0; i < n; ++i)
    h = (h ^ bits(p[i])) * 16777619u;
  return h;
}

uint32_t nameHash(const std::string& s) {
  uint32_t h = 0;
  for (unsigned char c : s)
    h = h * 31u + c;
  return h;
}

RunResult sh(const std::string& cmd) {
  ScratchDir tmp;
  std::string full = cmd + " > " + (tmp / "out") + " 2> " + (tmp / "err");
  int status = std::system(full.c_str());
  RunResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = descent::testing::readText(tmp / "out");
  r.err = descent::testing::readText(tmp / "err");
  return r;
}

/// What step_driver.c prints, computed with the JIT.
std::string jitTranscript(const std::string& model, int threads, int steps, int seed) {
  ModelSpec spec = descent::testsupport::loadRepoModel(model);
  CompileOptions o;
  o.batch = spec.batch;
  o.input_u8 = spec.fitsDefaultData();
  o.jit_options.threads = threads;
  CompiledModel cm = compileModel(spec, o);
  Program& p = *cm.program;
  Schedule s = p.schedule();
  // The library's table marks what the model file holds: parameters and
  // module buffers (BatchNorm's running statistics).
  std::set<std::string> buffers;
  for (const Value* v : cm.train->states())
    if (v->desc.buffer != BufferKind::None) buffers.insert(v->external_name);
  for (const auto& t : s.tensors) {
    float* d = p.param(t.name);
    uint32_t h = nameHash(t.name);
    for (int64_t j = 0; j < t.numel; ++j)
      d[j] = t.param || buffers.count(t.name) ? float(int((j * 7 + h) % 17) - 8) * 0.01f : 0.0f;
  }
  const int B = int(spec.batch), IN = int(spec.input_size), OUT = int(spec.outputSize());
  std::vector<uint8_t> xu(size_t(B) * IN);
  std::vector<float> xf(size_t(B) * IN);
  for (int i = 0; i < B * IN; ++i) {
    xu[size_t(i)] = uint8_t((i * 31 + i / IN * 7) % 256);
    xf[size_t(i)] = float((i * 31 + i / IN * 7) % 19 - 9) * 0.1f;
  }
  std::vector<int32_t> yl(static_cast<size_t>(B));
  std::vector<float> yf(size_t(B) * OUT);
  for (int i = 0; i < B; ++i)
    yl[size_t(i)] = (i * 3) % OUT;
  for (int i = 0; i < B * OUT; ++i)
    yf[size_t(i)] = float(i % 5) * 0.2f;
  const void* x = o.input_u8 ? static_cast<const void*>(xu.data()) : xf.data();
  const void* y =
      spec.target_kind == TargetKind::Class ? static_cast<const void*>(yl.data()) : yf.data();
  std::string out;
  for (int st = 0; st < steps; ++st) {
    int n = st == steps - 1 && B > 3 ? B - 3 : B;
    p.setHyper(spec.optimizer.lr * double(st + 2) / 2.0, p.momentum());
    p.run(CompiledModel::kTrain, x, y, n, st + 1, seed);
    out += fmt::format("step {} loss {:08x}\n", st + 1,
                       bits(p.outputScalar(CompiledModel::kTrain, "loss")));
  }
  for (const auto& t : s.tensors)
    out += fmt::format("{} {:08x}\n", t.name, hashOf(p.param(t.name), t.numel));
  p.run(CompiledModel::kEval, x, y, B - 1, 1, 0);
  float correct = p.outputScalar(CompiledModel::kEval, "correct");
  out += fmt::format("eval loss {:08x} correct {}\n",
                     bits(p.outputScalar(CompiledModel::kEval, "loss")),
                     std::isnan(correct) ? -1 : int(correct));
  out += fmt::format("predict {:08x}\n",
                     hashOf(p.outputData(CompiledModel::kEval, "output"), int64_t(B - 1) * OUT));
  return out;
}

/// Compiles `model` ahead of time (with `flags`) into `dir` and builds the
/// driver (tests/aot/<driver>) against it.
std::string buildDriver(const ScratchDir& dir, const std::string& model, const std::string& name,
                        const std::string& flags = "",
                        const std::string& driver = "step_driver.c") {
  RunResult c = descent::testing::runDescent(
      fmt::format("compile {} --out {} {}", model, dir / "lib", flags));
  INFO(c.err);
  REQUIRE(c.code == 0);
  std::string exe = dir / "driver";
  RunResult cc =
      sh(fmt::format("cc -std=c99 -Wall -Werror -O1 -DMODEL={n} -I{d} -include {d}/{n}.h -o {e} "
                     "{src}/tests/aot/{drv} {d}/lib{n}.a -lpthread -lm",
                     fmt::arg("n", name), fmt::arg("d", dir / "lib"), fmt::arg("e", exe),
                     fmt::arg("src", DESCENT_SOURCE_DIR), fmt::arg("drv", driver)));
  INFO(cc.err);
  REQUIRE(cc.code == 0);
  return exe;
}

} // namespace

TEST_CASE("the AOT train step, eval and predict are bitwise the JIT's for every model") {
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(DESCENT_SOURCE_DIR) + "/models")) {
    if (entry.path().extension() != ".nn") continue;
    // Convolution and pooling run in the interpreter only for now; tests/cli
    // checks that the JIT (and so `descent compile`) refuses them.
    if (!descent::testsupport::jitCompiles(descent::testsupport::loadModel(entry.path().string())))
      continue;
    std::string model = "models/" + entry.path().filename().string(),
                name = entry.path().stem().string();
    SECTION(name) {
      ScratchDir dir;
      std::string exe = buildDriver(dir, model, name);
      for (int threads : {1, 2}) {
        INFO(model << ", " << threads << " thread(s)");
        RunResult r = sh(fmt::format("{} {} 3 7", exe, threads));
        REQUIRE(r.code == 0);
        CHECK(r.out == jitTranscript(model, threads, 3, 7));
      }
    }
  }
}

TEST_CASE("the AOT train step with gradient clipping, RMSprop, Adagrad and Adadelta is bitwise the JIT's") {
  // clip_grad_norm adds the grad_norm kernel and unfused updates; clip_grad_value
  // a clamp in the fused update; RMSprop (centered, momentum), Adagrad (its
  // lr_decay in the per-step scalars) and Adadelta their own update kinds:
  // the library runs the same kernels.
  for (const char* fixture :
       {"clip_norm_ce_sgd_momentum", "clip_value_mse_adam", "mse_mean_rmsprop_centered_momentum_wd",
        "mse_mean_adagrad_decay_init_wd", "nll_sum_adadelta_rho_wd_maximize"}) {
    std::string model = fmt::format("tests/reference/fixtures/{}/model.nn", fixture);
    SECTION(fixture) {
      ScratchDir dir;
      std::string exe = buildDriver(dir, model, "model");
      for (int threads : {1, 2}) {
        INFO(model << ", " << threads << " thread(s)");
        RunResult r = sh(fmt::format("{} {} 3 7", exe, threads));
        REQUIRE(r.code == 0);
        CHECK(r.out == jitTranscript(model, threads, 3, 7));
      }
    }
  }
}

TEST_CASE("the program built against the AOT library links no LLVM and no C++ runtime") {
  ScratchDir dir;
  std::string exe = buildDriver(dir, "models/mnist_mlp.nn", "mnist_mlp");
  RunResult r = sh("readelf -d " + exe);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("(NEEDED)") != std::string::npos);
  CHECK(r.out.find("LLVM") == std::string::npos);
  CHECK(r.out.find("libstdc++") == std::string::npos);
  CHECK(r.out.find("libfmt") == std::string::npos);
}

TEST_CASE(
    "the --inference library's eval and predictions are the JIT eval step's (descent predict)") {
  ScratchDir dir;
  std::string exe = buildDriver(dir, "models/mnist_ce.nn", "mnist_ce", "--inference");
  CHECK(descent::testing::readText(dir / "lib/mnist_ce.h").find("#define mnist_ce_HAS_TRAIN 0") !=
        std::string::npos);
  RunResult r = sh(exe + " 1 0 0");
  REQUIRE(r.code == 0);
  std::string jit = jitTranscript("models/mnist_ce.nn", 1, 0, 0);
  // The inference library holds no optimizer state: compare the rest.
  std::string want;
  std::istringstream lines(jit);
  for (std::string line; std::getline(lines, line);)
    if (line.find("momentum") == std::string::npos && line.find("exp_avg") == std::string::npos)
      want += line + "\n";
  CHECK(r.out == want);
}

TEST_CASE("API misuse returns error codes, and checkpoints go both ways between descent and the "
          "library") {
  ScratchDir dir;
  REQUIRE(descent::testing::runDescent(
              fmt::format("compile models/wide_mlp.nn --out {}", dir / "other"))
              .code == 0);
  std::string exe = buildDriver(dir, "models/mnist_mlp.nn", "mnist_mlp", "", "misuse_driver.c");
  {
    std::ofstream garbage(dir / "garbage.safetensors");
    garbage << "\x10\0\0\0\0\0\0\0{\"a\": [1, 2, 3]}";
  }
  RunResult r = sh(fmt::format("{} {} {} {} {}", exe, dir / "lib/mnist_mlp.init.safetensors",
                               dir / "other/wide_mlp.init.safetensors", dir / "garbage.safetensors",
                               dir / "saved.safetensors"));
  INFO(exe << ": " << r.out << r.err);
  REQUIRE(r.code == 0);
  // descent reads what the library wrote (params, optimizer file and its CRC, the step).
  RunResult e = descent::testing::runDescent(fmt::format(
      "train models/mnist_mlp.nn --init {} --epochs 1 --threads 1", dir / "saved.safetensors"));
  INFO(e.out << e.err);
  CHECK(e.code == 0);
  CHECK(e.out.find("resuming after epoch 0, step 1") != std::string::npos);
}

TEST_CASE("a BatchNorm checkpoint goes through the library unchanged, num_batches_tracked as I64") {
  ScratchDir dir;
  descent::testing::writeIdxSlice(dir.path.string(), 130); // 3 steps: num_batches_tracked is 3
  RunResult t = descent::testing::runDescent(
      fmt::format("train models/lenet5_bn.nn --data {} --epochs 1 --save {}", dir.path.string(),
                  dir / "a.safetensors"));
  INFO(t.err);
  REQUIRE(t.code == 0);
  std::string exe = buildDriver(dir, "models/lenet5_bn.nn", "lenet5_bn", "", "roundtrip_driver.c");
  RunResult r = sh(fmt::format("{} {} {}", exe, dir / "a.safetensors", dir / "b.safetensors"));
  INFO(r.err);
  REQUIRE(r.code == 0);
  for (const char* f : {"", ".optim"}) {
    SafeTensors a = readSafetensors(dir / fmt::format("a{}.safetensors", f)),
                b = readSafetensors(dir / fmt::format("b{}.safetensors", f));
    REQUIRE(a.tensors.size() == b.tensors.size());
    for (const auto& [name, ta] : a.tensors) {
      INFO(name);
      REQUIRE(b.tensors.count(name));
      const auto& tb = b.tensors.at(name);
      CHECK(tb.dtype == ta.dtype);
      CHECK(tb.shape == ta.shape);
      CHECK(tb.data == ta.data);
    }
  }
  CHECK(readSafetensors(dir / "b.safetensors").tensors.at("1.num_batches_tracked").dtype == "I64");
  CHECK(toInt64s(readSafetensors(dir / "b.safetensors").tensors.at("1.num_batches_tracked"), "", "")
            .at(0) == 3);
  // A negative count is refused (EFORMAT), as descent refuses it; an F32 one
  // (another program's layout) is another model's file (EMISMATCH).
  SafeTensors c = readSafetensors(dir / "a.safetensors");
  const int64_t minus_one = -1;
  c.tensors["1.num_batches_tracked"] = fromInt64s({}, std::span<const int64_t>(&minus_one, 1));
  writeSafetensors(dir / "c.safetensors", c);
  CHECK(sh(fmt::format("{} {} {}", exe, dir / "c.safetensors", dir / "d.safetensors")).code ==
        10 + 5);
  const float three = 3;
  c.tensors["1.num_batches_tracked"] = fromFloats({}, std::span<const float>(&three, 1));
  writeSafetensors(dir / "c.safetensors", c);
  CHECK(sh(fmt::format("{} {} {}", exe, dir / "c.safetensors", dir / "d.safetensors")).code ==
        10 + 6);
}

TEST_CASE("examples/aot/train_mnist.c trains one epoch with the numbers of descent train") {
  ScratchDir dir;
  REQUIRE(
      descent::testing::runDescent(fmt::format("compile models/mnist_mlp.nn --out {}", dir / "lib"))
          .code == 0);
  RunResult cc =
      sh(fmt::format("cc -std=c99 -Wall -Werror -O2 -I{d} -o {e} {src}/examples/aot/train_mnist.c "
                     "{d}/libmnist_mlp.a -lpthread -lm -lz",
                     fmt::arg("d", dir / "lib"), fmt::arg("e", dir / "train_mnist"),
                     fmt::arg("src", DESCENT_SOURCE_DIR)));
  INFO(cc.err);
  REQUIRE(cc.code == 0);
  RunResult ex = sh(fmt::format("{} /usr/share/datasets/fashion-mnist {}", dir / "train_mnist",
                                dir / "lib/mnist_mlp.init.safetensors"));
  INFO(ex.err);
  REQUIRE(ex.code == 0);
  RunResult tr = descent::testing::runDescent("train models/mnist_mlp.nn --epochs 1 --threads 1");
  REQUIRE(tr.code == 0);
  auto field = [](const std::string& text, const std::string& key) {
    size_t p = text.find(key);
    REQUIRE(p != std::string::npos);
    p += key.size();
    while (text[p] == ' ')
      ++p;
    return text.substr(p, text.find_first_of(" \n", p) - p);
  };
  CHECK(field(ex.out, "train loss") == field(tr.out, "train loss"));
  CHECK(field(ex.out, "test accuracy") == field(tr.out, "test accuracy"));
}

TEST_CASE("examples/aot/classify.cpp predicts with the --inference library as descent predict") {
  ScratchDir dir;
  // A checkpoint (the initial parameters descent compile writes) and the
  // inference library, built with the system C++ compiler.
  REQUIRE(descent::testing::runDescent(
              fmt::format("compile models/mnist_mlp.nn --out {}", dir / "full"))
              .code == 0);
  REQUIRE(descent::testing::runDescent(
              fmt::format("compile models/mnist_mlp.nn --inference --out {}", dir / "lib"))
              .code == 0);
  RunResult cc = sh(fmt::format(
      "c++ -std=c++17 -Wall -Werror -O2 -I{d} -o {e} {src}/examples/aot/classify.cpp "
      "{d}/libmnist_mlp.a -lpthread -lz",
      fmt::arg("d", dir / "lib"), fmt::arg("e", dir / "classify"),
      fmt::arg("src", DESCENT_SOURCE_DIR)));
  INFO(cc.err);
  REQUIRE(cc.code == 0);
  const std::string weights = dir / "full/mnist_mlp.init.safetensors";
  RunResult ex = sh(fmt::format("{} /usr/share/datasets/fashion-mnist {} 10000", dir / "classify",
                                weights));
  INFO(ex.err);
  REQUIRE(ex.code == 0);
  RunResult pr = descent::testing::runDescent(fmt::format(
      "predict models/mnist_mlp.nn --weights {} --out {}", weights, dir / "p.csv"));
  REQUIRE(pr.code == 0);
  // Every test image: the same predicted class (column 2 of both files).
  auto predicted = [](std::istream& in) {
    std::vector<std::string> v;
    std::string line;
    std::getline(in, line); // header
    while (std::getline(in, line)) {
      size_t a = line.find(','), b = line.find(',', a + 1);
      if (a == std::string::npos || b == std::string::npos) break; // the accuracy line
      v.push_back(line.substr(a + 1, b - a - 1));
    }
    return v;
  };
  std::istringstream ours(ex.out);
  std::ifstream theirs(dir / "p.csv");
  std::vector<std::string> a = predicted(ours), b = predicted(theirs);
  CHECK(a.size() == 10000);
  CHECK(a == b);
  // And the accuracy descent eval prints.
  RunResult ev = descent::testing::runDescent(
      fmt::format("eval models/mnist_mlp.nn --weights {}", weights));
  REQUIRE(ev.code == 0);
  size_t at = ex.out.find("accuracy ");
  REQUIRE(at != std::string::npos);
  std::string acc = ex.out.substr(at + 9, ex.out.find('%', at) - at - 9);
  CHECK(ev.out.find("accuracy  " + acc + "%") != std::string::npos);
}

TEST_CASE("descent compile refuses another model's --weights before writing anything") {
  ScratchDir dir;
  REQUIRE(descent::testing::runDescent(
              fmt::format("compile models/wide_mlp.nn --out {}", dir / "other"))
              .code == 0);
  RunResult r = descent::testing::runDescent(
      fmt::format("compile models/mnist_mlp.nn --out {} --weights {}", dir / "lib",
                  dir / "other/wide_mlp.init.safetensors"));
  CHECK(r.code == 1);
  CHECK(r.err.find("wide_mlp.init.safetensors: tensor '0.weight' has shape [1024, 784], expected "
                   "[128, 784]") != std::string::npos);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(!std::filesystem::exists(dir / "lib/mnist_mlp.h"));
  CHECK(!std::filesystem::exists(dir / "lib/libmnist_mlp.a"));
}
