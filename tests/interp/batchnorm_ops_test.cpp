// BatchNorm's ops in the interpreter on hand-computed cases: the batch
// statistics (biased variance to normalize, unbiased for the running
// variance), the running update with a momentum and with momentum=None
// (a cumulative average), the eval statistics, and the IR text of buffers.
#include "compiler/interp/interpreter.h"
#include "compiler/ir/parser.h"
#include "compiler/ir/printer.h"
#include "tests/common/test_support.h"

#include <catch2/catch.hpp>

#include <cmath>

using namespace descent;
using descent::testsupport::parseIr;

TEST_CASE("batch_norm: batch statistics, the running update and eval statistics",
          "[interp][batchnorm]") {
  // x [2, 2]: channel 0 holds 1, 3 (mean 2, biased var 1, unbiased 2),
  // channel 1 holds 10, 30 (mean 20, biased var 100, unbiased 200).
  const char* text = R"IR(graph @t(%x: f32[2,2])
    state(%m: f32[2] "1.running_mean" {buffer="float"},
          %v: f32[2] "1.running_var" {init="constant(1)", buffer="float"},
          %n: f32[] "1.num_batches_tracked" {buffer="count"}) {
  %2 = batch_norm_eval_stats %m, %v {eps=0.5} : f32[3,2]
  %0 = batch_norm_stats %x {eps=0.0} : f32[3,2]
  %1 = batch_norm %x, %0 : f32[2,2]
  batch_norm_update_stats %m, %v, %n, %0 {momentum=0.5}
  return y=%1, s=%0, e=%2
})IR";
  auto g = parseIr(text);
  CHECK(printGraph(*g).find(R"X("1.running_var" {init="constant(1)", buffer="float"})X") !=
        std::string::npos);
  InterpInputs<double> in{{{"x", {1, 10, 3, 30}}}};
  InterpState<double> st;
  initInterpState(*g, st);
  REQUIRE(st.states == std::vector<std::vector<double>>{{0, 0}, {1, 1}, {0}}); // PyTorch's start
  auto out = interpret(*g, in, st);
  CHECK(out["y"] == std::vector<double>{-1, -1, 1, 1});
  CHECK(out["s"] == std::vector<double>{2, 20, 1, 0.1, 2, 200}); // mean; invstd; unbiased var
  // running = 0.5·batch + 0.5·running; num_batches_tracked + 1
  CHECK(st.states[0] == std::vector<double>{1, 10});
  CHECK(st.states[1] == std::vector<double>{1.5, 100.5});
  CHECK(st.states[2] == std::vector<double>{1});
  // The eval statistics: running mean, 1/sqrt(running var + eps), running var.
  CHECK(out["e"] == std::vector<double>{0, 0, 1 / std::sqrt(1.5), 1 / std::sqrt(1.5), 1, 1});

  // momentum=None: factor 1/num_batches_tracked (1/2 at the second batch).
  auto cma = parseIr(R"IR(graph @t(%x: f32[2,2])
    state(%m: f32[2] "1.running_mean" {buffer="float"},
          %v: f32[2] "1.running_var" {init="constant(1)", buffer="float"},
          %n: f32[] "1.num_batches_tracked" {buffer="count"}) {
  %0 = batch_norm_stats %x {eps=0.0} : f32[3,2]
  batch_norm_update_stats %m, %v, %n, %0
  %1 = batch_norm %x, %0 : f32[2,2]
  return y=%1
})IR");
  InterpState<double> cs;
  initInterpState(*cma, cs);
  interpret(*cma, in, cs); // factor 1: the batch's statistics
  CHECK(cs.states[0] == std::vector<double>{2, 20});
  CHECK(cs.states[1] == std::vector<double>{2, 200});
  InterpInputs<double> in2{{{"x", {5, 0, 7, 0}}}}; // mean 6, 0; unbiased var 2, 0
  interpret(*cma, in2, cs);
  CHECK(cs.states[0] == std::vector<double>{4, 10});
  CHECK(cs.states[1] == std::vector<double>{2, 100});
  CHECK(cs.states[2] == std::vector<double>{2});
}

TEST_CASE("batch_norm's shape rules and buffers", "[interp][batchnorm]") {
  std::string err;
  // A running-statistics update must write buffers, not optimizer state.
  auto g = parseGraph(R"IR(graph @t(%x: f32[2,2])
    state(%m: f32[2] "m", %v: f32[2] "v", %n: f32[] "n") {
  %0 = batch_norm_stats %x : f32[3,2]
  batch_norm_update_stats %m, %v, %n, %0 {momentum=0.1}
  %1 = batch_norm %x, %0 : f32[2,2]
  return y=%1
})IR",
                      err);
  CHECK_FALSE(g);
  CHECK(err.find("%m (running_mean) is not a buffer") != std::string::npos);
  // The statistics must have the input's channels.
  g = parseGraph(R"IR(graph @t(%x: f32[2,3], %s: f32[3,2]) {
  %1 = batch_norm %x, %s : f32[2,3]
  return y=%1
})IR",
                 err);
  CHECK_FALSE(g);
  CHECK(err.find("batch_norm statistics %s must be f32[3,3], got f32[3,2]") != std::string::npos);
}
