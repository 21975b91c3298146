// The training loop: seeded shuffling, batches gathered from the dataset
// (uint8 images stay bytes), one engine step per batch (the last, partial batch
// included, like DataLoader(drop_last=False)), per-epoch evaluation, metrics,
// checkpoints, divergence and Ctrl-C handling.
#pragma once

#include "runtime/checkpoint.h"
#include "runtime/dataset.h"
#include "runtime/distributed.h"
#include "runtime/engine.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace descent {

/// Training stopped because the loss became NaN or infinite. what() says
/// where and what to do; the last good checkpoint was kept if one was asked for.
struct DivergedError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct TrainOptions {
  int64_t epochs = 1;
  int64_t batch = 64;
  uint64_t seed = 0;
  bool shuffle = true;
  std::string save_path;     ///< "" = no checkpoint
  std::string metrics_path;  ///< "" = no JSONL metrics
  bool metrics_append = false; ///< keep the lines already in metrics_path (a resumed run)
  bool progress_bar = false; ///< redraw a bar on stderr within each epoch
  /// Set (by a SIGINT or SIGTERM handler) to stop after the current step; the
  /// checkpoint then records the position inside the epoch.
  const std::atomic<bool>* interrupt = nullptr;
  /// Receives each finished line of output (epoch lines, notes).
  std::function<void(const std::string&)> print;
  /// Data-parallel training under mpirun (docs/distributed.md): each rank
  /// trains on its shard of every global batch; the engine was built from
  /// dataParallelSpec(spec) with dp's reducer. Only rank 0 should be given
  /// save and metrics paths and a print function.
  DataParallel* dp = nullptr;
};

/// The spec a data-parallel engine is built from: mean losses become sums,
/// so each rank's gradient is the plain sum over its rows, and the reducer
/// divides the sum over every rank by the global count (lossScale).
ModelSpec dataParallelSpec(const ModelSpec& spec);
/// What turns a sum-reduced loss (or gradient) of a global batch of n rows
/// into `spec`'s reduction: 1/(n*outputs) or 1/n for "mean", 1/n for
/// "batchmean", 1 for "sum" (the divisor PyTorch's mean uses, rounded to
/// float as its backward's norm scalar is).
double lossScale(const ModelSpec& spec, int64_t n);
/// Why `spec` cannot train data-parallel on `world` processes with this
/// batch and sample count ("" when it can): a global batch must give every
/// rank at least one row, and a weighted mean (class weights, ignore_index)
/// needs the global weight sum, which is not reduced yet.
std::string dataParallelUnsupported(const ModelSpec& spec, int world, int64_t batch,
                                    int64_t samples);

struct EpochStats {
  int64_t epoch = 0;
  double train_loss = 0;                ///< mean of the batch losses
  std::optional<double> test_loss;      ///< mean over all test samples
  std::optional<double> test_accuracy;  ///< class and binary (BCE) targets, in [0, 1]
  std::optional<double> test_r2, test_mae; ///< regression targets
  double lr = 0;                        ///< the learning rate of the epoch's last step
  double seconds = 0;                   ///< training time of the epoch, evaluation excluded
  double samples_per_second = 0;
};

struct TrainResult {
  std::vector<EpochStats> epochs;
  TrainProgress progress;
  bool interrupted = false;
};

/// Why `start` (a checkpoint of a run interrupted mid-epoch) cannot be resumed
/// exactly with these options on `samples` samples, as a phrase for
/// "<checkpoint> ..."; empty when it can (always at an epoch boundary).
std::string resumeMismatch(const TrainProgress& start, const TrainOptions& opts, int64_t samples);

/// Trains `engine` (already initialised or loaded) from `start`, for
/// opts.epochs epochs, the first being the rest of an interrupted one if
/// `start` is mid-epoch. Throws std::invalid_argument if resumeMismatch says
/// it cannot be resumed; the metrics are written after the checkpoint, so a
/// failing metrics write keeps the epoch's checkpoint.
TrainResult train(Engine& engine, const ModelSpec& spec, const Dataset& data, const Dataset* test,
                  const TrainOptions& opts, TrainProgress start);

/// What a model's outputs are scored by, from its loss.
enum class Task {
  Classes,    ///< NLLLoss, CrossEntropyLoss: argmax against the label
  Binary,     ///< BCELoss (probabilities), BCEWithLogitsLoss (logits): each output thresholded
  Regression, ///< the rest (MSELoss): R² and mean absolute error
};
Task taskOf(const ModelSpec& spec);

struct EvalStats {
  int64_t count = 0;
  Task task = Task::Classes;
  double loss = 0;           ///< mean per sample
  /// Classes: argmax == label. Binary: output > 0.5 (> 0 for logits) equals
  /// target > 0.5, over every output of every sample.
  double accuracy = 0;
  /// Regression: sklearn's r2_score (R² per output column, averaged) and
  /// mean_absolute_error over every output.
  double r2 = 0, mae = 0;
  int64_t classes = 0;
  std::vector<int64_t> confusion; ///< classes x classes, [true][predicted]
};

/// Runs the model in eval mode over the whole dataset. With `dp`, each rank
/// evaluates its contiguous share of the rows with an engine built from
/// dataParallelSpec(spec), and the sums are combined (every rank gets the
/// whole data set's statistics).
EvalStats evaluate(Engine& engine, const ModelSpec& spec, const Dataset& data, int64_t batch,
                   DataParallel* dp = nullptr);

/// Copies rows `indices[begin..end)` of the dataset into contiguous batch buffers.
struct BatchBuffers {
  std::vector<uint8_t> x_u8;
  std::vector<float> x_f32;
  std::vector<int32_t> y_labels;
  std::vector<float> y_real;
  const void* x() const { return x_u8.empty() ? (const void*)x_f32.data() : (const void*)x_u8.data(); }
  const void* y() const {
    return y_labels.empty() ? (const void*)y_real.data() : (const void*)y_labels.data();
  }
};
void gatherBatch(const Dataset& d, const std::vector<int64_t>& indices, int64_t begin, int64_t end,
                 BatchBuffers& out);

} // namespace descent
