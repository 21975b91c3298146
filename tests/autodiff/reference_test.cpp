// The interpreter (fp32) running descent's grad and train graphs against the
// PyTorch 1.13 fixtures in tests/reference/fixtures/: model output, loss,
// every gradient, the weights after one step, the 20-step loss trajectory and
// the final weights. Tolerances are tests/reference/README.md's: per tensor,
// |got - want| <= atol + rtol * max|want|, rtol 1e-5 (output, loss, grads,
// after_one_step with atol 1e-7), trajectory 1e-5 relative per entry for SGD
// and 1e-4 for Adam, final weights 1e-4. fp32 rounding alone moves these by
// ~3e-7 (the fixtures' float64_deviation), a real bug by 1e-2 or more.
#include "compiler/interp/interpreter.h"
#include "compiler/passes/train_graph.h"
#include "tests/common/test_support.h"
#include "runtime/csv.h"
#include "runtime/safetensors.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

using namespace descent;
using namespace descent::testsupport;
using json = nlohmann::json;

namespace {

std::vector<std::string> fixtureDirs() {
  std::vector<std::string> out;
  std::filesystem::path root = sourceDir() + "/tests/reference/fixtures";
  if (!std::filesystem::exists(root)) return out;
  for (const auto& e : std::filesystem::directory_iterator(root))
    if (std::filesystem::exists(e.path() / "expected.json")) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

/// PyTorch layout [out, in] <-> IR layout [in, out] (1-D tensors unchanged).
std::vector<float> transpose(const std::vector<float>& v, int64_t rows, int64_t cols) {
  std::vector<float> t(v.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t[size_t(c * rows + r)] = v[size_t(r * cols + c)];
  return t;
}

std::vector<float> toTorch(const Value* p, const std::vector<float>& ir) {
  return p->type.rank() == 2 ? transpose(ir, p->type.shape[0], p->type.shape[1]) : ir;
}

void closeTensor(const std::string& what, const std::vector<float>& got, const json& want, double rtol,
                 double atol) {
  std::vector<double> w = want.get<std::vector<double>>();
  REQUIRE(got.size() == w.size());
  double scale = 0, worst = 0;
  for (double x : w) scale = std::max(scale, std::abs(x));
  for (size_t i = 0; i < w.size(); ++i) worst = std::max(worst, std::abs(double(got[i]) - w[i]));
  INFO(what << ": max |got - want| = " << worst << ", max |want| = " << scale);
  CHECK(worst <= atol + rtol * scale);
}

struct Fixture {
  std::string dir;
  ModelSpec spec;
  json expected;
  InterpInputs<float> inputs;
  std::vector<std::vector<float>> init; ///< IR order and layout, for a given graph
};

Fixture load(const std::string& dir, const Graph& g) {
  Fixture f{dir, loadModel(dir + "/model.nn"), json::parse(readText(dir + "/expected.json")), {}, {}};
  int64_t features = f.expected["features"], batch = f.expected["batch"];
  bool cls = f.expected["target_kind"] == "class";
  int64_t targets = cls ? 1 : int64_t(f.expected["target_size"]);
  CsvTable csv = parseCsv(dir + "/data.csv", features + targets, "features + targets");
  REQUIRE(csv.rows == batch);
  std::vector<float> x, y;
  for (int64_t r = 0; r < batch; ++r)
    for (int64_t c = 0; c < features + targets; ++c)
      (c < features ? x : y).push_back(csv.values[size_t(r * (features + targets) + c)]);
  f.inputs.values["x"] = x;
  f.inputs.values["y"] = y;
  SafeTensors st = readSafetensors(dir + "/init.safetensors");
  for (const Value* p : g.params()) {
    Shape torch_shape = p->type.shape;
    if (p->type.rank() == 2) std::swap(torch_shape[0], torch_shape[1]);
    auto v = requireFloats(st, p->external_name, torch_shape, dir + "/init.safetensors");
    f.init.push_back(p->type.rank() == 2 ? transpose(v, torch_shape[0], torch_shape[1]) : v);
  }
  return f;
}

} // namespace

TEST_CASE("interpreter matches the PyTorch fixtures", "[reference]") {
  auto dirs = fixtureDirs();
  REQUIRE(!dirs.empty()); // the fixtures are committed: their absence is a failure, not a skip
  for (const std::string& dir : dirs) {
    SECTION(std::filesystem::path(dir).filename().string()) {
      json expected = json::parse(readText(dir + "/expected.json"));
      ModelSpec spec = loadModel(dir + "/model.nn");
      int64_t batch = expected["batch"];
      bool train_mode = expected["train_mode"];

      // Forward in eval mode (Dropout identity): output and loss. With
      // BatchNorm the fixture's output is the train-mode forward (batch
      // statistics) and `eval_output` the eval-mode one after the 20 steps.
      const bool batchnorm = expected.contains("eval_output");
      BuildOptions fo;
      fo.batch = batch;
      fo.training = batchnorm;
      fo.eval_outputs = true;
      auto eval = batchnorm ? buildForwardGraph(spec, fo) : buildEvalGraph(spec, batch, false);
      Fixture f = load(dir, *eval);
      f.inputs.values["step"] = {1};
      InterpState<float> st{f.init, {}};
      initInterpState(*eval, st);
      auto out = interpret(*eval, f.inputs, st);
      closeTensor("output", out.at("output"), expected["output"], 1e-5, 0);
      closeTensor("loss", out.at("loss"), json::array({expected["loss"]}), 1e-5, 0);
      if (!train_mode) {
        CHECK_FALSE(expected.contains("grads")); // eval-only fixture (Dropout p > 0)
        continue;
      }

      BuildOptions opts;
      opts.batch = batch;
      auto grad = buildGradGraph(spec, opts);
      InterpState<float> gs{f.init, {}};
      initInterpState(*grad, gs);
      InterpInputs<float> in = f.inputs;
      in.values["step"] = {1};
      in.values["seed"] = {0};
      auto gout = interpret(*grad, in, gs);
      closeTensor("loss (grad graph)", gout.at("loss"), json::array({expected["loss"]}), 1e-5, 0);
      for (const Value* p : grad->params())
        closeTensor("grad " + p->external_name, toTorch(p, gout.at("grad:" + p->external_name)),
                    expected["grads"][p->external_name], 1e-5, 0);

      auto train = buildTrainGraph(spec, opts);
      InterpState<float> ts{f.init, {}};
      initInterpState(*train, ts);
      bool adam = spec.optimizer.kind != OptimizerKind::SGD; // Adam, AdamW, RMSprop
      const json& traj = expected["trajectory"];
      REQUIRE(traj.size() == 20);
      for (int step = 1; step <= 20; ++step) {
        in.values["step"] = {float(step)};
        if (expected.contains("lrs")) { // a schedule's learning rate and momentum of the step
          in.lr = expected["lrs"][size_t(step - 1)].get<double>();
          in.momentum = expected["momenta"][size_t(step - 1)].get<double>();
        }
        auto tout = interpret(*train, in, ts);
        double want = traj[size_t(step - 1)];
        INFO("trajectory step " << step);
        CHECK(std::abs(tout.at("loss")[0] - want) <= (adam ? 1e-4 : 1e-5) * std::abs(want));
        if (step == 1)
          for (size_t i = 0; i < train->params().size(); ++i) {
            const Value* p = train->params()[i];
            closeTensor("after_one_step " + p->external_name, toTorch(p, ts.params[i]),
                        expected["after_one_step"][p->external_name], 1e-5, 1e-7);
          }
        if (step == 1)
          for (size_t i = 0; i < train->states().size(); ++i) // BatchNorm's buffers
            if (train->states()[i]->desc.buffer != BufferKind::None)
              closeTensor("after_one_step " + train->states()[i]->external_name, ts.states[i],
                          expected["after_one_step"][train->states()[i]->external_name], 1e-5,
                          1e-7);
      }
      for (size_t i = 0; i < train->states().size(); ++i)
        if (train->states()[i]->desc.buffer != BufferKind::None)
          closeTensor("final " + train->states()[i]->external_name, ts.states[i],
                      expected["final"][train->states()[i]->external_name], 1e-4, 0);
      if (batchnorm) {
        // model.eval() after the steps: the running statistics normalize.
        auto ev = buildEvalGraph(spec, batch, false);
        InterpState<float> es{ts.params, {}};
        for (const Value* s : ev->states())
          for (size_t i = 0; i < train->states().size(); ++i)
            if (train->states()[i]->external_name == s->external_name)
              es.states.push_back(ts.states[i]);
        REQUIRE(es.states.size() == ev->states().size());
        closeTensor("eval_output", interpret(*ev, f.inputs, es).at("output"),
                    expected["eval_output"], 1e-4, 0);
      }
      for (size_t i = 0; i < train->params().size(); ++i) {
        const Value* p = train->params()[i];
        closeTensor("final " + p->external_name, toTorch(p, ts.params[i]), expected["final"][p->external_name],
                    1e-4, 0);
        // exact_* fixtures: the gradients are single products computed alike,
        // so the optimizer's arithmetic must give PyTorch's bits (fma where
        // ATen fuses, make_fixtures.py).
        if (std::filesystem::path(dir).filename().string().rfind("exact_", 0) == 0) {
          std::vector<float> got = toTorch(p, ts.params[i]);
          const json& want = expected["final"][p->external_name];
          for (size_t k = 0; k < got.size(); ++k) {
            INFO("final " << p->external_name << "[" << k << "]");
            CHECK(got[k] == want[k].get<float>());
          }
        }
      }
    }
  }
}
