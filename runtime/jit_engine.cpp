// The compiled engine: the train graph and the eval graph of a model compiled
// into one JIT program (fused LLVM kernels sharing params and optimizer state).
// The remainder batch of an epoch runs the same kernels with a smaller n.
#include "runtime/executor.h"
#include "compiler/passes/train_graph.h"
#include "runtime/engine.h"

#include <fmt/format.h>
#include <stdexcept>

namespace descent {

namespace {

class JitEngine final : public Engine {
public:
  JitEngine(const ModelSpec& spec, const EngineOptions& opts) : spec_(spec) {
    BuildOptions b;
    b.batch = opts.batch;
    b.input_u8 = opts.input_u8;
    train_ = buildTrainGraph(spec, b);
    eval_ = buildEvalGraph(spec, opts.batch, opts.input_u8);
    JitOptions j;
    j.cpu = opts.cpu;
    j.threads = opts.threads;
    std::string error;
    program_ = Program::compile({train_.get(), eval_.get()}, j, error);
    if (!program_) throw std::runtime_error(fmt::format("{}: JIT compilation failed: {}", spec.path, error));
    for (const Value* p : train_->params()) params_.push_back(info(p));
    for (const Value* s : train_->states()) states_.push_back(info(s));
  }

  const std::vector<TensorInfo>& params() const override { return params_; }
  const std::vector<TensorInfo>& states() const override { return states_; }
  float* param(const std::string& name) override { return program_->param(name); }
  float* state(const std::string& name) override { return program_->state(name); }

  float trainStep(const void* x, const void* y, int64_t n, int64_t step, int32_t seed) override {
    program_->run(0, x, y, n, step, seed);
    return program_->outputScalar(0, "loss");
  }

  EvalResult eval(const void* x, const void* y, int64_t n) override {
    program_->run(1, x, y, n, 1, 0);
    EvalResult r;
    r.loss = program_->outputScalar(1, "loss");
    r.correct = spec_.target_kind == TargetKind::Class ? program_->outputScalar(1, "correct") : 0;
    r.output = program_->outputData(1, "output");
    return r;
  }

  double compileMillis() const override { return program_->compileMillis(); }

  std::string stageText(const std::string& stage) const override {
    if (stage == "kernels") return program_->kernelsText();
    if (stage == "llvm") return program_->llvmIR();
    if (stage == "asm") return program_->assembly();
    return {};
  }

  Program& program() { return *program_; }

private:
  static TensorInfo info(const Value* v) {
    TensorInfo t;
    t.name = v->external_name;
    t.shape = v->type.shape;
    t.transposed = v->type.rank() == 2; // weights are [in, out]; PyTorch keeps [out, in]
    return t;
  }

  ModelSpec spec_;
  std::unique_ptr<Graph> train_, eval_;
  std::unique_ptr<Program> program_;
  std::vector<TensorInfo> params_, states_;
};

} // namespace

std::unique_ptr<Engine> makeJitEngine(const ModelSpec& spec, const EngineOptions& opts) {
  return std::make_unique<JitEngine>(spec, opts);
}

} // namespace descent
