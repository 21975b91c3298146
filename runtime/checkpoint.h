// Checkpoints: the model's parameters as a safetensors file with PyTorch's
// nn.Sequential state_dict names and layouts (`model.load_state_dict(
// safetensors.torch.load_file(path))` works), plus a second file holding the
// optimizer state and progress, so that a run resumed with --init continues
// exactly where it stopped. PyTorch never sees the second file.
#pragma once

#include "runtime/engine.h"

#include <cstdint>
#include <string>

namespace descent {

/// Where training stands: saved with the optimizer state.
struct TrainProgress {
  int64_t step = 0;   ///< optimizer steps taken
  int64_t epoch = 0;  ///< epochs completed
};

/// "run.safetensors" -> "run.optim.safetensors"; other names get ".optim.safetensors" appended.
std::string optimizerStatePath(const std::string& path);

/// Writes both files atomically (temporary name, then rename). Weights are
/// transposed from the engine's [in, out] to PyTorch's [out, in].
void saveCheckpoint(const std::string& path, Engine& engine, const ModelSpec& spec,
                    const TrainProgress& progress);

/// Loads parameters from `path` into the engine (names and shapes must match
/// the model exactly: DataError naming the tensor otherwise). If the optimizer
/// file exists next to it and was written for the same optimizer, its state
/// and progress are loaded too; otherwise the state is zeroed and the progress
/// is {0, 0}.
TrainProgress loadCheckpoint(const std::string& path, Engine& engine, const ModelSpec& spec);

} // namespace descent
