// Internal to compiler/codegen: the LLVM IR emitter of a kernel schedule, one
// class whose members are defined by concern in
//   emit.cpp              kernel scaffolding (signature, loops, task split),
//                         memory (buffers, vector loads/stores), map and
//                         column-sum kernels, emitKernels();
//   emit_math.cpp         the vector math library (exp, log, tanh, erf, ...);
//   emit_elementwise.cpp  the vector backend of compiler/ir/op_math.h, loss
//                         gradients, dropout masks, optimizer updates, epilogues;
//   emit_gemm.cpp         the register-blocked GEMM micro-kernel and transposes;
//   emit_gemm_columns.cpp the GEMM with vectors along M (narrow C, dX);
//   emit_rows.cpp         row kernels: softmax, log_softmax + losses, losses;
//   emit_window.cpp       convolutions; emit_pool.cpp pooling; emit_batchnorm.cpp.
// Explicit <W x float> vectors and llvm.fmuladd throughout; every kernel takes
// (arena, x, y, n, step, seed, task, ntasks); buffers sit at constant arena
// offsets, so alias analysis sees distinct, 64-byte-aligned regions.
#pragma once

#include "compiler/codegen/emit.h"
#include "compiler/ir/window_attrs.h"

#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace descent::emit_detail {

using llvm::BasicBlock;
using llvm::Constant;
using llvm::ConstantFP;
using llvm::ConstantInt;
using llvm::Function;
using llvm::PHINode;
using llvm::Type;
using LV = llvm::Value;

/// Transposes the W x W block held in the W vectors `v` (row i in v[i]) in
/// registers: log2(W) stages of shuffles (emit_gemm.cpp; the GEMM's Wᵀ
/// copies and panels, and the channel-vector convolution's output rows).
void transposeRegs(llvm::IRBuilder<>& B, std::vector<LV*>& v);

/// Where an elementwise expression is evaluated: one vector of W lanes at
/// (row, col .. col+W-1) of the kernel's [rows, cols] space.
struct ElemCtx {
  LV* row = nullptr;       ///< i64
  LV* col = nullptr;       ///< i64, first lane
  int64_t lanes_valid = 0; ///< W for a full vector, fewer for the masked tail
  bool aligned = true;     ///< col is a multiple of W (not in a window kernel's rows)
};

class Emitter {
public:
  Emitter(llvm::LLVMContext& c, llvm::Module& m, int width, std::string cpu, std::string features)
      : C(c), M(m), B(c), W(width), cpu_(std::move(cpu)), features_(std::move(features)) {
    f32 = Type::getFloatTy(C);
    i1 = Type::getInt1Ty(C);
    i8 = Type::getInt8Ty(C);
    i32 = Type::getInt32Ty(C);
    i64 = Type::getInt64Ty(C);
    ptr = llvm::PointerType::getUnqual(C);
    vf = llvm::FixedVectorType::get(f32, W);
    vi32 = llvm::FixedVectorType::get(i32, W);
    vi64 = llvm::FixedVectorType::get(i64, W);
  }

  void emitGraph(const BackendGraph& bg) {
    bg_ = &bg;
    kg_ = bg.kg;
    for (const Kernel& k : kg_->kernels)
      emitKernel(k);
  }

  void emitOne(const BackendGraph& bg, size_t kernel) {
    bg_ = &bg;
    kg_ = bg.kg;
    emitKernel(kg_->kernels.at(kernel));
  }

private:
  // --- function scaffolding -------------------------------------------------------------------

  void emitKernel(const Kernel& k);

  /// Scalars carried across loops: allocas in the entry block, which mem2reg turns into registers.
  LV* entryAlloca(Type* t);
  /// A 64-byte-aligned stack array of `floats` floats (an entry-block
  /// alloca): the blocks that register-blocked kernels stage in L1.
  LV* alignedScratch(int64_t floats);
  /// Float `index` of update op u's per-step scalar slot (step_scalars.h), loaded
  /// in the entry block: the slot is written before the step, so the load is
  /// loop-invariant even where stores into the arena would keep LICM from hoisting it.
  LV* stepScalar(const Op* u, int index);

  LV* c64(int64_t v) { return ConstantInt::get(i64, v); }
  LV* c32(int64_t v) { return ConstantInt::get(i32, v); }
  Constant* cf(double v, Type* t) { return ConstantFP::get(t, v); }
  Constant* vcf(double v) { return ConstantFP::get(vf, float(v)); }

  /// for (i = start; i < end; i += step) body(i). Body may create blocks.
  void forLoop(LV* start, LV* end, int64_t step, const std::function<void(LV*)>& body,
               const char* name = "i");

  /// for (i = start; i < end; i += step) carried = body(i, carried): a counted
  /// loop whose carried values (accumulators) stay in registers as phis.
  /// Returns the carried values at the exit. Body may create blocks.
  std::vector<LV*>
  phiLoop(LV* start, LV* end, int64_t step, const std::vector<LV*>& init,
          const std::function<std::vector<LV*>(LV*, const std::vector<LV*>&)>& body,
          const char* name);

  /// if (cond) then()
  void ifThen(LV* cond, const std::function<void()>& then);
  /// if (cond) then() else otherwise()
  void ifThenElse(LV* cond, const std::function<void()>& then,
                  const std::function<void()>& otherwise);

  /// Rows of the kernel's iteration space: runtime n or a constant.
  LV* rowsOf(bool batched, int64_t rows) { return batched ? nArg : c64(rows); }

  /// [begin, end) of `count` items for this task: contiguous, balanced chunks.
  std::pair<LV*, LV*> split(LV* count);

  // --- memory ---------------------------------------------------------------------------------

  LV* bufBase(int buffer);
  LV* bufBase(const Value* v) { return bufBase(kg_->buffer_of.at(v)); }
  bool isInput(const Value* v) const { return v->kind == ValueKind::Input; }

  /// Alignment of a W-float vector at element (row*ld + col) with col a multiple of W.
  llvm::Align vecAlign(const Value* v, int64_t ld);

  /// Whether `v`'s memory is stored in 64-column panels (Buffer::panels).
  bool inPanels(const Value* v) const {
    auto it = kg_->buffer_of.find(v);
    return it != kg_->buffer_of.end() && kg_->buffers[size_t(it->second)].panels;
  }
  /// Element index of (row, col) of matrix `v` ([rows, ld] as the kernels
  /// see it): row*ld + col, or panelIndex when stored in panels.
  LV* elemIndex(const Value* v, LV* row, LV* col);
  /// Index of (row, col) of a [rows, N] weight stored in panels:
  /// panelOffset (kernel_graph.h) in IR. A W-vector at a col that is a
  /// multiple of W stays in one panel.
  LV* panelIndex(int64_t rows, LV* row, LV* col);

  Constant* laneMask(int64_t valid);

  LV* loadVec(LV* base, LV* index, llvm::Align al, int64_t valid, LV* passthru = nullptr);
  void storeVec(LV* val, LV* base, LV* index, llvm::Align al, int64_t valid);

  LV* splat(LV* s) { return B.CreateVectorSplat(W, s); }
  LV* fma(LV* a, LV* b, LV* c) {
    return B.CreateIntrinsic(llvm::Intrinsic::fmuladd, {a->getType()}, {a, b, c});
  }
  LV* hsum(LV* v) { // ordered: lane 0 first, so the result does not depend on anything but the data
    return B.CreateIntrinsic(llvm::Intrinsic::vector_reduce_fadd, {v->getType()},
                             {cf(0.0, f32), v});
  }
  LV* hmax(LV* v) {
    return B.CreateIntrinsic(llvm::Intrinsic::vector_reduce_fmax, {v->getType()}, {v});
  }
  LV* vmax(LV* a, LV* b) { return B.CreateSelect(B.CreateFCmpOGT(a, b), a, b); }

  // --- math: Cephes-style exp and log, on any float scalar or vector type ---------------------

  LV* cst(LV* like, double v) { return ConstantFP::get(like->getType(), v); }
  LV* icst(Type* t, int64_t v) { return ConstantInt::get(t, v); }
  Type* intLike(LV* like);

  LV* exp(LV* x);

  LV* log(LV* x);

  LV* sigmoid(LV* x);

  LV* tanh(LV* x);

  /// erf(x): |x| < 0.5 by its Taylor series to x^11 (truncation < 3e-8
  /// relative), beyond by Abramowitz-Stegun 7.1.26 (absolute error < 1.5e-7),
  /// with the sign of x.
  LV* erf(LV* x);

  /// log1p(u) = log(w) - ((w - 1) - u)/w with w = 1 + u: the correction
  /// restores what rounding 1 + u lost, so tiny u give u, not 0.
  LV* log1p(LV* u);

  // --- elementwise ------------------------------------------------------------------------------

  /// The vector math backend of compiler/ir/op_math.h: W-lane float vectors.
  struct VecMath;

  /// Evaluates `op`'s math (op_math.h) on vectors; nullptr for ops without.
  template <class Math> LV* evalMath(const Op* op, const std::function<LV*(size_t)>& get);

  LV* elemMath(const Op* op, const std::function<LV*(size_t)>& get);

  /// 1/n or 1/(n*cols) for mean reductions, 1 for sum (as a float divisor).
  LV* lossDivisor(const Op* op, int64_t cols_per_row);

  /// The dropout mask at ctx: 0 or 1/(1-p), from the counter-based hash of
  /// compiler/interp/dropout_rng.h (bit-exact with the interpreter).
  LV* dropoutMask(const Op* op, const ElemCtx& ctx);
  LV* normalizeChannels(const Op* op, const ElemCtx& ctx, LV* x);
  LV* mix(LV* z);

  /// Loads operand `v` at ctx as a float vector (labels: the splatted row label).
  LV* loadOperand(const Value* v, const ElemCtx& ctx);

  void storeValue(const Value* v, LV* val, const ElemCtx& ctx);

  /// onehot(col == label[row]) as 0/1 floats.
  LV* oneHot(const Value* labels, const ElemCtx& ctx);

  /// One elementwise op on vectors. `get(i)` yields operand i as a float vector.
  /// Ops with math (ops.def's math column) evaluate it with the vector
  /// backend; the loss gradients, which read labels and the runtime row
  /// count, have their code here.
  LV* elem(const Op* op, const ElemCtx& ctx, const std::function<LV*(size_t)>& get);

  /// Applies update op `u` to its param at ctx (param viewed as [rows, cols]) with gradient g.
  void update(const Op* u, LV* g, const ElemCtx& ctx);

  /// Runs the elementwise ops of `k` (all but the anchor) at ctx, starting from
  /// `seed` values, stores what must be stored, and applies the sink.
  void epilogue(const Kernel& k, std::map<const Value*, LV*> vals, const ElemCtx& ctx,
                size_t first_op);

  /// Visits the column vectors [vbegin, vend) of a `cols`-wide row: full
  /// vectors in a loop, then the masked tail vector.
  void forColumnVectors(LV* vbegin, LV* vend, int64_t cols,
                        const std::function<void(LV* col, int64_t valid)>& body);

  // --- kernels --------------------------------------------------------------------------------

  void emitMap(const Kernel& k);

  void emitColumnSum(const Kernel& k);

  void emitTranspose(const Kernel& k);

  /// panel[prow + i][v·W + l] = W[j0 + v·W + l][kc + i] for the NV column
  /// vectors of a tile: W x W blocks of W's rows (ldb apart) transposed in
  /// registers into a packed B panel of row stride NR (dX of a wide layer).
  void packTransposed(const GemmInfo& g, LV* src, llvm::Align al, LV* j0, LV* kc, LV* panel,
                      LV* prow, int NV, int64_t NR);
  /// The micro-kernel's tile (rows, column vectors) for a GEMM with N columns.
  std::pair<int, int> tileShape(int64_t N);

  /// A(i, k) as a float scalar (with the normalize folded into the load).
  LV* loadA(const GemmInfo& g, LV* i, LV* kk);

  /// Alignment of B-operand vector loads at (k*ldb + j), j a multiple of W:
  /// an input batch guarantees 4 bytes; arena buffers are 64-byte aligned, so
  /// the row stride decides (a transposed copy of W has no graph value).
  llvm::Align bAlign(const GemmInfo& g);

  /// One K block of a K-blocked GEMM (see emitGemm): the tile's chains run
  /// over k in [k0, k0 + K) and carry their partial sums through `carry`
  /// (mr*nv vectors) between blocks; `first` starts them at 0, `last` runs
  /// the epilogue instead of storing them.
  struct KBlock {
    LV* k0;
    LV* carry;
    LV* first;
    LV* last;
  };

  /// The register-blocked micro-kernel: an mr x (nv*W) tile of C at (i0, j0),
  /// K-loop with accumulators in registers (loop-carried phis), then the epilogue.
  void microKernel(const Kernel& k, LV* i0, LV* j0, int mr, int nv, int64_t last_valid, LV* K,
                   LV* M, LV* packed = nullptr, int64_t packed_ld = 0,
                   const KBlock* kblock = nullptr);

  /// emitGemm's K-blocked schedule (see there).
  void emitGemmKBlocked(const Kernel& k, int MR, int NV);

  void emitGemm(const Kernel& k);
  /// A GEMM in columns (GemmInfo::columns, emit_gemm_columns.cpp): vectors
  /// along M, B broadcast, tiles transposed to rows for the epilogue.
  void emitGemmColumns(const Kernel& k);

  /// Row maximum, sum of exp(x - max) and log of that sum over one row of `v`.
  struct RowStats {
    LV* mx;
    LV* sum;
  };
  RowStats rowSoftmaxStats(const Value* v, LV* r, int64_t cols);
  /// The max and log-sum-exp of rows [r0, r0+W) of v [rows, cols], one row
  /// per lane, bit-identical to rowSoftmaxStats and log() per row; stored
  /// as W floats at mxOut and lseOut.
  void blockSoftmaxStats(const Value* v, LV* r0, LV* rows, int64_t cols, LV* mxOut, LV* lseOut);

  void emitRowSoftmaxLoss(const Kernel& k);

  /// 1.0 when the first maximum of row (x - mx) - lse equals `label`, else 0.
  LV* argmaxIs(LV* row, int64_t cols, LV* label, LV* mx, LV* lse);

  void emitRowOp(const Kernel& k);

  void emitLoss(const Kernel& k);

  /// grad_norm: the 2-norm of every gradient (double sum, rounded once) on
  /// task 0, then its epilogue (clip_coef).
  void emitGradNorm(const Kernel& k);

  /// conv2d, its gradients, channel_sum, pooling and its gradients: scalar
  /// loop nests in the interpreter's order (emit_window.cpp).
  void emitWindow(const Kernel& k);
  /// f(iy, ix, i, j) for every tap (i, j) of window `w` at output (oy, ox)
  /// that falls inside the [H, Wd] input, row by row: the scalar loop nests
  /// of convolution and pooling (emit_window.cpp).
  void windowTaps(const Window2d& w, int64_t H, int64_t Wd, LV* oy, LV* ox,
                  const std::function<void(LV*, LV*, LV*, LV*)>& f);
  /// max/avg/adaptive-avg pooling and their gradients (emit_pool.cpp), with
  /// the interpreter's bits. False if `k` is not one of them.
  bool emitPool(const Kernel& k);
  /// The vector pooling kernels (emit_pool.cpp): W outputs of a row per
  /// vector. False where the scalar loops of emitPool run instead.
  bool emitPoolVector(const Kernel& k);
  /// body(n) for the samples of this task; a pooling gradient's samples zeroed first.
  /// `zero`: a gradient kernel zeroes its samples' dx first (scatter-add);
  /// false where the windows tile the input and every element is stored.
  void poolSamples(const Kernel& k, const Value* batchOf, const std::function<void(LV*)>& body,
                   bool zero = true);
  /// `lanes` elements of a pooling gradient's dy at flat index yk of sample
  /// n: loaded from yb, or, when an elementwise op is folded into the dy
  /// loads (fuse.cpp: Dropout's mask multiply), that op evaluated there.
  LV* poolDy(const Kernel& k, LV* yb, LV* n, LV* yk, int64_t lanes);
  /// BatchNorm's window kernels (emit_batchnorm.cpp): statistics, the
  /// running update and the gradients on task 0, the normalization per
  /// sample. False if `k` is not one of them.
  bool emitBatchNorm(const Kernel& k);

  /// Stores window kernel k's result `val` (W lanes, `valid` of them) at
  /// (row, col) of its [rows, cols] space, through the epilogue when ops or
  /// an update are fused after the anchor.
  void windowOut(const Kernel& k, LV* val, LV* row, LV* col, int64_t valid);

  /// conv2d and conv2d_input_grad with stride 1 along the width as a
  /// register-blocked direct convolution (emit_window.cpp): vectors along the
  /// output row, a block of output channels, every tap and input channel
  /// summed in registers (a loop over the tap rows and the input channels,
  /// the tap columns unrolled), masks of the padding known at compile time,
  /// the blocks in the middle of a row that need none a loop.
  void emitConvGather(const Kernel& k);
  /// The input row output row r reads at tap row i, and whether it exists
  /// (Hi: the input's rows): the forward's r·sh - pt + i·dh inside [0, Hi);
  /// the input gradient's dy row (r + pt - i·dh)/sh when that divides.
  std::pair<LV*, LV*> convTapRow(bool fwd, const Window2d& w, LV* r, LV* i, int64_t Hi);

  /// conv2d and conv2d_input_grad with stride 1 along the width, one group,
  /// when the channels fill the vector lanes better than the output row
  /// (emit_conv.cpp): vectors along the output channels, the weights
  /// transposed to [tap][channel], the input broadcast per output position,
  /// each row transposed in registers to NCHW before the epilogue. False
  /// (nothing emitted) for the other shapes.
  bool emitConvChannels(const Kernel& k);
  /// conv2d_input_grad over dy's flat plane, one group, stride 1 along the
  /// width, for narrow planes with few input channels (emit_conv_dx.cpp): per
  /// sample and input channel a GEMM of the taps x the plane (K = dy's
  /// channels) into an L1 stack buffer, then each dx row summed from it in
  /// registers (col2im) and stored through the epilogue. False (nothing
  /// emitted) where its rule does not pick it.
  bool emitConvInputGradFlat(const Kernel& k);

  /// What one loop nest of a conv2d_weight_grad kernel sums: samples [n0,
  /// n1), the work items (this task's share, or all of them when the tasks
  /// split the chunks of a sliced weight gradient) and where each finished
  /// sum goes (the epilogue, or row `partials` of the chunk's partial sums).
  struct WgradSlice {
    LV *n0, *n1;
    LV* partials = nullptr; ///< float* to the chunk's row of Kernel::partials; null: windowOut
  };
  /// This task's items of the `count` a scheme numbers.
  std::pair<LV*, LV*> wgradItems(const WgradSlice& s, LV* count) {
    return s.partials ? std::pair<LV*, LV*>{c64(0), count} : split(count);
  }
  /// The finished sum (a scalar) of dw element (row, col) of the [O, cg·kh·kw] view.
  void wgradOut(const Kernel& k, const WgradSlice& s, LV* sum, LV* row, LV* col);

  /// conv2d_weight_grad with stride 1 along the width: a block of output
  /// channels x a row of taps per work item, summed over the batch, the
  /// output rows and the row's vectors (the unmasked middle ones a loop) in
  /// vector lanes, then across the lanes, in a fixed order; work items split
  /// over the tasks (the same bits on any thread count). A sliced weight
  /// gradient (Kernel::partials_of) runs a scheme per chunk of samples, the
  /// tasks splitting the chunks.
  void emitConvWeightGrad(const Kernel& k);
  /// The row-vector scheme above, for one slice.
  void convWeightGradRows(const Kernel& k, const WgradSlice& s);
  /// The same over dy's flat output plane (emit_conv_wgrad.cpp), when no tap
  /// reads padding and the plane uses more lanes than the rows; false when
  /// it does not apply (nothing emitted).
  bool emitConvWeightGradFlat(const Kernel& k, const WgradSlice& s);
  /// The same as a register-blocked GEMM with vectors along the output
  /// channels (emit_conv_wgrad.cpp): dy transposed per block of positions
  /// into an L1 buffer, x broadcast, the partial sums carried on the stack
  /// between blocks. One group, no padding read, channels filling the lanes
  /// better than the output rows; false when it does not apply.
  bool emitConvWeightGradChannels(const Kernel& k, const WgradSlice& s);

  // --- CrossEntropyLoss/NLLLoss(weight=, ignore_index=) ------------------------------------------

  /// True when a class loss or its gradient has weight= or ignore_index=.
  static bool weightedClassLoss(const Op* op);

  /// For every weighted class loss (or gradient) of `k` with reduction
  /// "mean": the sum of the samples' weights (torch's total_weight), computed
  /// once at the kernel's entry, before any loop reads it.
  void prepareClassDivisors(const Kernel& k);

  /// A loss's list attribute (weight, pos_weight) as a constant array padded
  /// with zeros to whole vectors.
  LV* listConstant(const Op* op, const std::string& attr);

  /// BCEWithLogitsLoss(pos_weight=) at ctx's columns (one value: splatted).
  LV* posWeightVec(const Op* op, const ElemCtx& ctx);

  /// A sample's weight (f32): 0 when `lab` (i64) is the ignored label, else
  /// weight[lab] (1 without weights). `kept` gets 1.0 or 0.0 (f32), `safe`
  /// the label or 0 when ignored (an in-bounds index).
  LV* sampleWeight(const Op* op, LV* lab, LV** kept, LV** safe);

  /// The class weights at ctx's columns (1 without weights).
  LV* classWeightVec(const Op* op, const ElemCtx& ctx);

  /// The gradient of a weighted class loss at ctx (see the interpreter's weightedClassGrad).
  LV* weightedClassGrad(const Op* op, const ElemCtx& ctx, const std::function<LV*(size_t)>& get);

  std::map<const Op*, LV*> classDiv_; ///< prepareClassDivisors' sums, per op of the kernel
  /// listConstant's arrays, per op and attribute, for the kernel being emitted.
  std::map<std::pair<const Op*, std::string>, LV*> listConstants_;

  llvm::LLVMContext& C;
  llvm::Module& M;
  llvm::IRBuilder<> B;
  int W;
  std::string cpu_, features_;
  Type *f32, *i1, *i8, *i32, *i64, *ptr;
  llvm::FixedVectorType *vf, *vi32, *vi64;
  const BackendGraph* bg_ = nullptr;
  const KernelGraph* kg_ = nullptr;
  Function* F = nullptr;
  LV* firstRow = nullptr; ///< the shard's first row in the global batch (n's high 32 bits)
  LV *arena = nullptr, *xArg = nullptr, *yArg = nullptr, *nArg = nullptr, *stepArg = nullptr,
     *seedArg = nullptr, *taskArg = nullptr, *ntasksArg = nullptr;
};

} // namespace descent::emit_detail
