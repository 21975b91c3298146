// Kernel-graph verifier (see kernel_verifier.h). It re-derives what fuse and
// plan_buffers promise from the kernel graph alone (no state of the passes),
// so a change to either pass that breaks an invariant the emitter relies on
// is reported here, by name, instead of as wrong numbers at run time.
#include "compiler/passes/kernel_verifier.h"

#include "compiler/ir/op_defs.h"

#include <algorithm>
#include <fmt/format.h>
#include <map>
#include <set>
#include <stdexcept>
#include <unordered_map>

namespace descent {

namespace {

bool isUpdate(OpKind k) {
  return k == OpKind::SgdUpdate || k == OpKind::AdamUpdate || k == OpKind::RmspropUpdate ||
         k == OpKind::AdagradUpdate || k == OpKind::AdadeltaUpdate;
}

bool isView(const Op* op) {
  return op && hasTrait(op->kind, optrait::View);
}

std::string describe(const Op* op) {
  if (op->result) return fmt::format("{} %{}", opName(op->kind), op->result->name);
  if (!op->operands.empty()) return fmt::format("{} %{}", opName(op->kind), op->operands[0]->name);
  return opName(op->kind);
}

class Verifier {
public:
  Verifier(const KernelGraph& kg, KernelStage stage) : kg_(kg), stage_(stage) {}

  std::vector<std::string> run() {
    if (!kg_.graph) {
      if (!kg_.kernels.empty()) fail("the kernel graph has kernels but no graph");
      return problems_;
    }
    for (const auto& op : kg_.graph->ops()) {
      graph_ops_.insert(op.get());
      for (const Value* v : op->operands)
        users_[v].push_back(op.get());
    }
    for (const auto& [name, v] : kg_.graph->outputs()) {
      outputs_.insert(v);
      outputs_.insert(viewRoot(v)); // an output view's memory is its root's
    }
    checkBuffers();
    checkCoverage();
    for (size_t i = 0; i < kg_.kernels.size(); ++i)
      checkKernel(int(i));
    checkOrder();
    checkLifetimes();
    if (stage_ == KernelStage::Planned) checkPlacement();
    return problems_;
  }

private:
  template <typename... A> void fail(fmt::format_string<A...> f, A&&... a) {
    problems_.push_back(fmt::format(f, std::forward<A>(a)...));
  }

  bool valid(int b) const { return b >= 0 && size_t(b) < kg_.buffers.size(); }
  const Kernel& kernel(int i) const { return kg_.kernels[size_t(i)]; }
  const Buffer& buffer(int b) const { return kg_.buffers[size_t(b)]; }
  int bufferOf(const Value* v) const {
    auto it = kg_.buffer_of.find(v);
    return it == kg_.buffer_of.end() ? -1 : it->second;
  }
  static bool lists(const std::vector<int>& l, int b) {
    return std::find(l.begin(), l.end(), b) != l.end();
  }
  bool batched(const Value* v) const { return kg_.batched.count(v) > 0; }

  // --- buffers ------------------------------------------------------------------------------

  void checkBuffers() {
    for (size_t i = 0; i < kg_.buffers.size(); ++i) {
      const Buffer& b = kg_.buffers[i];
      if (b.bytes <= 0) fail("buffer %{}: size {} bytes", b.name, b.bytes);
      if (!b.value) {
        if (b.persistent || b.input)
          fail("buffer %{} holds no graph value but is marked {}", b.name,
               b.input ? "input" : "persistent");
        continue;
      }
      const Value* v = b.value;
      if (bufferOf(v) != int(i))
        fail("buffer %{} holds %{} but buffer_of maps %{} to {}", b.name, v->name, v->name,
             bufferOf(v));
      int64_t want = v->type.numel() * dtypeSize(v->type.dtype);
      if (b.bytes != want)
        fail("buffer %{}: {} bytes for %{}: {} ({} bytes)", b.name, b.bytes, v->name, v->type.str(),
             want);
      bool persistent =
          v->kind == ValueKind::Param || v->kind == ValueKind::State || outputs_.count(v);
      if (b.persistent != persistent)
        fail("buffer %{} is {}persistent but %{} is {}", b.name, b.persistent ? "" : "not ",
             v->name,
             persistent ? "a param, state or graph output" : "neither a param, state nor output");
      if (b.input && v != kg_.x && v != kg_.y)
        fail("buffer %{}: input %{} is neither the batch input nor the target, the only inputs "
             "kernels receive by pointer",
             b.name, v->name);
      if (b.input != (v->kind == ValueKind::Input))
        fail("buffer %{} is {}marked input but %{} is {}a graph input", b.name,
             b.input ? "" : "not ", v->name, v->kind == ValueKind::Input ? "" : "not ");
    }
    for (const auto& [v, b] : kg_.buffer_of)
      if (!valid(b))
        fail("buffer_of maps %{} to buffer {}, out of range (there are {})", v->name, b,
             kg_.buffers.size());
      else if (isView(v->def) && buffer(b).value != viewRoot(v))
        fail("buffer_of maps view %{} to buffer %{}, not to the buffer of %{} whose memory it is",
             v->name, buffer(b).name, viewRoot(v)->name);
      else if (!isView(v->def) && buffer(b).value != v)
        fail("buffer_of maps %{} to buffer %{}, which holds {}", v->name, buffer(b).name,
             buffer(b).value ? "%" + buffer(b).value->name : std::string("no value"));
    std::set<std::string> names;
    for (size_t i = 0; i < kg_.kernels.size(); ++i) {
      const Kernel& k = kernel(int(i));
      if (k.name.empty())
        fail("kernel {} has no name", i);
      else if (!names.insert(k.name).second)
        fail("two kernels are named {}", k.name);
      auto check = [&](const std::vector<int>& l, const char* what) {
        for (int b : l)
          if (!valid(b))
            fail("{}: {} buffer {}, out of range (there are {})", k.name, what, b,
                 kg_.buffers.size());
      };
      check(k.reads, "reads");
      check(k.writes, "writes");
    }
  }

  // --- coverage -----------------------------------------------------------------------------

  void checkCoverage() {
    for (size_t i = 0; i < kg_.kernels.size(); ++i) {
      const Kernel& k = kernel(int(i));
      for (const Op* op : k.ops) {
        if (!graph_ops_.count(op)) {
          fail("{}: computes an op that is not in graph @{}", k.name, kg_.graph->name());
          continue;
        }
        auto [it, fresh] = kernel_of_.try_emplace(op, int(i));
        if (!fresh)
          fail("{} is in two kernels: {} and {}", describe(op), kernel(it->second).name, k.name);
      }
      for (const Op* op : k.folded) {
        if (!graph_ops_.count(op)) {
          fail("{}: folds an op that is not in graph @{}", k.name, kg_.graph->name());
          continue;
        }
        folded_in_[op].push_back(int(i));
      }
    }
    for (const auto& owned : kg_.graph->ops()) { // graph order: a stable report
      const Op* op = owned.get();
      auto fi = folded_in_.find(op);
      if (fi == folded_in_.end()) continue;
      const std::vector<int>& ks = fi->second;
      // normalize folds into GEMM A loads; an elementwise op into the dy
      // loads of the one max_pool2d_grad that reads it
      const bool dy_fold = op->kind != OpKind::Normalize;
      if (dy_fold && (!hasTrait(op->kind, optrait::Epilogue) || !op->result)) {
        fail("{} is folded into {}, but only normalize and elementwise ops (into a "
             "max_pool2d_grad's dy loads) fold into operand loads",
             describe(op), kernel(ks.front()).name);
        continue;
      }
      if (dy_fold && ks.size() != 1)
        fail("{} is folded into {} kernels, but only the one max_pool2d_grad reading it computes "
             "it in its dy loads",
             describe(op), ks.size());
      if (kernel_of_.count(op))
        fail("{} is both folded and computed by {}", describe(op), kernel(kernel_of_[op]).name);
      if (!dy_fold && op->attrs.has("channel_size"))
        fail("{} is folded into {}, but its mean and std are per channel (the A loads apply one "
             "pair)",
             describe(op), kernel(ks.front()).name);
      // Every reader must load it through the fold, directly or through
      // views of it: no kernel would store it.
      std::vector<const Value*> via = {op->result};
      for (size_t vi = 0; vi < via.size(); ++vi) {
        auto it = users_.find(via[vi]);
        for (const Op* u : it == users_.end() ? std::vector<const Op*>{} : it->second) {
          if (isView(u) && u->operands[0] == via[vi]) {
            via.push_back(u->result);
            continue;
          }
          auto ku = kernel_of_.find(u);
          if (ku == kernel_of_.end()) continue; // reported below
          const Kernel& k = kernel(ku->second);
          if (dy_fold) {
            if (k.kind != KernelKind::Window || k.ops.front() != u ||
                u->kind != OpKind::MaxPool2dGrad || u->operands[0] != via[vi] ||
                std::find(k.folded.begin(), k.folded.end(), op) == k.folded.end())
              fail("{} is folded, but {} in {} reads %{} other than as a max_pool2d_grad's "
                   "folded dy operand",
                   describe(op), describe(u), k.name, via[vi]->name);
          } else if (k.kind != KernelKind::Gemm || k.gemm.matmul != u ||
                     u->operands[0] != via[vi] || k.gemm.a_normalize != op) {
            fail("{} is folded, but {} in {} reads %{} other than as a GEMM's folded A operand",
                 describe(op), describe(u), k.name, via[vi]->name);
          }
        }
      }
      if (outputs_.count(op->result))
        fail("{} is folded, but %{} is a graph output", describe(op), op->result->name);
    }
    for (const auto& owned : kg_.graph->ops()) {
      // A view is computed by no kernel: it names its root's memory.
      const Op* op = owned.get();
      if (!isView(op)) continue;
      auto it = kg_.alias_of.find(op->result);
      if (kernel_of_.count(op))
        fail("{} is a view but {} computes it", describe(op), kernel(kernel_of_[op]).name);
      else if (it == kg_.alias_of.end() || it->second != viewRoot(op->result))
        fail("view {} is not recorded as an alias of %{}", describe(op),
             viewRoot(op->result)->name);
    }
    for (const auto& op : kg_.graph->ops()) {
      if (kernel_of_.count(op.get()) || folded_in_.count(op.get()) || isView(op.get())) continue;
      if (op->kind == OpKind::DropoutMask) continue; // recomputed by each reader
      fail("{} is in no kernel (neither computed, folded nor recomputed)", describe(op.get()));
    }
  }

  // --- each kernel --------------------------------------------------------------------------

  void checkKernel(int ki) {
    const Kernel& k = kernel(ki);
    if (k.kind == KernelKind::Transpose) {
      checkTranspose(k);
      return;
    }
    if (k.partials_of) {
      checkPartials(ki);
      return;
    }
    if (k.ops.empty()) {
      fail("{}: a {} kernel with no ops", k.name, kernelKindName(k.kind));
      return;
    }
    // An update writes a param in place: it must be the kernel's last op, its
    // sink, so that nothing in the kernel reads the param after the write.
    for (const Op* op : k.ops)
      if (isUpdate(op->kind) && op != k.sink)
        fail("{}: {} is not the kernel's epilogue (sink)", k.name, describe(op));
    if (k.sink) {
      if (!isUpdate(k.sink->kind))
        fail("{}: the epilogue {} is not an optimizer update", k.name, describe(k.sink));
      else if (k.ops.back() != k.sink)
        fail("{}: the epilogue {} is not the kernel's last op", k.name, describe(k.sink));
      else {
        const Op* u = k.sink;
        for (size_t i = 0; i < u->operands.size(); ++i) {
          if (i == 1 || i == 2) continue; // the gradient and the step are read
          int b = bufferOf(u->operands[i]);
          if (b < 0 || !lists(k.writes, b))
            fail("{}: {} updates %{} but the kernel does not list it in its writes", k.name,
                 describe(u), u->operands[i]->name);
        }
      }
    }
    if ((k.kind == KernelKind::Loss || k.kind == KernelKind::RowSoftmaxLoss ||
         k.kind == KernelKind::GradNorm) &&
        k.parallel)
      fail("{}: a {} kernel sums in row order and must run on one task (parallel is set)", k.name,
           kernelKindName(k.kind));
    const Op* anchor = k.ops.front();
    switch (k.kind) {
    case KernelKind::Gemm:
      checkGemm(ki);
      break;
    case KernelKind::ColumnSum:
      if (k.partials >= 0) {
        checkPartialsSum(ki);
        break;
      }
      if (anchor->kind != OpKind::SumRows) {
        fail("{}: a column_sum kernel starts with {}, not sum_rows", k.name, describe(anchor));
        break;
      }
      if (k.rows != anchor->operands[0]->type.shape[0] || k.cols != anchor->result->type.shape[0])
        fail("{}: iteration space [{},{}] but sum_rows %{} reads {}", k.name, k.rows, k.cols,
             anchor->result->name, anchor->operands[0]->type.str());
      break;
    case KernelKind::RowSoftmaxLoss:
      if (anchor->kind != OpKind::LogSoftmax)
        fail("{}: a row_softmax_loss kernel starts with {}, not log_softmax", k.name,
             describe(anchor));
      break;
    case KernelKind::GradNorm:
      if (anchor->kind != OpKind::GradNorm)
        fail("{}: a grad_norm kernel starts with {}, not grad_norm", k.name, describe(anchor));
      for (size_t i = 1; i < k.ops.size(); ++i)
        if (k.ops[i]->kind != OpKind::ClipCoef || k.ops[i]->operands[0] != anchor->result)
          fail("{}: {} is fused after grad_norm, but only clip_coef of its norm is", k.name,
               describe(k.ops[i]));
      break;
    case KernelKind::AllReduce:
      if ((anchor->kind != OpKind::AllReduce && anchor->kind != OpKind::BatchNormSyncStats &&
           anchor->kind != OpKind::BatchNormSyncGrad) ||
          k.ops.size() != 1 || k.parallel)
        fail("{}: an allreduce kernel holds one allreduce or batch_norm_sync op on one task",
             k.name);
      break;
    case KernelKind::Window:
      if (!hasTrait(anchor->kind, optrait::Window))
        fail("{}: a window kernel starts with {}, not a convolution or pooling op", k.name,
             describe(anchor));
      // conv2d's epilogue and conv2d_input_grad's where its kernel stores
      // each element once (stride 1 along the width): elementwise ops; dW
      // and db: their update; max_pool2d_grad: relu_grad of the pooled input
      for (size_t i = 1; i < k.ops.size(); ++i) {
        const Op* op = k.ops[i];
        bool ok =
            op == k.sink
                ? (anchor->kind == OpKind::Conv2dWeightGrad || anchor->kind == OpKind::ChannelSum)
                : ((anchor->kind == OpKind::Conv2d || convInputGradTakesEpilogue(anchor)) &&
                   hasTrait(op->kind, optrait::Epilogue)) ||
                      // ReLU-before-pool's gradient, masked in the pool gradient
                      (anchor->kind == OpKind::MaxPool2dGrad && i == 1 &&
                       op->kind == OpKind::ReluGrad && op->operands[0] == anchor->result &&
                       op->operands[1] == anchor->operands[1]);
        if (!ok)
          fail("{}: {} is fused after {}, which has no such epilogue", k.name, describe(op),
               describe(anchor));
      }
      // max_pool2d_grad computes the op folded into its dy loads, and no
      // other window kernel folds one
      if (const Value* dy =
              anchor->kind == OpKind::MaxPool2dGrad ? viewRoot(anchor->operands[0]) : nullptr;
          dy && dy->def && folded_in_.count(dy->def) &&
          (k.folded.size() != 1 || k.folded[0] != dy->def))
        fail("{}: reads %{}, which is folded, without computing it in the dy loads", k.name,
             anchor->operands[0]->name);
      for (const Op* f : k.folded)
        if (anchor->kind != OpKind::MaxPool2dGrad || viewRoot(anchor->operands[0])->def != f)
          fail("{}: lists {} as folded but does not load it as a max_pool2d_grad's dy", k.name,
               describe(f));
      break;
    case KernelKind::RowOp:
    case KernelKind::Loss:
      if (k.ops.size() != 1)
        fail("{}: a {} kernel with {} ops", k.name, kernelKindName(k.kind), k.ops.size());
      break;
    default:
      break;
    }
    // Elementwise ops (the GEMM's epilogue, a map chain) run over the kernel's
    // iteration space: each result must have exactly that shape.
    if (k.kind == KernelKind::Gemm || k.kind == KernelKind::Map || k.kind == KernelKind::Window) {
      size_t first = k.kind == KernelKind::Map ? 0 : 1;
      for (size_t i = first; i < k.ops.size(); ++i) {
        const Op* op = k.ops[i];
        if (op == k.sink) continue;
        if (!op->result) continue;
        auto [r, c] = matrixShape(op->result->type);
        if (r != k.rows || c != k.cols || batched(op->result) != k.rows_batched)
          fail("{}: {} ({}{}) does not match the iteration space [{}{},{}]", k.name, describe(op),
               op->result->type.str(), batched(op->result) ? ", batched" : "", k.rows,
               k.rows_batched ? "(n)" : "", k.cols);
      }
    }
    for (const Value* v : k.stores) {
      if (!v->def || std::find(k.ops.begin(), k.ops.end(), v->def) == k.ops.end())
        fail("{}: stores %{}, which it does not compute", k.name, v->name);
      int b = bufferOf(v);
      if (b < 0 || !lists(k.writes, b))
        fail("{}: stores %{} but does not list its buffer in its writes", k.name, v->name);
    }
  }

  void checkGemm(int ki) {
    const Kernel& k = kernel(ki);
    const GemmInfo& g = k.gemm;
    const Op* mm = g.matmul;
    if (!mm || mm != k.ops.front() || mm->kind != OpKind::MatMul) {
      fail("{}: a gemm kernel whose first op is not its matmul", k.name);
      return;
    }
    const Value* a = mm->operands[0];
    const Value* b = mm->operands[1];
    bool ta = mm->attrs.getBool("transpose_a"), tb = mm->attrs.getBool("transpose_b");
    if (a->type.rank() != 2 || b->type.rank() != 2 || mm->result->type.rank() != 2) {
      fail("{}: matmul operands of rank other than 2", k.name);
      return;
    }
    int64_t M = mm->result->type.shape[0], N = mm->result->type.shape[1];
    int64_t K = ta ? a->type.shape[0] : a->type.shape[1];
    int64_t Kb = tb ? b->type.shape[1] : b->type.shape[0];
    if (g.M != M || g.N != N || g.K != K || Kb != K)
      fail("{}: gemm M={} N={} K={} but %{} = matmul {}, {}{}{} gives M={} N={} K={} (B's K {})",
           k.name, g.M, g.N, g.K, mm->result->name, a->type.str(), b->type.str(),
           ta ? " {transpose_a}" : "", tb ? " {transpose_b}" : "", M, N, K, Kb);
    if (g.ta != ta) fail("{}: gemm ta={} but the matmul has transpose_a={}", k.name, g.ta, ta);
    if (g.m_batched != batched(mm->result))
      fail("{}: M is {}the runtime row count but %{} is {}batched", k.name,
           g.m_batched ? "" : "not ", mm->result->name, batched(mm->result) ? "" : "not ");
    if (g.k_batched != (ta && batched(a)))
      fail("{}: K is {}the runtime row count but %{} is {}batched{}", k.name,
           g.k_batched ? "" : "not ", a->name, batched(a) ? "" : "not ",
           ta ? "" : " (and A is not transposed)");
    if (k.rows != g.M || k.cols != g.N || k.rows_batched != g.m_batched)
      fail("{}: the epilogue's iteration space [{},{}] is not the GEMM's [M={},N={}]", k.name,
           k.rows, k.cols, g.M, g.N);
    // A: the matmul's operand, or the u8/f32 source of a folded normalize.
    // (A may be a view of either: the same memory.)
    const Value* a_src = viewRoot(a);
    if (g.a_normalize) {
      if (g.a_normalize != a_src->def)
        fail("{}: folds {}, which does not compute the A operand %{}", k.name,
             describe(g.a_normalize), a->name);
      else
        a_src = g.a_normalize->operands[0];
      if (std::find(k.folded.begin(), k.folded.end(), g.a_normalize) == k.folded.end())
        fail("{}: loads A through {} but does not list it as folded", k.name,
             describe(g.a_normalize));
    } else if (a_src->def && folded_in_.count(a_src->def)) {
      fail("{}: reads %{}, which is folded, without folding it into the A loads", k.name, a->name);
    }
    for (const Op* f : k.folded)
      if (f != g.a_normalize)
        fail("{}: lists {} as folded but loads A without it", k.name, describe(f));
    if (g.a_buffer != bufferOf(a_src))
      fail("{}: A buffer {} is not %{}'s", k.name, g.a_buffer, a_src->name);
    if (g.lda != a->type.shape[1])
      fail("{}: lda={} but A %{} is {} (row stride {})", k.name, g.lda, a->name, a->type.str(),
           a->type.shape[1]);
    if (g.lda < (ta ? M : K)) fail("{}: lda={} < {}", k.name, g.lda, ta ? M : K);
    if (valid(g.a_buffer)) {
      int64_t need = (ta ? K : M) * g.lda * dtypeSize(a_src->type.dtype);
      if (!lists(k.reads, g.a_buffer))
        fail("{}: does not list its A buffer %{} in its reads", k.name, buffer(g.a_buffer).name);
      if (buffer(g.a_buffer).bytes < need)
        fail("{}: A buffer %{} has {} bytes, the GEMM reads {}", k.name, buffer(g.a_buffer).name,
             buffer(g.a_buffer).bytes, need);
    }
    if (g.columns && !gemmInColumns(ta, tb, M, N, K, g.k_batched, g.a_normalize != nullptr))
      fail("{}: computes C in columns, which gemmInColumns rules out for M={} N={} K={}", k.name, M,
           N, K);
    // Aᵀ: a dX in columns reads dY's transposed copy, made by an earlier
    // transpose kernel; nothing else has one.
    if (g.columns && !ta) {
      const int t = transposeWriting(g.at_buffer, ki);
      if (t < 0)
        fail("{}: computes C in columns but its Aᵀ is not the copy made by an earlier transpose "
             "kernel",
             k.name);
      else if (kernel(t).transpose_src != g.a_buffer || kernel(t).t_rows != M ||
               kernel(t).t_cols != K)
        fail("{}: its Aᵀ is {}'s copy of buffer {} [{},{}], not of A [{},{}]", k.name,
             kernel(t).name, kernel(t).transpose_src, kernel(t).t_rows, kernel(t).t_cols, M, K);
      else if (!lists(k.reads, g.at_buffer))
        fail("{}: does not list its Aᵀ buffer in its reads", k.name);
    } else if (g.at_buffer >= 0) {
      fail("{}: reads a transposed A but does not compute a dX in columns", k.name);
    }
    // B: read contiguously along N, or (g.tb) B [N,K] read in place: by rows
    // in columns mode, else transposed into the panels; otherwise
    // transpose_b reads a copy of B made by an earlier transpose kernel.
    if (g.ldb < (g.tb ? K : N)) fail("{}: ldb={} < {}", k.name, g.ldb, g.tb ? K : N);
    if (!valid(g.b_buffer)) {
      fail("{}: B buffer {} out of range", k.name, g.b_buffer);
      return;
    }
    if (!lists(k.reads, g.b_buffer))
      fail("{}: does not list its B buffer %{} in its reads", k.name, buffer(g.b_buffer).name);
    if (buffer(g.b_buffer).bytes < (g.tb ? N : K) * g.ldb * 4)
      fail("{}: B buffer %{} has {} bytes, the GEMM reads {}", k.name, buffer(g.b_buffer).name,
           buffer(g.b_buffer).bytes, (g.tb ? N : K) * g.ldb * 4);
    if (!tb) {
      if (g.tb) fail("{}: transposes B %{} but the matmul has no transpose_b", k.name, b->name);
      if (g.b_buffer != bufferOf(b)) fail("{}: B buffer is not %{}'s", k.name, b->name);
      if (g.ldb != b->type.shape[1])
        fail("{}: ldb={} but B %{} is {}", k.name, g.ldb, b->name, b->type.str());
      return;
    }
    if (g.tb) {
      if (g.b_buffer != bufferOf(b)) fail("{}: B buffer is not %{}'s", k.name, b->name);
      if (g.ldb != b->type.shape[1] || !(g.columns || packsTransposedB(g.N, K)))
        fail("{}: reads B %{} {} by rows in place (ldb={}, N={}, K={}) but neither computes C in "
             "columns nor packs Wᵀ (packsTransposedB)",
             k.name, b->name, b->type.str(), g.ldb, g.N, K);
      return;
    }
    const int t = transposeWriting(g.b_buffer, ki);
    if (t < 0) {
      fail("{}: B of %{} (transpose_b) is not the copy made by an earlier transpose kernel", k.name,
           mm->result->name);
      return;
    }
    const Kernel& tk = kernel(t);
    if (tk.transpose_src != bufferOf(b) || tk.t_rows != b->type.shape[0] ||
        tk.t_cols != b->type.shape[1])
      fail("{}: B is {}'s copy of buffer {} [{},{}], not of %{}: {}", k.name, tk.name,
           tk.transpose_src, tk.t_rows, tk.t_cols, b->name, b->type.str());
    if (g.ldb != b->type.shape[0])
      fail("{}: ldb={} but the transposed B is [{},{}]", k.name, g.ldb, b->type.shape[1],
           b->type.shape[0]);
  }

  /// The last transpose kernel before kernel `before` that writes `buffer`, or -1.
  int transposeWriting(int buffer, int before) {
    int t = -1;
    for (int i = 0; i < before; ++i)
      if (kernel(i).kind == KernelKind::Transpose && kernel(i).transpose_dst == buffer) t = i;
    return t;
  }

  void checkTranspose(const Kernel& k) {
    if (!k.ops.empty()) fail("{}: a transpose kernel computes ops", k.name);
    if (!valid(k.transpose_src) || !valid(k.transpose_dst)) {
      fail("{}: transpose buffers {} -> {} out of range", k.name, k.transpose_src, k.transpose_dst);
      return;
    }
    if (k.transpose_src == k.transpose_dst) fail("{}: transposes a buffer onto itself", k.name);
    const Buffer& src = buffer(k.transpose_src);
    const Buffer& dst = buffer(k.transpose_dst);
    int64_t bytes = k.t_rows * k.t_cols * 4;
    if (k.t_rows <= 0 || k.t_cols <= 0 || src.bytes != bytes || dst.bytes != bytes)
      fail("{}: transposes [{},{}] ({} bytes) from %{} ({} bytes) to %{} ({} bytes)", k.name,
           k.t_rows, k.t_cols, bytes, src.name, src.bytes, dst.name, dst.bytes);
    if (src.value && (src.value->type.rank() != 2 || src.value->type.shape[0] != k.t_rows ||
                      src.value->type.shape[1] != k.t_cols))
      fail("{}: transposes [{},{}] but %{} is {}", k.name, k.t_rows, k.t_cols, src.value->name,
           src.value->type.str());
    if (dst.persistent || dst.value)
      fail("{}: the transposed copy %{} must be a scratch buffer of its own", k.name, dst.name);
    if (!lists(k.reads, k.transpose_src) || !lists(k.writes, k.transpose_dst))
      fail("{}: does not list %{} in its reads and %{} in its writes", k.name, src.name, dst.name);
  }

  /// A partials kernel (Kernel::partials_of): a conv2d_weight_grad summed
  /// per chunk of samples into its partials buffer, which a later ColumnSum
  /// kernel computing the op adds up.
  void checkPartials(int ki) {
    const Kernel& k = kernel(ki);
    const Op* op = k.partials_of;
    if (!k.ops.empty()) fail("{}: a partials kernel computes ops", k.name);
    if (k.kind != KernelKind::Window || op->kind != OpKind::Conv2dWeightGrad) {
      fail("{}: a {} kernel writes partial sums of {}, but only window kernels of "
           "conv2d_weight_grad do",
           k.name, kernelKindName(k.kind), describe(op));
      return;
    }
    if (!graph_ops_.count(op)) {
      fail("{}: writes partial sums of an op that is not in graph @{}", k.name, kg_.graph->name());
      return;
    }
    const int64_t numel = op->result->type.numel();
    if (k.chunk_rows < 1 || k.rows != sampleChunks(kg_.batch, k.chunk_rows) || k.rows < 2 ||
        k.cols != numel)
      fail("{}: {} chunks of {} samples x {} weights, but a batch of {} and %{} {} make {} x {}",
           k.name, k.rows, k.chunk_rows, k.cols, kg_.batch, op->result->name,
           op->result->type.str(), k.chunk_rows < 1 ? 0 : sampleChunks(kg_.batch, k.chunk_rows),
           numel);
    if (!valid(k.partials)) {
      fail("{}: partials buffer {} out of range", k.name, k.partials);
      return;
    }
    const Buffer& buf = buffer(k.partials);
    if (buf.value || buf.persistent || buf.bytes < k.rows * k.cols * 4)
      fail("{}: partials buffer %{} must be scratch of {} bytes or more", k.name, buf.name,
           k.rows * k.cols * 4);
    if (!lists(k.writes, k.partials)) fail("{}: does not list %{} in its writes", k.name, buf.name);
    if (k.sink || !k.stores.empty()) fail("{}: a partials kernel stores no value", k.name);
    for (const Value* o : op->operands)
      checkOperand(ki, op, o, {}, false);
    auto it = kernel_of_.find(op);
    const Kernel* sum = it == kernel_of_.end() ? nullptr : &kernel(it->second);
    if (!sum || it->second < ki || sum->kind != KernelKind::ColumnSum ||
        sum->partials != k.partials || sum->chunk_rows != k.chunk_rows)
      fail("{}: the partial sums of {} are not added up by a later column_sum kernel over %{}",
           k.name, describe(op), buf.name);
  }

  /// The ColumnSum kernel computing a conv2d_weight_grad from the partials
  /// an earlier kernel wrote (checkPartials checks that kernel).
  void checkPartialsSum(int ki) {
    const Kernel& k = kernel(ki);
    const Op* anchor = k.ops.front();
    bool summed = false;
    for (int p = 0; p < ki; ++p)
      summed |= kernel(p).partials_of == anchor && kernel(p).partials == k.partials;
    if (anchor->kind != OpKind::Conv2dWeightGrad || !summed)
      fail("{}: sums partials %{} into {}, which no earlier partials kernel wrote", k.name,
           valid(k.partials) ? buffer(k.partials).name : "?", describe(anchor));
    if (k.rows != sampleChunks(kg_.batch, std::max<int64_t>(1, k.chunk_rows)) ||
        k.cols != anchor->result->type.numel())
      fail("{}: iteration space [{},{}] but %{} is summed from chunks of {} samples of {} weights",
           k.name, k.rows, k.cols, anchor->result->name, k.chunk_rows,
           anchor->result->type.numel());
    if (valid(k.partials) && !lists(k.reads, k.partials))
      fail("{}: does not list %{} in its reads", k.name, buffer(k.partials).name);
  }

  // --- order --------------------------------------------------------------------------------

  /// Checks that operand `o` of an op in kernel `ki` is available there:
  /// defined on entry, recomputed, folded, computed earlier in the kernel
  /// (`inside`) or stored by an earlier kernel and listed in the reads.
  void checkOperand(int ki, const Op* user, const Value* o, const std::set<const Value*>& inside,
                    bool via_copy) {
    const Kernel& k = kernel(ki);
    if (inside.count(o)) return;
    if (isView(o->def)) {
      // A view reads its root's memory: stored by an earlier kernel, never
      // what this kernel is computing.
      if (inside.count(viewRoot(o)))
        fail("{}: {} reads %{}, a view of %{}, which this kernel computes (a view reads memory)",
             k.name, describe(user), o->name, viewRoot(o)->name);
      else
        checkOperand(ki, user, o->def->operands[0], inside, via_copy);
      return;
    }
    if (o->def && o->def->kind == OpKind::DropoutMask) return;
    if (o->def && folded_in_.count(o->def)) {
      for (const Value* src : o->def->operands)
        checkOperand(ki, user, src, inside, false);
      return;
    }
    if (o->def) {
      auto it = kernel_of_.find(o->def);
      if (it == kernel_of_.end()) return; // "in no kernel", reported already
      int p = it->second;
      if (p == ki) {
        fail("{}: {} reads %{} before the kernel computes it", k.name, describe(user), o->name);
        return;
      }
      if (p > ki) {
        fail("{}: {} reads %{}, which a later kernel ({}) computes", k.name, describe(user),
             o->name, kernel(p).name);
        return;
      }
      if (!kernel(p).stores.count(o))
        fail("{}: {} reads %{}, which {} computes but does not store", k.name, describe(user),
             o->name, kernel(p).name);
    }
    if (via_copy) return; // the GEMM reads B's transposed copy (checked in checkGemm)
    if (o->kind == ValueKind::Input && o->type.rank() == 0) {
      // The kernels receive the step and the seed by value, and no other scalar.
      if (o->role != InputRole::Step && o->role != InputRole::Seed)
        fail("{}: {} reads %{}, a scalar input that is neither the step nor the seed: kernels "
             "receive no other scalar",
             k.name, describe(user), o->name);
      return;
    }
    int b = bufferOf(o);
    if (b < 0 || !lists(k.reads, b))
      fail("{}: {} reads %{} but the kernel does not list its buffer in its reads", k.name,
           describe(user), o->name);
  }

  void checkOrder() {
    for (size_t i = 0; i < kg_.kernels.size(); ++i) {
      const Kernel& k = kernel(int(i));
      std::set<const Value*> inside;
      for (const Op* op : k.ops) {
        if (!graph_ops_.count(op)) continue;
        for (size_t oi = 0; oi < op->operands.size(); ++oi) {
          // a weight gradient summed from partials reads them, not x and dy
          if (k.partials >= 0 && op == k.ops.front()) continue;
          bool via_copy = k.kind == KernelKind::Gemm && op == k.gemm.matmul && oi == 1 &&
                          op->attrs.getBool("transpose_b");
          checkOperand(int(i), op, op->operands[oi], inside, via_copy);
        }
        if (op->result) inside.insert(op->result);
      }
    }
    // Buffers over time: scratch is written before it is read; a param or
    // state buffer is written once, and never read after that write.
    std::vector<int> first_write(kg_.buffers.size(), -1), writes(kg_.buffers.size(), 0);
    for (size_t i = 0; i < kg_.kernels.size(); ++i) {
      const Kernel& k = kernel(int(i));
      for (int b : k.reads) {
        if (!valid(b)) continue;
        const Buffer& buf = buffer(b);
        if (!buf.persistent && !buf.input && first_write[size_t(b)] < 0)
          fail("{}: reads scratch buffer %{} before any kernel writes it", k.name, buf.name);
        bool updated = buf.value &&
                       (buf.value->kind == ValueKind::Param || buf.value->kind == ValueKind::State);
        if (updated && first_write[size_t(b)] >= 0 && first_write[size_t(b)] < int(i))
          fail("{}: reads %{} after {} updates it (write-after-read)", k.name, buf.name,
               kernel(first_write[size_t(b)]).name);
      }
      std::set<int> once(k.writes.begin(), k.writes.end());
      for (int b : once) {
        if (!valid(b)) continue;
        if (buffer(b).input) fail("{}: writes the input buffer %{}", k.name, buffer(b).name);
        if (first_write[size_t(b)] < 0) first_write[size_t(b)] = int(i);
        if (++writes[size_t(b)] == 2 && buffer(b).value &&
            (buffer(b).value->kind == ValueKind::Param ||
             buffer(b).value->kind == ValueKind::State))
          fail("{}: updates %{} a second time (first in {})", k.name, buffer(b).name,
               kernel(first_write[size_t(b)]).name);
      }
    }
    for (const auto& [out, output] : kg_.graph->outputs()) {
      const Value* v = viewRoot(output); // an output view is its root's memory
      if (!v->def) continue;
      auto it = kernel_of_.find(v->def);
      if (it == kernel_of_.end()) {
        if (v->def->kind == OpKind::DropoutMask) // (a folded output is reported above)
          fail("graph output %{} is computed by no kernel ({} is recomputed by its readers)",
               v->name, describe(v->def));
      } else if (!kernel(it->second).stores.count(v)) {
        fail("graph output %{} is computed by {} but not stored", v->name, kernel(it->second).name);
      }
    }
  }

  // --- lifetimes and placement --------------------------------------------------------------

  void checkLifetimes() {
    std::vector<int> first(kg_.buffers.size(), -1), last(kg_.buffers.size(), -1);
    for (size_t i = 0; i < kg_.kernels.size(); ++i)
      for (const auto* l : {&kernel(int(i)).reads, &kernel(int(i)).writes})
        for (int b : *l) {
          if (!valid(b)) continue;
          if (first[size_t(b)] < 0) first[size_t(b)] = int(i);
          last[size_t(b)] = int(i);
        }
    for (size_t b = 0; b < kg_.buffers.size(); ++b) {
      const Buffer& buf = kg_.buffers[b];
      if (buf.first_use != first[b] || buf.last_use != last[b])
        fail("buffer %{}: lifetime recorded as kernels {}..{} but used by kernels {}..{}", buf.name,
             buf.first_use, buf.last_use, first[b], last[b]);
    }
  }

  void checkPlacement() {
    std::vector<int> scratch;
    for (size_t b = 0; b < kg_.buffers.size(); ++b) {
      const Buffer& buf = kg_.buffers[b];
      bool placed = !buf.persistent && !buf.input && buf.first_use >= 0;
      if (!placed) {
        // Persistent buffers get slots of their own (never reused); inputs
        // are passed by pointer.
        if (buf.offset != -1)
          fail("buffer %{} ({}) is placed at scratch offset {}", buf.name,
               buf.input        ? "an input"
               : buf.persistent ? "persistent"
                                : "unused",
               buf.offset);
        continue;
      }
      if (buf.offset < 0 || buf.offset % 64 != 0 || buf.offset + buf.bytes > kg_.scratch_bytes) {
        fail("buffer %{}: offset {} and {} bytes do not fit 64-byte aligned in the {}-byte "
             "scratch region",
             buf.name, buf.offset, buf.bytes, kg_.scratch_bytes);
        continue;
      }
      scratch.push_back(int(b));
    }
    for (size_t i = 0; i < scratch.size(); ++i)
      for (size_t j = i + 1; j < scratch.size(); ++j) {
        const Buffer& a = buffer(scratch[i]);
        const Buffer& b = buffer(scratch[j]);
        bool live = a.first_use <= b.last_use && b.first_use <= a.last_use;
        bool mem = a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
        if (live && mem)
          fail("buffers %{} (kernels {}..{}, bytes {}..{}) and %{} (kernels {}..{}, bytes "
               "{}..{}) are live at once and overlap in memory",
               a.name, a.first_use, a.last_use, a.offset, a.offset + a.bytes, b.name, b.first_use,
               b.last_use, b.offset, b.offset + b.bytes);
      }
  }

  const KernelGraph& kg_;
  KernelStage stage_;
  std::vector<std::string> problems_;
  std::set<const Op*> graph_ops_;
  std::unordered_map<const Value*, std::vector<const Op*>> users_;
  std::set<const Value*> outputs_;
  std::map<const Op*, int> kernel_of_;
  std::map<const Op*, std::vector<int>> folded_in_;
};

} // namespace

std::vector<std::string> verifyKernelGraph(const KernelGraph& kg, KernelStage stage) {
  return Verifier(kg, stage).run();
}

void checkKernelGraph(const KernelGraph& kg, KernelStage stage, const char* after) {
  std::vector<std::string> problems = verifyKernelGraph(kg, stage);
  if (problems.empty()) return;
  std::string msg = fmt::format(
      "invalid kernel graph of @{} after {}:", kg.graph ? kg.graph->name() : "?", after);
  for (const auto& p : problems)
    msg += "\n  " + p;
  throw std::logic_error(msg);
}

} // namespace descent
