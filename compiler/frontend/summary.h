// The `descent check` summary of a model: a torchinfo-like table of layers,
// output shapes and parameter counts, then totals (parameters, FLOPs, memory)
// and the training settings.
#pragma once

#include "compiler/frontend/model_spec.h"

#include <cstdint>
#include <string>

namespace descent {

/// PyTorch-style short form of a layer: "Linear(784, 128)", "ReLU()",
/// "LogSoftmax(dim=1)", "Dropout(p=0.2)", "Linear(64, 10, bias=False)".
std::string layerRepr(const Layer& layer);

/// Floating-point operation counts per sample (conventions in summary.cpp).
struct FlopCounts {
  int64_t forward = 0;      ///< forward pass including the loss
  int64_t train_step = 0;   ///< forward + backward + the update amortized over the batch
  int64_t matmul_train = 0; ///< only the matrix products of a train step
};

/// Counts FLOPs per sample for `spec`.
FlopCounts countFlops(const ModelSpec& spec);

/// Bytes as "427.3 KiB" (binary units).
std::string humanBytes(int64_t bytes);

/// The whole summary table, ending with a newline.
std::string renderSummary(const ModelSpec& spec);

} // namespace descent
