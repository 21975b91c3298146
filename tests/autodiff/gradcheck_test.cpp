// Gradient checks (fp64 central differences vs the autodiff graph, run by the
// interpreter) of every differentiable op, every loss with both reductions,
// the fused loss gradients, and every model file.
#include "runtime/gradcheck.h"
#include "compiler/passes/train_graph.h"
#include "tests/common/test_support.h"

#include <random>

using namespace descent;
using namespace descent::testsupport;

namespace {

/// Random inputs and params for a hand-written graph: params and f32 inputs
/// uniform in ±[0.1, 1] (away from ReLU's kink), targets %t in [0.05, 0.95],
/// labels %y in [0, classes), %step = 1, %seed = 3.
GradcheckReport check(const std::string& text, bool simplify = true) {
  auto g = parseIr(text);
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> u(0.1, 1.0);
  auto signedValue = [&] { return (rng() & 1 ? 1.0 : -1.0) * u(rng); };
  InterpInputs<double> in;
  for (const Value* v : g->inputs()) {
    std::vector<double> d(size_t(v->type.numel()));
    if (v->name == "step") d = {1};
    else if (v->name == "seed") d = {3};
    else if (v->type.dtype == DType::I32)
      for (double& x : d) x = double(rng() % 3); // every class test graph has >= 3 columns
    else if (v->name == "t")
      for (double& x : d) x = 0.05 + 0.9 * (u(rng) - 0.1) / 0.9;
    else
      for (double& x : d) x = signedValue();
    in.values[v->name] = d;
  }
  std::vector<std::vector<double>> params;
  for (const Value* p : g->params()) {
    std::vector<double> d(size_t(p->type.numel()));
    for (double& x : d) x = signedValue();
    params.push_back(d);
  }
  GradcheckOptions opts;
  opts.simplify = simplify;
  GradcheckReport r = gradcheckGraph(*g, in, params, opts);
  INFO(text);
  INFO(r.text);
  CHECK(r.passed);
  CHECK(r.params.size() == g->params().size());
  return r;
}

/// A graph computing `body` from params %a, %b, then mse_loss(result, %t) {sum}.
std::string withMse(const std::string& params, const std::string& body, const std::string& type) {
  return "graph @t(%t: " + type + ") params(" + params + ") {\n" + body +
         "  %loss = mse_loss %r, %t {reduction=\"sum\"} : f32[]\n  return loss=%loss\n}\n";
}

} // namespace

TEST_CASE("gradcheck: matmul with every transpose combination", "[gradcheck]") {
  check(withMse("%a: f32[3,4] \"a\", %b: f32[4,5] \"b\"", "  %r = matmul %a, %b : f32[3,5]\n", "f32[3,5]"));
  check(withMse("%a: f32[4,3] \"a\", %b: f32[4,5] \"b\"",
                "  %r = matmul %a, %b {transpose_a=true} : f32[3,5]\n", "f32[3,5]"));
  check(withMse("%a: f32[3,4] \"a\", %b: f32[5,4] \"b\"",
                "  %r = matmul %a, %b {transpose_b=true} : f32[3,5]\n", "f32[3,5]"));
  check(withMse("%a: f32[4,3] \"a\", %b: f32[5,4] \"b\"",
                "  %r = matmul %a, %b {transpose_a=true, transpose_b=true} : f32[3,5]\n", "f32[3,5]"));
}

TEST_CASE("gradcheck: add_bias, add, mul and a value used twice", "[gradcheck]") {
  check(withMse("%a: f32[3,4] \"a\", %b: f32[4] \"b\"", "  %r = add_bias %a, %b : f32[3,4]\n", "f32[3,4]"));
  check(withMse("%a: f32[3,4] \"a\", %b: f32[3,4] \"b\"", "  %r = add %a, %b : f32[3,4]\n", "f32[3,4]"));
  check(withMse("%a: f32[3,4] \"a\", %b: f32[3,4] \"b\"", "  %r = mul %a, %b : f32[3,4]\n", "f32[3,4]"));
  // %a feeds three ops: its gradient is the sum of three contributions.
  check(withMse("%a: f32[3,4] \"a\", %b: f32[4,4] \"b\"",
                "  %0 = mul %a, %a : f32[3,4]\n  %1 = matmul %a, %b : f32[3,4]\n"
                "  %r = add %0, %1 : f32[3,4]\n",
                "f32[3,4]"));
}

TEST_CASE("gradcheck: activations", "[gradcheck]") {
  for (std::string act : {"relu %a", "sigmoid %a", "tanh %a", "leaky_relu %a {negative_slope=0.2}",
                          "softmax %a {dim=1}", "log_softmax %a {dim=1}"}) {
    SECTION(act) {
      // matmul first so the activation's input is not itself a leaf.
      check(withMse("%a0: f32[3,4] \"a0\", %b: f32[4,5] \"b\"",
                    "  %a = matmul %a0, %b : f32[3,5]\n  %r = " + act + " : f32[3,5]\n", "f32[3,5]"));
    }
  }
}

TEST_CASE("gradcheck: GELU, SiLU, ELU and Softplus on both sides of their switches", "[gradcheck]") {
  // Softplus with beta=2, threshold=1 switches at x = 0.5, inside the range of
  // the pre-activations; ELU's negative side and GELU's tails are reached too.
  for (std::string act : {"gelu %a {approximate=\"none\"}", "gelu %a {approximate=\"tanh\"}", "silu %a",
                          "elu %a {alpha=0.7}", "softplus %a {beta=2.0, threshold=1.0}",
                          "softplus %a {beta=1.0, threshold=20.0}"}) {
    SECTION(act) {
      check(withMse("%a0: f32[3,4] \"a0\", %b: f32[4,5] \"b\"",
                    "  %a = matmul %a0, %b : f32[3,5]\n  %r = " + act + " : f32[3,5]\n", "f32[3,5]"));
    }
  }
}

TEST_CASE("gradcheck: flatten and reshape_as (views) on N-D tensors", "[gradcheck][nd]") {
  // flatten's gradient is reshape_as back to its operand's shape; reshape_as's
  // is the same with its own operand (its second operand only gives a shape).
  check(withMse(
      "%a: f32[2,3,4] \"a\", %b: f32[2,3,4] \"b\", %c: f32[4,4] \"c\"",
      "  %0 = mul %a, %b : f32[2,3,4]\n  %1 = tanh %0 : f32[2,3,4]\n"
      "  %2 = flatten %1 {end_dim=1, start_dim=0} : f32[6,4]\n"
      "  %3 = matmul %2, %c : f32[6,4]\n  %4 = reshape_as %3, %1 : f32[2,3,4]\n"
      "  %5 = mul %4, %a : f32[2,3,4]\n  %r = flatten %5 {end_dim=-1, start_dim=1} : f32[2,12]\n",
      "f32[2,12]"));
}

TEST_CASE("gradcheck: dropout (x * mask) with a fixed mask", "[gradcheck]") {
  check(R"(graph @t(%t: f32[4,6], %seed: i32[], %step: i32[]) params(%a: f32[4,6] "a") {
  %m = dropout_mask %seed, %step {cols=6, p=0.5, rows=4, salt=1} : f32[4,6]
  %r = mul %a, %m : f32[4,6]
  %loss = mse_loss %r, %t {reduction="mean"} : f32[]
  return loss=%loss
})");
}

TEST_CASE("gradcheck: every loss with reduction mean and sum", "[gradcheck]") {
  for (std::string red : {"mean", "sum"}) {
    std::string r = "{reduction=\"" + red + "\"}";
    SECTION("nll_loss " + red) {
      check("graph @t(%y: i32[4]) params(%a: f32[4,3] \"a\") {\n  %0 = log_softmax %a {dim=1} : f32[4,3]\n"
            "  %loss = nll_loss %0, %y " + r + " : f32[]\n  return loss=%loss\n}",
            false);
      // nll_loss directly on a param (no log_softmax): its gradient alone.
      check("graph @t(%y: i32[4]) params(%a: f32[4,3] \"a\") {\n"
            "  %loss = nll_loss %a, %y " + r + " : f32[]\n  return loss=%loss\n}");
    }
    SECTION("log_softmax + nll_loss fused " + red) {
      auto text = "graph @t(%y: i32[4]) params(%a: f32[4,3] \"a\") {\n  %0 = log_softmax %a {dim=1} : f32[4,3]\n"
                  "  %loss = nll_loss %0, %y " + r + " : f32[]\n  return loss=%loss\n}";
      check(text, true);
      auto g = buildGradGraphFrom(*parseIr(text), true);
      bool fused = false;
      for (const auto& op : g->ops()) fused |= op->kind == OpKind::LogSoftmaxNllGrad;
      CHECK(fused);
    }
    SECTION("mse_loss " + red) {
      check("graph @t(%t: f32[4,3]) params(%a: f32[4,3] \"a\") {\n"
            "  %loss = mse_loss %a, %t " + r + " : f32[]\n  return loss=%loss\n}");
    }
    SECTION("bce_loss " + red) {
      // Through sigmoid (keeps predictions in (0,1)): unfused and fused.
      std::string text = "graph @t(%t: f32[4,3]) params(%a: f32[4,3] \"a\") {\n  %0 = sigmoid %a : f32[4,3]\n"
                         "  %loss = bce_loss %0, %t " + r + " : f32[]\n  return loss=%loss\n}";
      check(text, false);
      check(text, true);
      auto g = buildGradGraphFrom(*parseIr(text), true);
      bool fused = false;
      for (const auto& op : g->ops()) fused |= op->kind == OpKind::SigmoidBceGrad;
      CHECK(fused);
    }
    SECTION("bce_with_logits " + red) {
      check("graph @t(%t: f32[4,3]) params(%a: f32[4,3] \"a\") {\n"
            "  %loss = bce_with_logits %a, %t " + r + " : f32[]\n  return loss=%loss\n}");
    }
    // The random points of check() put residuals on both sides of beta and
    // delta (0.3): both branches of each formula are differentiated.
    for (std::string loss : {"l1_loss", "smooth_l1_loss", "huber_loss"}) {
      SECTION(loss + " " + red) {
        std::string attrs = loss == "smooth_l1_loss" ? "{beta=0.3, reduction=\"" + red + "\"}"
                            : loss == "huber_loss"   ? "{delta=0.3, reduction=\"" + red + "\"}"
                                                     : r;
        check("graph @t(%t: f32[4,3]) params(%a: f32[4,3] \"a\") {\n  %loss = " + loss + " %a, %t " +
              attrs + " : f32[]\n  return loss=%loss\n}");
      }
    }
  }
}

TEST_CASE("gradcheck: nll_loss with weight, ignore_index and label_smoothing", "[gradcheck]") {
  // Each label in {0, 1, 2} is ignored once (the random labels hold at least
  // one of them); with and without smoothing, through log_softmax unfused and
  // fused, and on the log-probabilities directly.
  for (std::string red : {"mean", "sum"})
    for (int ignore : {0, 1, 2})
      for (std::string smoothing : {"", ", label_smoothing=0.2"}) {
        std::string attrs = "{ignore_index=" + std::to_string(ignore) + smoothing +
                            ", reduction=\"" + red + "\", weight=[0.5, 2.0, 1.5]}";
        SECTION(attrs) {
          std::string text =
              "graph @t(%y: i32[4]) params(%a: f32[4,3] \"a\") {\n"
              "  %0 = log_softmax %a {dim=1} : f32[4,3]\n  %loss = nll_loss %0, %y " +
              attrs + " : f32[]\n  return loss=%loss\n}";
          check(text, false);
          check(text, true);
          check("graph @t(%y: i32[4]) params(%a: f32[4,3] \"a\") {\n  %loss = nll_loss %a, %y " +
                attrs + " : f32[]\n  return loss=%loss\n}");
        }
      }
}

TEST_CASE("gradcheck: bce_with_logits with pos_weight", "[gradcheck]") {
  for (std::string red : {"mean", "sum"})
    for (std::string pw : {"[0.5, 2.0, 4.0]", "[3.0]"}) {
      std::string attrs = "{pos_weight=" + pw + ", reduction=\"" + red + "\"}";
      SECTION(attrs) {
        check("graph @t(%t: f32[4,3]) params(%a: f32[4,3] \"a\") {\n"
              "  %loss = bce_with_logits %a, %t " +
              attrs + " : f32[]\n  return loss=%loss\n}");
      }
    }
}

TEST_CASE("gradcheck: kl_div with every reduction and log_target", "[gradcheck]") {
  for (std::string red : {"mean", "sum", "batchmean"})
    for (std::string lt : {"false", "true"}) {
      std::string attrs = "{log_target=" + lt + ", reduction=\"" + red + "\"}";
      SECTION(attrs) {
        check("graph @t(%t: f32[4,3]) params(%a: f32[4,3] \"a\") {\n"
              "  %0 = log_softmax %a {dim=1} : f32[4,3]\n  %loss = kl_div %0, %t " +
              attrs + " : f32[]\n  return loss=%loss\n}");
      }
    }
}

TEST_CASE("gradcheck: every model file", "[gradcheck][models]") {
  for (const std::string& path : allModelFiles()) {
    SECTION(path) {
      ModelSpec spec = loadModel(path);
      for (uint64_t seed : {1, 2}) {
        GradcheckOptions opts;
        opts.seed = seed;
        GradcheckReport r = gradcheck(spec, opts);
        INFO(r.text);
        CHECK(r.passed);
        // A weight per Linear and Conv2d, and its bias when it has one.
        auto hasWeight = [](const Layer& l) {
          return l.kind == LayerKind::Linear || l.kind == LayerKind::Conv2d;
        };
        // BatchNorm's weight and bias when affine.
        auto affineBn = [](const Layer& l) {
          return (l.kind == LayerKind::BatchNorm1d || l.kind == LayerKind::BatchNorm2d) && l.affine;
        };
        CHECK(r.params.size() ==
              size_t(std::count_if(spec.layers.begin(), spec.layers.end(), hasWeight) +
                     std::count_if(spec.layers.begin(), spec.layers.end(),
                                   [&](const Layer& l) { return hasWeight(l) && l.bias; }) +
                     2 * std::count_if(spec.layers.begin(), spec.layers.end(), affineBn)));
        CHECK(r.text.find("max relative error: ") != std::string::npos);
      }
    }
  }
}

TEST_CASE("gradcheck report format and tolerance", "[gradcheck]") {
  auto g = parseIr(R"(graph @t(%t: f32[2,2]) params(%a: f32[2,2] "a") {
  %loss = mse_loss %a, %t {reduction="sum"} : f32[]
  return loss=%loss
})");
  InterpInputs<double> in{{{"t", {0.1, 0.2, 0.3, 0.4}}}};
  GradcheckOptions opts;
  auto good = gradcheckGraph(*g, in, {{1, 2, 3, 4}}, opts);
  CHECK(good.passed);
  REQUIRE(good.params.size() == 1);
  CHECK(good.params[0].name == "a");
  CHECK(good.text.rfind("a ", 0) == 0);
  CHECK(good.text.find("\nmax relative error: ") != std::string::npos);
  // A quadratic has no truncation error: even a huge step is exact.
  opts.step = 10;
  CHECK(gradcheckGraph(*g, in, {{1, 2, 3, 4}}, opts).passed);
  opts.tolerance = -1; // nothing passes a negative tolerance
  CHECK_FALSE(gradcheckGraph(*g, in, {{1, 2, 3, 4}}, opts).passed);
}

TEST_CASE("gradcheck retries a direction that crosses a ReLU kink with a smaller step",
          "[gradcheck]") {
  // loss = |relu(a) - (-1)| = relu(a) + 1 at a = 3e-6: the central
  // difference with h = 1e-5 crosses 0 ((1.3e-5 - 0) / 2e-5 = 0.65 against
  // the gradient 1); h = 1e-6 does not.
  auto g = parseIr(R"(graph @k(%t: f32[1,1]) params(%a: f32[1,1] "a") {
  %r = relu %a : f32[1,1]
  %loss = l1_loss %r, %t {reduction="sum"} : f32[]
  return loss=%loss
})");
  InterpInputs<double> in{{{"t", {-1.0}}}};
  GradcheckOptions opts;
  opts.directions = 1;
  GradcheckReport r = gradcheckGraph(*g, in, {{3e-6}}, opts);
  INFO(r.text);
  CHECK(r.passed);
  REQUIRE(r.params.size() == 1);
  CHECK(r.params[0].kink_step == 1e-5);
  CHECK(r.params[0].step == Approx(1e-6));
  CHECK(r.text.find("(a kink within 1e-05 of the point: step 1e-06)") != std::string::npos);
  // A discrepancy that does not shrink with the step is not excused: at
  // a = 0 exactly every central difference is 0.5 against relu's gradient 0
  // (PyTorch's choice at the kink), as a wrong gradient would be.
  GradcheckReport on = gradcheckGraph(*g, in, {{0.0}}, opts);
  CHECK_FALSE(on.passed);
  CHECK(on.max_rel_error == Approx(1.0));
  // Away from the kink nothing is retried.
  GradcheckReport far = gradcheckGraph(*g, in, {{0.5}}, opts);
  CHECK(far.passed);
  CHECK(far.params[0].kink_step == 0);
  CHECK(far.text.find("kink") == std::string::npos);
}
