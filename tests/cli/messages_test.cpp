// End-to-end tests of the command line's own messages: every misuse exits 2
// with one line in the user's terms (the option, the rule, the value given),
// never CLI11's wording, an LLVM abort or a silently ignored value; --cpu
// names are checked before LLVM sees them; a model file may start with a
// UTF-8 byte-order mark.
#include "cli_test_util.h"

#include <catch2/catch.hpp>
#include <fmt/format.h>

using namespace descent::testing;

namespace {

/// Exit 2 and exactly `line` (plus a newline) on stderr.
void checkMisuse(const std::string& args, const std::string& line) {
  RunResult r = runDescent(args);
  INFO("descent " << args);
  CHECK(r.code == 2);
  CHECK(r.err == "error: " + line + "\n");
}

} // namespace

TEST_CASE("unknown and missing commands are named", "[cli]") {
  checkMisuse(
      "trian models/mnist_mlp.nn",
      "unknown command 'trian' (did you mean 'train'?); the commands are check, ir, train, eval, "
      "predict, gradcheck, bench, opt or compile (see descent --help)");
  checkMisuse("frobnicate",
              "unknown command 'frobnicate'; the commands are check, ir, train, eval, "
              "predict, gradcheck, bench, opt or compile (see descent --help)");
  checkMisuse("", "no command given; use check, ir, train, eval, predict, gradcheck, bench, opt or compile "
                  "(see descent --help)");
  checkMisuse("--epochs 3 train models/mnist_mlp.nn",
              "--epochs comes before the command; options go after it: descent COMMAND MODEL.nn [options]");
  checkMisuse("train",
              "train needs a model file: descent train MODEL.nn ... (see descent train --help)");
  checkMisuse("eval models/mnist_mlp.nn", "eval needs --weights (see descent eval --help)");
  checkMisuse("train models/mnist_mlp.nn --epoch 3",
              "train has no option --epoch; did you mean '--epochs'? (see descent train --help)");
  checkMisuse(
      "train models/mnist_mlp.nn other.nn",
      "unexpected argument 'other.nn': train takes one model file (see descent train --help)");
}

TEST_CASE("float flags reject nan, inf and out-of-range values", "[cli]") {
  checkMisuse("train models/mnist_mlp.nn --lr nan", "--lr must be a finite number, got nan");
  checkMisuse("train models/mnist_mlp.nn --lr inf", "--lr must be a finite number, got inf");
  checkMisuse("train models/mnist_mlp.nn --lr -inf", "--lr must be a finite number, got -inf");
  checkMisuse("train models/mnist_mlp.nn --lr 1e999", "--lr must be a finite number, got 1e999");
  checkMisuse("train models/mnist_mlp.nn --lr -1", "--lr must be > 0, got -1");
  checkMisuse("train models/mnist_mlp.nn --lr 0", "--lr must be > 0, got 0");
  checkMisuse("train models/mnist_mlp.nn --lr fast", "--lr must be a number, got 'fast'");
}

TEST_CASE("integer flags say their range in words", "[cli]") {
  checkMisuse("train models/mnist_mlp.nn --epochs 0", "--epochs must be >= 1, got 0");
  checkMisuse("train models/mnist_mlp.nn --epochs 2.5", "--epochs must be an integer, got '2.5'");
  checkMisuse("train models/mnist_mlp.nn --batch 2000000000",
              "--batch must be <= 1048576, got 2000000000");
  checkMisuse("train models/mnist_mlp.nn --batch 99999999999999999999",
              "--batch must be <= 1048576, got 99999999999999999999");
  checkMisuse("train models/mnist_mlp.nn --threads 1000", "--threads must be <= 256, got 1000");
  checkMisuse("predict models/mnist_mlp.nn --weights w --index -1", "--index must be >= 0, got -1");
  checkMisuse("predict models/mnist_mlp.nn --weights w --index 2 --out p.csv",
              "--index and --out cannot be given together (see descent predict --help)");
  checkMisuse("bench models/mnist_mlp.nn --steps 0", "--steps must be >= 1, got 0");
  checkMisuse("ir models/mnist_mlp.nn --stage grph",
              "--stage must be ast, graph, train, kernels, llvm or asm, got 'grph' (did you mean "
              "'graph'?)");
  checkMisuse("train models/mnist_mlp.nn --engine llvm",
              "--engine must be jit or interp, got 'llvm'");
  checkMisuse("train models/mnist_mlp.nn --epochs", "--epochs needs a value");
}

TEST_CASE("seeds beyond 64 bits are rejected, not wrapped", "[cli]") {
  const std::string range =
      "--seed must fit in 64 bits (-2^63 to 2^64-1, as torch.manual_seed), got ";
  checkMisuse("train models/mnist_mlp.nn --seed 18446744073709551616",
              range + "18446744073709551616");
  checkMisuse("gradcheck models/mnist_mlp.nn --seed 99999999999999999999999",
              range + "99999999999999999999999");
  checkMisuse("train models/mnist_mlp.nn --seed -9223372036854775809",
              range + "-9223372036854775809");
  checkMisuse("train models/mnist_mlp.nn --seed 1.5", "--seed must be an integer, got '1.5'");
  // The largest seed and a negative one (two's complement, as torch.manual_seed) are accepted.
  CHECK(runDescent("gradcheck models/binary_bce.nn --seed 18446744073709551615").code == 0);
  RunResult neg = runDescent("gradcheck models/binary_bce.nn --seed -1");
  CHECK(neg.code == 0);
  CHECK(neg.out == runDescent("gradcheck models/binary_bce.nn --seed 18446744073709551615").out);
}

TEST_CASE("a repeated option is named once", "[cli]") {
  checkMisuse("train models/mnist_mlp.nn --epochs 2 --epochs 3",
              "--epochs given twice; give it once");
  checkMisuse("train models/mnist_mlp.nn --lr 1 --lr 2 --lr 3", "--lr given 3 times; give it once");
}

TEST_CASE("ir --dot outside the graph and train stages is an error", "[cli]") {
  checkMisuse("ir models/mnist_mlp.nn --stage ast --dot",
              "--dot is available for the graph and train stages, not ast");
  checkMisuse("ir models/mnist_mlp.nn --stage kernels --dot",
              "--dot is available for the graph and train stages, not kernels");
  CHECK(runDescent("ir models/mnist_mlp.nn --stage graph --dot").out.rfind("digraph", 0) == 0);
}

TEST_CASE("cpu names are checked before LLVM sees them, in every command that takes --cpu",
          "[cli]") {
  const std::string use =
      "; use native, x86-64, x86-64-v2, x86-64-v3, x86-64-v4 or a CPU name such as "
      "haswell or znver3 (--cpu help lists them all)";
  for (const char* cmd : {"train models/mnist_mlp.nn", "eval models/mnist_mlp.nn --weights w",
                          "predict models/mnist_mlp.nn --weights w",
                          "ir models/mnist_mlp.nn --stage asm", "bench models/mnist_mlp.nn"}) {
    checkMisuse(fmt::format("{} --cpu x86-64-v5", cmd),
                "--cpu x86-64-v5 is not an x86-64 CPU LLVM knows (did you mean 'x86-64-v4'?)" +
                    use);
    checkMisuse(fmt::format("{} --cpu i386", cmd),
                "--cpu i386 is a 32-bit CPU (descent generates 64-bit code)" + use);
    checkMisuse(fmt::format("{} --cpu cortex-a72", cmd),
                "--cpu cortex-a72 is not an x86-64 CPU LLVM knows" + use);
    checkMisuse(fmt::format("{} --cpu not-a-cpu", cmd),
                "--cpu not-a-cpu is not an x86-64 CPU LLVM knows" + use);
  }
  // `native` is this machine, as for compilers: the same code as the default.
  RunResult native = runDescent("ir models/mnist_mlp.nn --stage llvm --cpu native");
  CHECK(native.code == 0);
  CHECK(native.out == runDescent("ir models/mnist_mlp.nn --stage llvm").out);
  // The list, as `llc -mcpu=help` gives it.
  RunResult help = runDescent("train --cpu help");
  CHECK(help.code == 0);
  CHECK(help.out.find("\n  x86-64-v3\n") != std::string::npos);
  CHECK(help.out.find("i386") == std::string::npos);
}

TEST_CASE("cpu: code this machine cannot run is refused before running, ir shows it", "[cli]") {
  // ir only compiles, so any x86-64 CPU is fine there.
  RunResult asmV4 = runDescent("ir models/mnist_mlp.nn --stage asm --cpu x86-64-v4");
  CHECK(asmV4.code == 0);
  CHECK(asmV4.out.find("zmm") != std::string::npos);
  // Running x86-64-v4 code (AVX-512) works where the machine has it, and is
  // refused (not SIGILL, 132) where it does not.
  ScratchDir tmp;
  writeBinaryCsv(tmp / "bin.csv", 64, 1);
  RunResult r = runDescent(fmt::format(
      "train models/binary_bce.nn --data {} --epochs 1 --cpu x86-64-v4", tmp / "bin.csv"));
  INFO(r.err);
  if (r.code == 2) {
    CHECK(r.err.rfind("error: --cpu x86-64-v4: code for it uses avx512", 0) == 0);
    CHECK(r.err.find("which this machine (") != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  } else {
    CHECK(r.code == 0);
  }
  // The baseline x86-64 (SSE2) runs anywhere.
  CHECK(runDescent(fmt::format("train models/binary_bce.nn --data {} --epochs 1 --cpu x86-64",
                               tmp / "bin.csv"))
            .code == 0);
}

TEST_CASE("one epoch is '1 epoch'", "[cli]") {
  ScratchDir tmp;
  writeBinaryCsv(tmp / "bin.csv", 64, 1);
  RunResult r =
      runDescent(fmt::format("train models/binary_bce.nn --data {} --epochs 1", tmp / "bin.csv"));
  REQUIRE(r.code == 0);
  CHECK(r.out.find(", batch 16, 1 epoch\n") != std::string::npos);
  r = runDescent(fmt::format("train models/binary_bce.nn --data {} --epochs 2", tmp / "bin.csv"));
  REQUIRE(r.code == 0);
  CHECK(r.out.find(", batch 16, 2 epochs\n") != std::string::npos);
}

TEST_CASE("a model file starting with a UTF-8 byte-order mark is accepted", "[cli]") {
  ScratchDir tmp;
  std::string model = readText(std::string(DESCENT_SOURCE_DIR) + "/models/binary_bce.nn");
  std::ofstream(tmp / "bom.nn", std::ios::binary) << "\xEF\xBB\xBF" << model;
  RunResult r = runDescent("check " + (tmp / "bom.nn"));
  INFO(r.err);
  CHECK(r.code == 0);
  // An error on line 1 still points at the right column.
  std::ofstream(tmp / "bad.nn", std::ios::binary) << "\xEF\xBB\xBF"
                                                  << "input  x: f32[0]\n";
  r = runDescent("check " + (tmp / "bad.nn"));
  CHECK(r.code == 1);
  CHECK(r.err.find(tmp / "bad.nn" + ":1:") != std::string::npos);
  CHECK(r.err.find("\n  input  x: f32[0]\n") != std::string::npos);
}
