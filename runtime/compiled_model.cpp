// The one compile pipeline (see compiled_model.h).
#include "runtime/compiled_model.h"

#include "compiler/ir/op_defs.h"
#include "compiler/passes/train_graph.h"

#include <fmt/format.h>
#include <stdexcept>

namespace descent {

std::string uncompiledOpError(const Graph& g, const std::string& path) {
  // Reported before any data is read, with the layer's location.
  for (const auto& op : g.ops())
    if (hasTrait(op->kind, optrait::InterpOnly))
      return fmt::format("{}:{}:{}: {} has no compiled kernel yet: convolution and pooling run "
                         "in the interpreter only (train, eval and predict with --engine interp)",
                         path, op->loc.line, op->loc.col, opName(op->kind));
  return {};
}

CompiledModel compileModel(const ModelSpec& spec, const CompileOptions& opts) {
  LowerOptions lo;
  lo.batch = opts.batch;
  lo.input_u8 = opts.input_u8;
  lo.train = true;
  lo.eval = opts.eval;
  lo.world_size = opts.world_size;
  LoweredModel lowered = lowerModel(spec, lo);
  if (std::string e = uncompiledOpError(*lowered.train, spec.path); !e.empty())
    throw std::runtime_error(e);
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
