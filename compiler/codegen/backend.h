// The backend's interface: what the executor (runtime/executor.cpp: arena,
// threads; no LLVM) asks of the LLVM side (IR emission, optimization, JIT).
// Declares no LLVM types, so layers above codegen can include it.
#pragma once

#include "compiler/passes/kernel_graph.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace descent {

/// Every kernel has this signature. `arena` is the 64-byte-aligned block holding
/// params, state, outputs and scratch at the offsets baked into the code; x and
/// y are the batch; n <= batch is the runtime row count; the partition is
/// (task, ntasks).
using KernelFn = void (*)(void* arena, const void* x, const void* y, int64_t n, int64_t step,
                          int32_t seed, int32_t task, int32_t ntasks);

/// One graph as the emitter sees it: its schedule with every buffer placed
/// (absolute arena offsets) and the extra constants the program keeps in the arena.
struct BackendGraph {
  const KernelGraph* kg = nullptr;
  std::string prefix;                       ///< symbol prefix ("g0_") so graphs do not clash
  std::map<const Op*, int64_t> lut_offset;  ///< folded u8 normalize -> 256-float table
  /// Update op -> its slot of per-step scalars (compiler/codegen/step_scalars.h).
  std::map<const Op*, int64_t> scalar_offset;
};

/// A compiled set of kernels (one LLJIT session).
class JitSession {
public:
  /// Emits, optimizes and JIT-compiles every kernel of `graphs` (several modules in parallel).
  /// `cpu` "" means the host. Returns nullptr and sets `error` on failure.
  static std::unique_ptr<JitSession> create(const std::vector<BackendGraph>& graphs,
                                            const std::string& cpu, std::string& error);
  virtual ~JitSession() = default;
  /// fns[g][k]: kernel k of graph g.
  virtual const std::vector<std::vector<KernelFn>>& kernels() const = 0;
  virtual std::string llvmIR() const = 0;
  virtual std::string assembly() const = 0;
  virtual int vectorWidth() const = 0;  ///< floats per vector register used (16 or 8)
  virtual std::string cpuName() const = 0;
  /// Where compile time went: emission, optimization, machine code (wall ms).
  virtual std::string timingText() const = 0;
};

/// Ahead-of-time compilation (`descent compile`): the same kernels the JIT
/// compiles for `graphs` (same emission, optimization pipeline and target
/// options), emitted into one relocatable ELF object (its symbols are each
/// graph's prefix + kernel name). `cpu` "" means the host. Returns the
/// object's bytes; empty and `error` set on failure.
std::string emitObjectFile(const std::vector<BackendGraph>& graphs, const std::string& cpu,
                           std::string& error);

/// A GNU ar archive (with a symbol table) holding `members` (name, object
/// bytes), as bytes; empty and `error` set on failure.
std::string staticLibrary(const std::vector<std::pair<std::string, std::string>>& members,
                          std::string& error);

} // namespace descent
