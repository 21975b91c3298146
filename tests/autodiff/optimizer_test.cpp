// Optimizer updates over 20 steps on tiny tensors, against expectations
// computed here from torch.optim's documented algorithms (written in the
// textbook form, e.g. Adam with m̂ = m/(1-β1^t) and v̂ = v/(1-β2^t), not the
// interpreter's PyTorch-ordered form), in fp64.
#include "compiler/autodiff/differentiate.h"
#include "compiler/autodiff/optimizer.h"
#include "compiler/interp/interpreter.h"
#include "compiler/ir/verifier.h"
#include "tests/common/test_support.h"

#include <cmath>

using namespace descent;
using namespace descent::testsupport;

namespace {

// loss = sum((w - t)^2): the gradient is 2(w - t), computed here independently.
const char* kGraph = R"(graph @t(%t: f32[2,3], %step: i32[] step) params(%w: f32[2,3] "0.weight") {
  %loss = mse_loss %w, %t {reduction="sum"} : f32[]
  return loss=%loss
})";

const std::vector<double> kT{0.5, -0.25, 1.0, 0.0, 2.0, -1.5};
const std::vector<double> kW0{0.1, 0.2, -0.3, 0.4, -0.5, 0.6};

/// Runs 20 train steps in the interpreter; returns the weights after each.
std::vector<std::vector<double>> interpSteps(const OptimizerSpec& opt, std::vector<std::string>* states) {
  auto g = parseIr(kGraph);
  auto grads = differentiate(*g);
  addOptimizerUpdates(*g, opt, grads);
  REQUIRE(verifyGraph(*g) == "");
  if (states)
    for (const Value* s : g->states()) states->push_back(s->external_name);
  InterpState<double> st{{kW0}, {}};
  initInterpState(*g, st);
  std::vector<std::vector<double>> out;
  for (int step = 1; step <= 20; ++step) {
    InterpInputs<double> in{{{"t", kT}, {"step", {double(step)}}}};
    interpret(*g, in, st);
    out.push_back(st.params[0]);
  }
  return out;
}

std::vector<std::vector<double>> referenceSgd(const OptimizerSpec& o) {
  std::vector<double> w = kW0, buf(6, 0);
  std::vector<std::vector<double>> out;
  for (int t = 1; t <= 20; ++t) {
    for (size_t i = 0; i < 6; ++i) {
      double g = (o.maximize ? -1 : 1) * 2 * (w[i] - kT[i]) + o.weight_decay * w[i];
      if (o.momentum != 0) {
        buf[i] = t == 1 ? g : o.momentum * buf[i] + (1 - o.dampening) * g;
        g = o.nesterov ? g + o.momentum * buf[i] : buf[i];
      }
      w[i] -= o.lr * g;
    }
    out.push_back(w);
  }
  return out;
}

std::vector<std::vector<double>> referenceAdam(const OptimizerSpec& o) {
  std::vector<double> w = kW0, m(6, 0), v(6, 0), vmax(6, 0);
  std::vector<std::vector<double>> out;
  for (int t = 1; t <= 20; ++t) {
    for (size_t i = 0; i < 6; ++i) {
      // Adam: L2 penalty in the gradient; AdamW: w decays by lr*weight_decay first.
      bool decoupled = o.kind == OptimizerKind::AdamW;
      double g = (o.maximize ? -1 : 1) * 2 * (w[i] - kT[i]) + (decoupled ? 0 : o.weight_decay * w[i]);
      if (decoupled) w[i] -= o.lr * o.weight_decay * w[i];
      m[i] = o.beta1 * m[i] + (1 - o.beta1) * g;
      v[i] = o.beta2 * v[i] + (1 - o.beta2) * g * g;
      double mhat = m[i] / (1 - std::pow(o.beta1, t));
      vmax[i] = std::max(vmax[i], v[i]); // AMSGrad: the largest second moment so far
      double vhat = (o.amsgrad ? vmax[i] : v[i]) / (1 - std::pow(o.beta2, t));
      w[i] -= o.lr * mhat / (std::sqrt(vhat) + o.eps);
    }
    out.push_back(w);
  }
  return out;
}

/// torch.optim.RMSprop's documented algorithm: v = αv + (1-α)g², centered:
/// g_ave = αg_ave + (1-α)g and ṽ = v - g_ave²; b = μb + g/(√ṽ + ε), w -= lr·b
/// (μ = 0: w -= lr·g/(√ṽ + ε)).
std::vector<std::vector<double>> referenceRmsprop(const OptimizerSpec& o) {
  std::vector<double> w = kW0, v(6, 0), gave(6, 0), b(6, 0);
  std::vector<std::vector<double>> out;
  for (int t = 1; t <= 20; ++t) {
    for (size_t i = 0; i < 6; ++i) {
      double g = (o.maximize ? -1 : 1) * 2 * (w[i] - kT[i]) + o.weight_decay * w[i];
      v[i] = o.alpha * v[i] + (1 - o.alpha) * g * g;
      double vt = v[i];
      if (o.centered) {
        gave[i] = o.alpha * gave[i] + (1 - o.alpha) * g;
        vt -= gave[i] * gave[i];
      }
      double step = g / (std::sqrt(vt) + o.eps);
      if (o.momentum > 0) step = b[i] = o.momentum * b[i] + step;
      w[i] -= o.lr * step;
    }
    out.push_back(w);
  }
  return out;
}

void compare(const std::vector<std::vector<double>>& got, const std::vector<std::vector<double>>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t s = 0; s < got.size(); ++s)
    for (size_t i = 0; i < 6; ++i) {
      INFO("step " << s + 1 << " element " << i);
      CHECK(got[s][i] == Approx(want[s][i]).epsilon(1e-12).margin(1e-14));
    }
}

} // namespace

TEST_CASE("SGD over 20 steps: plain, momentum, dampening, nesterov, weight decay", "[optimizer]") {
  struct Case {
    const char* name;
    double lr, momentum, dampening, wd;
    bool nesterov;
  };
  for (Case c : {Case{"plain", 0.05, 0, 0, 0, false}, Case{"momentum", 0.05, 0.9, 0, 0, false},
                 Case{"momentum+dampening", 0.05, 0.9, 0.3, 0, false},
                 Case{"nesterov", 0.03, 0.8, 0, 0, true}, Case{"weight decay", 0.05, 0, 0, 0.1, false},
                 Case{"nesterov+weight decay", 0.03, 0.9, 0, 0.01, true}}) {
    SECTION(c.name) {
      OptimizerSpec o;
      o.kind = OptimizerKind::SGD;
      o.lr = c.lr;
      o.momentum = c.momentum;
      o.dampening = c.dampening;
      o.weight_decay = c.wd;
      o.nesterov = c.nesterov;
      std::vector<std::string> states;
      compare(interpSteps(o, &states), referenceSgd(o));
      if (c.momentum != 0) CHECK(states == std::vector<std::string>{"0.weight.momentum_buffer"});
      else CHECK(states.empty());
    }
  }
}

TEST_CASE("SGD momentum: the first step uses the gradient itself, not (1-dampening)*g", "[optimizer]") {
  OptimizerSpec o;
  o.lr = 0.1;
  o.momentum = 0.9;
  o.dampening = 0.5;
  auto got = interpSteps(o, nullptr);
  for (size_t i = 0; i < 6; ++i) CHECK(got[0][i] == Approx(kW0[i] - 0.1 * 2 * (kW0[i] - kT[i])).epsilon(1e-14));
}

TEST_CASE("Adam over 20 steps: defaults, betas, eps, weight decay (bias correction)", "[optimizer]") {
  struct Case {
    const char* name;
    double lr, b1, b2, eps, wd;
  };
  for (Case c : {Case{"defaults", 0.001, 0.9, 0.999, 1e-8, 0}, Case{"lr 0.05", 0.05, 0.9, 0.999, 1e-8, 0},
                 Case{"betas, eps, wd", 0.01, 0.8, 0.99, 1e-6, 0.01}}) {
    SECTION(c.name) {
      OptimizerSpec o;
      o.kind = OptimizerKind::Adam;
      o.lr = c.lr;
      o.beta1 = c.b1;
      o.beta2 = c.b2;
      o.eps = c.eps;
      o.weight_decay = c.wd;
      std::vector<std::string> states;
      auto got = interpSteps(o, &states);
      compare(got, referenceAdam(o));
      CHECK(states == std::vector<std::string>{"0.weight.exp_avg", "0.weight.exp_avg_sq"});
      // Bias correction makes the first step exactly lr * sign(g) (|m̂| = sqrt(v̂)).
      if (c.wd == 0)
        for (size_t i = 0; i < 6; ++i)
          CHECK(got[0][i] == Approx(kW0[i] - c.lr * (kW0[i] > kT[i] ? 1 : -1)).epsilon(1e-6));
    }
  }
}

TEST_CASE("AdamW (decoupled weight decay) and maximize over 20 steps", "[optimizer]") {
  struct Case {
    const char* name;
    OptimizerKind kind;
    double lr, wd;
    bool maximize;
  };
  for (Case c : {Case{"AdamW default decay", OptimizerKind::AdamW, 0.01, 0.01, false},
                 Case{"AdamW large decay", OptimizerKind::AdamW, 0.05, 0.5, false},
                 Case{"AdamW maximize", OptimizerKind::AdamW, 0.01, 0.1, true},
                 Case{"Adam maximize + L2", OptimizerKind::Adam, 0.01, 0.1, true}}) {
    SECTION(c.name) {
      OptimizerSpec o;
      o.kind = c.kind;
      o.lr = c.lr;
      o.weight_decay = c.wd;
      o.maximize = c.maximize;
      std::vector<std::string> states;
      compare(interpSteps(o, &states), referenceAdam(o));
      CHECK(states == std::vector<std::string>{"0.weight.exp_avg", "0.weight.exp_avg_sq"});
    }
  }
  for (bool momentum : {false, true}) {
    SECTION(momentum ? "SGD maximize + momentum + L2" : "SGD maximize") {
      OptimizerSpec o;
      o.lr = 0.05;
      o.momentum = momentum ? 0.9 : 0;
      o.weight_decay = 0.1;
      o.maximize = true;
      compare(interpSteps(o, nullptr), referenceSgd(o));
    }
  }
}

TEST_CASE("RMSprop over 20 steps: defaults, alpha, eps, weight decay, momentum, centered",
          "[optimizer]") {
  struct Case {
    const char* name;
    double lr, alpha, eps, wd, momentum;
    bool centered, maximize;
    std::vector<std::string> states;
  };
  const std::string sq = "0.weight.square_avg", buf = "0.weight.momentum_buffer",
                    ga = "0.weight.grad_avg";
  for (const Case& c :
       {Case{"defaults", 0.01, 0.99, 1e-8, 0, 0, false, false, {sq}},
        Case{"alpha, eps, weight decay", 0.02, 0.9, 1e-3, 0.1, 0, false, false, {sq}},
        Case{"momentum", 0.01, 0.99, 1e-8, 0, 0.9, false, false, {sq, buf}},
        Case{"centered", 0.01, 0.95, 1e-8, 0, 0, true, false, {sq, ga}},
        Case{"centered + momentum + wd + maximize",
             0.005,
             0.9,
             1e-6,
             0.05,
             0.8,
             true,
             true,
             {sq, buf, ga}}}) {
    SECTION(c.name) {
      OptimizerSpec o;
      o.kind = OptimizerKind::RMSprop;
      o.lr = c.lr;
      o.alpha = c.alpha;
      o.eps = c.eps;
      o.weight_decay = c.wd;
      o.momentum = c.momentum;
      o.centered = c.centered;
      o.maximize = c.maximize;
      std::vector<std::string> states;
      compare(interpSteps(o, &states), referenceRmsprop(o));
      CHECK(states == c.states);
    }
  }
}

TEST_CASE("Adam and AdamW with amsgrad over 20 steps", "[optimizer]") {
  for (OptimizerKind kind : {OptimizerKind::Adam, OptimizerKind::AdamW}) {
    SECTION(optimizerName(kind)) {
      OptimizerSpec o;
      o.kind = kind;
      o.lr = 0.05;
      o.beta1 = 0.5;
      o.beta2 = 0.6; // the second moment shrinks with the gradient: the maximum differs
      o.weight_decay = 0.01;
      o.amsgrad = true;
      std::vector<std::string> states;
      auto got = interpSteps(o, &states);
      compare(got, referenceAdam(o));
      CHECK(states == std::vector<std::string>{"0.weight.exp_avg", "0.weight.exp_avg_sq",
                                               "0.weight.max_exp_avg_sq"});
      o.amsgrad = false;
      CHECK(referenceAdam(o) != got);
    }
  }
}

TEST_CASE("updates are placed after the last read of their param", "[optimizer]") {
  // %w is read by the forward matmul and by dX (matmul dY, w^T) of the second layer.
  auto g = parseIr(R"(graph @t(%x: f32[2,3], %t: f32[2,2], %step: i32[] step) params(%w0: f32[3,3] "0.weight", %w: f32[3,2] "1.weight") {
  %0 = matmul %x, %w0 : f32[2,3]
  %1 = matmul %0, %w : f32[2,2]
  %loss = mse_loss %1, %t {reduction="mean"} : f32[]
  return loss=%loss
})");
  auto grads = differentiate(*g);
  OptimizerSpec o;
  o.lr = 0.1;
  addOptimizerUpdates(*g, o, grads);
  REQUIRE(verifyGraph(*g) == "");
  const auto& ops = g->ops();
  auto pos = [&](auto pred) {
    for (size_t i = 0; i < ops.size(); ++i)
      if (pred(*ops[i])) return i;
    FAIL("op not found");
    return size_t(0);
  };
  size_t dx = pos([](const Op& op) { return op.kind == OpKind::MatMul && op.attrs.getBool("transpose_b"); });
  size_t upd = pos([&](const Op& op) { return op.kind == OpKind::SgdUpdate && op.operands[0]->name == "w"; });
  size_t dw = pos([&](const Op& op) { return op.result == grads[1].second; });
  CHECK(upd > dx);
  CHECK(upd == std::max(dx, dw) + 1);
}

namespace {

/// 20 interpreter steps (fp64) with clipping on the single-param graph.
std::vector<std::vector<double>> clippedSteps(const OptimizerSpec& opt, const ClipSpec& clip) {
  auto g = parseIr(kGraph);
  auto grads = differentiate(*g);
  addOptimizerUpdates(*g, opt, grads, clip);
  REQUIRE(verifyGraph(*g) == "");
  InterpState<double> st{{kW0}, {}};
  initInterpState(*g, st);
  std::vector<std::vector<double>> out;
  for (int step = 1; step <= 20; ++step) {
    InterpInputs<double> in{{{"t", kT}, {"step", {double(step)}}}};
    interpret(*g, in, st);
    out.push_back(st.params[0]);
  }
  return out;
}

/// torch.nn.utils.clip_grad_value_ / clip_grad_norm_ then SGD, textbook form.
std::vector<std::vector<double>> referenceClippedSgd(double lr, const ClipSpec& clip) {
  std::vector<double> w = kW0;
  std::vector<std::vector<double>> out;
  for (int t = 1; t <= 20; ++t) {
    std::vector<double> g(6);
    double sq = 0;
    for (size_t i = 0; i < 6; ++i) {
      g[i] = 2 * (w[i] - kT[i]);
      if (clip.value) g[i] = std::min(std::max(g[i], -*clip.value), *clip.value);
      sq += g[i] * g[i];
    }
    double coef = clip.norm ? std::min(*clip.norm / (std::sqrt(sq) + 1e-6), 1.0) : 1.0;
    for (size_t i = 0; i < 6; ++i)
      w[i] -= lr * g[i] * coef;
    out.push_back(w);
  }
  return out;
}

} // namespace

TEST_CASE("clip_grad_value and clip_grad_norm follow torch.nn.utils before the SGD step",
          "[optimizer]") {
  OptimizerSpec o;
  o.lr = 0.05;
  // The first gradient is 2(w - t) = (-0.8, 0.9, -2.6, 0.8, -5, 4.2): norm 7.5.
  for (double v : {0.5, 1.0, 100.0}) {
    ClipSpec c;
    c.value = v;
    INFO("clip_grad_value = " << v);
    compare(clippedSteps(o, c), referenceClippedSgd(o.lr, c));
  }
  for (double n : {0.5, 3.0, 1000.0}) { // clips every step, some steps, never
    ClipSpec c;
    c.norm = n;
    INFO("clip_grad_norm = " << n);
    compare(clippedSteps(o, c), referenceClippedSgd(o.lr, c));
  }
}

TEST_CASE("clip_grad_norm: grad_norm over every gradient, scaled gradients, updates after all",
          "[optimizer]") {
  auto g = parseIr(
      R"(graph @t(%x: f32[2,3], %t: f32[2,2], %step: i32[] step) params(%w0: f32[3,3] "0.weight", %w: f32[3,2] "1.weight") {
  %0 = matmul %x, %w0 : f32[2,3]
  %1 = matmul %0, %w : f32[2,2]
  %loss = mse_loss %1, %t {reduction="mean"} : f32[]
  return loss=%loss
})");
  auto grads = differentiate(*g);
  OptimizerSpec o;
  o.lr = 0.1;
  ClipSpec c;
  c.norm = 1.0;
  addOptimizerUpdates(*g, o, grads, c);
  REQUIRE(verifyGraph(*g) == "");
  const Op* norm = nullptr;
  size_t norm_pos = 0, last_grad = 0;
  for (size_t i = 0; i < g->ops().size(); ++i) {
    const Op& op = *g->ops()[i];
    for (const auto& [w, dw] : grads)
      if (op.result == dw) last_grad = i;
    if (op.kind == OpKind::GradNorm) {
      norm = &op;
      norm_pos = i;
    }
  }
  REQUIRE(norm);
  // In param order, as model.parameters() lists them.
  REQUIRE(norm->operands.size() == 2);
  CHECK(norm->operands[0] == grads[0].second);
  CHECK(norm->operands[1] == grads[1].second);
  CHECK(norm_pos > last_grad);
  int updates = 0;
  for (size_t i = 0; i < g->ops().size(); ++i) {
    const Op& op = *g->ops()[i];
    if (op.kind != OpKind::SgdUpdate) continue;
    ++updates;
    CHECK(i > norm_pos);
    // The update reads scale(its gradient, clip_coef(grad_norm)).
    const Op* s = op.operands[1]->def;
    REQUIRE(s);
    CHECK(s->kind == OpKind::Scale);
    CHECK(s->operands[1]->def->kind == OpKind::ClipCoef);
    CHECK(s->operands[1]->def->operands[0] == norm->result);
    CHECK(s->operands[1]->def->attrs.getDouble("max_norm") == 1.0);
  }
  CHECK(updates == 2);
}
