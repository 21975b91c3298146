// Pooling and convolution ops of the interpreter on hand-computed cases: the
// rules PyTorch's fixtures cannot pin down (max pooling's gradient on ties
// and NaN, window sizes at the borders with ceil_mode and padding).
#include "compiler/interp/interpreter.h"
#include "compiler/ir/parser.h"
#include "tests/common/test_support.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

using namespace descent;
using descent::testsupport::parseIr;

namespace {

std::map<std::string, std::vector<double>> run(const Graph& g,
                                               std::map<std::string, std::vector<double>> in,
                                               std::vector<std::vector<double>> params = {}) {
  InterpInputs<double> inputs{std::move(in)};
  InterpState<double> st{std::move(params), {}};
  initInterpState(g, st);
  return interpret(g, inputs, st);
}

} // namespace

TEST_CASE("max_pool2d's gradient goes to the first maximum of each window", "[interp][pool]") {
  auto g = parseIr(R"(graph @t(%x: f32[1,1,2,6], %dy: f32[1,1,1,3]) {
  %0 = max_pool2d %x {kernel_h=2, kernel_w=2, stride_h=2, stride_w=2} : f32[1,1,1,3]
  %1 = max_pool2d_grad %dy, %x {kernel_h=2, kernel_w=2, stride_h=2, stride_w=2} : f32[1,1,2,6]
  return y=%0, dx=%1
})");
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // Window 0: 3 twice (first in scan order: row 0); window 1: all zeros, as
  // after a ReLU (its first element); window 2: a NaN wins and propagates.
  auto out = run(*g, {{"x", {3, 1, 0, 0, 1, nan, 3, 2, 0, 0, 4, 9}}, {"dy", {5, 7, 11}}});
  CHECK(out["y"][0] == 3);
  CHECK(out["y"][1] == 0);
  CHECK(std::isnan(out["y"][2]));
  CHECK(out["dx"] == std::vector<double>{5, 0, 7, 0, 0, 11, 0, 0, 0, 0, 0, 0});
}

TEST_CASE("pooling windows at the borders: ceil_mode, padding, count_include_pad",
          "[interp][pool]") {
  // Width 5, kernel 2, stride 2, padding 1, ceil_mode: ceil(5/2) + 1 = 4
  // windows, but the 4th would start in the right padding and is dropped (3).
  auto g = parseIr(R"(graph @t(%x: f32[1,1,1,5]) {
  %0 = max_pool2d %x {ceil_mode=true, kernel_h=1, kernel_w=2, padding_w=1, stride_h=1, stride_w=2} : f32[1,1,1,3]
  %1 = avg_pool2d %x {ceil_mode=true, kernel_h=1, kernel_w=2, padding_w=1, stride_h=1, stride_w=2} : f32[1,1,1,3]
  %2 = avg_pool2d %x {ceil_mode=true, count_include_pad=false, kernel_h=1, kernel_w=2, padding_w=1, stride_h=1, stride_w=2} : f32[1,1,1,3]
  return m=%0, a=%1, e=%2
})");
  auto out = run(*g, {{"x", {1, 2, 3, 4, 5}}});
  CHECK(out["m"] == std::vector<double>{1, 3, 5});
  // Windows [-1, 0], [1, 2], [3, 4]: the first counts the padding element
  // (divisor 2) unless count_include_pad=false (divisor 1).
  CHECK(out["a"] == std::vector<double>{0.5, 2.5, 4.5});
  CHECK(out["e"] == std::vector<double>{1, 2.5, 4.5});

  // Width 4, kernel 3, stride 2, padding 1, ceil_mode: the last window
  // [3, 6) reaches past the padding; its divisor counts the input element and
  // the padding element only (2), as PyTorch's avg_pool2d: [1, 3, 2].
  auto g2 = parseIr(R"(graph @t(%x: f32[1,1,1,4]) {
  %0 = avg_pool2d %x {ceil_mode=true, kernel_h=1, kernel_w=3, padding_w=1, stride_h=1, stride_w=2} : f32[1,1,1,3]
  return a=%0
})");
  CHECK(run(*g2, {{"x", {1, 2, 3, 4}}})["a"] == std::vector<double>{1, 3, 2});
}

TEST_CASE("conv2d with groups, stride and asymmetric padding by hand", "[interp][conv]") {
  // Two groups of one channel; the second output channel reads only input
  // channel 1. Padding: one row on top, none at the bottom, one column on the right.
  auto g = parseIr(R"(graph @t(%x: f32[1,2,2,3]) params(%w: f32[2,1,2,2] "w", %b: f32[2] "b") {
  %0 = conv2d %x, %w, %b {groups=2, pad_right=1, pad_top=1, stride_w=2} : f32[1,2,2,2]
  return y=%0
})");
  std::vector<double> x = {1, 2, 3, 4, 5, 6, /* channel 1 */ 10, 20, 30, 40, 50, 60};
  std::vector<double> w = {1, 2, 3, 4, /* out 1 */ 1, 0, 0, -1};
  auto out = run(*g, {{"x", x}}, {w, {0.5, -0.5}});
  // Output row 0 reads padded row -1 (zeros) and row 0; row 1 reads rows 0, 1.
  // out0: (0,0): 3*1 + 4*2 = 11; (0,1): cols 2,3(pad): 3*3 = 9;
  //       (1,0): 1*1+2*2+3*4+4*5 = 37; (1,1): 1*3+3*6 = 21.
  // out1: (0,0): 0 - 20 = -20; (0,1): 0 - 0 = 0; (1,0): 10 - 50 = -40; (1,1): 30 - 0 = 30.
  CHECK(out["y"] == std::vector<double>{11.5, 9.5, 37.5, 21.5, -20.5, -0.5, -40.5, 29.5});
}
