// Weight panels: which weights the kernels store as contiguous 64-column
// panels ([N/64][K][64]) instead of row-major [K,N].
//
// Why: a GEMM split over two threads by 64-column tiles gives each thread
// one column half of W. Row-major, a 128-wide W interleaves the halves every
// 256 bytes, and each core's L2 streamer, following its own half down the
// rows, prefetches the other core's lines: after the dW + update kernel
// wrote W, the next forward found half of its own lines pulled away
// (docs/performance.md, "sixth session: the interleaved halves of W"). In
// panels each thread's share of W is one contiguous block.
//
// A panel is also what the GEMM used to copy each column tile of a wide B
// into (rows 1 KB or more apart alias in L1), and, in memory, one
// contiguous stream for the prefetchers: the forward reads it in place.
//
// The layout changes no arithmetic (each element is the same chain), only
// addresses; checkpoints, init and the Program's param() accessor still
// see the IR's row-major layout (runtime/executor.cpp converts).
#pragma once

#include "compiler/passes/kernel_graph.h"

namespace descent {

/// Sets Buffer::panels on the params (and the optimizer state updated with
/// them) that every kernel reads only as a GEMM's B operand (the forward
/// X·W, or a dX GEMM packing Wᵀ from W's rows) or updates in a dW GEMM's
/// epilogue, and that are two or more whole 64-column panels wide. The
/// forward then reads B in place (a K-blocked one too: no copy into a stack
/// panel), dX transposes from the panels. A weight that any other kernel
/// touches (a transposed copy, a separate update after an allreduce or
/// clipping, a view) stays row-major.
void chooseWeightPanels(KernelGraph& kg);

} // namespace descent
