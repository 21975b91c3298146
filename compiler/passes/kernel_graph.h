// The kernel graph: a train/eval graph grouped into kernels (what `fuse` builds,
// what `plan_buffers` lays out and what the LLVM backend emits). It refers to
// the graph's ops and values; it owns only the extra buffers the schedule needs
// (e.g. a transposed copy of W for dX). No LLVM here.
#pragma once

#include "compiler/ir/graph.h"

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace descent {

/// How a kernel is computed. Every kind takes the partition (task, ntasks) and
/// the runtime row count n <= batch.
enum class KernelKind {
  Gemm,           ///< C = op(A)·op(B) with a register-blocked micro-kernel; fused epilogue
  Map,            ///< elementwise chain over [rows, cols] (rows = n when batched)
  ColumnSum,      ///< sum_rows over the batch, in row order per column (+ fused update); or a
                  ///< conv weight gradient's per-chunk partial sums added in chunk order
  Transpose,      ///< copies a [R,C] tensor to [C,R] (the B operand of dX = dY·Wᵀ)
  RowSoftmaxLoss, ///< log_softmax + nll_loss + log_softmax_nll_grad (+ count_correct) per row
  RowOp,          ///< softmax / log_softmax / softmax_grad / log_softmax_grad, one row at a time
  Loss,           ///< a scalar loss or metric, summed in row order on task 0
  GradNorm,       ///< grad_norm over every gradient buffer (+ clip_coef), ordered on task 0
  Window, ///< one conv2d/pooling op or gradient: a scalar loop nest (per sample, or on task 0 for
          ///< dW/db)
  AllReduce, ///< one allreduce: no machine code; the executor calls the run's GradientReducer
};

const char* kernelKindName(KernelKind k);

/// The value whose memory `v` is: `v` itself, or, for the result of a view
/// op (flatten, reshape_as), the root of its operand 0 (row-major data does
/// not move when only the shape changes).
const Value* viewRoot(const Value* v);

/// Rows and columns of a tensor as the kernels iterate over it: [d0, the
/// product of the other dims] (a [C] vector is one row, a scalar [1,1]).
std::pair<int64_t, int64_t> matrixShape(const TensorType& t);

/// A memory region used by kernels. Values that are materialized own one;
/// extra buffers (transposes) have no value.
struct Buffer {
  std::string name;             ///< for printing: the value name or a made-up one
  const Value* value = nullptr; ///< the graph value stored here, if any
  int64_t bytes = 0;
  bool persistent = false;      ///< params, state, graph outputs: never reused
  bool input = false;           ///< %x / %y: passed to the kernels by pointer, not in the arena
  int first_use = -1, last_use = -1; ///< kernel indices (lifetime for plan_buffers)
  int64_t offset = -1;          ///< byte offset in the arena (plan_buffers); -1 for inputs
  /// A weight [K,N] stored as N/kPanelCols contiguous [K, kPanelCols] column
  /// panels instead of row-major (weight_panels.h): element (k, n) at
  /// ((n / 64) * K + k) * 64 + n % 64. Every kernel that touches it reads
  /// and writes it through that formula; the program converts at its edge.
  bool panels = false;
};

/// Columns of one panel of a weight stored in panels (Buffer::panels).
inline constexpr int64_t kPanelCols = 64;

/// Where element (r, c) of a [rows, N] weight stored in panels lives
/// (Emitter::panelIndex emits the same formula).
inline int64_t panelOffset(int64_t rows, int64_t r, int64_t c) {
  return ((c / kPanelCols) * rows + r) * kPanelCols + c % kPanelCols;
}

/// GEMM parameters: C[M,N] = A'[M,K] · B'[K,N] where A' = ta ? Aᵀ : A and B'
/// is read contiguously along N (b_buffer is a transposed copy when the graph
/// asked for transpose_b).
struct GemmInfo {
  const Op* matmul = nullptr;
  int64_t M = 0, N = 0, K = 0;
  bool m_batched = false; ///< M is the runtime row count n (forward, dX)
  bool k_batched = false; ///< K is the runtime row count n (dW = Xᵀ·dY)
  bool ta = false;
  /// B' = Bᵀ read straight from B [N,K] (ldb = K): a GEMM in columns
  /// broadcasts B's rows, otherwise the panel packing transposes them (see
  /// packsTransposedB). Without tb, a transpose_b GEMM reads a Wᵀ copy.
  bool tb = false;
  /// C computed in columns (see gemmInColumns): vectors along M, B
  /// broadcast, each tile transposed in registers before the epilogue.
  bool columns = false;
  /// Aᵀ [K,M] copied by an earlier transpose kernel (a dX in columns reads dYᵀ), or -1.
  int at_buffer = -1;
  int a_buffer = -1, b_buffer = -1; ///< indices into KernelGraph::buffers
  int64_t lda = 0, ldb = 0;
  const Op* a_normalize = nullptr; ///< normalize folded into the A loads (u8 LUT or f32 affine)
};

/// Whether a transpose_b GEMM (dX = dY·Wᵀ, W [N,K]) reads W directly and
/// transposes it while packing its B panels instead of reading a Wᵀ copy made
/// by a transpose kernel: whole column tiles for any vector width, a K x 64
/// panel of at most 512 KiB, K in whole 16-float blocks, and at least two
/// panels. A 4 MB Wᵀ copy costs a DRAM round trip of 8-12 MB per step; the
/// notebook model's [128,64] copy was 1.5 us on the caller alone, and its dX
/// on two threads then read the copy's other half from the caller's cache:
/// copy + dX 11.9 -> 8.3 us per 2-thread step packing from W's rows, whose
/// halves each thread updated itself (6.9 against 7.4 us on one thread).
inline bool packsTransposedB(int64_t N, int64_t K) {
  return N % 64 == 0 && N >= 128 && K % 16 == 0 && K * 64 * 4 <= 512 * 1024;
}

/// Whether a GEMM computes C in columns (Emitter::emitGemmColumns): each
/// vector holds 16 rows of one column of C (A's columns as vectors, B's
/// elements broadcast), and each tile is transposed in registers before the
/// epilogue, which sees rows as usual. Each C element is still one chain in
/// k order, so the bits are those of the row-vector kernel. Two GEMMs gain:
/// - dX = dY·Wᵀ (transpose_b): W [N,K] is read by rows, in place, and only
///   dY [M,K], the batch's rows, is transposed (by a transpose kernel, each
///   task the columns its producer wrote) instead of W. Transposing costs
///   ~100 cycles per 16 x 16 block, so it pays from K = 128 (one thread:
///   wide_mlp's 1024-wide dX 994-1015 -> 859-894 us + 10 us of dYT, with W
///   prefetched; mnist_cnn's Linear(9216, 128) 1436 -> 1294 us before the
///   prefetch), and from K = 32 where the alternative is a separate Wᵀ copy
///   (N not whole panels: LeNet-5's Linear(400, 120) copy + dX 47.1 -> 40.7
///   us); at K = 10 the tiles' transposes outweigh their 10 FMAs per column.
/// - a dW with fewer than 16 columns (10 classes fill 10 of 16 lanes along
///   N): Aᵀ is X, whose rows are A's columns already, so nothing is
///   transposed but the tiles (wide_mlp's Linear(1024, 10) 26.5 -> 17.7 us).
///   A forward with 10 columns would have to transpose X first, which cost
///   as much as it saved (LeNet-5: 1.5 -> 2.4 us).
/// It needs 32 rows or more (two vectors) and no normalize folded into A's
/// loads; a dX also whole tiles of 32 rows (dYᵀ's rows are M floats long).
inline bool gemmInColumns(bool ta, bool tb, int64_t M, int64_t N, int64_t K, bool k_batched,
                          bool a_normalized) {
  if (M < 32 || a_normalized) return false;
  if (tb)
    return !ta && !k_batched && M % 32 == 0 && K >= 32 && (K >= 128 || !packsTransposedB(N, K));
  return ta && k_batched && N < 16;
}

/// Bytes beyond which a weight matrix (or a dW GEMM's C) does not stay in
/// one core's L2 between steps (2 MB here) and is streamed from L3 or
/// memory: the GEMMs then avoid reading it, or what they pair it with,
/// twice (runtime/executor.cpp's piece count, emitGemm's tile order).
inline constexpr int64_t kStreamedBytes = int64_t(2) << 20;

/// Whether the tasks of a kernel writing [rows, cols] f32 split its rows
/// rather than its columns: rows that are not whole 64-byte lines (LeNet-5's
/// 120 and 84 features) would put a cache line of every row in two tasks at
/// a column split, and the cores would pull it back and forth (LeNet-5's
/// linear7 dW + SGD on 2 threads: 49.5 -> 31.7 us per thread split by rows).
/// The GEMMs number their tiles row-major then, and the transposed copy of
/// W for dX splits W's rows too, so each thread reads the rows it updated.
inline bool splitsRows(int64_t cols) {
  return (cols * 4) % 64 != 0;
}

/// Whether conv2d_input_grad `op` is emitted by a kernel that stores each
/// dx element once, finished, through the epilogue (stride 1 along the
/// width: emitConvGather and emitConvChannels), so elementwise consumers of
/// dx may fuse after it; the scalar loop nest of the other strides
/// scatter-adds into dx instead.
inline bool convInputGradTakesEpilogue(const Op* op) {
  return op->kind == OpKind::Conv2dInputGrad && op->attrs.getInt("stride_w", 1) == 1;
}

/// The chunks of a batch-sliced weight gradient on n samples.
inline int64_t sampleChunks(int64_t n, int64_t chunk_rows) {
  return (n + chunk_rows - 1) / chunk_rows;
}

/// One kernel: the graph ops it computes, in order. `ops` lists every fused
/// op; the kind-specific anchor decides the loop structure.
struct Kernel {
  std::string name;               ///< e.g. k3_linear2_dW_sgd_line10
  KernelKind kind = KernelKind::Map;
  std::vector<const Op*> ops;     ///< graph ops fused into this kernel, in evaluation order
  std::vector<const Op*> folded;  ///< ops folded into operand loads (normalize)
  const Op* sink = nullptr;       ///< update op applied in the epilogue (no gradient buffer)
  GemmInfo gemm;                  ///< Gemm only
  int64_t rows = 0, cols = 0;     ///< iteration space of the epilogue / map
  bool rows_batched = false;      ///< rows = runtime n
  std::set<const Value*> stores;  ///< values this kernel writes to their buffer
  std::vector<int> reads, writes; ///< buffer indices
  int transpose_src = -1, transpose_dst = -1; ///< Transpose only
  int64_t t_rows = 0, t_cols = 0;             ///< Transpose only: source shape
  bool parallel = true;           ///< false: only task 0 works (ordered reductions)
  /// A conv2d_weight_grad summed per chunk of samples (batch slicing: each
  /// task sums the weight gradient over its own samples, which it computed
  /// the dy of, instead of reading the whole batch for a slice of the
  /// weights). Two kernels: a Window kernel with no ops whose `partials_of`
  /// is the op writes the sums of chunk q (samples [q·chunk_rows, ...), in
  /// order) to row q of buffer `partials` [chunks, weights]; then the
  /// ColumnSum kernel computing the op adds those rows in chunk order (and
  /// runs the update). The chunks depend on the batch, never on the tasks.
  const Op* partials_of = nullptr; ///< the partials kernel only
  int partials = -1;               ///< both kernels: the [chunks, weights] buffer
  int64_t chunk_rows = 0;          ///< both kernels: samples per chunk
  std::vector<std::string> notes; ///< fusion decisions worth printing
};

/// The op kernel `k`'s loops are built around: its first op, or the weight
/// gradient whose per-chunk partial sums a partials kernel writes (it
/// computes no op itself: the ColumnSum kernel after it does).
inline const Op* anchorOp(const Kernel& k) {
  return k.partials_of ? k.partials_of : k.ops.empty() ? nullptr : k.ops.front();
}

/// A fusion that was considered and refused, with the reason.
struct FusionRefusal {
  std::string what, why;
};

/// The whole schedule of one graph.
struct KernelGraph {
  const Graph* graph = nullptr;
  int64_t batch = 0;                       ///< static batch the graph was built for
  std::vector<Kernel> kernels;             ///< in execution order
  std::vector<Buffer> buffers;
  std::map<const Value*, int> buffer_of;   ///< materialized value -> buffer index
  std::set<const Value*> batched;          ///< values whose first dim is the runtime n
  /// Views (flatten, reshape_as: the View trait) are computed by no kernel:
  /// each maps to the value whose buffer it shares (its root, itself no
  /// view), and buffer_of maps it to that buffer.
  std::map<const Value*, const Value*> alias_of;
  std::vector<FusionRefusal> refused;
  int64_t scratch_bytes = 0;               ///< arena bytes for non-persistent buffers (plan_buffers)
  const Value* x = nullptr;                ///< the batch input (%x) and the targets (%y)
  const Value* y = nullptr;
};

} // namespace descent
