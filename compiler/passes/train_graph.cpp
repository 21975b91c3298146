// The graph pipeline (see train_graph.h). Every pass is followed by the
// verifier: a failure is a compiler bug, so it throws std::logic_error with
// the pass name and the verifier's report.
#include "compiler/passes/train_graph.h"

#include "compiler/autodiff/differentiate.h"
#include "compiler/autodiff/optimizer.h"
#include "compiler/ir/verifier.h"
#include "compiler/passes/allreduce.h"
#include "compiler/passes/cse.h"
#include "compiler/passes/dce.h"
#include "compiler/passes/simplify.h"

#include <stdexcept>

namespace descent {

namespace {

void verified(const Graph& g, const char* after) {
  std::string err = verifyGraph(g);
  if (!err.empty()) throw std::logic_error(std::string("invalid graph after ") + after + ":\n" + err);
}

void cleanup(Graph& g, bool simplify_grads) {
  if (simplify_grads) {
    simplify(g);
    verified(g, "simplify");
  }
  eliminateCommonSubexpressions(g);
  verified(g, "cse");
  eliminateDeadCode(g);
  verified(g, "dce");
}

void addGradients(Graph& g, bool simplify_grads) {
  verified(g, "the forward build");
  auto grads = differentiate(g);
  for (const auto& [p, dp] : grads)
    if (dp) g.setOutput("grad:" + p->external_name, dp);
  verified(g, "differentiate");
  cleanup(g, simplify_grads);
}

} // namespace

std::unique_ptr<Graph> buildGradGraph(const ModelSpec& spec, const BuildOptions& opts) {
  auto g = buildForwardGraph(spec, opts);
  addGradients(*g, true);
  return g;
}

std::unique_ptr<Graph> buildGradGraphFrom(const Graph& forward, bool simplify_grads) {
  auto g = cloneGraph(forward);
  addGradients(*g, simplify_grads);
  return g;
}

std::unique_ptr<Graph> buildTrainGraph(const ModelSpec& spec, const BuildOptions& opts) {
  auto g = buildForwardGraph(spec, opts);
  verified(*g, "the forward build");
  auto grads = differentiate(*g);
  verified(*g, "differentiate");
  addOptimizerUpdates(*g, spec.optimizer, grads, spec.clip);
  verified(*g, "the optimizer pass");
  cleanup(*g, true);
  return g;
}

std::unique_ptr<Graph> buildEvalGraph(const ModelSpec& spec, int64_t batch, bool input_u8) {
  BuildOptions opts;
  opts.batch = batch;
  opts.training = false;
  opts.input_u8 = input_u8;
  opts.eval_outputs = true;
  auto g = buildForwardGraph(spec, opts);
  verified(*g, "the forward build");
  eliminateCommonSubexpressions(*g);
  verified(*g, "cse");
  eliminateDeadCode(*g);
  verified(*g, "dce");
  return g;
}

LoweredModel lowerModel(const ModelSpec& spec, const LowerOptions& opts) {
  LoweredModel m;
  BuildOptions b;
  b.batch = opts.batch;
  b.input_u8 = opts.input_u8;
  if (opts.forward) {
    m.forward = buildForwardGraph(spec, b);
    verified(*m.forward, "the forward build");
  }
  if (opts.train) {
    m.train = buildTrainGraph(spec, b);
    if (opts.world_size > 1) {
      insertAllReduce(*m.train);
      insertSyncBatchNorm(*m.train);
      verified(*m.train, "allreduce");
    }
  }
  if (opts.eval) m.eval = buildEvalGraph(spec, opts.batch, opts.input_u8);
  return m;
}

} // namespace descent
