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

TEST_CASE("LeNet-5's convolution kernels are named after their layer and hold one tap row of code",
          "[codegen][inspection][conv]") {
  ModelSpec spec = loadModel(sourceDir() + "/models/lenet5.nn");
  CompileOptions opts;
  opts.batch = spec.batch;
  opts.input_u8 = true;
  opts.eval = false;
  opts.jit_options = JitOptions{"x86-64-v3", 1}; // 8 floats per vector on any host
  CompiledModel m = compileModel(spec, opts);
  REQUIRE(m.program);
  std::string kernels = m.program->kernelsText();
  INFO(kernels);
  // The conv layers' dW and db kernels say conv2d (they said linear0, linear3).
  for (const char* name :
       {"_conv2d0_dW_sgd_line11", "_conv2d0_db_sgd_line11", "_conv2d3_dW_sgd_line12",
        "_conv2d3_db_sgd_line12", "_linear7_dW_sgd_line14"})
    CHECK(kernels.find(name) != std::string::npos);
  CHECK(kernels.find("linear0") == std::string::npos);
  CHECK(kernels.find("linear3") == std::string::npos);
  // The taps are a loop over the tap rows with the tap columns unrolled: a
  // kernel holds the vector FMAs of one tap row for every output channel
  // along a whole output row (kw x channels x row vectors), not kh times
  // that (the fully unrolled kernels had 600, 500 and 300).
  std::string ir = m.program->llvmIR();
  struct Conv {
    const char* kernel;
    int64_t bound; // kw x output channels x vectors per output row
  };
  for (const Conv& c : {Conv{"_conv2d_line11(", 5 * 6 * 4},  // 6 channels of 28 columns
                        Conv{"_conv2d_line12(", 5 * 16 * 2}, // 16 channels of 10 columns
                        Conv{"_conv2d_input_grad_line12(", 5 * 6 * 2}}) { // dx: 6 x 14
    size_t at = ir.find(c.kernel);
    REQUIRE(at != std::string::npos);
    size_t end = ir.find("\n}\n", at);
    REQUIRE(end != std::string::npos);
    std::string body = ir.substr(at, end - at);
    int64_t fmas = 0;
    for (size_t p = body.find("@llvm.fmuladd.v8f32("); p != std::string::npos;
         p = body.find("@llvm.fmuladd.v8f32(", p + 1))
      ++fmas;
    INFO(c.kernel << " has " << fmas << " vector FMAs");
    CHECK(fmas > 0);
    CHECK(fmas <= c.bound);
  }
}
