// The execution engine the trainer drives: a compiled (JIT) or interpreted
// train step and eval step over one set of parameters and optimizer state.
// The trainer never knows which one runs; tests compare the two.
#pragma once

#include "compiler/frontend/model_spec.h"
#include "compiler/ir/graph.h"
#include "compiler/passes/allreduce.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace descent {

/// A parameter or optimizer-state tensor, in the engine's (IR) layout.
struct TensorInfo {
  std::string name;           ///< PyTorch name: "0.weight", "0.weight.momentum_buffer"
  std::vector<int64_t> shape; ///< IR layout: weights are [in, out]
  /// PyTorch's shape, the permutation to the IR layout, the fan-in: the
  /// graph's description of the tensor (compiler/ir/param_desc.h).
  ParamDesc desc;
  int64_t numel() const;
};

/// The TensorInfo of a graph's param or state value.
TensorInfo tensorInfo(const Value& v);

/// What one eval batch gives.
struct EvalResult {
  double loss = 0;            ///< the loss as the graph reduces it (mean or sum over the batch)
  double correct = 0;         ///< rows whose argmax equals the label (class targets)
  const float* output = nullptr; ///< model output [n, outputs], valid until the next call
};

struct EngineOptions {
  int64_t batch = 64;   ///< largest batch; smaller (remainder) batches are allowed
  bool input_u8 = false; ///< images as bytes (IDX data)
  int threads = 0;      ///< 0: all cores
  std::string cpu;      ///< "" host, or an LLVM CPU name such as "x86-64-v3"
  /// Data-parallel training (docs/distributed.md): with world_size > 1 the
  /// train step sums each gradient over the ranks through `reducer` before
  /// its update (the allreduce pass).
  int world_size = 1;
  GradientReducer reducer;
};

class Engine {
public:
  virtual ~Engine() = default;
  virtual const std::vector<TensorInfo>& params() const = 0;
  virtual const std::vector<TensorInfo>& states() const = 0;
  /// Storage of a param or state tensor (IR layout), numel() floats.
  virtual float* param(const std::string& name) = 0;
  virtual float* state(const std::string& name) = 0;
  /// One optimizer step on n <= batch rows; x is uint8 or float as the
  /// engine's input, y int32 labels or float targets. Returns the loss.
  virtual float trainStep(const void* x, const void* y, int64_t n, int64_t step, int32_t seed) = 0;
  /// Work for the next trainStep to run alongside its kernels (the trainer
  /// gathers the following batch): a thread that would otherwise wait runs
  /// it, or the caller at the end of the step; either way it is finished
  /// when trainStep returns. It must not throw and must not touch what the
  /// step reads or writes. Engines without threads ignore it (the caller
  /// sees that it did not run).
  virtual void runAlongsideNextStep(std::function<void()> /*work*/) {}
  /// Data-parallel training: the next train steps' rows start at this row
  /// of the global batch (Dropout masks are keyed by the global row).
  virtual void setFirstRow(int64_t /*row*/) {}
  /// The learning rate and the momentum (SGD) or beta1 (Adam, AdamW) of the
  /// next train steps, as a schedule sets them; until called, the model
  /// file's. Per-step inputs of the compiled step: never recompiles.
  virtual void setHyper(double lr, double momentum) = 0;
  /// Forward only, Dropout off (model.eval()).
  virtual EvalResult eval(const void* x, const void* y, int64_t n) = 0;
  /// Compile time in milliseconds (0 for the interpreter).
  virtual double compileMillis() const { return 0; }
  /// Text of a stage for `descent ir` ("kernels", "llvm", "asm"); empty if not supported.
  virtual std::string stageText(const std::string& /*stage*/) const { return {}; }
};

/// The reference engine: the graph interpreter in fp32 (slow, obviously right).
std::unique_ptr<Engine> makeInterpEngine(const ModelSpec& spec, const EngineOptions& opts);
/// The compiled engine: fused LLVM kernels. Throws std::runtime_error on a JIT failure.
std::unique_ptr<Engine> makeJitEngine(const ModelSpec& spec, const EngineOptions& opts);

} // namespace descent
