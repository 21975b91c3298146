// Internal: LLVM IR emission of a kernel schedule (compiler/codegen only).
// Only forward declarations of LLVM types, so including it costs nothing.
#pragma once

#include "compiler/codegen/backend.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace llvm {
class LLVMContext;
class Module;
} // namespace llvm

namespace descent {

/// A kernel of a graph list: (graph index, kernel index).
using KernelRef = std::pair<size_t, size_t>;

/// Emits one function per kernel, named prefix + kernel name. `width` is the
/// number of floats per vector (16: AVX-512, 8: AVX2); `cpu` and `features`
/// are put on every function so the optimizer and codegen agree. `only`, when
/// non-empty, restricts the module to those kernels (the JIT splits the
/// kernels over several modules that are optimized in parallel).
std::unique_ptr<llvm::Module> emitKernels(llvm::LLVMContext& ctx, const std::vector<BackendGraph>& graphs,
                                          int width, const std::string& cpu, const std::string& features,
                                          const std::vector<KernelRef>& only = {});

} // namespace descent
