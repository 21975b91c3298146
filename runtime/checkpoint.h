// Checkpoints: the model's parameters as a safetensors file with PyTorch's
// nn.Sequential state_dict names and layouts (`model.load_state_dict(
// safetensors.torch.load_file(path))` works), plus a second file holding the
// optimizer state and progress, so that a run resumed with --init continues
// exactly where it stopped, even in the middle of an epoch. PyTorch never sees
// the second file. The model file's metadata records the CRC-32 of the
// optimizer file saved with it: a pair from two different saves (a crash
// between the two renames) is refused at load instead of silently mixing epochs.
#pragma once

#include "runtime/atomic_file.h"
#include "runtime/engine.h"

#include <cstdint>
#include <string>

namespace descent {

/// Where training stands: saved with the optimizer state.
struct TrainProgress {
  int64_t step = 0;  ///< optimizer steps taken
  int64_t epoch = 0; ///< epochs completed
  /// Position inside the unfinished epoch `epoch + 1` (an interrupted run):
  /// steps of it taken (0 at an epoch boundary) and the sum of their losses,
  /// so the resumed epoch reports the same train loss.
  int64_t epoch_step = 0;
  double epoch_loss_sum = 0;
  /// How the unfinished epoch draws its batches (its shuffle depends on the
  /// seed and the epoch): resuming it exactly needs the same seed, shuffling,
  /// batch size and number of samples. Only meaningful when epoch_step > 0.
  uint64_t seed = 0;
  bool shuffle = true;
  int64_t batch = 0;
  int64_t samples = 0;
  /// The learning-rate schedule's state (runtime/scheduler.h, one line of
  /// JSON), saved as the optimizer file's "scheduler" metadata; "" without one.
  std::string scheduler;
};

/// The largest step and epoch a checkpoint may hold: 2^53, where doubles stop
/// counting exactly (Adam's bias corrections use the step as a double).
constexpr int64_t kMaxStep = int64_t(1) << 53;

/// "run.safetensors" -> "run.optim.safetensors"; other names get ".optim.safetensors" appended.
std::string optimizerStatePath(const std::string& path);

/// Writes both files: both temporaries are written and fsynced before either
/// is renamed into place, so a failed write (disk full) leaves the previous
/// pair untouched and no temporary behind. Each tensor is permuted from the
/// engine's layout to PyTorch's as its description says (a Linear weight:
/// [in, out] to [out, in]). Metadata strings that are not
/// valid UTF-8 (a model file name) have the bad bytes replaced by U+FFFD.
/// `faults` is a test seam (see atomic_file.h).
void saveCheckpoint(const std::string& path, Engine& engine, const ModelSpec& spec,
                    const TrainProgress& progress, const WriteFaults* faults = nullptr);

/// Loads the parameters from `path` only (eval, predict): the optimizer file
/// is never read, so a damaged one does not matter. Names and shapes must
/// match the model exactly: DataError naming the tensor otherwise.
void loadWeights(const std::string& path, Engine& engine);

/// loadWeights, then, if the optimizer file exists next to it and was written
/// for the same optimizer, its state and progress (else the state is zeroed
/// and the progress is {0, 0}). Throws DataError naming the file when the
/// optimizer file belongs to another save than the model file, or its
/// metadata is malformed or out of range.
TrainProgress loadCheckpoint(const std::string& path, Engine& engine, const ModelSpec& spec);

} // namespace descent
