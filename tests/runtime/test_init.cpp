// Parameter initialization: the model's init= / bias_init= (torch.nn.init's
// functions) resolve to PyTorch's bounds and standard deviations, and the
// seeded draw gives values with those statistics; `seed =` in the file seeds
// it unless the CLI overrides. The draws are descent's own stream, not
// torch's, so the checks are on the distributions, not on values.
#include "tests/common/test_support.h"
#include "compiler/frontend/frontend.h"
#include "compiler/support/diagnostics.h"
#include "runtime/engine.h"
#include "runtime/init.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <fmt/format.h>

using namespace descent;

namespace {

ModelSpec specOf(const std::string& layers, const std::string& extra = "") {
  std::string src = fmt::format("input x: f32[400]\ntarget y: class[10]\nmodel = Sequential({})\n"
                                "loss = CrossEntropyLoss()\noptimizer = SGD(lr=0.1)\n{}",
                                layers, extra);
  Diagnostics diags("init.nn", src);
  auto spec = analyzeSource("init.nn", src, diags);
  INFO(diags.render());
  REQUIRE(spec);
  return *spec;
}

struct Stats {
  double mean = 0, std = 0, min = 1e30, max = -1e30;
};

Stats statsOf(const float* v, int64_t n) {
  Stats s;
  for (int64_t i = 0; i < n; ++i) {
    s.mean += v[i];
    s.min = std::min(s.min, double(v[i]));
    s.max = std::max(s.max, double(v[i]));
  }
  s.mean /= double(n);
  for (int64_t i = 0; i < n; ++i) s.std += (v[i] - s.mean) * (v[i] - s.mean);
  s.std = std::sqrt(s.std / double(n - 1));
  return s;
}

/// The initialized params of a model whose first layer is Linear(400, 300)
/// (120,000 weights: the sample std is within ~0.5% of the true one).
std::vector<std::vector<float>> initialized(const ModelSpec& spec, uint64_t seed) {
  EngineOptions o;
  o.batch = 8;
  auto engine = makeInterpEngine(spec, o);
  initParams(*engine, seed);
  std::vector<std::vector<float>> out;
  for (const TensorInfo& p : engine->params())
    out.emplace_back(engine->param(p.name), engine->param(p.name) + p.numel());
  return out;
}

} // namespace

TEST_CASE("init= schemes draw with torch.nn.init's bounds and standard deviations", "[runtime]") {
  const double fan_in = 400, fan_out = 300;
  struct Case {
    std::string init;
    bool uniform; // else normal
    double mean, std;
  } cases[] = {
      // kaiming_uniform_ defaults: a=0, fan_in, leaky_relu -> gain sqrt(2)
      {"kaiming_uniform", true, 0, std::sqrt(2.0) / std::sqrt(fan_in)},
      {"kaiming_uniform_(a=0.2, mode=\"fan_out\")", true, 0,
       std::sqrt(2.0 / (1 + 0.04)) / std::sqrt(fan_out)},
      {"kaiming_normal(nonlinearity=\"relu\")", false, 0, std::sqrt(2.0) / std::sqrt(fan_in)},
      {"kaiming_normal(nonlinearity=\"tanh\", mode=\"fan_out\")", false, 0, 5.0 / 3 / std::sqrt(fan_out)},
      {"kaiming_normal(nonlinearity=\"selu\")", false, 0, 0.75 / std::sqrt(fan_in)},
      {"xavier_uniform", true, 0, std::sqrt(2.0 / (fan_in + fan_out))},
      {"xavier_normal(gain=3)", false, 0, 3 * std::sqrt(2.0 / (fan_in + fan_out))},
      {"uniform(-2, 4)", true, 1, 6 / std::sqrt(12.0)},
      {"normal(mean=0.5, std=0.02)", false, 0.5, 0.02},
  };
  for (const Case& c : cases) {
    INFO(c.init);
    ModelSpec spec = specOf(fmt::format("Linear(400, 300, init={}), ReLU(), Linear(300, 10)", c.init));
    auto params = initialized(spec, 3);
    const std::vector<float>& w = params[0];
    REQUIRE(w.size() == 120000);
    Stats s = statsOf(w.data(), int64_t(w.size()));
    CHECK(std::abs(s.mean - c.mean) < 0.02 * c.std + 1e-12);
    CHECK(std::abs(s.std - c.std) < 0.01 * c.std);
    if (c.uniform) {
      // Inside [mean - sqrt(3) std, mean + sqrt(3) std], and reaching near both ends.
      const double half = std::sqrt(3.0) * c.std;
      CHECK(s.min >= c.mean - half * (1 + 1e-6));
      CHECK(s.max <= c.mean + half * (1 + 1e-6));
      CHECK(s.min < c.mean - 0.999 * half);
      CHECK(s.max > c.mean + 0.999 * half);
    } else {
      // A normal sample of 120,000 reaches past 4 std but not past 6.
      CHECK(s.max > c.mean + 4 * c.std);
      CHECK(s.min < c.mean - 4 * c.std);
      CHECK(s.max < c.mean + 6 * c.std);
      CHECK(s.min > c.mean - 6 * c.std);
    }
    // The layers without init= keep PyTorch's default: U(+-1/sqrt(fan_in)).
    Stats def = statsOf(params[2].data(), int64_t(params[2].size()));
    CHECK(def.max <= 1 / std::sqrt(300.0));
    CHECK(def.min >= -1 / std::sqrt(300.0));
    CHECK(def.std > 0.5 / std::sqrt(300.0 * 3));
  }
}

TEST_CASE("bias_init= and constant inits, and the default init is unchanged by them", "[runtime]") {
  ModelSpec plain = specOf("Linear(400, 300), ReLU(), Linear(300, 10)");
  ModelSpec inits = specOf("Linear(400, 300, bias_init=zeros), ReLU(), "
                           "Linear(300, 10, init=constant(0.25), bias_init=ones_)");
  auto a = initialized(plain, 5), b = initialized(inits, 5);
  REQUIRE(b.size() == 4);
  CHECK(a[0] == b[0]); // the first weight draws the same stream
  for (float v : b[1]) CHECK(v == 0.0f);
  for (float v : b[2]) CHECK(v == 0.25f);
  for (float v : b[3]) CHECK(v == 1.0f);
}

TEST_CASE("seed = N in the model file seeds the init: the same N gives the same params", "[runtime]") {
  ModelSpec s7 = specOf("Linear(400, 10, init=normal(std=0.1))", "seed = 7\n");
  REQUIRE(s7.seed);
  CHECK(*s7.seed == 7);
  ModelSpec neg = specOf("Linear(400, 10)", "seed = -1\n");
  CHECK(*neg.seed == UINT64_MAX); // torch.manual_seed takes negatives modulo 2^64
  CHECK(initialized(s7, 7) == initialized(s7, 7));
  CHECK(initialized(s7, 7) != initialized(s7, 8));
}
