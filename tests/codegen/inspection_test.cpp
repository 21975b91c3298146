// Inspection stages of the JIT: the kernel stage (FileCheck on the notebook
// model), optimized LLVM IR and assembly, compile-time reporting.
#include "helpers.h"
#include "runtime/compiled_model.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>

using namespace descent;
using namespace descent::cgtest;

namespace {

/// The notebook model's train step through the one pipeline (compileModel).
std::unique_ptr<Program> compileMnist(const std::string& cpu, std::unique_ptr<Graph>& keep) {
  ModelSpec spec = loadModel(sourceDir() + "/models/mnist_mlp.nn");
  CompileOptions opts;
  opts.batch = spec.batch;
  opts.input_u8 = true;
  opts.eval = false;
  opts.jit_options = JitOptions{cpu, 1};
  CompiledModel m = compileModel(spec, opts);
  keep = std::move(m.train);
  REQUIRE(m.program);
  return std::move(m.program);
}

} // namespace

TEST_CASE("kernel stage of the notebook model: update fused into dW, no first-layer dX", "[codegen][filecheck]") {
  std::unique_ptr<Graph> g;
  auto prog = compileMnist("", g);
  std::string text = prog->kernelsText();
  INFO(text);
  std::string report;
  int rc = fileCheck(text, sourceDir() + "/tests/codegen/mnist_kernels.check", report);
  INFO(report);
  REQUIRE(rc == 0);
}

TEST_CASE("llvm and asm stages show vector FMAs of the target's width", "[codegen][inspection]") {
  std::unique_ptr<Graph> g;
  auto avx2 = compileMnist("x86-64-v3", g);
  REQUIRE(avx2->vectorWidth() == 8);
  std::string ir = avx2->llvmIR();
  CHECK(ir.find("<8 x float>") != std::string::npos);
  CHECK(ir.find("@llvm.fmuladd.v8f32") != std::string::npos);
  CHECK(ir.find("@expf") == std::string::npos); // our own polynomial, no libm calls
  std::string as = avx2->assembly();
  CHECK(as.find("vfmadd") != std::string::npos);
  CHECK(as.find("zmm") == std::string::npos); // AVX2 target: no AVX-512 registers
  CHECK(avx2->compileMillis() > 0);
}
