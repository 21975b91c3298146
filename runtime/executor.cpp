// The executor (class Program): arena layout (params, state, outputs, tables,
// scratch), the JIT session from the backend (compiler/codegen/backend.h),
// and running a step's kernels on the thread pool (chunks claimed
// dynamically, a wait for the chunks in flight between kernels). It lives in
// runtime/ because it owns threads and memory; the backend below it only
// emits and links code. No LLVM headers here.
#include "runtime/executor.h"

#include "compiler/codegen/backend.h"
#include "compiler/codegen/step_scalars.h"
#include "compiler/ir/op_defs.h"
#include "compiler/passes/fuse.h"
#include "compiler/passes/kernel_verifier.h"
#include "compiler/passes/plan_buffers.h"
#include "compiler/passes/weight_panels.h"
#include "runtime/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <map>
#include <stdexcept>

namespace descent {

namespace {

int64_t align64(int64_t v) { return (v + 63) / 64 * 64; }

/// GEMMs below this many FLOPs (at the static batch) run as one piece on the
/// calling thread. Measured with the first executor (every thread waited at
/// every kernel), 1 MFLOP GEMMs ran 1.2-3x slower split; with the one-sided
/// waits of the present executor the notebook model's three 1 MFLOP GEMMs
/// (layer 1 forward, dX, dW) run 1.6-1.8x faster on 2 threads (2026-11-29,
/// docs/performance.md, "Two threads").
constexpr double kSplitFlops = 1e6;

/// Kernels without FLOPs (element-wise maps, pooling and its gradient) are
/// split from this many elements of their largest operand or result on: the
/// notebook model's [64,128] maps (8 K elements, ~1 us) lose more to the
/// cross-core wait and the operands moving between cores than they gain,
/// while LeNet-5's [64,6,28,28] pooling gradient and ReLU gradient (301 K
/// elements, 120-250 us on one thread) ran alone on the caller while the
/// other thread waited (docs/performance.md, "CNNs"). From 64 K down to
/// 32 K: LeNet-5's input normalize ([64,1,28,28], 50 K elements, 12.5 us
/// alone on the caller) splits too, 831 -> 819 us per 2-thread step
/// (2026-11-29, fourth session; mnist_cnn unchanged, the notebook model has
/// no kernel of this size).
constexpr double kSplitElements = 32768;

/// A transposed copy of W for dX (a Transpose kernel) is split over the
/// threads from this many elements on: the dW kernel before it updated W in
/// halves, one per thread, and the copy splits W the same way (by rows or
/// by columns, splitsRows), so each thread reads the lines it wrote instead
/// of the caller pulling the other core's half (LeNet-5's linear7 [400,120]:
/// 10.6 us on one thread, 25 us on the caller of two). The notebook model's
/// copies ([128,64] and [64,10]) stay on the caller.
constexpr double kSplitTransposeElements = 32768;

/// From this many FLOPs on a split kernel is cut into kPiecesPerThread pieces
/// per thread; below it into one piece per thread (a piece of a 1 MFLOP GEMM
/// is already only ~5 us of work).
constexpr double kManyPiecesFlops = 4e6;

/// Pieces per thread of a big split kernel. More pieces than threads let a
/// thread that is on time take over part of the share of one that entered
/// the step late or lost its vCPU to the host for a moment, instead of
/// waiting for all of it (see docs/performance.md, "Two threads").
constexpr int kPiecesPerThread = 4;

/// FLOPs of one run of kernel `k` on `n` rows: a GEMM's 2·M·N·K, a
/// convolution's (or gradient's) 2·B·O·Ho·Wo·(C/groups)·kh·kw; 0 for others.
double kernelFlops(const Kernel& k, int64_t n) {
  if (k.kind == KernelKind::Gemm)
    return 2.0 * double(k.gemm.m_batched ? n : k.gemm.M) * double(k.gemm.N) *
           double(k.gemm.k_batched ? n : k.gemm.K);
  const Op* op = anchorOp(k);
  if (k.kind != KernelKind::Window || !op ||
      (op->kind != OpKind::Conv2d && op->kind != OpKind::Conv2dInputGrad &&
       op->kind != OpKind::Conv2dWeightGrad))
    return 0;
  const Value* w = op->kind == OpKind::Conv2dWeightGrad ? op->result : op->operands[1];
  const Value* y = op->kind == OpKind::Conv2d ? op->result : op->operands[op->kind == OpKind::Conv2dInputGrad ? 0 : 1];
  const Shape &ws = w->type.shape, &ys = y->type.shape;
  return 2.0 * double(n) * double(ys[1] * ys[2] * ys[3]) * double(ws[1] * ws[2] * ws[3]);
}

/// Elements of kernel `k`'s first op's largest operand or result (at the
/// static batch): the size of an element-wise or pooling kernel's work.
double kernelElements(const Kernel& k) {
  if (k.kind == KernelKind::ColumnSum) return double(k.rows * k.cols); // what it sums
  const Op* op = anchorOp(k);
  if (!op) return 0;
  double most = op->result ? double(op->result->type.numel()) : 0;
  for (const Value* v : op->operands)
    most = std::max(most, double(v->type.numel()));
  return most;
}

/// Pieces kernel `k` is cut into on `threads` threads.
int chunksFor(const Kernel& k, int threads, bool split_all, int64_t batch) {
  if (k.kind == KernelKind::AllReduce) return 1; // the host's, on the calling thread
  if (threads > 1 && split_all) return threads;
  if (threads <= 1 || !k.parallel) return 1;
  const double flops = kernelFlops(k, batch);
  // A GEMM whose B (its weights, K x N) is streamed from beyond L2 every
  // step (kStreamedBytes; mnist_cnn's Linear(9216, 128): 4.7 MB), where each
  // piece packs the K x 64 panels of the column tiles it touches, is cut
  // into no more pieces than it has panels, so no panel is read twice: in 8
  // pieces that layer's 2 panels were read 4 times each and its forward
  // took 1415 us per 2-thread step; in 2 pieces, 948 us.
  if (k.kind == KernelKind::Gemm && !k.gemm.k_batched && 4 * k.gemm.K * k.gemm.N > kStreamedBytes &&
      flops >= kSplitFlops)
    return threads * int(std::clamp<int64_t>(k.gemm.N / 64 / threads, 1, kPiecesPerThread));
  if (flops >= kManyPiecesFlops) return threads * kPiecesPerThread;
  if (flops >= kSplitFlops) return threads;
  if (k.kind == KernelKind::Transpose)
    return double(k.t_rows * k.t_cols) >= kSplitTransposeElements ? threads : 1;
  // A bias gradient over two or more 64-column tiles: one piece per thread,
  // each summing the columns its dX pieces just wrote (the GEMM's column
  // tiles and the column sum's vectors split the same way). The notebook's
  // layer-0 db on the caller alone read the worker's half of dY from the
  // other core: 1.28 -> 0.63 us per 2-thread step.
  if (k.kind == KernelKind::ColumnSum && k.partials < 0 && k.cols >= 128 && k.cols % 64 == 0)
    return threads;
  // (a weight gradient's chunk sum; the narrower bias gradients' column sums
  // keep their one piece)
  const bool elementwise = k.kind == KernelKind::Map ||
                           (k.kind == KernelKind::ColumnSum && k.partials >= 0) ||
                           (k.kind == KernelKind::Window && flops == 0);
  return elementwise && kernelElements(k) >= kSplitElements ? threads * kPiecesPerThread : 1;
}

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};

} // namespace

/// descent_step_scalars' beta2 argument: Adam's beta2, Adagrad's lr_decay.
double updateBeta2(const Op& op) {
  return op.kind == OpKind::AdagradUpdate ? op.attrs.getDouble("lr_decay", 0.0)
                                          : op.attrs.getDouble("beta2", 0.999);
}

int updateKind(const Op& op) {
  if (op.kind == OpKind::SgdUpdate) return DESCENT_UPDATE_SGD;
  if (op.kind == OpKind::RmspropUpdate) return DESCENT_UPDATE_RMSPROP;
  if (op.kind == OpKind::AdagradUpdate) return DESCENT_UPDATE_ADAGRAD;
  if (op.kind == OpKind::AdadeltaUpdate) return DESCENT_UPDATE_ADADELTA;
  return op.attrs.getBool("decoupled") ? DESCENT_UPDATE_ADAMW : DESCENT_UPDATE_ADAM;
}

struct Program::Impl {
  struct Entry {
    std::unique_ptr<Graph> owned; ///< a clone: the caller's graphs may go away
    const Graph* graph = nullptr;
    std::unique_ptr<KernelGraph> kg;
    BackendGraph bg;
    std::vector<std::pair<const Op*, int64_t>> updates; ///< update ops and their scalar slots
    std::vector<int> chunks; ///< per kernel: pieces it is cut into (1 or the thread count)
    /// Per kernel: for an allreduce kernel, the byte offsets of its gradient
    /// and of the sum, the float count and its slot (the reducer's number
    /// of the reduction: the step's allreduce kernels in order); {-1, -1, 0,
    /// -1} for the others.
    struct Reduce {
      int64_t src = -1, dst = -1, count = 0;
      int slot = -1;
    };
    std::vector<Reduce> reduces;
    /// Per kernel, plus one for the end of the step: the reductions (slot,
    /// sum offset) to finish before it, at the first kernel that reads the
    /// sum. Between an allreduce kernel, which starts its reduction, and
    /// that kernel, the reduction runs while the kernels in between do.
    std::vector<std::vector<std::pair<int, int64_t>>> finish_before;
    /// Per kernel: synchronized BatchNorm's host computation (a
    /// batch_norm_sync_* kernel), given the arena and the shard's rows;
    /// empty for the others.
    std::vector<std::function<void(char* arena, int64_t rows)>> host;
  };
  GradientReducer reducer; ///< the allreduce kernels' reduction (setReducer)
  std::vector<Entry> entries;
  std::map<std::string, int64_t> param_offset, param_size; ///< params and state by external name
  std::vector<std::string> param_names;
  int64_t persistent_bytes = 0, arena_bytes = 0;
  std::unique_ptr<char, AlignedFree> arena;
  std::unique_ptr<JitSession> jit;
  std::unique_ptr<ThreadPool> pool;
  /// Per kernel of a run: one claim flag per chunk and a count of finished
  /// chunks (reset before every run; see runKernels).
  std::vector<PaddedAtomic> claims, done;
  std::atomic<int> sleepers{0};
  double compile_ms = 0;

  /// A param or state the kernels keep in 64-column panels (Buffer::panels):
  /// param() hands out a row-major copy and marks it dirty; the next run
  /// first writes the dirty copies back into the arena. Callers therefore
  /// call param() again after a run to read what the run did (they all do).
  struct Panelled {
    int64_t offset = 0, rows = 0, cols = 0;
    std::vector<float> rowMajor;
    bool dirty = false;
  };
  std::map<std::string, Panelled> panelled;

  float* panelledCopy(Panelled& p) {
    const float* a = reinterpret_cast<const float*>(arena.get() + p.offset);
    if (!p.dirty)
      for (int64_t r = 0; r < p.rows; ++r)
        for (int64_t c = 0; c < p.cols; ++c)
          p.rowMajor[size_t(r * p.cols + c)] = a[panelOffset(p.rows, r, c)];
    p.dirty = true;
    return p.rowMajor.data();
  }

  void writeBackPanelled() {
    for (auto& [name, p] : panelled) {
      if (!p.dirty) continue;
      float* a = reinterpret_cast<float*>(arena.get() + p.offset);
      for (int64_t r = 0; r < p.rows; ++r)
        for (int64_t c = 0; c < p.cols; ++c)
          a[panelOffset(p.rows, r, c)] = p.rowMajor[size_t(r * p.cols + c)];
      p.dirty = false;
    }
  }

  double lr = 0, momentum = 0; ///< setHyper's values (from the update ops' attributes at first)

  void writeStepScalars(Entry& e, int64_t step) {
    for (auto [op, off] : e.updates)
      descent_step_scalars(updateKind(*op), lr, momentum, updateBeta2(*op),
                           op->attrs.getDouble("weight_decay", 0.0), step,
                           reinterpret_cast<float*>(arena.get() + off));
  }

  /// Per-thread timings of profile(): time inside each kernel's pieces, time
  /// waiting for the other thread(s) at each kernel, and when each thread
  /// entered the step (sums over the profiled runs, in microseconds).
  struct Profile {
    std::vector<std::vector<double>> run, wait; ///< [thread][kernel]
    std::vector<double> enter;                  ///< [thread]
    std::vector<double> total;                  ///< [kernel], the caller's wall time per kernel
  };

  void runKernels(size_t index, const void* x, const void* y, int64_t n, int64_t step, int32_t seed,
                  Profile* prof, int64_t first_row = 0,
                  const std::function<void()>* alongside = nullptr) {
    Entry& e = entries[index];
    writeBackPanelled();
    writeStepScalars(e, step);
    // The kernels' n: the shard's first row in the high 32 bits (Dropout
    // keys its masks by the global row; emit.cpp).
    n |= first_row << 32;
    const auto& fns = jit->kernels()[index];
    void* base = arena.get();
    // Kernel k is cut into chunks[k] pieces, its partition (task, ntasks) being
    // (piece, chunks[k]), whoever runs them: results do not depend on the
    // partition, so they are bitwise the same for any thread count. A thread
    // runs its own pieces first (the same data as in the previous kernel:
    // cache affinity), then any unclaimed one. A worker the OS has descheduled
    // claims nothing and the caller goes on alone.
    //
    // Synchronization is one-sided (measured, docs/performance.md): only the
    // caller walks every kernel. One-piece kernels are the caller's alone; a
    // worker skips them and, before a split kernel k, waits only until kernel
    // k-1 is complete (which, since the caller completes kernels in order,
    // implies every earlier one), and the caller waits for the pieces of a
    // split kernel before the next kernel. The worker does not wait at the
    // end of a kernel, so it is never caught on a barrier it does not need,
    // and the last split kernel lets it leave the step early.
    const int nt = pool->size();
    const size_t nk = fns.size();
    const std::vector<int>& chunks = e.chunks;
    const size_t maxc = size_t(nt) * kPiecesPerThread; // claim slots per kernel
    if (claims.size() < nk * maxc) claims = std::vector<PaddedAtomic>(nk * maxc);
    if (done.size() < nk) done = std::vector<PaddedAtomic>(nk);
    for (size_t i = 0; i < nk * maxc; ++i) claims[i].v.store(0, std::memory_order_relaxed);
    for (size_t k = 0; k < nk; ++k) done[k].v.store(0, std::memory_order_relaxed);
    using Clock = std::chrono::steady_clock;
    const Clock::time_point t_start = prof ? Clock::now() : Clock::time_point{};
    auto us = [](Clock::time_point a, Clock::time_point b) {
      return std::chrono::duration<double, std::micro>(b - a).count();
    };
    // Data-parallel: reductions are started by their allreduce kernels and
    // finished before the kernels that read their sums, on the calling
    // thread (the one that called MPI_Init); the kernels that read a sum run
    // as one piece, on that thread, after the finish. In between, the
    // caller lets the reductions in flight advance before each kernel.
    int in_flight = 0; // the caller's alone
    auto finishBefore = [&](size_t k) {
      for (auto [slot, dst] : e.finish_before[k]) {
        reducer.finish(slot, reinterpret_cast<float*>(arena.get() + dst));
        --in_flight;
      }
    };
    // The work to run alongside (Program::run): taken once, by a worker
    // about to wait while the caller runs one-piece kernels (the notebook
    // model's ~10 us between the layer-1 forward and dX), or else by
    // whichever thread leaves the kernel loop first.
    std::atomic<int> alongside_taken{alongside && *alongside ? 0 : 1};
    auto runAlongside = [&] {
      if (alongside_taken.load(std::memory_order_relaxed) == 0 &&
          alongside_taken.exchange(1, std::memory_order_acq_rel) == 0)
        (*alongside)();
    };
    pool->run([&](int self, int) {
      Clock::time_point t0 = prof ? Clock::now() : Clock::time_point{};
      if (prof) prof->enter[size_t(self)] += us(t_start, t0);
      for (size_t k = 0; k < nk; ++k) {
        const int ck = chunks[k];
        if (self == 0 && in_flight > 0) {
          finishBefore(k);
          if (in_flight > 0 && reducer.progress) reducer.progress();
        }
        if (ck == 1) {
          if (self == 0) {
            if (e.host[k]) {
              e.host[k](arena.get(), n & 0xffffffff);
            } else if (const auto& r = e.reduces[k]; r.src >= 0) {
              if (!reducer) throw std::logic_error("an allreduce kernel ran without a reducer");
              reducer.start(r.slot, reinterpret_cast<const float*>(arena.get() + r.src), r.count);
              ++in_flight;
            } else {
              fns[k](base, x, y, n, step, seed, 0, 1);
            }
            done[k].v.store(1, std::memory_order_release);
            if (nt > 1) wakeWaiters(done[k].v, sleepers);
          }
          if (prof && self == 0) {
            Clock::time_point t1 = Clock::now();
            prof->run[0][k] += us(t0, t1);
            prof->total[k] += us(t0, t1);
            t0 = t1;
          }
          continue;
        }
        if (self != 0 && k > 0) {
          // Everything before kernel k must be complete (see above).
          std::atomic<int>& prev = done[k - 1].v;
          const int want = chunks[k - 1];
          if (want == 1 && prev.load(std::memory_order_acquire) != want) runAlongside();
          spinThenWait(prev, sleepers,
                       [&] { return prev.load(std::memory_order_acquire) == want; });
          if (prof) {
            Clock::time_point t1 = Clock::now();
            prof->wait[size_t(self)][k] += us(t0, t1);
            t0 = t1;
          }
        }
        for (int i = 0; i < ck; ++i) {
          // Thread t's own pieces are [t*ck/nt, (t+1)*ck/nt): the same
          // columns of the same operands every kernel and every step.
          int c = (self * (ck / nt) + i) % ck;
          std::atomic<int>& claim = claims[k * maxc + size_t(c)].v;
          if (claim.load(std::memory_order_relaxed) != 0 ||
              claim.exchange(1, std::memory_order_acq_rel) != 0)
            continue;
          fns[k](base, x, y, n, step, seed, c, ck);
          done[k].v.fetch_add(1, std::memory_order_acq_rel);
          wakeWaiters(done[k].v, sleepers);
        }
        Clock::time_point t1 = prof ? Clock::now() : Clock::time_point{};
        if (prof) prof->run[size_t(self)][k] += us(t0, t1);
        if (self == 0) {
          spinThenWait(done[k].v, sleepers, [&] { return done[k].v.load(std::memory_order_acquire) == ck; });
          if (prof) {
            Clock::time_point t2 = Clock::now();
            prof->wait[0][k] += us(t1, t2);
            t1 = t2;
          }
        }
        if (prof && self == 0) prof->total[k] += us(t0, t1);
        t0 = t1;
      }
      if (self == 0 && in_flight > 0) finishBefore(nk); // not reached: every sum has a reader
      runAlongside();
    });
  }

  const Buffer* outputBuffer(size_t index, const std::string& name) const {
    if (index >= entries.size()) return nullptr;
    const Entry& e = entries[index];
    const Value* v = e.graph->output(name);
    if (!v) return nullptr;
    auto it = e.kg->buffer_of.find(v);
    return it == e.kg->buffer_of.end() ? nullptr : &e.kg->buffers[it->second];
  }
};

Program::Program(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Program::~Program() = default;

std::unique_ptr<Program> Program::compile(const std::vector<const Graph*>& graphs, const JitOptions& options,
                                          std::string& error) {
  auto t0 = std::chrono::steady_clock::now();
  auto impl = std::make_unique<Impl>();
  int64_t top = 0;
  auto place = [&](int64_t bytes) {
    int64_t at = top;
    top += align64(bytes);
    return at;
  };
  // Params and state first: shared by external name across graphs.
  for (const Graph* g : graphs)
    for (const auto* list : {&g->params(), &g->states()})
      for (const Value* v : *list) {
        auto it = impl->param_size.find(v->external_name);
        if (it != impl->param_size.end()) {
          if (it->second != v->type.numel()) {
            error = fmt::format("'{}' has different sizes in two graphs", v->external_name);
            return nullptr;
          }
          continue;
        }
        impl->param_size[v->external_name] = v->type.numel();
        impl->param_offset[v->external_name] = place(v->type.numel() * 4);
        if (v->kind == ValueKind::Param) impl->param_names.push_back(v->external_name);
      }
  int64_t scratch = 0;
  bool hyper_set = false;
  for (size_t gi = 0; gi < graphs.size(); ++gi) {
    Impl::Entry e;
    e.owned = cloneGraph(*graphs[gi]);
    e.graph = e.owned.get();
    e.kg = std::make_unique<KernelGraph>(
        fuseGraph(*e.graph, error, FuseOptions{options.gemm_columns}));
    if (!error.empty()) {
      error = fmt::format("graph @{}: {}", graphs[gi]->name(), error);
      return nullptr;
    }
    if (!e.kg->x) {
      error = fmt::format("graph @{} has no %x input", graphs[gi]->name());
      return nullptr;
    }
    planBuffers(*e.kg);
    checkKernelGraph(*e.kg, KernelStage::Planned, "plan_buffers"); // throws on a compiler bug
    scratch = std::max(scratch, e.kg->scratch_bytes);
    e.bg.kg = e.kg.get();
    e.bg.prefix = fmt::format("g{}_", gi);
    for (const Kernel& k : e.kg->kernels) {
      if (k.kind == KernelKind::Gemm && k.gemm.a_normalize &&
          k.gemm.a_normalize->operands[0]->type.dtype == DType::U8 && !e.bg.lut_offset.count(k.gemm.a_normalize))
        e.bg.lut_offset[k.gemm.a_normalize] = place(256 * 4);
      for (const Op* op : k.ops)
        // Optimizer updates (not BatchNorm's buffer update, which has no hyperparameters).
        if (hasTrait(op->kind, optrait::Update) && !e.bg.scalar_offset.count(op)) {
          int64_t off = place(4 * DESCENT_STEP_SCALARS);
          e.bg.scalar_offset[op] = off;
          e.updates.push_back({op, off});
          if (!hyper_set) {
            impl->lr = op->attrs.getDouble("lr", 0.001);
            impl->momentum = op->kind == OpKind::AdamUpdate ? op->attrs.getDouble("beta1", 0.9)
                                                            : op->attrs.getDouble("momentum", 0.0);
            hyper_set = true;
          }
        }
    }
    impl->entries.push_back(std::move(e));
  }
  // Weights in panels: a name qualifies when it does in every graph that
  // has it (they share its memory).
  if (options.weight_panels) {
    std::map<std::string, bool> fits;
    for (auto& e : impl->entries) {
      chooseWeightPanels(*e.kg);
      for (const Buffer& b : e.kg->buffers)
        if (b.value && (b.value->kind == ValueKind::Param || b.value->kind == ValueKind::State)) {
          auto [it, fresh] = fits.emplace(b.value->external_name, b.panels);
          if (!fresh) it->second = it->second && b.panels;
        }
    }
    for (auto& e : impl->entries)
      for (Buffer& b : e.kg->buffers) {
        if (!b.panels) continue;
        const std::string& name = b.value->external_name;
        b.panels = fits.at(name);
        if (b.panels && !impl->panelled.count(name)) {
          auto [rows, cols] = matrixShape(b.value->type);
          impl->panelled[name] = {impl->param_offset.at(name), rows, cols,
                                  std::vector<float>(size_t(rows * cols)), false};
        }
      }
  }
  // Graph outputs (persistent per graph), then the shared scratch region.
  for (auto& e : impl->entries)
    for (Buffer& b : e.kg->buffers) {
      if (b.input) continue;
      if (b.value && (b.value->kind == ValueKind::Param || b.value->kind == ValueKind::State))
        b.offset = impl->param_offset.at(b.value->external_name);
      else if (b.persistent)
        b.offset = place(b.bytes);
    }
  impl->persistent_bytes = top;
  int64_t scratch_base = place(scratch);
  for (auto& e : impl->entries)
    for (Buffer& b : e.kg->buffers)
      if (!b.input && !b.persistent && b.first_use >= 0) b.offset += scratch_base;
  impl->arena_bytes = align64(std::max<int64_t>(top, 64));
  impl->arena.reset(static_cast<char*>(std::aligned_alloc(64, size_t(impl->arena_bytes))));
  if (!impl->arena) {
    error = fmt::format("cannot allocate {} MiB for the tensors of a batch of {} (use a smaller --batch)",
                        impl->arena_bytes >> 20, graphs.front()->inputs().front()->type.shape[0]);
    return nullptr;
  }
  std::memset(impl->arena.get(), 0, size_t(impl->arena_bytes));
  // The normalize tables: (float(v)/divisor - mean)/std in fp32, the same
  // operations PyTorch's ToTensor + Normalize perform, so values are bit-exact.
  for (auto& e : impl->entries)
    for (auto [op, off] : e.bg.lut_offset) {
      float* lut = reinterpret_cast<float*>(impl->arena.get() + off);
      float div = float(op->attrs.getDouble("divisor", 1.0)), mean = float(op->attrs.getDouble("mean", 0.0));
      float sd = float(op->attrs.getDouble("std", 1.0));
      for (int v = 0; v < 256; ++v) lut[v] = (float(v) / div - mean) / sd;
    }
  std::vector<BackendGraph> bgs;
  for (auto& e : impl->entries) bgs.push_back(e.bg);
  impl->jit = JitSession::create(bgs, options.cpu, error);
  if (!impl->jit) return nullptr;
  impl->pool = std::make_unique<ThreadPool>(options.threads);
  for (auto& e : impl->entries) {
    const auto& ks = e.kg->kernels;
    e.finish_before.assign(ks.size() + 1, {});
    int slots = 0;
    for (size_t ki = 0; ki < ks.size(); ++ki) {
      const Kernel& k = ks[ki];
      e.chunks.push_back(chunksFor(k, impl->pool->size(), options.split_all, e.kg->batch));
      Impl::Entry::Reduce r;
      e.host.emplace_back();
      // A value's offset in the arena (a view's: its root's).
      auto at = [&kg = *e.kg](const Value* v) {
        return kg.buffers[size_t(kg.buffer_of.at(viewRoot(v)))].offset;
      };
      if (k.kind == KernelKind::AllReduce && k.ops.front()->kind != OpKind::AllReduce) {
        // Synchronized BatchNorm: [B,C,S] operands, B the run's rows.
        const Op* op = k.ops.front();
        std::vector<int64_t> in;
        for (const Value* v : op->operands)
          in.push_back(at(v));
        const int64_t out = at(op->result);
        const Shape& xs = op->operands[op->kind == OpKind::BatchNormSyncStats ? 0 : 1]->type.shape;
        const int64_t C = xs[1];
        int64_t S = 1;
        for (size_t d = 2; d < xs.size(); ++d)
          S *= xs[d];
        const double eps = op->attrs.getDouble("eps", 1e-5);
        const bool stats = op->kind == OpKind::BatchNormSyncStats;
        Impl* self = impl.get();
        e.host.back() = [self, in, out, C, S, eps, stats](char* a, int64_t rows) {
          if (!self->reducer.sum_ranks)
            throw std::logic_error("a batch_norm_sync kernel ran without a reducer");
          auto f = [a](int64_t off) { return reinterpret_cast<float*>(a + off); };
          if (stats)
            syncBatchNormStats<float>(f(in[0]), rows, C, S, eps, self->reducer.sum_ranks, f(out));
          else
            syncBatchNormGrad<float>(f(in[0]), f(in[1]), f(in[2]),
                                     in.size() > 3 ? f(in[3]) : nullptr, rows, C, S,
                                     self->reducer.sum_ranks, f(out));
        };
      } else if (k.kind == KernelKind::AllReduce) {
        const Op* op = k.ops.front();
        r.src = at(op->operands[0]);
        r.dst = at(op->result);
        r.count = op->result->type.numel();
        r.slot = slots++;
        size_t reader = ki + 1;
        auto reads = [&](const Kernel& kk) {
          for (const Op* o : kk.ops)
            for (const Value* v : o->operands)
              if (viewRoot(v) == op->result) return true;
          return false;
        };
        while (reader < ks.size() && !reads(ks[reader]))
          ++reader;
        e.finish_before[reader].push_back({r.slot, r.dst});
      }
      e.reduces.push_back(r);
    }
    // A kernel reading a sum runs after its finish, on the calling thread.
    for (size_t ki = 0; ki < ks.size(); ++ki)
      if (!e.finish_before[ki].empty()) e.chunks[ki] = 1;
  }
  impl->compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return std::unique_ptr<Program>(new Program(std::move(impl)));
}

Schedule Program::schedule() const {
  Schedule s;
  s.arena_bytes = impl_->arena_bytes;
  s.persistent_bytes = impl_->persistent_bytes;
  for (const auto& [name, off] : impl_->param_offset) {
    bool is_param = std::find(impl_->param_names.begin(), impl_->param_names.end(), name) !=
                    impl_->param_names.end();
    s.tensors.push_back({name, off, impl_->param_size.at(name), is_param});
  }
  std::sort(s.tensors.begin(), s.tensors.end(),
            [](const Schedule::Tensor& a, const Schedule::Tensor& b) { return a.offset < b.offset; });
  for (const auto& e : impl_->entries) {
    Schedule::Entry se;
    se.kg = e.kg.get();
    se.bg = e.bg;
    se.updates = e.updates;
    for (const Kernel& k : e.kg->kernels) se.pieces_per_thread.push_back(chunksFor(k, 2, false, e.kg->batch) / 2);
    s.entries.push_back(std::move(se));
  }
  return s;
}

float* Program::param(const std::string& name) {
  if (auto p = impl_->panelled.find(name); p != impl_->panelled.end())
    return impl_->panelledCopy(p->second);
  auto it = impl_->param_offset.find(name);
  return it == impl_->param_offset.end() ? nullptr : reinterpret_cast<float*>(impl_->arena.get() + it->second);
}

int64_t Program::paramSize(const std::string& name) const {
  auto it = impl_->param_size.find(name);
  return it == impl_->param_size.end() ? 0 : it->second;
}

float* Program::state(const std::string& name) { return param(name); }

std::vector<std::string> Program::paramNames() const { return impl_->param_names; }

void Program::run(size_t index, const void* x, const void* y, int64_t n, int64_t step, int32_t seed,
                  int64_t first_row, const std::function<void()>* alongside) {
  impl_->runKernels(index, x, y, n, step, seed, nullptr, first_row, alongside);
}

void Program::setReducer(GradientReducer reducer) { impl_->reducer = std::move(reducer); }

void Program::setHyper(double lr, double momentum) {
  impl_->lr = lr;
  impl_->momentum = momentum;
}

double Program::lr() const { return impl_->lr; }

double Program::momentum() const { return impl_->momentum; }

float Program::outputScalar(size_t index, const std::string& name) const {
  const Buffer* b = impl_->outputBuffer(index, name);
  if (!b || b->offset < 0) return NAN;
  return *reinterpret_cast<const float*>(impl_->arena.get() + b->offset);
}

const float* Program::outputData(size_t index, const std::string& name) const {
  const Buffer* b = impl_->outputBuffer(index, name);
  if (!b || b->offset < 0) return nullptr;
  return reinterpret_cast<const float*>(impl_->arena.get() + b->offset);
}

int64_t Program::batch(size_t index) const { return impl_->entries.at(index).kg->batch; }

std::string Program::kernelsText() const {
  std::string s = fmt::format("// target {}, {}-float vectors, {} thread(s), arena {} bytes\n"
                              "// compiled in {:.1f} ms ({})\n",
                              impl_->jit->cpuName(), impl_->jit->vectorWidth(), impl_->pool->size(),
                              impl_->arena_bytes, impl_->compile_ms, impl_->jit->timingText());
  for (const auto& e : impl_->entries) s += printKernelGraph(*e.kg);
  return s;
}

std::string Program::llvmIR() const { return impl_->jit->llvmIR(); }
std::string Program::assembly() const { return impl_->jit->assembly(); }
double Program::compileMillis() const { return impl_->compile_ms; }
int Program::vectorWidth() const { return impl_->jit->vectorWidth(); }
int Program::threads() const { return impl_->pool->size(); }

std::vector<KernelTiming> Program::profile(size_t index, const void* x, const void* y, int64_t n,
                                           int iterations, std::vector<double>* enter_us) {
  impl_->writeBackPanelled(); // before the snapshot restored below
  std::vector<char> saved(impl_->arena.get(), impl_->arena.get() + impl_->persistent_bytes);
  const KernelGraph& kg = *impl_->entries.at(index).kg;
  const size_t nk = kg.kernels.size(), nt = size_t(impl_->pool->size());
  Impl::Profile p;
  p.run.assign(nt, std::vector<double>(nk, 0.0));
  p.wait.assign(nt, std::vector<double>(nk, 0.0));
  p.enter.assign(nt, 0.0);
  p.total.assign(nk, 0.0);
  for (int i = 0; i < iterations; ++i)
    impl_->runKernels(index, x, y, n, 1, 0, &p);
  std::memcpy(impl_->arena.get(), saved.data(), saved.size());
  const double per = iterations > 0 ? 1.0 / iterations : 0;
  if (enter_us) {
    enter_us->clear();
    for (double v : p.enter)
      enter_us->push_back(v * per);
  }
  std::vector<KernelTiming> out;
  for (size_t k = 0; k < nk; ++k) {
    const Kernel& ker = kg.kernels[k];
    KernelTiming t;
    t.name = ker.name;
    t.micros = p.total[k] * per;
    for (size_t th = 0; th < nt; ++th) {
      t.thread_run_us.push_back(p.run[th][k] * per);
      t.thread_wait_us.push_back(p.wait[th][k] * per);
    }
    t.flops = kernelFlops(ker, n);
    out.push_back(t);
  }
  return out;
}

} // namespace descent
