// The train-stage pipeline on every model: the verifier accepts the graph
// after every pass (buildGradGraph/buildTrainGraph verify internally and
// throw), the printed graph round-trips through the parser, and the structure
// matches what the design promises (no gradient for the batch, fused loss
// gradients, one update per param after the param's last read).
#include "compiler/autodiff/differentiate.h"
#include "compiler/autodiff/optimizer.h"
#include "compiler/ir/model_builder.h"
#include "compiler/ir/printer.h"
#include "compiler/ir/verifier.h"
#include "compiler/passes/cse.h"
#include "compiler/passes/dce.h"
#include "compiler/passes/simplify.h"
#include "compiler/passes/train_graph.h"
#include "tests/common/test_support.h"

using namespace descent;
using namespace descent::testsupport;

namespace {

void roundTrip(const Graph& g) {
  std::string text = printGraph(g);
  std::string err;
  auto back = parseGraph(text, err);
  INFO(text);
  INFO(err);
  REQUIRE(back);
  CHECK(verifyGraph(*back) == "");
  CHECK(printGraph(*back) == text);
}

size_t count(const Graph& g, OpKind k) {
  size_t n = 0;
  for (const auto& op : g.ops()) n += op->kind == k;
  return n;
}

} // namespace

TEST_CASE("every pass leaves every model's graph valid", "[pipeline]") {
  for (const std::string& path : allModelFiles()) {
    SECTION(path) {
      ModelSpec spec = loadModel(path);
      for (bool u8 : {false, true}) {
        BuildOptions opts;
        opts.batch = spec.batch;
        opts.input_u8 = u8;
        // Run the passes one by one here too, verifying after each.
        auto g = buildForwardGraph(spec, opts);
        REQUIRE(verifyGraph(*g) == "");
        auto grads = differentiate(*g);
        REQUIRE(verifyGraph(*g) == "");
        for (const auto& [p, dp] : grads) {
          INFO(p->external_name);
          REQUIRE(dp);
          CHECK(dp->type == p->type);
        }
        addOptimizerUpdates(*g, spec.optimizer, grads, spec.clip);
        REQUIRE(verifyGraph(*g) == "");
        simplify(*g);
        REQUIRE(verifyGraph(*g) == "");
        eliminateCommonSubexpressions(*g);
        REQUIRE(verifyGraph(*g) == "");
        eliminateDeadCode(*g);
        REQUIRE(verifyGraph(*g) == "");

        auto train = buildTrainGraph(spec, opts);
        CHECK(printGraph(*train) == printGraph(*g));
        CHECK(count(*train, OpKind::SgdUpdate) + count(*train, OpKind::AdamUpdate) +
                  count(*train, OpKind::RmspropUpdate) + count(*train, OpKind::AdagradUpdate) +
                  count(*train, OpKind::AdadeltaUpdate) ==
              train->params().size());
        auto grad = buildGradGraph(spec, opts);
        CHECK(grad->outputs().size() == 1 + grad->params().size());
        auto eval = buildEvalGraph(spec, 7, u8);
        CHECK(eval->output("output"));
        roundTrip(*train);
        roundTrip(*eval);
      }
    }
  }
}

// Grad graphs name their outputs "grad:<param>" (docs/ir.md); the IR parser
// accepts ':' in output names so they round-trip like every other stage.
TEST_CASE("grad graphs of every model round-trip through the parser", "[pipeline][roundtrip]") {
  for (const std::string& path : allModelFiles()) {
    SECTION(path) {
      ModelSpec spec = loadModel(path);
      BuildOptions opts;
      opts.batch = spec.batch;
      roundTrip(*buildGradGraph(spec, opts));
    }
  }
}

// lowerModel is the one entry point (compileModel, the engines, `descent ir`
// and gradcheck call it); it must build exactly what the stages build.
TEST_CASE("lowerModel builds the forward, train and eval graphs of the stages", "[pipeline]") {
  for (const std::string& path : allModelFiles()) {
    SECTION(path) {
      ModelSpec spec = loadModel(path);
      LowerOptions lo;
      lo.batch = 9;
      lo.input_u8 = spec.fitsDefaultData();
      lo.forward = true;
      LoweredModel m = lowerModel(spec, lo);
      BuildOptions bo;
      bo.batch = 9;
      bo.input_u8 = lo.input_u8;
      REQUIRE(m.forward);
      REQUIRE(m.train);
      REQUIRE(m.eval);
      CHECK(printGraph(*m.forward) == printGraph(*buildForwardGraph(spec, bo)));
      CHECK(printGraph(*m.train) == printGraph(*buildTrainGraph(spec, bo)));
      CHECK(printGraph(*m.eval) == printGraph(*buildEvalGraph(spec, 9, lo.input_u8)));
      lo.forward = lo.eval = false;
      LoweredModel only_train = lowerModel(spec, lo);
      CHECK(!only_train.forward);
      CHECK(!only_train.eval);
      CHECK(only_train.train);
    }
  }
}
