// The one compile pipeline: a checked model (ModelSpec) to a compiled model,
// its train and eval steps. lowerModel (compiler/passes/train_graph.h) builds
// the graphs; the backend (compiler/codegen) and the executor
// (runtime/executor.h) turn them into kernels on an arena and a thread pool.
// Every engine, command (train, eval, predict, bench, ir) and test that needs
// a compiled model comes through compileModel; the interpreter engine and
// gradcheck, which run graphs as they are, stop at lowerModel.
#pragma once

#include "compiler/frontend/model_spec.h"
#include "compiler/ir/graph.h"
#include "runtime/executor.h"

#include <cstdint>
#include <memory>

namespace descent {

struct CompileOptions {
  int64_t batch = 64;     ///< the largest batch; smaller (remainder) batches run the same code
  bool input_u8 = false;  ///< images as bytes (IDX data)
  bool eval = true;       ///< also the eval step (`bench` times the train step alone)
  JitOptions jit_options; ///< target CPU and threads of the executor
  int world_size = 1;     ///< processes of a data-parallel run (the allreduce pass above 1)
};

/// A model's train and eval steps: the graphs and the program running them
/// (entry kTrain and, when built, kEval).
struct CompiledModel {
  static constexpr size_t kTrain = 0, kEval = 1;
  std::unique_ptr<Graph> train, eval;
  std::unique_ptr<Program> program;
};

/// "" when every op of `g` has a compiled kernel; otherwise a one-line error
/// naming the first op without one (the InterpOnly trait: convolution and
/// pooling) at its model-file location and the engine that runs it. The
/// compile paths (compileModel, `descent compile`) check it before compiling.
std::string uncompiledOpError(const Graph& g, const std::string& path);

/// Lowers and compiles `spec`. Throws std::runtime_error
/// ("<model>: JIT compilation failed: ...") when the backend fails or
/// (uncompiledOpError) the model has an op without a compiled kernel, and
/// std::logic_error when a pass breaks a graph (a compiler bug).
CompiledModel compileModel(const ModelSpec& spec, const CompileOptions& opts);

} // namespace descent
