// The compiled engine: the train graph and the eval graph of a model compiled
// by compileModel into one JIT program (fused LLVM kernels sharing params and
// optimizer state). The remainder batch of an epoch runs the same kernels
// with a smaller n.
#include "runtime/compiled_model.h"
#include "runtime/engine.h"

namespace descent {

namespace {

class JitEngine final : public Engine {
public:
  JitEngine(const ModelSpec& spec, const EngineOptions& opts) : spec_(spec) {
    CompileOptions c;
    c.batch = opts.batch;
    c.input_u8 = opts.input_u8;
    c.jit_options.cpu = opts.cpu;
    c.jit_options.threads = opts.threads;
    c.world_size = opts.world_size;
    model_ = compileModel(spec, c);
    program_ = model_.program.get();
    if (opts.reducer) program_->setReducer(opts.reducer);
    for (const Value* p : model_.train->params())
      params_.push_back(tensorInfo(*p));
    for (const Value* s : model_.train->states())
      states_.push_back(tensorInfo(*s));
  }

  const std::vector<TensorInfo>& params() const override { return params_; }
  const std::vector<TensorInfo>& states() const override { return states_; }
  float* param(const std::string& name) override { return program_->param(name); }
  float* state(const std::string& name) override { return program_->state(name); }

  float trainStep(const void* x, const void* y, int64_t n, int64_t step, int32_t seed) override {
    std::function<void()> work = std::move(alongside_);
    alongside_ = nullptr;
    program_->run(CompiledModel::kTrain, x, y, n, step, seed, first_row_, work ? &work : nullptr);
    return program_->outputScalar(CompiledModel::kTrain, "loss");
  }
  void runAlongsideNextStep(std::function<void()> work) override { alongside_ = std::move(work); }

  void setHyper(double lr, double momentum) override { program_->setHyper(lr, momentum); }
  void setFirstRow(int64_t row) override { first_row_ = row; }

  EvalResult eval(const void* x, const void* y, int64_t n) override {
    program_->run(CompiledModel::kEval, x, y, n, 1, 0);
    EvalResult r;
    r.loss = program_->outputScalar(CompiledModel::kEval, "loss");
    r.correct = spec_.target_kind == TargetKind::Class
                    ? program_->outputScalar(CompiledModel::kEval, "correct")
                    : 0;
    r.output = program_->outputData(CompiledModel::kEval, "output");
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
  ModelSpec spec_;
  CompiledModel model_;
  Program* program_ = nullptr;
  int64_t first_row_ = 0;
  std::function<void()> alongside_; ///< runAlongsideNextStep's work, for the next trainStep
  std::vector<TensorInfo> params_, states_;
};

} // namespace

std::unique_ptr<Engine> makeJitEngine(const ModelSpec& spec, const EngineOptions& opts) {
  return std::make_unique<JitEngine>(spec, opts);
}

} // namespace descent
