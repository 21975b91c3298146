// The text form of the kernel graph: what `descent ir --stage kernels` and
// `descent opt --pass fuse|plan-buffers` print (format: docs/ir.md, "Kernel
// stage"). One printer for both, so tests of either read the same text.
#pragma once

#include "compiler/passes/kernel_graph.h"

#include <string>

namespace descent {

/// Each kernel in execution order (kind, GEMM parameters or iteration space,
/// folded ops, ops, epilogue update, buffers read and written, notes), the
/// arena's scratch size, every buffer (size, lifetime, placement) and every
/// refused fusion with its reason. Deterministic: the same graph always prints
/// the same text.
std::string printKernelGraph(const KernelGraph& kg);

} // namespace descent
