// Builds the forward graph IR (model + loss) from a checked ModelSpec.
#pragma once

#include "compiler/frontend/model_spec.h"
#include "compiler/ir/graph.h"

#include <memory>

namespace descent {

struct BuildOptions {
  int64_t batch = 64;     ///< rows of the batch this graph computes
  bool training = true;   ///< Dropout active (train) or identity (eval, like model.eval())
  bool input_u8 = false;  ///< the batch arrives as uint8 pixels: scale by 1/255 (ToTensor)
  bool eval_outputs = false; ///< also return the model output and the correct count
};

/// The forward graph: inputs %x, %y, %step (and %seed when Dropout is active),
/// one param per weight/bias named after PyTorch's state_dict ("0.weight"),
/// stored [in, out]; output "loss" (and "output", "correct" with eval_outputs).
std::unique_ptr<Graph> buildForwardGraph(const ModelSpec& spec, const BuildOptions& opts);

} // namespace descent
