// The one compile pipeline (see compiled_model.h).
#include "runtime/compiled_model.h"

#include "compiler/ir/op_defs.h"
#include "compiler/passes/train_graph.h"

#include <fmt/format.h>
#include <stdexcept>

namespace descent {

CompiledModel compileModel(const ModelSpec& spec, const CompileOptions& opts) {
  LowerOptions lo;
  lo.batch = opts.batch;
  lo.input_u8 = opts.input_u8;
  lo.train = true;
  lo.eval = opts.eval;
  LoweredModel lowered = lowerModel(spec, lo);
  // Ops with no JIT kernel yet (convolution, pooling) stop here, before any
  // data is read, with the layer's location and the engine that runs them.
  for (const auto& op : lowered.train->ops())
    if (hasTrait(op->kind, optrait::InterpOnly))
      throw std::runtime_error(fmt::format(
          "{}:{}:{}: {} is not compiled by the JIT engine yet (convolution and pooling run in the "
          "interpreter only); use --engine interp",
          spec.path, op->loc.line, op->loc.col, opName(op->kind)));
  CompiledModel m;
  m.train = std::move(lowered.train);
  m.eval = std::move(lowered.eval);
  std::vector<const Graph*> graphs{m.train.get()};
  if (m.eval) graphs.push_back(m.eval.get());
  std::string error;
  m.program = Program::compile(graphs, opts.jit_options, error);
  if (!m.program)
    throw std::runtime_error(fmt::format("{}: JIT compilation failed: {}", spec.path, error));
  return m;
}

} // namespace descent
