// The reference engine: trains and evaluates with the graph interpreter in
// fp32. It shares the trainer, checkpoints and data path with the JIT engine,
// which makes it the end-to-end oracle for the compiled one.
#include "compiler/interp/interpreter.h"
#include "compiler/passes/train_graph.h"
#include "runtime/engine.h"

#include <map>
#include <stdexcept>

namespace descent {

namespace {

class InterpEngine final : public Engine {
public:
  InterpEngine(const ModelSpec& spec, const EngineOptions& opts) : spec_(spec), opts_(opts) {
    const Graph& g = trainGraph(opts.batch);
    for (const Value* p : g.params())
      params_.push_back(tensorInfo(*p));
    for (const Value* s : g.states())
      states_.push_back(tensorInfo(*s));
    for (const TensorInfo& p : params_) state_.params.emplace_back(size_t(p.numel()), 0.0f);
    initInterpState(g, state_);
  }

  const std::vector<TensorInfo>& params() const override { return params_; }
  const std::vector<TensorInfo>& states() const override { return states_; }
  float* param(const std::string& name) override { return state_.params[index(params_, name)].data(); }
  float* state(const std::string& name) override { return state_.states[index(states_, name)].data(); }

  float trainStep(const void* x, const void* y, int64_t n, int64_t step, int32_t seed) override {
    const Graph& g = trainGraph(n);
    InterpInputs<float> in = inputs(g, x, y, n);
    in.values[g.inputByRole(InputRole::Step)->name] = {float(step)};
    in.step = step; // exact beyond 2^24, where the float is not
    in.lr = lr_;
    in.momentum = momentum_;
    if (opts_.reducer) in.reducer = opts_.reducer; // the blocking form
    if (opts_.reducer) in.sum_ranks = opts_.reducer.sum_ranks; // synchronized BatchNorm
    in.first_row = first_row_;
    if (const Value* s = g.inputByRole(InputRole::Seed)) in.values[s->name] = {float(seed)};
    return interpret(g, in, state_)["loss"].at(0);
  }

  void setFirstRow(int64_t row) override { first_row_ = row; }

  void setHyper(double lr, double momentum) override {
    lr_ = lr;
    momentum_ = momentum;
  }

  EvalResult eval(const void* x, const void* y, int64_t n) override {
    const Graph& g = evalGraph(n);
    InterpInputs<float> in = inputs(g, x, y, n);
    in.values[g.inputByRole(InputRole::Step)->name] = {1.0f};
    InterpState<float> es;
    es.params.swap(state_.params);
    // The eval step's state is the model's buffers (BatchNorm's running
    // statistics), which the train step writes: lent by name, like the params.
    for (const Value* s : g.states()) es.states.push_back(std::move(state_.states[index(states_, s->external_name)]));
    std::map<std::string, std::vector<float>> out;
    try {
      out = interpret(g, in, es);
    } catch (...) {
      giveBack(g, es);
      throw;
    }
    giveBack(g, es);
    output_ = out["output"];
    EvalResult r;
    r.loss = out["loss"].at(0);
    r.correct = out.count("correct") ? out["correct"].at(0) : 0;
    r.output = output_.data();
    return r;
  }

private:
  void giveBack(const Graph& g, InterpState<float>& es) {
    es.params.swap(state_.params);
    for (size_t i = 0; i < g.states().size(); ++i)
      state_.states[index(states_, g.states()[i]->external_name)] = std::move(es.states[i]);
  }

  static size_t index(const std::vector<TensorInfo>& ts, const std::string& name) {
    for (size_t i = 0; i < ts.size(); ++i)
      if (ts[i].name == name) return i;
    throw std::invalid_argument("no tensor named " + name);
  }

  // The graph half of the pipeline (lowerModel; compileModel adds the JIT
  // backend on top, which the interpreter does not need, nor does the fuzz
  // build, which has no LLVM), one pair per row count: the interpreter runs
  // static shapes, so a remainder batch gets its own.
  const LoweredModel& graphs(int64_t n) {
    auto& m = models_[n];
    if (!m.train) {
      LowerOptions o;
      o.batch = n;
      o.input_u8 = opts_.input_u8;
      o.world_size = opts_.world_size;
      m = lowerModel(spec_, o);
    }
    return m;
  }
  const Graph& trainGraph(int64_t n) { return *graphs(n).train; }
  const Graph& evalGraph(int64_t n) { return *graphs(n).eval; }

  InterpInputs<float> inputs(const Graph& g, const void* x, const void* y, int64_t n) const {
    InterpInputs<float> in;
    const int64_t f = spec_.input_size;
    // Keyed by the graph's names for the roles (the user's, unless an internal
    // name had to step aside).
    auto& xv = in.values[g.inputByRole(InputRole::Input)->name];
    xv.resize(size_t(n * f));
    for (int64_t i = 0; i < n * f; ++i)
      xv[size_t(i)] = opts_.input_u8 ? float(static_cast<const uint8_t*>(x)[i]) : static_cast<const float*>(x)[i];
    auto& yv = in.values[g.inputByRole(InputRole::Target)->name];
    if (spec_.target_kind == TargetKind::Class) {
      yv.resize(size_t(n));
      for (int64_t i = 0; i < n; ++i) yv[size_t(i)] = float(static_cast<const int32_t*>(y)[i]);
    } else {
      const float* yy = static_cast<const float*>(y);
      yv.assign(yy, yy + n * spec_.target_size);
    }
    return in;
  }

  ModelSpec spec_;
  EngineOptions opts_;
  std::vector<TensorInfo> params_, states_;
  InterpState<float> state_;
  std::map<int64_t, LoweredModel> models_;
  std::vector<float> output_;
  std::optional<double> lr_, momentum_; ///< setHyper's values; unset: the attributes
  int64_t first_row_ = 0;               ///< setFirstRow's
};

} // namespace

std::unique_ptr<Engine> makeInterpEngine(const ModelSpec& spec, const EngineOptions& opts) {
  return std::make_unique<InterpEngine>(spec, opts);
}

} // namespace descent
