// `descent compile` (docs/aot.md): the generated C library runs the JIT's
// kernels in the JIT's order and partition, so its train step, eval and
// predict are bitwise the JIT's (every model in models/, 1 and 2 threads);
// the C program links no LLVM; API misuse returns error codes.
#include "runtime/compiled_model.h"
#include "tests/cli/cli_test_util.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <fmt/format.h>

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
  for (const auto& t : s.tensors) {
    float* d = p.param(t.name);
    uint32_t h = nameHash(t.name);
    for (int64_t j = 0; j < t.numel; ++j)
      d[j] = t.param ? float(int((j * 7 + h) % 17) - 8) * 0.01f : 0.0f;
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

/// Compiles `model` ahead of time into `dir` and builds step_driver.c against it.
std::string buildDriver(const ScratchDir& dir, const std::string& model, const std::string& name) {
  RunResult c =
      descent::testing::runDescent(fmt::format("compile {} --out {}", model, dir / "lib"));
  INFO(c.err);
  REQUIRE(c.code == 0);
  std::string exe = dir / "driver";
  RunResult cc =
      sh(fmt::format("cc -std=c99 -Wall -Werror -O1 -DMODEL={n} -include {d}/{n}.h -o {e} "
                     "{src}/tests/aot/step_driver.c {d}/lib{n}.a -lpthread -lm",
                     fmt::arg("n", name), fmt::arg("d", dir / "lib"), fmt::arg("e", exe),
                     fmt::arg("src", DESCENT_SOURCE_DIR)));
  INFO(cc.err);
  REQUIRE(cc.code == 0);
  return exe;
}

} // namespace

TEST_CASE("the AOT train step, eval and predict are bitwise the JIT's for every model") {
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(DESCENT_SOURCE_DIR) + "/models")) {
    if (entry.path().extension() != ".nn") continue;
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
