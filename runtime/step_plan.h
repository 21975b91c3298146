// The step's dependency plan for more than one thread: which earlier kernels
// each kernel must wait for (the kernels whose memory it touches in a
// conflicting way) and which thread runs each kernel that is not split, so
// that independent small kernels (a layer's dX and dW GEMMs, a conv bias sum
// next to the next layer's gradient) run side by side instead of one after
// the other on the calling thread. Results do not depend on the plan: every
// kernel computes the same bits whoever runs it, and a kernel runs only after
// every kernel it conflicts with (docs/performance.md, "Two threads").
#pragma once

#include "compiler/passes/kernel_graph.h"

#include <vector>

namespace descent {

struct StepPlan {
  /// Per kernel: the earlier kernels it must wait for. Kernel j depends on
  /// i < j when j reads memory i writes, writes memory i reads, or writes
  /// memory i writes (buffers share arena bytes when their lifetimes do not
  /// overlap in program order, so this is computed on byte ranges).
  std::vector<std::vector<int>> deps;
  /// Per kernel: the thread that runs it when it is one piece; -1 when split.
  std::vector<int> owner;
  /// Per kernel: the pieces it is cut into (the input chunks, with some
  /// kernels of `choosable` made one piece where that shortens the step).
  std::vector<int> chunks;
  /// The plan's step time under its cost model, in microseconds (for tests
  /// and the curious; not a measurement).
  double model_us = 0;
};

/// Plans a step of `kg`'s kernels (buffers placed: offsets final) on
/// `threads` > 1 threads. `chunks` are the pieces chunksFor chose, `flops`
/// each kernel's FLOPs at the static batch, and `choosable` marks the split
/// kernels that may run as one piece instead (the 1-4 MFLOP GEMMs, whose
/// halves run barely faster than the whole: the plan keeps them split unless
/// running them whole beside an independent kernel is shorter).
StepPlan planStep(const KernelGraph& kg, const std::vector<int>& chunks,
                  const std::vector<double>& flops, const std::vector<bool>& choosable,
                  int threads);

} // namespace descent
