// Reference interpreter: each op against an independent textbook computation
// in the test, plus the dropout generator's reproducibility and keep rate.
#include "compiler/interp/dropout_rng.h"
#include "compiler/interp/interpreter.h"
#include "compiler/ir/parser.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

using namespace descent;

namespace {

std::unique_ptr<Graph> parse(const std::string& text) {
  std::string err;
  auto g = parseGraph(text, err);
  INFO(err);
  REQUIRE(g);
  return g;
}

template <typename T>
std::map<std::string, std::vector<T>> run(const Graph& g, std::map<std::string, std::vector<T>> in,
                                          std::vector<std::vector<T>> params = {}) {
  InterpInputs<T> inputs{std::move(in)};
  InterpState<T> st{std::move(params), {}};
  initInterpState(g, st);
  return interpret(g, inputs, st);
}

} // namespace

TEST_CASE("matmul with every transpose combination", "[interp]") {
  // A is 2x3, B is 3x2 (row-major); C = A·B computed here by hand-written loops.
  std::vector<double> A{1, 2, 3, 4, 5, 6}, B{7, 8, 9, 10, 11, 12};
  std::vector<double> At{1, 4, 2, 5, 3, 6}, Bt{7, 9, 11, 8, 10, 12};
  std::vector<double> C(4, 0);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      for (int k = 0; k < 3; ++k) C[i * 2 + j] += A[i * 3 + k] * B[k * 2 + j];
  auto g = parse(R"(graph @t(%a: f32[2,3], %b: f32[3,2], %at: f32[3,2], %bt: f32[2,3]) {
  %0 = matmul %a, %b : f32[2,2]
  %1 = matmul %at, %b {transpose_a=true} : f32[2,2]
  %2 = matmul %a, %bt {transpose_b=true} : f32[2,2]
  %3 = matmul %at, %bt {transpose_a=true, transpose_b=true} : f32[2,2]
  return c0=%0, c1=%1, c2=%2, c3=%3
})");
  auto out = run<double>(*g, {{"a", A}, {"b", B}, {"at", At}, {"bt", Bt}});
  for (const char* n : {"c0", "c1", "c2", "c3"}) CHECK(out[n] == C);
}

TEST_CASE("normalize is ToTensor then Normalize in fp32", "[interp]") {
  auto g = parse(R"(graph @t(%x: u8[1,3]) {
  %0 = normalize %x {divisor=255.0, mean=0.5, std=0.5} : f32[1,3]
  return o=%0
})");
  auto out = run<float>(*g, {{"x", {0, 128, 255}}});
  for (int i = 0; i < 3; ++i) {
    float v = float(i == 0 ? 0 : i == 1 ? 128 : 255);
    float expected = (v / 255.0f - 0.5f) / 0.5f; // the two PyTorch steps, in float
    CHECK(out["o"][size_t(i)] == expected);
  }
}

TEST_CASE("activations, softmax and log_softmax", "[interp]") {
  auto g = parse(R"(graph @t(%x: f32[2,3]) {
  %0 = relu %x : f32[2,3]
  %1 = sigmoid %x : f32[2,3]
  %2 = tanh %x : f32[2,3]
  %3 = leaky_relu %x {negative_slope=0.2} : f32[2,3]
  %4 = softmax %x {dim=1} : f32[2,3]
  %5 = log_softmax %x {dim=1} : f32[2,3]
  return relu=%0, sig=%1, tanh=%2, leaky=%3, sm=%4, lsm=%5
})");
  std::vector<double> x{-1.5, 0.25, 2.0, 700.0, 701.0, 699.0}; // row 2 would overflow exp() unshifted
  auto out = run<double>(*g, {{"x", x}});
  for (size_t i = 0; i < 6; ++i) {
    CHECK(out["relu"][i] == (x[i] > 0 ? x[i] : 0.0));
    CHECK(out["sig"][i] == Approx(1 / (1 + std::exp(-x[i]))).epsilon(1e-15));
    CHECK(out["tanh"][i] == Approx(std::tanh(x[i])).epsilon(1e-15));
    CHECK(out["leaky"][i] == (x[i] > 0 ? x[i] : 0.2 * x[i]));
  }
  // Row 0 directly; row 1 shifted by 700 by hand (softmax is shift-invariant).
  for (int r = 0; r < 2; ++r) {
    double sum = 0;
    for (int j = 0; j < 3; ++j) sum += std::exp(x[size_t(r * 3 + j)] - 700.0 * r);
    for (int j = 0; j < 3; ++j) {
      size_t k = size_t(r * 3 + j);
      CHECK(out["sm"][k] == Approx(std::exp(x[k] - 700.0 * r) / sum).epsilon(1e-14));
      CHECK(out["lsm"][k] == Approx(x[k] - 700.0 * r - std::log(sum)).epsilon(1e-14));
    }
  }
}

TEST_CASE("losses with reduction mean and sum", "[interp]") {
  std::vector<double> p{0.2, 0.7, 0.9, 0.4}, t{0.0, 1.0, 0.5, 0.25};
  std::vector<double> lp{-0.1, -2.3, -1.2, -0.4}; // 2 rows x 2 classes of log-probabilities
  for (std::string red : {"mean", "sum"}) {
    auto g = parse(R"(graph @t(%p: f32[2,2], %t: f32[2,2], %lp: f32[2,2], %y: i32[2]) {
  %0 = mse_loss %p, %t {reduction=")" + red + R"("} : f32[]
  %1 = bce_loss %p, %t {reduction=")" + red + R"("} : f32[]
  %2 = bce_with_logits %p, %t {reduction=")" + red + R"("} : f32[]
  %3 = nll_loss %lp, %y {reduction=")" + red + R"("} : f32[]
  return mse=%0, bce=%1, bcel=%2, nll=%3
})");
    auto out = run<double>(*g, {{"p", p}, {"t", t}, {"lp", lp}, {"y", {1, 0}}});
    double mse = 0, bce = 0, bcel = 0;
    for (size_t i = 0; i < 4; ++i) {
      mse += (p[i] - t[i]) * (p[i] - t[i]);
      bce += -(t[i] * std::log(p[i]) + (1 - t[i]) * std::log(1 - p[i]));
      double s = 1 / (1 + std::exp(-p[i]));
      bcel += -(t[i] * std::log(s) + (1 - t[i]) * std::log(1 - s));
    }
    double nll = -(lp[1] + lp[2]);
    double elems = red == "mean" ? 4 : 1, rows = red == "mean" ? 2 : 1;
    CHECK(out["mse"][0] == Approx(mse / elems).epsilon(1e-14));
    CHECK(out["bce"][0] == Approx(bce / elems).epsilon(1e-14));
    CHECK(out["bcel"][0] == Approx(bcel / elems).epsilon(1e-14));
    CHECK(out["nll"][0] == Approx(nll / rows).epsilon(1e-14));
  }
}

TEST_CASE("BCE clamps each log at -100 like PyTorch", "[interp]") {
  auto g = parse(R"(graph @t(%p: f32[1,2], %t: f32[1,2]) {
  %0 = bce_loss %p, %t {reduction="sum"} : f32[]
  return l=%0
})");
  // p = 0 with t = 1 and p = 1 with t = 0: both logs are -inf, clamped to -100.
  auto out = run<float>(*g, {{"p", {0.0f, 1.0f}}, {"t", {1.0f, 0.0f}}});
  CHECK(out["l"][0] == 200.0f);
}

TEST_CASE("count_correct takes the first maximum", "[interp]") {
  auto g = parse(R"(graph @t(%s: f32[3,3], %y: i32[3]) {
  %0 = count_correct %s, %y : f32[]
  return c=%0
})");
  // Row 0: tie between 0 and 2 -> 0 (label 0: correct). Row 1: argmax 1, label 2. Row 2: argmax 2 = label.
  auto out = run<double>(*g, {{"s", {5, 1, 5, 0, 3, 2, 1, 1, 9}}, {"y", {0, 2, 2}}});
  CHECK(out["c"][0] == 2.0);
}

TEST_CASE("gradient ops follow PyTorch's backward formulas", "[interp]") {
  auto g = parse(R"(graph @t(%dy: f32[1,3], %y: f32[1,3], %lp: f32[1,3], %lab: i32[1]) {
  %0 = relu_grad %dy, %y : f32[1,3]
  %1 = sigmoid_grad %dy, %y : f32[1,3]
  %2 = tanh_grad %dy, %y : f32[1,3]
  %3 = leaky_relu_grad %dy, %y {negative_slope=0.1} : f32[1,3]
  %4 = softmax_grad %dy, %y {dim=1} : f32[1,3]
  %5 = log_softmax_grad %dy, %lp {dim=1} : f32[1,3]
  %6 = sum_rows %dy : f32[3]
  %7 = nll_loss_grad %lp, %lab {reduction="mean"} : f32[1,3]
  %8 = log_softmax_nll_grad %lp, %lab {reduction="sum"} : f32[1,3]
  %9 = bce_loss_grad %y, %dy {reduction="mean"} : f32[1,3]
  %10 = sigmoid_bce_grad %y, %dy {reduction="mean"} : f32[1,3]
  %11 = mse_loss_grad %y, %dy {reduction="sum"} : f32[1,3]
  %12 = bce_with_logits_grad %y, %dy {reduction="sum"} : f32[1,3]
  return relu=%0, sig=%1, tanh=%2, leaky=%3, sm=%4, lsm=%5, sr=%6, nll=%7, lsn=%8, bce=%9, sb=%10, mse=%11, bcel=%12
})");
  std::vector<double> dy{0.5, -1.0, 2.0}, y{0.3, -0.2, 0.6}, lp{-1.0, -0.5, -2.5};
  auto out = run<double>(*g, {{"dy", dy}, {"y", y}, {"lp", lp}, {"lab", {1}}});
  double sdy = 0.5 - 1.0 + 2.0, sdyy = 0.5 * 0.3 + 0.2 + 1.2;
  for (size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK(out["relu"][i] == (y[i] > 0 ? dy[i] : 0));
    CHECK(out["sig"][i] == Approx(dy[i] * y[i] * (1 - y[i])));
    CHECK(out["tanh"][i] == Approx(dy[i] * (1 - y[i] * y[i])));
    CHECK(out["leaky"][i] == Approx(y[i] > 0 ? dy[i] : 0.1 * dy[i]));
    CHECK(out["sm"][i] == Approx(y[i] * (dy[i] - sdyy)));
    CHECK(out["lsm"][i] == Approx(dy[i] - std::exp(lp[i]) * sdy));
    CHECK(out["sr"][i] == dy[i]);
    CHECK(out["nll"][i] == (i == 1 ? -1.0 : 0.0));
    CHECK(out["lsn"][i] == Approx(std::exp(lp[i]) - (i == 1 ? 1 : 0)));
    // PyTorch's denominator clamp max((1-p)*p, 1e-12) applies at i = 1 (p < 0).
    CHECK(out["bce"][i] == Approx((y[i] - dy[i]) / std::max((1 - y[i]) * y[i], 1e-12) / 3));
    CHECK(out["sb"][i] == Approx((y[i] - dy[i]) / 3));
    CHECK(out["mse"][i] == Approx(2 * (y[i] - dy[i])));
    CHECK(out["bcel"][i] == Approx(1 / (1 + std::exp(-y[i])) - dy[i]));
  }
}

TEST_CASE("dropout mask: reproducible, varies with seed and step, keeps about 1-p", "[interp][dropout]") {
  auto g = parse(R"(graph @t(%seed: i32[], %step: i32[]) {
  %0 = dropout_mask %seed, %step {cols=100, p=0.3, rows=200, salt=2} : f32[200,100]
  return m=%0
})");
  auto mask = [&](double seed, double step) { return run<float>(*g, {{"seed", {float(seed)}}, {"step", {float(step)}}})["m"]; };
  auto a = mask(7, 1), b = mask(7, 1), c = mask(7, 2), d = mask(8, 1);
  CHECK(a == b);
  CHECK(a != c);
  CHECK(a != d);
  size_t kept = 0;
  for (float v : a) {
    REQUIRE((v == 0.0f || v == 1.0f / 0.7f));
    kept += v != 0;
  }
  // 20000 Bernoulli(0.7) draws: standard deviation ~65, so +-400 is > 6 sigma.
  CHECK(std::abs(double(kept) - 14000.0) < 400);
  // The mask is the documented pure function of (seed, step, salt, index).
  for (size_t i = 0; i < a.size(); i += 997)
    CHECK((a[i] != 0) == dropoutKeep(7, 1, 2, i, 0.3));
  // p = 0 keeps everything; the threshold is exact on the 24-bit grid.
  CHECK(dropoutThreshold(0.0) == 0u);
  CHECK(dropoutThreshold(0.5) == (1u << 23));
}

TEST_CASE("interpreter rejects missing and mis-sized inputs", "[interp]") {
  auto g = parse(R"(graph @t(%x: f32[2,2]) {
  %0 = relu %x : f32[2,2]
  return o=%0
})");
  InterpState<float> st;
  CHECK_THROWS_AS(interpret<float>(*g, InterpInputs<float>{}, st), std::invalid_argument);
  CHECK_THROWS_AS(interpret<float>(*g, InterpInputs<float>{{{"x", {1, 2, 3}}}}, st), std::invalid_argument);
}
