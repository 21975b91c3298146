// Fusion and scheduling: groups a train/eval graph into kernels (see
// kernel_graph.h and the "Kernel stage" section of docs/ir.md).
#pragma once

#include "compiler/passes/kernel_graph.h"
#include "compiler/passes/kernel_printer.h" // printKernelGraph, the kernel stage's text

#include <string>

namespace descent {

/// Builds the kernel schedule of `g`. Fuses bias + activation into the matmul
/// epilogue, relu_grad (and other elementwise gradients) into the dX epilogue,
/// optimizer updates into the dW epilogue (no dW buffer), log_softmax + nll_loss
/// + its gradient into one row kernel, and normalize into the A-operand loads.
/// Every fusion refused is recorded with its reason. Buffers are created but
/// not placed (see planBuffers). On an unsupported graph returns an empty
/// kernel list and sets `error`.
/// Choices of the fuser that change no result, only speed (tests compare both).
struct FuseOptions {
  /// Let GEMMs compute C in columns where gemmInColumns (kernel_graph.h) picks it.
  bool gemm_columns = true;
};

KernelGraph fuseGraph(const Graph& g, std::string& error, const FuseOptions& options = {});

} // namespace descent
