// The train-stage pipeline: forward graph + autodiff + simplification + CSE +
// DCE (+ optimizer updates), verified after every pass. What `descent ir
// --stage train`, the interpreter tests, gradcheck and the codegen start from.
#pragma once

#include "compiler/frontend/model_spec.h"
#include "compiler/ir/graph.h"
#include "compiler/ir/model_builder.h"

#include <memory>

namespace descent {

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
