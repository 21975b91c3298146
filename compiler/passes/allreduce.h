// The allreduce pass of data-parallel training (docs/distributed.md): puts a
// reduction point between every gradient and its optimizer update, so the
// update applies the gradient summed over every process instead of the
// local one. Run only when the world size is above 1; a one-process train
// graph never contains an allreduce op.
#pragma once

#include "compiler/ir/graph.h"
#include "compiler/passes/sync_batchnorm.h"

#include <cstdint>
#include <functional>

namespace descent {

/// Rewrites every `sgd_update(%w, %g, ...)` / `adam_update(%w, %g, ...)` to
/// read `%g_sum = allreduce(%g)`, placed where the update was (right after
/// the gradient and its param's last reader: a layer's gradient is reduced as
/// soon as it exists, while earlier layers' gradients are still to be
/// computed), and moves the updates to the end of the graph, so that the
/// executor overlaps each reduction with the backward kernels after it.
/// Returns the number of allreduce ops added. Numerics: the update sees the
/// sum over the ranks of their partial gradients, times the step's scale
/// (see GradientReducer); the gradient kernels can no longer fuse the update
/// (the fusion report says why).
int insertAllReduce(Graph& g);

/// Synchronized BatchNorm (PyTorch's SyncBatchNorm): turns every
/// `batch_norm_stats` into `batch_norm_sync_stats` and every `batch_norm_grad`
/// into `batch_norm_sync_grad` (same operands, attributes and results), whose
/// per-channel sums run over every rank's shard (sync_batchnorm.h). The
/// running statistics' update and batch_norm then read the global batch's
/// statistics; batch_norm_weight_grad / batch_norm_bias_grad stay per rank
/// (ordinary gradients, summed by the allreduce ops). Returns the number of
/// ops changed. Run with insertAllReduce, only when the world size is above 1.
int insertSyncBatchNorm(Graph& g);

/// What the allreduce ops do at run time, supplied by the runtime: the
/// scaled sum over every rank of a partial gradient, in an order that does
/// not vary between runs. Split in two so the reduction can run while other
/// kernels do (the JIT's executor starts reduction `slot`, the step's
/// allreduce kernels numbered in order, at its kernel and finishes it right
/// before the first kernel that reads the sum); the interpreter calls the
/// blocking form, operator().
struct GradientReducer {
  /// Starts reduction `slot` of `count` floats. `partial` is copied before
  /// start returns: its buffer may be reused at once.
  std::function<void(int slot, const float* partial, int64_t count)> start;
  /// Waits for reduction `slot` and writes its scaled sum (count floats).
  std::function<void(int slot, float* sum)> finish;
  /// Optional: lets the reductions in flight advance (called between kernels).
  std::function<void()> progress;
  /// Synchronized BatchNorm's blocking sum over the ranks, in rank order
  /// (needed only by a graph with batch_norm_sync_* ops).
  RankSum sum_ranks;

  explicit operator bool() const { return bool(start); }
  /// The blocking form: `sum[i]` = the scaled sum over the ranks of
  /// `partial[i]`, i < count. `partial` and `sum` do not overlap.
  void operator()(const float* partial, float* sum, int64_t count) const {
    start(0, partial, count);
    finish(0, sum);
  }
};

} // namespace descent
