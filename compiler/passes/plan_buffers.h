// Buffer planning: places the scratch buffers of a kernel graph in one
// 64-byte-aligned arena region, reusing memory where lifetimes do not overlap.
#pragma once

#include "compiler/passes/kernel_graph.h"

namespace descent {

/// Assigns `offset` (relative to the scratch region, multiples of 64) to every
/// buffer that is neither persistent (params, state, outputs) nor an input,
/// first-fit over kernel-index lifetimes, and sets `kg.scratch_bytes`.
/// Persistent buffers are placed by the program that owns the params.
void planBuffers(KernelGraph& kg);

} // namespace descent
