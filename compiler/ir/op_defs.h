// Traits of the ops (the traits column of ops.def) and their lookup. The fuser
// decides kernels from these; the interpreter and the emitter evaluate the
// math column (op_math.h). No LLVM here.
#pragma once

#include "compiler/ir/graph.h"

namespace descent {

/// What the fuser needs to know about an op (see ops.def for each meaning).
namespace optrait {
enum : unsigned {
  None = 0,
  Elementwise = 1u << 0,
  Epilogue = 1u << 1,
  RowWise = 1u << 2,
  Reduction = 1u << 3,
  Contraction = 1u << 4,
  Update = 1u << 5,
  Recompute = 1u << 6,
  FoldIntoLoads = 1u << 7,
  LossNorm = 1u << 8,    ///< a loss gradient: its math reads x[2] = 1/count (mean) or 1 (sum)
  View = 1u << 9,        ///< same elements in another shape: aliases operand 0's buffer, no kernel
  InterpOnly = 1u << 10, ///< no JIT kernel yet: only the interpreter runs it (no op today)
  Window = 1u << 11,     ///< conv2d, pooling and their gradients: one loop-nest kernel each
};
} // namespace optrait

/// The traits column of `kind`'s ops.def row.
unsigned opTraits(OpKind kind);
inline bool hasTrait(OpKind kind, unsigned trait) {
  return (opTraits(kind) & trait) != 0;
}

} // namespace descent
