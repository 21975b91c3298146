// Micro benchmark of the JIT train step (not built by CMake; see the build
// line below). Prints compile time, steps/s for 1 and 2 threads, and the
// per-kernel profile with GFLOP/s of the GEMMs. Reports, never asserts.
//
//   g++ -O2 -std=c++20 -I. bench/jit_step.cpp build-cg/libdescent_codegen.a \
//       build-cg/libdescent_core.a -L/usr/lib/llvm-19/lib -lLLVM-19 -lfmt -o /tmp/jit_step
//   /tmp/jit_step models/mnist_mlp.nn [cpu]
#include "compiler/codegen/program.h"
#include "compiler/frontend/frontend.h"
#include "compiler/passes/train_graph.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <random>
#include <sstream>

using namespace descent;

int main(int argc, char** argv) {
  std::string path = argc > 1 ? argv[1] : "models/mnist_mlp.nn";
  std::string cpu = argc > 2 ? argv[2] : "";
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  Diagnostics diags(path, ss.str());
  auto spec = analyzeSource(path, ss.str(), diags);
  if (!spec) {
    std::fprintf(stderr, "%s\n", diags.render().c_str());
    return 1;
  }
  BuildOptions opts;
  opts.batch = spec->batch;
  opts.input_u8 = true;
  auto train = buildTrainGraph(*spec, opts);
  int64_t B = spec->batch;
  std::mt19937 rng(1);
  std::vector<uint8_t> x(static_cast<size_t>(B * spec->input_size));
  std::vector<int32_t> y(static_cast<size_t>(B));
  for (auto& v : x) v = uint8_t(rng() % 256);
  for (auto& v : y) v = int32_t(rng() % 10);
  for (int threads : {1, 2}) {
    std::string err;
    std::clock_t c0 = std::clock();
    auto prog = Program::compile({train.get()}, JitOptions{cpu, threads}, err);
    double compile_cpu_ms = double(std::clock() - c0) * 1000.0 / CLOCKS_PER_SEC;
    if (!prog) {
      std::fprintf(stderr, "%s\n", err.c_str());
      return 1;
    }
    for (const auto& name : prog->paramNames()) {
      float* p = prog->param(name);
      for (int64_t i = 0; i < prog->paramSize(name); ++i) p[i] = float(int(rng() % 2001) - 1000) * 3e-5f;
    }
    for (int i = 0; i < 200; ++i) prog->run(0, x.data(), y.data(), B, i + 1, 0);
    int iters = 1000;
    // Best of several rounds: the machine is shared, so the minimum is the
    // closest to what the kernels cost; CPU time is shown next to wall time.
    double best = 1e9, best_cpu = 1e9;
    for (int round = 0; round < 7; ++round) {
      timespec c1, c2;
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
      auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < iters; ++i) prog->run(0, x.data(), y.data(), B, i + 1, 0);
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c2);
      best = std::min(best, s / iters);
      best_cpu = std::min(best_cpu, ((c2.tv_sec - c1.tv_sec) + (c2.tv_nsec - c1.tv_nsec) * 1e-9) / iters);
    }
    std::printf("threads %d: compile %.1f ms wall, %.1f ms cpu; best %.0f steps/s (%.1f us/step wall, %.1f us "
                "caller cpu), loss %.4f, width %d\n",
                threads, prog->compileMillis(), compile_cpu_ms, 1 / best, best * 1e6, best_cpu * 1e6,
                prog->outputScalar(0, "loss"), prog->vectorWidth());
    auto prof = prog->profile(0, x.data(), y.data(), B, 2000);
    double total = 0, gemm_us = 0, gemm_flops = 0;
    for (const auto& k : prof) {
      total += k.micros;
      if (k.flops > 0) {
        gemm_us += k.micros;
        gemm_flops += k.flops;
      }
      std::printf("  %-36s %8.2f us %s\n", k.name.c_str(), k.micros,
                  k.flops > 0 ? (std::to_string(k.flops / k.micros / 1e3) + " GFLOP/s").c_str() : "");
    }
    std::printf("  total %.2f us; GEMMs %.2f us at %.1f GFLOP/s\n", total, gemm_us, gemm_flops / gemm_us / 1e3);
  }
}
