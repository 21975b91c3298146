// The graph half of the one compile pipeline: a checked model (ModelSpec) to
// its forward, train and eval graphs (forward graph + autodiff +
// simplification + CSE + DCE (+ optimizer updates), verified after every
// pass). lowerModel is the entry point; runtime/compiled_model.h adds the
// backend on top. The build* functions are its stages, kept public for tests
// that check one stage alone.
#pragma once

#include "compiler/frontend/model_spec.h"
#include "compiler/ir/graph.h"
#include "compiler/ir/model_builder.h"

#include <memory>

namespace descent {

/// Which graphs lowerModel builds, at which batch and input dtype.
struct LowerOptions {
  int64_t batch = 64;    ///< rows of the batch (the largest; remainders run the same graphs)
  bool input_u8 = false; ///< images arrive as uint8 pixels (IDX data)
  bool forward = false;  ///< the forward graph with Dropout active (`ir --stage graph`, gradcheck)
  bool train = true;     ///< the train step: forward, backward, optimizer updates
  bool eval = true;      ///< the eval step: Dropout off, outputs "loss", "output", "correct"
  /// Processes of a data-parallel run (docs/distributed.md); above 1, the
  /// allreduce pass puts a reduction between each gradient and its update.
  int world_size = 1;
};

/// The graphs of one model; those not asked for are null.
struct LoweredModel {
  std::unique_ptr<Graph> forward, train, eval;
};

/// The one graph pipeline every command, engine and test starts from.
LoweredModel lowerModel(const ModelSpec& spec, const LowerOptions& opts);

/// Forward + gradients: outputs "loss" and "grad:<external name>" for every
/// param (e.g. "grad:0.weight", IR layout [in, out]).
std::unique_ptr<Graph> buildGradGraph(const ModelSpec& spec, const BuildOptions& opts);

/// The same pipeline on an existing forward graph (one with a "loss" output),
/// e.g. a hand-written one in a test. `simplify` = false keeps the unfused
/// loss gradients (to test each gradient rule alone).
std::unique_ptr<Graph> buildGradGraphFrom(const Graph& forward, bool simplify = true);

/// The train step: forward, backward and optimizer updates (spec.optimizer);
/// output "loss" only. Params and optimizer state are updated in place.
std::unique_ptr<Graph> buildTrainGraph(const ModelSpec& spec, const BuildOptions& opts);

/// The eval step (Dropout off): outputs "loss", "output" and (class targets) "correct".
std::unique_ptr<Graph> buildEvalGraph(const ModelSpec& spec, int64_t batch, bool input_u8);

} // namespace descent
