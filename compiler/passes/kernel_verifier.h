// Kernel-graph verifier: the invariants the emitter and the executor rely on,
// checked after fusion (`fuse`) and after buffer planning (`plan_buffers`).
// Like verifyGraph for the graph IR, a failure is a compiler bug.
#pragma once

#include "compiler/passes/kernel_graph.h"

#include <string>
#include <vector>

namespace descent {

/// How far the kernel graph has come: `Fused` (fuseGraph: kernels, buffers and
/// lifetimes, no offsets) or `Planned` (planBuffers: scratch offsets placed).
enum class KernelStage { Fused, Planned };

/// Checks a kernel graph and returns its problems, one sentence each naming
/// the kernel, op or buffer (empty when valid):
/// - coverage: every op of the graph is in exactly one kernel, except
///   dropout masks (recomputed by their readers) and normalize ops folded into
///   the A loads of the GEMMs that read them (and only those);
/// - order: an op's operands are computed earlier in its kernel or by an
///   earlier kernel that stores them; every scratch buffer is written before it
///   is read; no kernel reads a param or state after the kernel that updates it
///   (write-after-read); an update is the epilogue (sink) of its kernel;
/// - buffers: indices valid, sizes match the values, flags (input, persistent)
///   match the values' kinds, lifetimes (first/last use) match the kernels'
///   reads and writes, each kernel lists the buffers it reads and writes;
///   the only inputs are those kernels receive: the batch input and the
///   target by pointer, the step and the seed by value;
/// - per kind: GEMM M/N/K, batching and leading dimensions consistent with the
///   matmul's operand shapes and buffers (dX reads a transposed copy made by an
///   earlier transpose kernel of the right shape); elementwise ops match the
///   kernel's iteration space; ordered reductions run on one task;
/// - Planned only: scratch buffers 64-byte aligned inside [0, scratch_bytes),
///   no two with overlapping lifetimes overlapping in memory, persistent
///   buffers and inputs never placed in the scratch region.
std::vector<std::string> verifyKernelGraph(const KernelGraph& kg, KernelStage stage);

/// verifyKernelGraph, throwing std::logic_error("invalid kernel graph of @g
/// after <after>:" + the problems, one per line) when there are any. The
/// compile pipeline calls it after buffer planning.
void checkKernelGraph(const KernelGraph& kg, KernelStage stage, const char* after);

} // namespace descent
