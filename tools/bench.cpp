// `descent bench`: the compiled train step's steady-state speed against the FMA
// peak of this machine measured on the spot: steps/s, samples/s, GFLOP/s, % of
// peak, projected epoch time, compile time, and a per-kernel breakdown.
// It reports figures; it never judges them.
#include "compiler/codegen/peak.h"
#include "compiler/frontend/frontend.h"
#include "compiler/frontend/summary.h"
#include "compiler/ir/param_init.h"
#include "runtime/atomic_file.h"
#include "runtime/compiled_model.h"
#include "tools/commands.h"

#include <algorithm>
#include <chrono>
#include <fmt/format.h>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

namespace descent {

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

} // namespace

int runBench(const CommonArgs& a) {
  ModelSpec spec = loadModel(a.model);
  if (a.batch) spec.batch = a.batch;
  const int64_t B = spec.batch;
  const bool u8 = spec.fitsDefaultData();
  const int threads =
      a.threads ? a.threads : int(std::max(1u, std::thread::hardware_concurrency()));

  CompileOptions co;
  co.batch = B;
  co.input_u8 = u8;
  co.eval = false; // the train step alone is timed
  co.jit_options.cpu = a.cpu;
  co.jit_options.threads = threads;

  // Compile a few times: the first pays for LLVM's one-time set-up.
  std::vector<double> compile_ms;
  CompiledModel model;
  for (int i = 0; i < 5; ++i) {
    model = compileModel(spec, co);
    compile_ms.push_back(model.program->compileMillis());
  }
  Program* prog = model.program.get();
  const Graph* train = model.train.get();

  // A random batch; the weights get PyTorch-like magnitudes so nothing saturates.
  std::mt19937 rng(1);
  std::vector<uint8_t> xu(size_t(B * spec.input_size));
  std::vector<float> xf(size_t(B * spec.input_size));
  for (auto& v : xu)
    v = uint8_t(rng() & 255);
  for (auto& v : xf)
    v = float(rng() % 1000) / 1000.0f;
  std::vector<int32_t> yl(static_cast<size_t>(B));
  std::vector<float> yr(size_t(B * spec.target_size));
  for (auto& v : yl)
    v = int32_t(rng() % uint32_t(std::max<int64_t>(1, spec.target_size)));
  for (auto& v : yr)
    v = float(rng() % 1000) / 1000.0f;
  const void* x = u8 ? (const void*)xu.data() : (const void*)xf.data();
  const void* y =
      spec.target_kind == TargetKind::Class ? (const void*)yl.data() : (const void*)yr.data();
  ParamInit init(1);
  std::vector<int64_t> fan_ins = paramFanIns(*train);
  for (size_t k = 0; k < train->params().size(); ++k)
    init.fill(prog->param(train->params()[k]->external_name), train->params()[k]->type.numel(), fan_ins[k]);

  // Steady state: warm up, then time batches of steps; report the median.
  int64_t steps = a.steps ? a.steps : 2000;
  int32_t step = 1;
  for (int i = 0; i < 200; ++i)
    prog->run(CompiledModel::kTrain, x, y, B, step++, 1);
  // The peak is measured before and after the timed steps and the larger
  // reading used: on a shared host a core's FMA throughput moves by up to
  // 2x within a minute (other tenants, clock boost), and a percentage of a
  // reading taken in a slow moment would overstate the kernels.
  const FmaPeak peak_before = measureFmaPeak(threads);
  std::vector<double> per_step;
  const int64_t chunk = std::max<int64_t>(1, steps / 10);
  for (int64_t done = 0; done < steps; done += chunk) {
    auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < chunk; ++i)
      prog->run(CompiledModel::kTrain, x, y, B, step++, 1);
    per_step.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
        double(chunk));
  }
  const double t_step = median(per_step);
  FlopCounts fc = countFlops(spec);
  const double flops_step = double(fc.train_step) * double(B);
  const FmaPeak peak_after = measureFmaPeak(threads);
  FmaPeak peak = peak_after;
  peak.gflops_1 = std::max(peak_before.gflops_1, peak_after.gflops_1);
  peak.gflops_all = std::max(peak_before.gflops_all, peak_after.gflops_all);
  const double peak_used = threads == 1 ? peak.gflops_1 : peak.gflops_all;
  const double gflops = flops_step / t_step / 1e9;

  if (!a.json) {
    fmt::print("descent bench {}: batch {}, {} thread(s), {} floats per vector\n", a.model, B,
               threads, prog->vectorWidth());
    fmt::print("FMA peak (measured now):  {:.1f} GFLOP/s on 1 thread, {:.1f} GFLOP/s on {} (the "
               "larger of {:.1f} and {:.1f} before and after the timing)\n",
               peak.gflops_1, peak.gflops_all, threads,
               threads == 1 ? peak_before.gflops_1 : peak_before.gflops_all,
               threads == 1 ? peak_after.gflops_1 : peak_after.gflops_all);
    fmt::print("JIT compile:              {:.1f} ms (median of 5; first {:.1f} ms)\n",
               median(compile_ms), compile_ms.front());
    fmt::print("train step:               {:.1f} us  ({:.0f} steps/s, {:.0f} samples/s)\n",
               t_step * 1e6, 1 / t_step, double(B) / t_step);
    fmt::print("throughput:               {:.1f} GFLOP/s = {:.1f}% of the {}-thread peak ({:.2f} "
               "MFLOP/step)\n",
               gflops, 100 * gflops / peak_used, threads, flops_step / 1e6);
    fmt::print("projected epoch (60000):  {:.3f} s\n", 60000.0 / double(B) * t_step);
  }

  std::vector<double> enter_us;
  auto timings = prog->profile(CompiledModel::kTrain, x, y, B,
                               int(std::max<int64_t>(50, steps / 4)), &enter_us);
  double total = 0, gemm_us = 0, gemm_flops = 0;
  for (const auto& k : timings) {
    total += k.micros;
    if (k.flops > 0) gemm_us += k.micros, gemm_flops += k.flops;
  }
  if (a.json) {
    nlohmann::json j;
    j["model"] = a.model;
    j["batch"] = B;
    j["threads"] = threads;
    j["vector_width"] = prog->vectorWidth();
    j["peak_gflops_1"] = peak.gflops_1;
    j["peak_gflops"] = peak_used;
    j["compile_ms"] = median(compile_ms);
    j["step_us"] = t_step * 1e6;
    j["gflops"] = gflops;
    j["percent_of_peak"] = 100 * gflops / peak_used;
    j["epoch_seconds_60000"] = 60000.0 / double(B) * t_step;
    j["matmul_gflops"] = gemm_us > 0 ? gemm_flops / (gemm_us * 1e3) : 0.0;
    for (const auto& k : timings)
      j["kernels"].push_back({{"name", k.name},
                              {"us", k.micros},
                              {"flops", k.flops},
                              {"thread_run_us", k.thread_run_us},
                              {"thread_wait_us", k.thread_wait_us}});
    j["thread_enter_us"] = enter_us;
    fmt::print("{}\n", j.dump());
    return 0;
  }
  fmt::print("\n{:<40} {:>9} {:>9} {:>7} {:>7}\n", "kernel", "us", "GFLOP/s", "%peak", "share");
  for (const auto& k : timings) {
    double g = k.flops > 0 ? k.flops / (k.micros * 1e3) : 0;
    fmt::print("{:<40} {:>9.2f} {:>9} {:>7} {:>6.1f}%\n", k.name, k.micros,
               k.flops > 0 ? fmt::format("{:.1f}", g) : "-",
               k.flops > 0 ? fmt::format("{:.1f}%", 100 * g / peak_used) : "-",
               100 * k.micros / total);
  }
  if (gemm_us > 0)
    fmt::print("{:<40} {:>9.2f} {:>9.1f} {:>6.1f}% {:>6.1f}%\n", "all matmul kernels", gemm_us,
               gemm_flops / (gemm_us * 1e3), 100 * gemm_flops / (gemm_us * 1e3) / peak_used,
               100 * gemm_us / total);
  if (threads > 1) {
    // Where each thread's time goes: inside a kernel's pieces ("run") and
    // waiting at it ("wait": the caller for the others' pieces, a worker for
    // the kernels before a split one), plus each thread's late start.
    fmt::print("\nper thread (us per step; thread 0 = the caller)\n{:<40}", "kernel");
    for (int t = 0; t < threads; ++t)
      fmt::print(" {:>8} {:>8}", fmt::format("run{}", t), fmt::format("wait{}", t));
    fmt::print("\n");
    std::vector<double> run(size_t(threads), 0.0), wait(size_t(threads), 0.0);
    for (const auto& k : timings) {
      fmt::print("{:<40}", k.name);
      for (size_t t = 0; t < size_t(threads); ++t) {
        fmt::print(" {:>8.2f} {:>8.2f}", k.thread_run_us[t], k.thread_wait_us[t]);
        run[t] += k.thread_run_us[t], wait[t] += k.thread_wait_us[t];
      }
      fmt::print("\n");
    }
    fmt::print("{:<40}", "total");
    for (size_t t = 0; t < size_t(threads); ++t)
      fmt::print(" {:>8.2f} {:>8.2f}", run[t], wait[t]);
    fmt::print("\n{:<40}", "entered the step after");
    for (size_t t = 0; t < size_t(threads); ++t)
      fmt::print(" {:>8.2f} {:>8}", enter_us[t], "");
    fmt::print("\n");
  }
  return 0;
}

} // namespace descent
