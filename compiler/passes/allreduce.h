// The allreduce pass of data-parallel training (docs/distributed.md): puts a
// reduction point between every gradient and its optimizer update, so the
// update applies the gradient summed over every process instead of the
// local one. Run only when the world size is above 1; a one-process train
// graph never contains an allreduce op.
#pragma once

#include "compiler/ir/graph.h"

#include <cstdint>
#include <functional>

namespace descent {

/// Rewrites every `sgd_update(%w, %g, ...)` / `adam_update(%w, %g, ...)` to
/// read `%g_sum = allreduce(%g)`, placed right before the update (so a
/// layer's gradient is reduced as soon as it and its param's last reader
/// exist, while earlier layers' gradients are still to be computed). Returns
/// the number of allreduce ops added. Numerics: the update sees the sum over
/// the ranks of their partial gradients, times the step's scale (see
/// GradientReducer); the gradient kernels can no longer fuse the update
/// (the fusion report says why).
int insertAllReduce(Graph& g);

/// What an allreduce op does at run time, supplied by the runtime (both
/// engines call it): `sum[i]` = the scaled sum over every rank of
/// `partial[i]`, i < count, in an order that does not vary between runs.
/// `partial` and `sum` do not overlap.
using GradientReducer = std::function<void(const float* partial, float* sum, int64_t count)>;

} // namespace descent
