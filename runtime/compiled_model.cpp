// The one compile pipeline (see compiled_model.h).
#include "runtime/compiled_model.h"

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
