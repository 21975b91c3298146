// The overlap of data-parallel reductions with the backward kernels
// (docs/distributed.md): the allreduce pass moves the updates after the whole
// backward pass, so the executor starts every layer's reduction as soon as
// its gradient exists and finishes each only before the update that reads
// it; with a reducer that returns the partial gradient itself, a step
// trains what the one-process graph trains, on one thread or two.
#include "helpers.h"

#include "compiler/passes/allreduce.h"

using namespace descent;
using namespace descent::cgtest;

namespace {

/// One train step of `g` from the same params; returns them after the step.
std::vector<std::vector<float>> stepOnce(const Graph& g, const ModelSpec& spec, int threads,
                                         GradientReducer reducer) {
  std::string err;
  auto prog = Program::compile({&g}, JitOptions{"", threads, threads > 1}, err);
  INFO(err);
  REQUIRE(prog);
  if (reducer) prog->setReducer(std::move(reducer));
  auto init = randomParams(g, 3);
  for (size_t k = 0; k < g.params().size(); ++k)
    std::copy(init[k].begin(), init[k].end(), prog->param(g.params()[k]->external_name));
  Batch b = makeBatch(spec, spec.batch, 7);
  prog->run(0, b.x(false), b.y(), spec.batch, 1);
  std::vector<std::vector<float>> out;
  for (const Value* p : g.params()) {
    const float* v = prog->param(p->external_name);
    out.emplace_back(v, v + p->type.numel());
  }
  return out;
}

} // namespace

TEST_CASE("allreduce: every layer's reduction starts before the first one is waited for",
          "[codegen][allreduce]") {
  ModelSpec spec = loadRepoModel("models/mnist_mlp.nn");
  BuildOptions opts;
  opts.batch = spec.batch;
  auto one = buildTrainGraph(spec, opts);
  auto dp = buildTrainGraph(spec, opts);
  REQUIRE(insertAllReduce(*dp) == 6); // three layers' weights and biases
  const auto reference = stepOnce(*one, spec, 1, {});
  for (int threads : {1, 2}) {
    INFO("threads " << threads);
    // A stand-in for MPI: the "sum over the ranks" of one rank is its
    // partial gradient, copied at start as DataParallel does.
    std::vector<std::vector<float>> copies(8);
    std::string events;
    GradientReducer r;
    r.start = [&](int slot, const float* partial, int64_t count) {
      copies.at(size_t(slot)).assign(partial, partial + count);
      events += "s" + std::to_string(slot);
    };
    r.finish = [&](int slot, float* sum) {
      std::copy(copies[size_t(slot)].begin(), copies[size_t(slot)].end(), sum);
      events += "f" + std::to_string(slot);
    };
    r.progress = [&] { events += "."; };
    const auto params = stepOnce(*dp, spec, threads, r);
    // Started in the backward pass's order, each followed by the kernels of
    // the earlier layers (progress between them), then finished in order.
    std::string order;
    for (char c : events)
      if (c != '.') order += c;
    CHECK(order == "s0s1s2s3s4s5f0f1f2f3f4f5");
    CHECK(events.find("s0.") != std::string::npos);
    // The same step as one process: the update reads the finished sum.
    REQUIRE(params.size() == reference.size());
    for (size_t k = 0; k < params.size(); ++k)
      for (size_t i = 0; i < params[k].size(); ++i)
        REQUIRE(params[k][i] == Approx(reference[k][i]).margin(1e-6));
  }
}
