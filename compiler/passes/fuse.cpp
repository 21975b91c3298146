// Fusion and scheduling of a graph into kernels (see fuse.h). One greedy walk
// over the ops in program order: an anchor op (matmul, row op, reduction, ...)
// opens a kernel and the elementwise ops that consume its result are pulled
// into its epilogue while their other operands are already computed.
#include "compiler/passes/fuse.h"

#include "compiler/ir/op_defs.h"
#include "compiler/ir/op_math.h"

#include <algorithm>
#include <fmt/format.h>
#include <functional>
#include <unordered_map>

namespace descent {

const char* kernelKindName(KernelKind k) {
  switch (k) {
  case KernelKind::Gemm: return "gemm";
  case KernelKind::Map: return "map";
  case KernelKind::ColumnSum: return "column_sum";
  case KernelKind::Transpose: return "transpose";
  case KernelKind::RowSoftmaxLoss: return "row_softmax_loss";
  case KernelKind::RowOp: return "row";
  case KernelKind::Loss: return "loss";
  case KernelKind::GradNorm: return "grad_norm";
  case KernelKind::Window: return "window";
  case KernelKind::AllReduce: return "allreduce";
  }
  return "?";
}

const Value* viewRoot(const Value* v) {
  while (v->def && hasTrait(v->def->kind, optrait::View))
    v = v->def->operands[0];
  return v;
}

std::pair<int64_t, int64_t> matrixShape(const TensorType& t) {
  if (t.rank() >= 2) return {t.shape[0], t.numel() / t.shape[0]};
  if (t.rank() == 1) return {1, t.shape[0]};
  return {1, 1};
}

namespace {

/// The optimizer's short name in kernel names (dW_sgd, sgd_update_...).
const char* updateName(OpKind k) {
  switch (k) {
  case OpKind::SgdUpdate: return "sgd";
  case OpKind::RmspropUpdate: return "rmsprop";
  case OpKind::AdagradUpdate: return "adagrad";
  case OpKind::AdadeltaUpdate: return "adadelta";
  default: return "adam";
  }
}

/// Batch slicing of conv weight gradients (Kernel::partials): up to this
/// many chunks of samples, so that on 2 threads x 4 pieces each piece sums
/// one chunk, the samples whose dy its thread computed (LeNet-5's conv
/// dW kernels took ~150 and ~190 us per thread on 2 threads against 183 and
/// 212 us on one while each task read the whole batch; docs/performance.md).
constexpr int64_t kMaxWeightGradChunks = 8;

/// The partial sums of a sliced weight gradient stay below this (chunks x
/// weights x 4 bytes: mnist_cnn's conv2 576 KB); wider layers use fewer
/// chunks, and none under two.
constexpr int64_t kMaxPartialBytes = 8 << 20;

/// Samples per chunk of conv2d_weight_grad `op` on a batch of `batch`, or 0
/// when it is not sliced (fewer than two chunks).
int64_t weightGradChunkRows(const Op* op, int64_t batch) {
  // (the scalar loop nest of width strides, emit_window.cpp, sums on task 0)
  if (op->attrs.getInt("stride_w", 1) != 1) return 0;
  const int64_t numel = op->result->type.numel();
  const int64_t most = std::min({kMaxWeightGradChunks, batch, kMaxPartialBytes / (4 * numel)});
  if (most < 2) return 0;
  const int64_t rows = (batch + most - 1) / most;
  return sampleChunks(batch, rows) >= 2 ? rows : 0;
}

// What kind of kernel an op needs comes from its traits (compiler/ir/ops.def).
bool isElementwise(OpKind k) { return hasTrait(k, optrait::Elementwise); }
bool isUpdate(OpKind k) { return hasTrait(k, optrait::Update); }

class Fuser {
public:
  Fuser(const Graph& g, KernelGraph& kg, std::string& error, const FuseOptions& options)
      : g_(g), kg_(kg), error_(error), options_(options) {}

  void run() {
    kg_.graph = &g_;
    kg_.x = g_.inputByRole(InputRole::Input);
    kg_.y = g_.inputByRole(InputRole::Target);
    kg_.batch = kg_.x ? kg_.x->type.shape[0] : 0;
    for (size_t i = 0; i < g_.ops().size(); ++i) {
      const Op* op = g_.ops()[i].get();
      pos_[op] = int(i);
      for (size_t k = 0; k < op->operands.size(); ++k) users_[op->operands[k]].push_back(op);
    }
    for (const auto& [name, v] : g_.outputs()) {
      outputs_.insert(v);
      outputs_.insert(viewRoot(v)); // its memory is the output's
    }
    computeBatched();
    for (const auto& op : g_.ops()) {
      if (!error_.empty()) return;
      if (!done_.count(op.get())) schedule(op.get());
    }
    if (!error_.empty()) return;
    finish();
  }

private:
  // --- analysis ---------------------------------------------------------------------------

  void computeBatched() {
    if (kg_.x) kg_.batched.insert(kg_.x);
    if (kg_.y) kg_.batched.insert(kg_.y);
    for (const auto& op : g_.ops()) {
      if (!op->result) continue;
      bool any = false;
      for (const Value* v : op->operands) any |= kg_.batched.count(v) > 0;
      bool b = false;
      switch (op->kind) {
      case OpKind::MatMul:
        b = !op->attrs.getBool("transpose_a") && kg_.batched.count(op->operands[0]);
        if (op->attrs.getBool("transpose_b") && kg_.batched.count(op->operands[1]))
          error_ = fmt::format("matmul %{}: a batch-sized N dimension is not supported by the JIT",
                               op->result->name);
        break;
      case OpKind::SumRows:
      case OpKind::ChannelSum:
      case OpKind::Conv2dWeightGrad: b = false; break; // sums over the batch
      case OpKind::DropoutMask: b = op->attrs.getInt("rows") == kg_.batch; break;
      default: b = any && op->result->type.rank() >= 1 && op->result->type.shape[0] == kg_.batch;
      }
      if (b) kg_.batched.insert(op->result);
    }
  }

  /// True when `v` can be read by a kernel placed now: defined on entry, by a
  /// kernel already scheduled, or recomputed inline (dropout masks).
  bool available(const Value* v) const {
    v = viewRoot(v); // a view is readable once the memory it aliases is
    if (!v->def) return true;
    if (hasTrait(v->def->kind, optrait::Recompute)) return true;
    return done_.count(v->def) && !deferred_.count(v->def);
  }

  /// A readable operand of an epilogue/map op: same matrix shape as the
  /// kernel, a [cols] row vector, labels, or a scalar.
  bool loadableAs(const Value* v, int64_t rows, int64_t cols, bool rows_batched) const {
    auto [r, c] = matrixShape(v->type);
    if (v->type.rank() >= 2)
      return r == rows && c == cols && (kg_.batched.count(v) > 0) == rows_batched;
    if (v->type.rank() == 1) {
      if (v->type.dtype == DType::I32) return rows_batched && r == 1 && c == kg_.batch;
      return c == cols && (rows == 1 || v->type.rank() == 1);
    }
    return v->type.rank() == 0;
  }

  /// A param's layer in kernel names: the kind of the forward op that reads
  /// it and the module's index in the state_dict name ("3.weight" of a
  /// Conv2d gives conv2d3, of a Linear linear3); the param's own name
  /// outside a Sequential.
  std::string layerOf(const Value* param) const {
    std::string ext = param->external_name;
    auto dot = ext.find('.');
    if (dot == std::string::npos) return param->name;
    std::string kind = "linear";
    for (const Op* u : users_.count(param) ? users_.at(param) : std::vector<const Op*>{})
      if (u->kind == OpKind::Conv2d || u->kind == OpKind::BatchNorm) kind = opName(u->kind);
    return kind + ext.substr(0, dot);
  }

  // --- kernels ----------------------------------------------------------------------------

  Kernel& open(KernelKind kind, std::string role, const Op* anchor) {
    Kernel k;
    k.kind = kind;
    int line = anchor && anchor->loc.known() ? anchor->loc.line : 0;
    k.name = fmt::format("k{}_{}{}", kg_.kernels.size(), role, line ? fmt::format("_line{}", line) : "");
    kg_.kernels.push_back(std::move(k));
    return kg_.kernels.back();
  }

  void take(Kernel& k, const Op* op) {
    k.ops.push_back(op);
    done_.insert(op);
    kernel_of_[op] = int(kg_.kernels.size()) - 1;
  }

  /// A read of param `w` by an op not yet scheduled (other than `except`).
  const Op* pendingReader(const Value* w, const Op* except) const {
    for (const Op* u : users_.count(w) ? users_.at(w) : std::vector<const Op*>{})
      if (u != except && !done_.count(u)) return u;
    return nullptr;
  }

  /// Pulls elementwise consumers of `tip` into kernel `k` (epilogue or map).
  void growChain(Kernel& k, const Value* tip) {
    std::set<const Value*> inside;
    for (const Op* op : k.ops)
      if (op->result) inside.insert(op->result);
    while (tip) {
      const Value* next = nullptr;
      auto it = users_.find(tip);
      if (it == users_.end()) break;
      for (const Op* u : it->second) {
        if (done_.count(u)) continue;
        if (isUpdate(u->kind)) {
          if (u->operands[1] != tip) continue;
          if (u->operands[0]->type != tip->type) continue;
          if (const Op* r = pendingReader(u->operands[0], u)) {
            refuse(fmt::format("{} %{} into {}", opName(u->kind), u->operands[0]->name, k.name),
                   fmt::format("write-after-read: {} still reads %{}", describe(r), u->operands[0]->name));
            continue;
          }
          take(k, u);
          k.sink = u;
          return;
        }
        if (!hasTrait(u->kind, optrait::Epilogue) || !u->result) continue;
        auto [r, c] = matrixShape(u->result->type);
        if (r != k.rows || c != k.cols || (kg_.batched.count(u->result) > 0) != k.rows_batched) {
          refuse(fmt::format("{} %{} into {}", opName(u->kind), u->result->name, k.name),
                 fmt::format("shape {} differs from the kernel's [{},{}]", u->result->type.str(), k.rows, k.cols));
          continue;
        }
        std::string why;
        for (const Value* o : u->operands) {
          if (inside.count(o)) continue;
          if (inside.count(viewRoot(o)))
            // A view reads memory, which this kernel writes only as it goes.
            why = fmt::format("operand %{} is a view of %{}, which this kernel computes", o->name,
                              viewRoot(o)->name);
          else if (!available(o))
            why = fmt::format("operand %{} is not computed yet", o->name);
          else if (!loadableAs(o, k.rows, k.cols, k.rows_batched))
            why = fmt::format("operand %{} ({}) cannot be read per element", o->name, o->type.str());
          if (!why.empty()) break;
        }
        if (!why.empty()) {
          // A later op merely reading the tip (relu_grad reading a saved
          // activation) is no fusion candidate worth reporting unless it was the only one.
          if (why.find("not computed yet") != std::string::npos && it->second.size() > 1) continue;
          refuse(fmt::format("{} %{} into {}", opName(u->kind), u->result->name, k.name), why);
          continue;
        }
        take(k, u);
        inside.insert(u->result);
        next = u->result;
        break;
      }
      tip = next;
    }
  }

  /// When gradient `grad` (just computed by kernel `k`) feeds a grad_norm,
  /// its update cannot be fused into `k`: says so in the report and the kernel.
  void noteUpdateAfterAllGradients(Kernel& k, const Value* grad) {
    const std::vector<const Op*>& us =
        users_.count(grad) ? users_.at(grad) : std::vector<const Op*>{};
    if (std::none_of(us.begin(), us.end(), [](const Op* u) { return u->kind == OpKind::GradNorm; }))
      return;
    for (const Op* s : us) {
      if (s->kind != OpKind::Scale || !users_.count(s->result)) continue;
      for (const Op* u : users_.at(s->result)) {
        if (!isUpdate(u->kind)) continue;
        refuse(fmt::format("{} %{} into {}", opName(u->kind), u->operands[0]->name, k.name),
               "update not fused: clip_grad_norm needs every gradient first (the total norm "
               "scales each gradient, so the update runs in its own kernel after grad_norm)");
        k.notes.push_back(fmt::format("%{} stored for grad_norm: {} of %{} runs after every "
                                      "gradient (clip_grad_norm)",
                                      grad->name, opName(u->kind), u->operands[0]->name));
      }
    }
  }

  std::string describe(const Op* op) const {
    return op->result ? fmt::format("{} %{}", opName(op->kind), op->result->name)
                      : fmt::format("{} %{}", opName(op->kind), op->operands[0]->name);
  }

  void refuse(std::string what, std::string why) {
    for (const auto& r : kg_.refused)
      if (r.what == what && r.why == why) return;
    kg_.refused.push_back({std::move(what), std::move(why)});
  }

  /// A window kernel for `op`, with update `sink` of its result (dW, db) or,
  /// for conv2d, its elementwise consumers in the epilogue.
  void windowKernel(const Op* op, const Op* sink) {
    const Value* res = op->result;
    std::string role = opName(op->kind);
    if (sink)
      role = fmt::format("{}_{}", layerOf(sink->operands[0]),
                         op->kind == OpKind::ChannelSum ? "db" : "dW") +
             "_" + updateName(sink->kind);
    if (op->kind == OpKind::Conv2dWeightGrad)
      if (int64_t rows = weightGradChunkRows(op, kg_.batch)) {
        slicedWeightGrad(op, sink, role, rows);
        return;
      }
    Kernel& k = open(KernelKind::Window, role, op);
    take(k, op);
    std::tie(k.rows, k.cols) = matrixShape(res->type);
    k.rows_batched = kg_.batched.count(res) > 0;
    // dW and db split their weights: each is summed over the batch, in
    // order, by one task.
    k.parallel =
        k.rows_batched || op->kind == OpKind::Conv2dWeightGrad || op->kind == OpKind::ChannelSum;
    // BatchNorm's input gradient sums over the whole batch first: one ordered task.
    if (op->kind == OpKind::BatchNormGrad) k.parallel = false;
    if (sink) {
      take(k, sink);
      k.sink = sink;
      k.notes.push_back(fmt::format("{} of %{} applied per weight after its sum: no gradient buffer",
                                    opName(sink->kind), sink->operands[0]->name));
      return;
    }
    if (op->kind == OpKind::Conv2d) growChain(k, res);
    if (op->kind == OpKind::Conv2dInputGrad) inputGradEpilogue(k, op);
    if (op->kind == OpKind::MaxPool2dGrad) {
      if (auto it = dy_fold_.find(op); it != dy_fold_.end()) {
        k.folded.push_back(it->second);
        k.notes.push_back(fmt::format("{} %{} computed in the dy loads: no {} buffer",
                                      opName(it->second->kind), it->second->result->name,
                                      it->second->result->type.str()));
      }
      fuseReluGrad(k, op);
    }
    noteStoredGradient(k, res);
  }

  /// Notes on a gradient `res` that kernel `k` stores: the updates that
  /// read it run in kernels of their own.
  void noteStoredGradient(Kernel& k, const Value* res) {
    for (const Op* u : users_.count(res) ? users_.at(res) : std::vector<const Op*>{})
      if (isUpdate(u->kind) && u->operands[1] == res && !done_.count(u))
        k.notes.push_back(fmt::format("%{} stored: {} of %{} runs in its own kernel", res->name,
                                      opName(u->kind), u->operands[0]->name));
    noteUpdateAfterAllGradients(k, res);
  }

  /// conv2d_weight_grad `op` summed per chunk of `chunk_rows` samples
  /// (Kernel::partials): a partials kernel split over the chunks, then the
  /// kernel computing `op` by adding the chunks in order, which takes the
  /// update `sink` if there is one.
  void slicedWeightGrad(const Op* op, const Op* sink, const std::string& role, int64_t chunk_rows) {
    const Value* res = op->result;
    const int64_t numel = res->type.numel(), chunks = sampleChunks(kg_.batch, chunk_rows);
    const int partials = newBuffer(res->name + "_partials", chunks * numel * 4);
    auto sliced = [&](Kernel& k) {
      k.partials = partials;
      k.chunk_rows = chunk_rows;
      k.rows = chunks;
      k.cols = numel;
    };
    {
      Kernel& a = open(KernelKind::Window,
                       (sink ? layerOf(sink->operands[0]) + "_dW" : role) + "_partials", op);
      a.partials_of = op;
      sliced(a);
      a.notes.push_back(fmt::format("%{} summed per chunk of {} samples into %{} [{}, {}]: each "
                                    "task sums the samples it computed dy for",
                                    res->name, chunk_rows, kg_.buffers[size_t(partials)].name,
                                    chunks, numel));
    }
    Kernel& k = open(KernelKind::ColumnSum, role, op);
    take(k, op);
    sliced(k);
    k.notes.push_back(fmt::format("%{} = the sum of the chunks of %{}, in chunk order: the same "
                                  "bits on any thread count",
                                  res->name, kg_.buffers[size_t(partials)].name));
    if (sink) {
      take(k, sink);
      k.sink = sink;
      k.notes.push_back(
          fmt::format("{} of %{} applied per weight after the sum: no gradient buffer",
                      opName(sink->kind), sink->operands[0]->name));
      return;
    }
    noteStoredGradient(k, res);
  }

  /// The input gradient's elementwise consumers (relu_grad of the layer
  /// below) in its epilogue, as conv2d's: the register-blocked kernels
  /// (stride 1 along the width, emitConvGather / emitConvChannels) sum each
  /// output element in registers and store it once through the epilogue, so
  /// it masks the finished sum, the same operation as a map kernel after it.
  /// The scalar loop nest of the other strides scatter-adds into dx (every
  /// element is final only at the end): there the consumers stay a map kernel.
  void inputGradEpilogue(Kernel& k, const Op* op) {
    if (convInputGradTakesEpilogue(op)) {
      growChain(k, op->result);
      return;
    }
    for (const Op* u : users_.count(op->result) ? users_.at(op->result) : std::vector<const Op*>{})
      if (hasTrait(u->kind, optrait::Epilogue) && u->result && !done_.count(u))
        refuse(fmt::format("{} %{} into {}", opName(u->kind), u->result->name, k.name),
               "stride along the width > 1: the scalar input gradient scatter-adds into dx, "
               "so no element is final before the kernel ends");
  }

  /// ReLU before max pooling, backward: relu_grad(max_pool2d_grad(dy, x), x)
  /// when the pool gradient has no other reader. relu_grad keeps a position's
  /// gradient where x > 0; the pool gradient is non-zero only at each
  /// window's argmax, where x is that window's max. So masking each window's
  /// contribution by its max > 0 gives every position the same sum in the
  /// same order where x > 0, and +0 where it is not (a NaN max included):
  /// the same bits, without a second pass over the [B,C,H,W] gradient.
  void fuseReluGrad(Kernel& k, const Op* pool) {
    const Value* res = pool->result;
    const std::vector<const Op*>& us =
        users_.count(res) ? users_.at(res) : std::vector<const Op*>{};
    if (us.size() != 1 || us[0]->kind != OpKind::ReluGrad || us[0]->operands[0] != res) return;
    if (us[0]->operands[1] != pool->operands[1]) {
      refuse(fmt::format("relu_grad %{} into {}", us[0]->result->name, k.name),
             "its saved output is not the pooled input, so the window's max is no mask for it");
      return;
    }
    take(k, us[0]);
    k.notes.push_back(fmt::format("relu_grad %{} masks each window's gradient by its max > 0",
                                  us[0]->result->name));
  }

  void gemmKernel(const Op* mm, const Op* sink) {
    bool ta = mm->attrs.getBool("transpose_a"), tb = mm->attrs.getBool("transpose_b");
    const Value* a = mm->operands[0];
    const Value* b = mm->operands[1];
    GemmInfo gi;
    gi.matmul = mm;
    gi.ta = ta;
    gi.M = mm->result->type.shape[0];
    gi.N = mm->result->type.shape[1];
    gi.K = ta ? a->type.shape[0] : a->type.shape[1];
    gi.m_batched = kg_.batched.count(mm->result) > 0;
    gi.k_batched = ta && kg_.batched.count(a);
    // A's row stride: a folded normalize keeps its operand's shape, and a
    // view (flatten) keeps the row-major elements, so it is A's own.
    gi.lda = a->type.shape[1];
    if (const Value* ar = viewRoot(a);
        ar->def && ar->def->kind == OpKind::Normalize && folded_.count(ar->def))
      gi.a_normalize = ar->def;
    std::string layer, role;
    const Value* w = sink ? sink->operands[0] : (b->kind == ValueKind::Param ? b : nullptr);
    if (!w && a->kind == ValueKind::Param) w = a;
    layer = w ? layerOf(w) + "_" : "";
    if (sink) role = fmt::format("dW_{}", updateName(sink->kind));
    else if (ta) role = "dW";
    else if (tb) role = "dX";
    else role = "fwd";
    gi.columns = options_.gemm_columns &&
                 gemmInColumns(ta, tb, gi.M, gi.N, gi.K, gi.k_batched, gi.a_normalize != nullptr);
    if (tb && gi.columns) {
      // C in columns: W's rows are read in place, dY [M,K] is transposed
      // instead, by a kernel of its own: its tasks split dY's columns as
      // the producer's did (each reads what its thread wrote), and the GEMM's
      // tasks then stream dYᵀ's rows, which the prefetchers follow. (Each
      // task transposing all of dY itself read the other core's half by
      // 16-row blocks: wide_mlp's dX 2 x 55 us on two threads.)
      Kernel& t = open(KernelKind::Transpose, layer + "dYT", mm);
      t.transpose_src = bufferFor(a);
      t.t_rows = gi.M;
      t.t_cols = gi.K;
      t.transpose_dst = newBuffer(fmt::format("{}_T", a->name), gi.M * gi.K * 4);
      t.notes.push_back(fmt::format("A of %{} in columns: dYᵀ, all {} rows (rows past n are "
                                    "computed on but never stored)",
                                    mm->result->name, gi.M));
      gi.at_buffer = t.transpose_dst;
      gi.tb = true;
      gi.ldb = b->type.shape[1];
    } else if (tb && !gi.k_batched && packsTransposedB(gi.N, gi.K)) {
      // Wide layers: the GEMM transposes W's rows into its packed B panels.
      gi.tb = true;
      gi.ldb = b->type.shape[1];
    } else if (tb) {
      // dX = dY·Wᵀ: the micro-kernel wants B contiguous along N, so W [N,K]
      // is copied to Wᵀ [K,N] first (K*N floats, < 1/(2n) of the GEMM's work).
      Kernel& t = open(KernelKind::Transpose, layer + "wT", mm);
      t.transpose_src = bufferFor(b);
      t.t_rows = b->type.shape[0];
      t.t_cols = b->type.shape[1];
      t.transpose_dst = newBuffer(fmt::format("{}_T", b->name), t.t_rows * t.t_cols * 4);
      t.notes.push_back(fmt::format("B of %{} (transpose_b): Wᵀ copied so the dX micro-kernel reads it "
                                    "contiguously; runs before %{}'s update (write-after-read)",
                                    mm->result->name, b->name));
      gi.b_buffer = kg_.kernels.back().transpose_dst;
      gi.ldb = t.t_rows;
    } else {
      gi.ldb = b->type.shape[1];
    }
    Kernel& k = open(KernelKind::Gemm, layer + role, mm);
    take(k, mm);
    if (gi.a_normalize) k.folded.push_back(gi.a_normalize);
    if (gi.columns)
      k.notes.push_back(
          tb ? fmt::format("C in columns: %{}'s rows read in place (no Wᵀ copy), "
                           "%{}'s columns from its transposed copy",
                           b->name, a->name)
             : fmt::format("C in columns: {} columns leave vector lanes idle along N, and "
                           "%{}'s rows are Aᵀ's",
                           gi.N, a->name));
    k.gemm = gi;
    k.rows = gi.M;
    k.cols = gi.N;
    k.rows_batched = gi.m_batched;
    if (sink) {
      take(k, sink);
      k.sink = sink;
      k.notes.push_back(fmt::format("{} of %{} applied in the epilogue: no gradient buffer",
                                    opName(sink->kind), sink->operands[0]->name));
    } else {
      growChain(k, mm->result);
    }
  }

  void schedule(const Op* op) {
    const Value* res = op->result;
    auto uses = [&](const Value* v) -> const std::vector<const Op*>& {
      static const std::vector<const Op*> none;
      auto it = users_.find(v);
      return it == users_.end() ? none : it->second;
    };
    auto onlyUpdate = [&](const Value* v) -> const Op* {
      const auto& us = uses(v);
      if (us.size() != 1 || outputs_.count(v) || !isUpdate(us[0]->kind) || us[0]->operands[1] != v)
        return nullptr;
      return us[0];
    };
    if (hasTrait(op->kind, optrait::View)) {
      // No kernel and no copy: the result aliases its operand's memory
      // (finish() maps it to that buffer; its root is stored by its kernel).
      const Value* root = viewRoot(res);
      if (root->def && hasTrait(root->def->kind, optrait::Recompute)) {
        error_ = fmt::format("{} %{} views %{}, which is recomputed where read and has no memory",
                             opName(op->kind), res->name, root->name);
        return;
      }
      if (kg_.batched.count(root) && !kg_.batched.count(res)) {
        // Only the first n <= batch rows of the root are computed.
        error_ = fmt::format("{} %{} merges the batch dimension of %{} ({} -> {}): the kernels run "
                             "n <= {} rows",
                             opName(op->kind), res->name, root->name, root->type.str(),
                             res->type.str(), kg_.batch);
        return;
      }
      done_.insert(op);
      kg_.alias_of[res] = root;
      return;
    }
    if (hasTrait(op->kind, optrait::Recompute)) {
      // A pure function of (seed, step, element): recomputed wherever it is
      // read instead of being stored (the forward mul and the backward mul).
      done_.insert(op);
      remat_.insert(op);
      return;
    }
    switch (op->kind) {
    case OpKind::Normalize: {
      // Folded when only GEMM A loads read it, directly or through views.
      bool fold = !outputs_.count(res) && !uses(res).empty();
      std::vector<const Value*> via = {res};
      for (size_t i = 0; i < via.size(); ++i)
        for (const Op* u : uses(via[i])) {
          if (hasTrait(u->kind, optrait::View) && u->operands[0] == via[i] &&
              !outputs_.count(u->result))
            via.push_back(u->result);
          else if (u->kind != OpKind::MatMul || u->operands[0] != via[i])
            fold = false;
        }
      const bool per_channel = opmath::NormalizeMath::perChannel(op->attrs);
      if (fold && !per_channel) {
        done_.insert(op);
        folded_.insert(op);
        return;
      }
      refuse(fmt::format("normalize %{} into the A loads", res->name),
             per_channel ? "it has one mean and std per channel (the A loads fold one pair)"
                         : "its result is read by an op other than a matmul's A operand");
      break; // a map kernel
    }
    case OpKind::MatMul:
      if (const Op* u = onlyUpdate(res)) {
        deferred_.insert(op);
        done_.insert(op);
        deferred_for_[u] = op;
        return;
      }
      gemmKernel(op, nullptr);
      noteUpdateAfterAllGradients(kg_.kernels.back(), res);
      return;
    case OpKind::GradNorm: {
      // One ordered reduction over every stored gradient, on task 0; the
      // clip coefficient is computed in its epilogue.
      Kernel& k = open(KernelKind::GradNorm, "grad_norm", op);
      take(k, op);
      k.rows = k.cols = 1;
      k.parallel = false;
      for (const Op* u : uses(res))
        if (u->kind == OpKind::ClipCoef && !done_.count(u)) take(k, u);
      k.notes.push_back(fmt::format("reads all {} gradients: every update runs after this kernel",
                                    op->operands.size()));
      return;
    }
    case OpKind::AllReduce: {
      // Data-parallel training: the host sums the stored gradient over the
      // ranks (the executor calls the run's reducer; no machine code), and
      // the update reads the sum in a map kernel of its own.
      Kernel& k = open(KernelKind::AllReduce, "allreduce", op);
      take(k, op);
      std::tie(k.rows, k.cols) = matrixShape(res->type);
      k.parallel = false;
      for (const Op* u : uses(res))
        if (isUpdate(u->kind)) {
          refuse(fmt::format("{} %{} into the kernel computing %{}", opName(u->kind),
                             u->operands[0]->name, op->operands[0]->name),
                 "update not fused: data-parallel training sums the gradient over every process "
                 "first (allreduce), so it is stored and the update runs in its own kernel");
          k.notes.push_back(fmt::format("%{} summed over the ranks; {} of %{} runs after it",
                                        op->operands[0]->name, opName(u->kind),
                                        u->operands[0]->name));
        }
      return;
    }
    case OpKind::BatchNormSyncStats:
    case OpKind::BatchNormSyncGrad: {
      // Synchronized BatchNorm: the host computes the shard's sums, sums
      // them over the ranks and applies them (sync_batchnorm.h), on the
      // calling thread; its operands are stored, its result too.
      Kernel& k = open(KernelKind::AllReduce, "sync_batch_norm", op);
      take(k, op);
      std::tie(k.rows, k.cols) = matrixShape(res->type);
      k.rows_batched = kg_.batched.count(res) > 0;
      k.parallel = false;
      k.notes.push_back(
          op->kind == OpKind::BatchNormSyncStats
              ? "the statistics of the global batch: every rank's sums, in rank order"
              : "dx with the sums of dy and dy*(x-mean) over every rank, in rank order");
      return;
    }
    case OpKind::SumRows: {
      if (const Op* u = onlyUpdate(res)) {
        deferred_.insert(op);
        done_.insert(op);
        deferred_for_[u] = op;
        return;
      }
      Kernel& k = open(KernelKind::ColumnSum, "sum_rows", op);
      take(k, op);
      k.rows = op->operands[0]->type.shape[0];
      k.cols = res->type.shape[0];
      k.rows_batched = kg_.batched.count(op->operands[0]) > 0;
      noteUpdateAfterAllGradients(k, res);
      return;
    }
    case OpKind::SgdUpdate:
    case OpKind::AdamUpdate:
    case OpKind::RmspropUpdate:
    case OpKind::AdagradUpdate:
    case OpKind::AdadeltaUpdate: {
      const char* opt = updateName(op->kind);
      auto it = deferred_for_.find(op);
      if (it != deferred_for_.end()) {
        deferred_.erase(it->second);
        if (it->second->kind == OpKind::MatMul) {
          gemmKernel(it->second, op);
        } else if (hasTrait(it->second->kind, optrait::Window)) {
          windowKernel(it->second, op);
        } else {
          Kernel& k = open(KernelKind::ColumnSum, layerOf(op->operands[0]) + "_db_" + opt, op);
          const Op* sr = it->second;
          take(k, sr);
          take(k, op);
          k.sink = op;
          k.rows = sr->operands[0]->type.shape[0];
          k.cols = sr->result->type.shape[0];
          k.rows_batched = kg_.batched.count(sr->operands[0]) > 0;
          k.notes.push_back(fmt::format("{} of %{} applied per column after the row sum", opName(op->kind),
                                        op->operands[0]->name));
        }
        return;
      }
      Kernel& k = open(KernelKind::Map, layerOf(op->operands[0]) + "_" + opt, op);
      take(k, op);
      k.sink = op;
      std::tie(k.rows, k.cols) = matrixShape(op->operands[0]->type);
      return;
    }
    case OpKind::BatchNormUpdateStats: {
      // BatchNorm's running statistics: per channel, on task 0 (writes the buffers).
      Kernel& k = open(KernelKind::Window, opName(op->kind), op);
      take(k, op);
      k.rows = k.cols = 1;
      k.parallel = false;
      return;
    }
    case OpKind::LogSoftmax: {
      Kernel& k = open(KernelKind::RowSoftmaxLoss, "log_softmax", op);
      take(k, op);
      k.rows = res->type.shape[0];
      k.cols = res->type.shape[1];
      k.rows_batched = kg_.batched.count(res) > 0;
      k.parallel = false;
      std::string fused;
      for (const Op* u : uses(res)) {
        bool ok = (u->kind == OpKind::NllLoss || u->kind == OpKind::LogSoftmaxNllGrad ||
                   u->kind == OpKind::CountCorrect) &&
                  u->operands[0] == res && available(u->operands[1]) && !done_.count(u);
        if (ok) {
          take(k, u);
          fused += std::string("_") + (u->kind == OpKind::NllLoss ? "nll" : u->kind == OpKind::CountCorrect ? "correct" : "grad");
        } else if (!done_.count(u)) {
          refuse(fmt::format("{} into {}", describe(u), k.name),
                 "only nll_loss, log_softmax_nll_grad and count_correct of the same rows fuse into the row kernel");
        }
      }
      if (!fused.empty()) {
        int line = op->loc.known() ? op->loc.line : 0;
        k.name = fmt::format("k{}_log_softmax{}{}", kg_.kernels.size() - 1, fused,
                             line ? fmt::format("_line{}", line) : "");
      }
      return;
    }
    default: break;
    }
    if (hasTrait(op->kind, optrait::Window) && res) {
      // A convolution or pooling op (or gradient): its own loop-nest kernel.
      // Per-sample ops split the batch over the tasks; dW splits its weights
      // and db their channels (each summed over the batch in order by one
      // task): bitwise the same for any thread count. An update that is
      // the only reader of dW or db runs in their kernel (deferred to it,
      // as for a GEMM's dW); the forward takes bias + activation.
      if (op->kind == OpKind::Conv2dWeightGrad || op->kind == OpKind::ChannelSum)
        if (const Op* u = onlyUpdate(res)) {
          deferred_.insert(op);
          done_.insert(op);
          deferred_for_[u] = op;
          return;
        }
      windowKernel(op, nullptr);
      return;
    }
    if (hasTrait(op->kind, optrait::RowWise) && res) {
      // softmax, softmax_grad, log_softmax_grad (log_softmax has its kernel above)
      Kernel& k = open(KernelKind::RowOp, opName(op->kind), op);
      take(k, op);
      k.rows = res->type.shape[0];
      k.cols = res->type.shape[1];
      k.rows_batched = kg_.batched.count(res) > 0;
      return;
    }
    if (hasTrait(op->kind, optrait::Reduction) && res) {
      // losses and metrics (sum_rows has its kernel above): ordered sums on task 0
      Kernel& k = open(KernelKind::Loss, opName(op->kind), op);
      take(k, op);
      std::tie(k.rows, k.cols) = matrixShape(op->operands[0]->type);
      k.rows_batched = kg_.batched.count(op->operands[0]) > 0;
      k.parallel = false;
      return;
    }
    if (!isElementwise(op->kind) || !res) {
      error_ = fmt::format("the JIT cannot schedule op {}", opName(op->kind));
      return;
    }
    for (const Value* o : op->operands)
      if (!available(o)) {
        error_ = fmt::format("op {} %{} reads %{} before it is computed", opName(op->kind), res->name, o->name);
        return;
      }
    if (const Op* pool = poolGradLoading(op)) {
      done_.insert(op);
      folded_.insert(op);
      dy_fold_[pool] = op;
      return;
    }
    Kernel& k = open(KernelKind::Map, opName(op->kind), op);
    take(k, op);
    std::tie(k.rows, k.cols) = matrixShape(res->type);
    k.rows_batched = kg_.batched.count(res) > 0;
    growChain(k, res);
  }

  /// The max_pool2d_grad that can compute elementwise `op` in its dy loads
  /// instead of a map kernel storing it (Dropout's mask multiply before the
  /// pool, backward): `op`'s result is read only as that pool gradient's dy,
  /// directly or through views (the same row-major elements), and each of
  /// its operands can be read per element. The pool gradient loads each dy
  /// element once, so `op` runs once per element with the same operands:
  /// the same float operation, without the [B, C*H*W] round trip.
  const Op* poolGradLoading(const Op* op) const {
    const Value* res = op->result;
    if (!hasTrait(op->kind, optrait::Epilogue) || outputs_.count(res)) return nullptr;
    const Op* pool = nullptr;
    std::vector<const Value*> via = {res};
    for (size_t i = 0; i < via.size(); ++i)
      for (const Op* u : users_.count(via[i]) ? users_.at(via[i]) : std::vector<const Op*>{}) {
        if (hasTrait(u->kind, optrait::View) && u->operands[0] == via[i] &&
            !outputs_.count(u->result))
          via.push_back(u->result);
        else if (u->kind == OpKind::MaxPool2dGrad && u->operands[0] == via[i] &&
                 u->operands[1] != via[i] && !pool)
          pool = u;
        else
          return nullptr;
      }
    if (!pool) return nullptr;
    auto [r, c] = matrixShape(res->type);
    const bool batched = kg_.batched.count(res) > 0;
    if (batched != (kg_.batched.count(pool->operands[0]) > 0) ||
        r != pool->operands[0]->type.shape[0])
      return nullptr;
    for (const Value* o : op->operands)
      if (!available(o) || !loadableAs(o, r, c, batched)) return nullptr;
    return pool;
  }

  // --- buffers ------------------------------------------------------------------------------

  int newBuffer(std::string name, int64_t bytes) {
    Buffer b;
    b.name = std::move(name);
    b.bytes = bytes;
    kg_.buffers.push_back(b);
    return int(kg_.buffers.size()) - 1;
  }

  int bufferFor(const Value* v) {
    auto it = kg_.buffer_of.find(v);
    if (it != kg_.buffer_of.end()) return it->second;
    if (const Value* root = viewRoot(v); root != v) return kg_.buffer_of[v] = bufferFor(root);
    int i = newBuffer(v->name, v->type.numel() * dtypeSize(v->type.dtype));
    Buffer& b = kg_.buffers[i];
    b.value = v;
    b.persistent = v->kind == ValueKind::Param || v->kind == ValueKind::State || outputs_.count(v);
    b.input = v->kind == ValueKind::Input;
    kg_.buffer_of[v] = i;
    return i;
  }

  /// Decides what each kernel stores and reads, once every op has a kernel.
  void finish() {
    for (size_t ki = 0; ki < kg_.kernels.size(); ++ki) {
      Kernel& k = kg_.kernels[ki];
      std::set<const Value*> inside;
      for (const Op* op : k.ops)
        if (op->result) inside.insert(op->result);
      std::function<void(const Value*)> read = [&](const Value* v) {
        if (v->type.rank() == 0 && v->kind == ValueKind::Input) return; // step, seed: scalars
        if (v->def && remat_.count(v->def)) return;
        if (const Value* r = viewRoot(v); r->def && folded_.count(r->def)) {
          // computed in the loads: they read its operands
          for (const Value* o : r->def->operands)
            read(o);
          return;
        }
        k.reads.push_back(bufferFor(v));
      };
      // A sliced weight gradient: the partials kernel reads x and dy, the
      // kernel after it the partial sums.
      if (k.partials_of) {
        for (const Value* o : k.partials_of->operands)
          read(o);
        k.writes.push_back(k.partials);
      } else if (k.partials >= 0) {
        k.reads.push_back(k.partials);
      }
      for (const Op* op : k.ops) {
        for (size_t oi = 0; oi < op->operands.size(); ++oi) {
          const Value* o = op->operands[oi];
          if (k.partials >= 0 && op == k.ops.front()) continue; // reads the partials
          // dX reads the transposed copy of W, not W (added below).
          if (k.kind == KernelKind::Gemm && op == k.gemm.matmul && oi == 1 && k.gemm.b_buffer >= 0) continue;
          if (!inside.count(o)) read(o);
        }
        if (op->kind == OpKind::BatchNormUpdateStats)
          for (size_t i = 0; i < 3; ++i) k.writes.push_back(bufferFor(op->operands[i]));
        if (isUpdate(op->kind)) {
          k.writes.push_back(bufferFor(op->operands[0]));
          for (size_t i = 3; i < op->operands.size(); ++i) k.writes.push_back(bufferFor(op->operands[i]));
        }
        if (!op->result) continue;
        bool outside = outputs_.count(op->result) > 0;
        for (const Op* u : users_.count(op->result) ? users_.at(op->result) : std::vector<const Op*>{})
          if (std::find(k.ops.begin(), k.ops.end(), u) == k.ops.end()) outside = true;
        if (outside) {
          k.stores.insert(op->result);
          k.writes.push_back(bufferFor(op->result));
        }
      }
      if (k.kind == KernelKind::Transpose) {
        k.reads.push_back(k.transpose_src);
        k.writes.push_back(k.transpose_dst);
      }
      if (k.kind == KernelKind::Gemm && k.gemm.b_buffer >= 0) k.reads.push_back(k.gemm.b_buffer);
      if (k.kind == KernelKind::Gemm && k.gemm.at_buffer >= 0) k.reads.push_back(k.gemm.at_buffer);
      if (k.kind == KernelKind::Gemm) {
        const Value* a = k.gemm.a_normalize ? k.gemm.a_normalize->operands[0]
                                            : viewRoot(k.gemm.matmul->operands[0]);
        k.gemm.a_buffer = bufferFor(a);
        if (k.gemm.b_buffer < 0) k.gemm.b_buffer = bufferFor(k.gemm.matmul->operands[1]);
      }
      for (int b : k.reads) use(b, int(ki));
      for (int b : k.writes) use(b, int(ki));
    }
  }

  void use(int b, int ki) {
    Buffer& buf = kg_.buffers[b];
    if (buf.first_use < 0 || ki < buf.first_use) buf.first_use = ki;
    buf.last_use = std::max(buf.last_use, ki);
  }

  const Graph& g_;
  KernelGraph& kg_;
  std::string& error_;
  const FuseOptions options_;
  std::unordered_map<const Value*, std::vector<const Op*>> users_;
  std::unordered_map<const Op*, int> pos_, kernel_of_;
  std::set<const Value*> outputs_;
  std::set<const Op*> done_, deferred_, folded_, remat_;
  std::unordered_map<const Op*, const Op*> deferred_for_;
  std::unordered_map<const Op*, const Op*>
      dy_fold_; ///< max_pool2d_grad -> op folded into its dy loads
};

} // namespace

KernelGraph fuseGraph(const Graph& g, std::string& error, const FuseOptions& options) {
  KernelGraph kg;
  Fuser f(g, kg, error, options);
  f.run();
  if (!error.empty()) kg.kernels.clear();
  return kg;
}

} // namespace descent
