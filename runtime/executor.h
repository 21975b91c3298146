// The executor: compiles one or more graphs (train step, eval step) of one
// model through the LLVM backend (compiler/codegen) into JIT kernels sharing
// params and optimizer state in one arena, and runs them on a thread pool.
// No LLVM types here.
#pragma once

#include "compiler/codegen/backend.h"
#include "compiler/ir/graph.h"
#include "compiler/passes/allreduce.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace descent {

/// Target and threading of a Program.
struct JitOptions {
  std::string cpu; ///< LLVM CPU name ("x86-64-v3", "sapphirerapids"); "" = the host
  int threads = 0; ///< threads per step including the caller; 0 = all cores
  /// Cut every kernel into `threads` pieces, not only the big GEMMs (tests use
  /// it to exercise every kernel's partitioning; slower on small kernels).
  bool split_all = false;
  /// Store the weights that qualify in 64-column panels
  /// (compiler/passes/weight_panels.h); param() still returns the IR
  /// layout. Off for `descent compile`, whose library exposes the arena.
  bool weight_panels = true;
  /// Let GEMMs compute C in columns where it pays (FuseOptions::gemm_columns):
  /// the same bits either way, which a test checks with it off.
  bool gemm_columns = true;
};

/// Time spent in one kernel, averaged over profile() iterations.
struct KernelTiming {
  std::string name;    ///< kernel name, e.g. k7_linear2_dW_sgd_line10
  double micros = 0;   ///< mean wall time per run, including its barrier
  double flops = 0;    ///< floating-point operations per run (GEMMs: 2*M*N*K; convolutions: 2*B*O*Ho*Wo*C/groups*kh*kw; others 0)
  /// Per thread (0 = the caller): mean time inside this kernel's pieces, and
  /// mean time waiting at it (the caller: for the other threads' pieces after
  /// its own; a worker: for the kernels before it, which includes the
  /// one-piece kernels the caller runs alone).
  std::vector<double> thread_run_us, thread_wait_us;
};

/// The schedule run() executes, for an ahead-of-time driver (`descent
/// compile`, runtime/aot/) that must run the same kernels the same way.
struct Schedule {
  int64_t arena_bytes = 0, persistent_bytes = 0;
  struct Tensor {
    std::string name; ///< external name ("0.weight", "0.weight.exp_avg")
    int64_t offset = 0, numel = 0;
    bool param = false; ///< false: optimizer state
  };
  std::vector<Tensor> tensors; ///< params and state, in arena order
  struct Entry {
    const KernelGraph* kg = nullptr;
    BackendGraph bg; ///< the kernels with their arena offsets, LUTs and scalar slots
    /// Per kernel: the pieces it is cut into per thread when the step runs
    /// on more than one thread (0: one piece, run by the caller).
    std::vector<int> pieces_per_thread;
    /// Update ops and their per-step scalar slots (compiler/codegen/step_scalars.h).
    std::vector<std::pair<const Op*, int64_t>> updates;
  };
  std::vector<Entry> entries;
};

/// The kind (DESCENT_UPDATE_*, compiler/codegen/step_scalars.h) of an update
/// op's per-step scalars.
int updateKind(const Op& op);
/// Its descent_step_scalars beta2 argument: Adam's beta2, Adagrad's lr_decay.
double updateBeta2(const Op& op);

/// One JIT session holding the entry points compiled from several graphs.
class Program {
public:
  /// Compiles `graphs` (e.g. the train graph and the eval graph of the same
  /// model). Params and state are shared by external name ("0.weight"),
  /// stored once, 64-byte aligned, in IR layout ([in,out]). Returns nullptr
  /// and sets `error` when a graph cannot be compiled.
  static std::unique_ptr<Program> compile(const std::vector<const Graph*>& graphs,
                                          const JitOptions& options, std::string& error);
  ~Program();
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  /// The param with this state_dict name (IR layout), or nullptr. Uninitialised
  /// (zero) until the caller fills it. For a weight the kernels keep in
  /// panels (JitOptions::weight_panels) it is a row-major copy: what is
  /// written through it reaches the kernels at the next run, and a run's
  /// result is read by calling param() again after it.
  float* param(const std::string& external_name);
  /// Number of floats of a param or state tensor (0 when unknown).
  int64_t paramSize(const std::string& external_name) const;
  /// Optimizer state ("0.weight.momentum_buffer"), zero-initialised; nullptr when absent.
  float* state(const std::string& external_name);
  /// External names of all params, in first-graph order.
  std::vector<std::string> paramNames() const;

  /// Runs entry `index` (order of `graphs`) on n rows, 1 <= n <= its batch.
  /// x is uint8 or float as the graph's %x dtype; y is int32 labels or float
  /// targets [n, N]; step is 1-based; seed feeds Dropout. first_row:
  /// the rows' position in the global batch (a data-parallel shard), which
  /// keys the Dropout masks. Read outputs after.
  /// `alongside` (optional): work run once during the step by a worker
  /// that would otherwise wait while the caller runs one-piece kernels, or
  /// by the caller at the end; finished when run returns (Engine::
  /// runAlongsideNextStep).
  void run(size_t index, const void* x, const void* y, int64_t n, int64_t step, int32_t seed = 0,
           int64_t first_row = 0, const std::function<void()>* alongside = nullptr);
  /// What the allreduce kernels of a data-parallel train step do (they run
  /// on the calling thread, between the kernels around them); a graph with
  /// allreduce ops cannot run without one.
  void setReducer(GradientReducer reducer);
  /// The learning rate, and the momentum (SGD) or beta1 (Adam, AdamW), of the
  /// next runs: per-step scalars, so changing them does not recompile. They
  /// start as the update ops' `lr` and `momentum`/`beta1` attributes.
  void setHyper(double lr, double momentum);
  double lr() const;
  double momentum() const;
  /// A scalar output of the last run of entry `index` ("loss", "correct"); NaN when absent.
  float outputScalar(size_t index, const std::string& name) const;
  /// A tensor output of the last run ("output": [n, classes]); nullptr when absent.
  const float* outputData(size_t index, const std::string& name) const;
  /// The static batch entry `index` was built for (the maximum n).
  int64_t batch(size_t index) const;

  /// The arena layout and kernel schedule (see Schedule).
  Schedule schedule() const;

  /// `descent ir --stage kernels`: every kernel, its fused ops, buffers and refused fusions.
  std::string kernelsText() const;
  /// `--stage llvm`: the optimized LLVM IR of all kernels.
  std::string llvmIR() const;
  /// `--stage asm`: the machine code, emitted with the JIT's target options.
  std::string assembly() const;
  /// Wall time of compile() (fusion, planning, emission, optimization, codegen), in ms.
  double compileMillis() const;
  /// Floats per vector register the kernels use (16 = AVX-512, 8 = AVX2).
  int vectorWidth() const;
  /// Threads per step.
  int threads() const;

  /// Per-kernel timing of entry `index` over `iterations` runs (for `descent
  /// bench`). Params and state are restored afterwards, so profiling does not train.
  /// enter_us (optional) receives, per thread, the mean delay from the start
  /// of a run to the thread entering it (a worker's wake-up latency).
  std::vector<KernelTiming> profile(size_t index, const void* x, const void* y, int64_t n,
                                    int iterations, std::vector<double>* enter_us = nullptr);

  struct Impl;

private:
  explicit Program(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

} // namespace descent
