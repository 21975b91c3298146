// Gradient checking (see gradcheck.h). Directional derivatives keep the cost
// at 2 forward runs per direction whatever the tensor size.
#include "runtime/gradcheck.h"

#include "compiler/ir/param_init.h"
#include "compiler/passes/train_graph.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <random>

namespace descent {

namespace {

double lossOf(const Graph& fwd, const InterpInputs<double>& in, std::vector<std::vector<double>> params) {
  InterpState<double> st{std::move(params), {}};
  initInterpState(fwd, st); // BatchNorm's buffers (the forward pass writes them)
  return interpret(fwd, in, st).at("loss").at(0);
}

std::vector<double> unitDirection(size_t n, std::mt19937_64& rng) {
  std::normal_distribution<double> nd;
  std::vector<double> d(n);
  double norm = 0;
  for (double& x : d) {
    x = nd(rng);
    norm += x * x;
  }
  norm = std::sqrt(norm);
  for (double& x : d) x /= norm;
  return d;
}

} // namespace

GradcheckReport gradcheckGraph(const Graph& forward, const InterpInputs<double>& inputs,
                               const std::vector<std::vector<double>>& params,
                               const GradcheckOptions& opts) {
  auto grad_graph = buildGradGraphFrom(forward, opts.simplify);
  InterpState<double> st{params, {}};
  initInterpState(*grad_graph, st);
  auto outs = interpret(*grad_graph, inputs, st);
  std::mt19937_64 rng(opts.seed ^ 0x5DEECE66Dull);
  GradcheckReport r;
  for (size_t pi = 0; pi < forward.params().size(); ++pi) {
    const Value* p = forward.params()[pi];
    GradcheckParam res;
    res.name = p->external_name;
    auto it = outs.find("grad:" + p->external_name);
    std::vector<double> grad = it != outs.end() ? it->second : std::vector<double>(params[pi].size(), 0.0);
    for (int k = 0; k < opts.directions; ++k) {
      std::vector<double> d = unitDirection(grad.size(), rng);
      double a = 0;
      for (size_t i = 0; i < d.size(); ++i) a += grad[i] * d[i];
      auto central = [&](double h) {
        auto plus = params, minus = params;
        for (size_t i = 0; i < d.size(); ++i) {
          plus[pi][i] += h * d[i];
          minus[pi][i] -= h * d[i];
        }
        double n = (lossOf(forward, inputs, plus) - lossOf(forward, inputs, minus)) / (2 * h);
        return std::pair{n, std::abs(a - n) / std::max({std::abs(a), std::abs(n), 1e-8})};
      };
      auto [n, rel] = central(opts.step);
      // A kink (ReLU at 0, a max-pool tie) within +-h of the point breaks the
      // central difference but not the gradient: a wrong gradient is wrong
      // by the same amount at any step, a crossed kink is not crossed by a
      // step 10 or 100 times smaller. So a failing direction is retried with
      // those, and the retry's result counts (and is named in the report).
      double used = opts.step;
      for (double h : {opts.step / 10, opts.step / 100}) {
        if (rel <= opts.tolerance) break;
        auto [n2, rel2] = central(h);
        if (rel2 < rel) {
          std::tie(n, rel, used) = std::tuple{n2, rel2, h};
          res.kink_step = opts.step;
        }
      }
      if (k == 0 || rel > res.max_rel_error) {
        res.max_rel_error = rel;
        res.analytic = a;
        res.numeric = n;
        res.step = used;
      }
    }
    r.max_rel_error = std::max(r.max_rel_error, res.max_rel_error);
    r.text += fmt::format(
        "{:<24} analytic {:+.12e}  numeric {:+.12e}  rel error {:.3e}{}\n", res.name, res.analytic,
        res.numeric, res.max_rel_error,
        res.kink_step > 0
            ? fmt::format("  (a kink within {:g} of the point: step {:g})", res.kink_step, res.step)
            : "");
    r.params.push_back(res);
  }
  r.passed = r.max_rel_error <= opts.tolerance;
  r.text += fmt::format("max relative error: {:.3e}\n", r.max_rel_error);
  return r;
}

GradcheckReport gradcheck(const ModelSpec& spec, const GradcheckOptions& opts) {
  LowerOptions lo;
  lo.batch = std::max<int64_t>(1, std::min(opts.batch, spec.batch));
  lo.forward = true; // Dropout active, as in training
  lo.train = lo.eval = false;
  auto fwd = std::move(lowerModel(spec, lo).forward);
  std::mt19937_64 rng(opts.seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);

  // PyTorch's bounds U(-1/sqrt(fan_in), 1/sqrt(fan_in)), from the stream the
  // inputs below share (not ParamInit's: the checked points stay the same).
  std::vector<std::vector<double>> params;
  std::vector<int64_t> fan_ins = paramFanIns(*fwd);
  for (size_t k = 0; k < fwd->params().size(); ++k) {
    // Tensors without a fan-in (BatchNorm's weight and bias): U(-1, 1).
    double bound = fan_ins[k] > 0 ? 1.0 / std::sqrt(double(fan_ins[k])) : 1.0;
    std::vector<double> w(size_t(fwd->params()[k]->type.numel()));
    for (double& x : w) x = (2 * unit(rng) - 1) * bound;
    params.push_back(std::move(w));
  }
  InterpInputs<double> in;
  for (const Value* v : fwd->inputs()) {
    std::vector<double> data(size_t(v->type.numel()));
    if (v->role == InputRole::Step) data = {1.0};
    else if (v->role == InputRole::Seed) data = {double(opts.seed % 1000003)};
    else if (v->role == InputRole::Target && spec.target_kind == TargetKind::Class)
      for (double& x : data) x = double(std::min<int64_t>(int64_t(unit(rng) * spec.target_size), spec.target_size - 1));
    else if (v->role == InputRole::Target)
      for (double& x : data) x = 0.05 + 0.9 * unit(rng);
    else
      for (double& x : data) x = unit(rng);
    in.values[v->name] = std::move(data);
  }
  return gradcheckGraph(*fwd, in, params, opts);
}

} // namespace descent
