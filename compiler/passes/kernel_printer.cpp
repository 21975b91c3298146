// The kernel graph's text form (see kernel_printer.h).
#include "compiler/passes/kernel_printer.h"

#include <fmt/format.h>
#include <set>

namespace descent {

namespace {

/// "%r = kind %a, %b {transpose_a}   // file:line": the op without its types
/// (the kernel's header gives the iteration space).
std::string shortOp(const std::string& file, const Op* op) {
  std::string s =
      op->result ? fmt::format("%{} = {}", op->result->name, opName(op->kind)) : opName(op->kind);
  for (size_t i = 0; i < op->operands.size(); ++i)
    s += fmt::format("{}%{}", i ? ", " : " ", op->operands[i]->name);
  if (op->kind == OpKind::MatMul) {
    if (op->attrs.getBool("transpose_a")) s += " {transpose_a}";
    if (op->attrs.getBool("transpose_b")) s += " {transpose_b}";
  }
  if (op->loc.known()) s += fmt::format("   // {}:{}", file.empty() ? "line" : file, op->loc.line);
  return s;
}

/// Where a buffer lives: `arg` (passed by pointer), `@offset`, or `@?` (not placed yet).
std::string where(const Buffer& b) {
  return b.input ? "arg" : b.offset >= 0 ? fmt::format("@{}", b.offset) : "@?";
}

std::string bufferRef(const KernelGraph& kg, int b) {
  if (b < 0 || size_t(b) >= kg.buffers.size()) return fmt::format("<buffer {}>", b);
  const Buffer& buf = kg.buffers[size_t(b)];
  return fmt::format("%{}[{}]", buf.name, where(buf));
}

/// Buffers in first-seen order, each once.
std::string bufferList(const KernelGraph& kg, const std::vector<int>& list) {
  std::string s;
  std::set<int> seen;
  for (int b : list)
    if (seen.insert(b).second) s += (s.empty() ? "" : ", ") + bufferRef(kg, b);
  return s;
}

} // namespace

std::string printKernelGraph(const KernelGraph& kg) {
  std::string s = fmt::format("kernels @{} (batch {}, rows n <= {} at run time)\n",
                              kg.graph ? kg.graph->name() : "?", kg.batch, kg.batch);
  const std::string file = kg.graph ? kg.graph->file() : "";
  for (const Kernel& k : kg.kernels) {
    s += fmt::format("\n{}: {}", k.name, kernelKindName(k.kind));
    if (k.kind == KernelKind::Gemm)
      s += fmt::format(" M={}{} N={} K={}{} lda={} ldb={}{}", k.gemm.M,
                       k.gemm.m_batched ? "(n)" : "", k.gemm.N, k.gemm.K,
                       k.gemm.k_batched ? "(n)" : "", k.gemm.lda, k.gemm.ldb,
                       k.gemm.columns ? " in columns" : "");
    else if (k.kind == KernelKind::Transpose)
      s += fmt::format(" [{},{}] -> [{},{}]", k.t_rows, k.t_cols, k.t_cols, k.t_rows);
    else
      s += fmt::format(" [{}{},{}]", k.rows, k.rows_batched ? "(n)" : "", k.cols);
    s += k.parallel ? "" : " (task 0: ordered reduction)";
    s += "\n";
    for (const Op* op : k.folded)
      s +=
          k.kind == KernelKind::Gemm
              ? fmt::format("  folded   {}   (into the A loads: {})\n", shortOp(file, op),
                            op->operands[0]->type.dtype == DType::U8 ? "256-entry table" : "affine")
              : fmt::format("  folded   {}   (into the dy loads)\n", shortOp(file, op));
    if (k.partials_of) s += fmt::format("  partials {}\n", shortOp(file, k.partials_of));
    for (const Op* op : k.ops)
      s += fmt::format("  {} {}\n", op == k.sink ? "epilogue" : "op      ", shortOp(file, op));
    s += fmt::format("  reads    {}\n  writes   {}\n", bufferList(kg, k.reads),
                     bufferList(kg, k.writes));
    for (const auto& n : k.notes)
      s += "  note     " + n + "\n";
  }
  s += fmt::format("\narena scratch: {} bytes\n", kg.scratch_bytes);
  // Buffers: what plan_buffers placed (scratch, first-fit over lifetimes) and
  // what it leaves alone (inputs by pointer; params, state and outputs persist).
  s += "\nbuffers:\n";
  for (size_t i = 0; i < kg.buffers.size(); ++i) {
    const Buffer& b = kg.buffers[i];
    std::string what = b.input ? "input" : b.persistent ? "persistent" : "scratch";
    std::string life = b.first_use < 0 ? "unused"
                       : b.first_use == b.last_use
                           ? fmt::format("kernel {}", b.first_use)
                           : fmt::format("kernels {}..{}", b.first_use, b.last_use);
    s += fmt::format("  %{}[{}]: {} bytes, {}, {}{}\n", b.name, where(b), b.bytes, what, life,
                     b.panels ? ", in 64-column panels" : "");
  }
  // Views (flatten, reshape_as): no kernel and no copy, another shape of
  // their root's memory. Graph order, so the text is stable.
  bool first_view = true;
  for (size_t i = 0; kg.graph && i < kg.graph->ops().size(); ++i) {
    const Op* op = kg.graph->ops()[i].get();
    auto it = op->result ? kg.alias_of.find(op->result) : kg.alias_of.end();
    if (it == kg.alias_of.end()) continue;
    auto b = kg.buffer_of.find(it->second);
    s += fmt::format("{}  %{} = {} %{}: {}, the memory of {}\n", first_view ? "\nviews:\n" : "",
                     op->result->name, opName(op->kind), op->operands[0]->name,
                     op->result->type.str(),
                     b != kg.buffer_of.end() ? bufferRef(kg, b->second)
                                             : "%" + it->second->name + " (folded into the loads)");
    first_view = false;
  }
  if (!kg.refused.empty()) s += "\nfusions refused:\n";
  for (const auto& r : kg.refused)
    s += fmt::format("  {}: {}\n", r.what, r.why);
  return s;
}

} // namespace descent
