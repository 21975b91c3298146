// LLVM IR emission of the kernel schedule: explicit <W x float> vectors and
// llvm.fmuladd, a register-blocked GEMM micro-kernel with fused epilogues, row
// kernels for softmax/losses, and our own vectorized exp/log (llvm.exp on
// vectors would become scalar expf calls). Every kernel takes (arena, x, y,
// n, step, seed, task, ntasks); buffers sit at constant arena offsets, so
// alias analysis sees distinct, 64-byte-aligned regions.
#include "compiler/codegen/emit.h"

#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Support/raw_ostream.h>

#include <cmath>
#include <functional>
#include <numeric>

namespace descent {

namespace {

using llvm::BasicBlock;
using llvm::Constant;
using llvm::ConstantFP;
using llvm::ConstantInt;
using llvm::Function;
using llvm::PHINode;
using llvm::Type;
using LV = llvm::Value;

/// Largest B panel a GEMM copies to the stack (see emitGemm): far below the
/// 8 MiB thread stacks, and 512 KiB covers K = 2048 at 64 columns.
constexpr int64_t kMaxPanelBytes = 512 * 1024;

/// Where an elementwise expression is evaluated: one vector of W lanes at
/// (row, col .. col+W-1) of the kernel's [rows, cols] space.
struct ElemCtx {
  LV* row = nullptr;        ///< i64
  LV* col = nullptr;        ///< i64, first lane
  int64_t lanes_valid = 0;  ///< W for a full vector, fewer for the masked tail
};

class Emitter {
public:
  Emitter(llvm::LLVMContext& c, llvm::Module& m, int width, std::string cpu, std::string features)
      : C(c), M(m), B(c), W(width), cpu_(std::move(cpu)), features_(std::move(features)) {
    f32 = Type::getFloatTy(C);
    f64 = Type::getDoubleTy(C);
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
    for (const Kernel& k : kg_->kernels) emitKernel(k);
  }

  void emitOne(const BackendGraph& bg, size_t kernel) {
    bg_ = &bg;
    kg_ = bg.kg;
    emitKernel(kg_->kernels.at(kernel));
  }

private:
  // --- function scaffolding -------------------------------------------------------------------

  void emitKernel(const Kernel& k) {
    Type* params[] = {ptr, ptr, ptr, i64, i64, i32, i32, i32};
    auto* fty = llvm::FunctionType::get(Type::getVoidTy(C), params, false);
    F = Function::Create(fty, Function::ExternalLinkage, bg_->prefix + k.name, M);
    F->addFnAttr(llvm::Attribute::NoUnwind);
    F->addFnAttr(llvm::Attribute::NoFree);
    F->addFnAttr(llvm::Attribute::NoSync);
    if (!cpu_.empty()) F->addFnAttr("target-cpu", cpu_);
    if (!features_.empty()) F->addFnAttr("target-features", features_);
    // Without these, CPUs tuned for 256-bit vectors (Sapphire Rapids, Zen 4)
    // would split every <16 x float> into two ymm halves.
    std::string bits = std::to_string(W * 32);
    F->addFnAttr("min-legal-vector-width", bits);
    F->addFnAttr("prefer-vector-width", bits);
    for (int i = 0; i < 3; ++i) {
      F->addParamAttr(i, llvm::Attribute::NoAlias);
      F->addParamAttr(i, llvm::Attribute::NoCapture);
    }
    F->addParamAttr(0, llvm::Attribute::getWithAlignment(C, llvm::Align(64)));
    auto ai = F->arg_begin();
    arena = &*ai++;
    xArg = &*ai++;
    yArg = &*ai++;
    nArg = &*ai++;
    stepArg = &*ai++;
    seedArg = &*ai++;
    taskArg = &*ai++;
    ntasksArg = &*ai++;
    arena->setName("arena");
    xArg->setName("x");
    yArg->setName("y");
    nArg->setName("n");
    stepArg->setName("step");
    seedArg->setName("seed");
    taskArg->setName("task");
    ntasksArg->setName("ntasks");
    B.SetInsertPoint(BasicBlock::Create(C, "entry", F));
    kernel_ = &k;
    switch (k.kind) {
    case KernelKind::Gemm: emitGemm(k); break;
    case KernelKind::Map: emitMap(k); break;
    case KernelKind::ColumnSum: emitColumnSum(k); break;
    case KernelKind::Transpose: emitTranspose(k); break;
    case KernelKind::RowSoftmaxLoss: emitRowSoftmaxLoss(k); break;
    case KernelKind::RowOp: emitRowOp(k); break;
    case KernelKind::Loss: emitLoss(k); break;
    }
    B.CreateRetVoid();
  }

  /// Scalars carried across loops: allocas in the entry block, which mem2reg turns into registers.
  LV* entryAlloca(Type* t) {
    llvm::IRBuilder<> eb(&F->getEntryBlock(), F->getEntryBlock().begin());
    return eb.CreateAlloca(t);
  }

  LV* c64(int64_t v) { return ConstantInt::get(i64, v); }
  LV* c32(int64_t v) { return ConstantInt::get(i32, v); }
  Constant* cf(double v, Type* t) { return ConstantFP::get(t, v); }
  Constant* vcf(double v) { return ConstantFP::get(vf, float(v)); }

  /// for (i = start; i < end; i += step) body(i). Body may create blocks.
  void forLoop(LV* start, LV* end, int64_t step, const std::function<void(LV*)>& body,
               const char* name = "i") {
    BasicBlock* pre = B.GetInsertBlock();
    BasicBlock* hdr = BasicBlock::Create(C, std::string(name) + ".hdr", F);
    BasicBlock* bb = BasicBlock::Create(C, std::string(name) + ".body", F);
    BasicBlock* exit = BasicBlock::Create(C, std::string(name) + ".exit", F);
    B.CreateBr(hdr);
    B.SetInsertPoint(hdr);
    PHINode* i = B.CreatePHI(i64, 2, name);
    i->addIncoming(start, pre);
    B.CreateCondBr(B.CreateICmpSLT(i, end), bb, exit);
    B.SetInsertPoint(bb);
    body(i);
    LV* next = B.CreateAdd(i, c64(step), "", true, true);
    i->addIncoming(next, B.GetInsertBlock());
    B.CreateBr(hdr);
    B.SetInsertPoint(exit);
  }

  /// if (cond) then()
  void ifThen(LV* cond, const std::function<void()>& then) {
    BasicBlock* t = BasicBlock::Create(C, "then", F);
    BasicBlock* e = BasicBlock::Create(C, "endif", F);
    B.CreateCondBr(cond, t, e);
    B.SetInsertPoint(t);
    then();
    B.CreateBr(e);
    B.SetInsertPoint(e);
  }

  /// Rows of the kernel's iteration space: runtime n or a constant.
  LV* rowsOf(bool batched, int64_t rows) { return batched ? nArg : c64(rows); }

  /// [begin, end) of `count` items for this task: contiguous, balanced chunks.
  std::pair<LV*, LV*> split(LV* count) {
    LV* t = B.CreateSExt(taskArg, i64);
    LV* nt = B.CreateSExt(ntasksArg, i64);
    LV* b = B.CreateSDiv(B.CreateMul(count, t), nt);
    LV* e = B.CreateSDiv(B.CreateMul(count, B.CreateAdd(t, c64(1))), nt);
    return {b, e};
  }

  // --- memory ---------------------------------------------------------------------------------

  LV* bufBase(int buffer) {
    const Buffer& b = kg_->buffers[buffer];
    if (b.input) return b.value == kg_->y ? yArg : xArg;
    return B.CreateInBoundsGEP(i8, arena, c64(b.offset));
  }
  LV* bufBase(const Value* v) { return bufBase(kg_->buffer_of.at(v)); }
  bool isInput(const Value* v) const { return v->kind == ValueKind::Input; }

  /// Alignment of a W-float vector at element (row*ld + col) with col a multiple of W.
  llvm::Align vecAlign(const Value* v, int64_t ld) {
    if (isInput(v)) return llvm::Align(4);
    int64_t a = std::gcd(ld * 4, int64_t(W) * 4);
    a = std::gcd(a, int64_t(64));
    return llvm::Align(uint64_t(a));
  }

  Constant* laneMask(int64_t valid) {
    std::vector<Constant*> m;
    for (int i = 0; i < W; ++i) m.push_back(ConstantInt::get(i1, i < valid ? 1 : 0));
    return llvm::ConstantVector::get(m);
  }

  LV* loadVec(LV* base, LV* index, llvm::Align al, int64_t valid, LV* passthru = nullptr) {
    LV* p = B.CreateInBoundsGEP(f32, base, index);
    if (valid >= W) return B.CreateAlignedLoad(vf, p, al);
    return B.CreateMaskedLoad(vf, p, al, laneMask(valid), passthru ? passthru : vcf(0));
  }
  void storeVec(LV* val, LV* base, LV* index, llvm::Align al, int64_t valid) {
    LV* p = B.CreateInBoundsGEP(f32, base, index);
    if (valid >= W) B.CreateAlignedStore(val, p, al);
    else B.CreateMaskedStore(val, p, al, laneMask(valid));
  }

  LV* splat(LV* s) { return B.CreateVectorSplat(W, s); }
  LV* fma(LV* a, LV* b, LV* c) {
    return B.CreateIntrinsic(llvm::Intrinsic::fmuladd, {a->getType()}, {a, b, c});
  }
  LV* hsum(LV* v) { // ordered: lane 0 first, so the result does not depend on anything but the data
    return B.CreateIntrinsic(llvm::Intrinsic::vector_reduce_fadd, {v->getType()}, {cf(0.0, f32), v});
  }
  LV* hmax(LV* v) { return B.CreateIntrinsic(llvm::Intrinsic::vector_reduce_fmax, {v->getType()}, {v}); }
  LV* vmax(LV* a, LV* b) { return B.CreateSelect(B.CreateFCmpOGT(a, b), a, b); }

  // --- math: Cephes-style exp and log, on any float scalar or vector type ---------------------

  LV* cst(LV* like, double v) { return ConstantFP::get(like->getType(), v); }
  LV* icst(Type* t, int64_t v) { return ConstantInt::get(t, v); }
  Type* intLike(LV* like) {
    if (auto* vt = llvm::dyn_cast<llvm::FixedVectorType>(like->getType()))
      return llvm::FixedVectorType::get(i32, vt->getNumElements());
    return i32;
  }

  LV* exp(LV* x) {
    // exp(x) = 2^k * e^r, k = round(x*log2(e)), r = x - k*ln2 (two-part ln2),
    // e^r by a degree-6 polynomial (Cephes expf, ~1 ulp).
    LV* xc = B.CreateSelect(B.CreateFCmpOGT(x, cst(x, 88.3762626647949)), cst(x, 88.3762626647949), x);
    xc = B.CreateSelect(B.CreateFCmpOLT(xc, cst(xc, -87.3365447505531)), cst(xc, -87.3365447505531), xc);
    LV* fx = B.CreateIntrinsic(llvm::Intrinsic::floor, {x->getType()},
                               {fma(xc, cst(x, 1.44269504088896341), cst(x, 0.5))});
    LV* r = B.CreateFSub(xc, B.CreateFMul(fx, cst(x, 0.693359375)));
    r = B.CreateFSub(r, B.CreateFMul(fx, cst(x, -2.12194440e-4)));
    LV* z = B.CreateFMul(r, r);
    LV* y = cst(x, 1.9875691500E-4);
    y = fma(y, r, cst(x, 1.3981999507E-3));
    y = fma(y, r, cst(x, 8.3334519073E-3));
    y = fma(y, r, cst(x, 4.1665795894E-2));
    y = fma(y, r, cst(x, 1.6666665459E-1));
    y = fma(y, r, cst(x, 5.0000001201E-1));
    y = fma(y, z, B.CreateFAdd(r, cst(x, 1.0)));
    Type* it = intLike(x);
    LV* k = B.CreateFPToSI(fx, it);
    LV* pow2 = B.CreateBitCast(B.CreateShl(B.CreateAdd(k, icst(it, 127)), icst(it, 23)), x->getType());
    LV* res = B.CreateFMul(y, pow2);
    // Below the clamp the true value underflows: return 0 like expf.
    return B.CreateSelect(B.CreateFCmpOLT(x, cst(x, -87.3365447505531)), cst(x, 0.0), res);
  }

  LV* log(LV* x) {
    // log(x) = e*ln2 + log(m), m in [sqrt(1/2), sqrt(2)), Cephes logf polynomial.
    Type* it = intLike(x);
    LV* xi = B.CreateBitCast(x, it);
    LV* e = B.CreateSub(B.CreateLShr(xi, icst(it, 23)), icst(it, 126));
    LV* m = B.CreateBitCast(B.CreateOr(B.CreateAnd(xi, icst(it, 0x807fffff)), icst(it, 0x3f000000)),
                            x->getType()); // [0.5, 1)
    LV* ef = B.CreateSIToFP(e, x->getType());
    LV* small = B.CreateFCmpOLT(m, cst(x, 0.707106781186547524));
    ef = B.CreateSelect(small, B.CreateFSub(ef, cst(x, 1.0)), ef);
    LV* t = B.CreateSelect(small, B.CreateFAdd(m, m), m);
    t = B.CreateFSub(t, cst(x, 1.0));
    LV* z = B.CreateFMul(t, t);
    LV* y = cst(x, 7.0376836292E-2);
    for (double c : {-1.1514610310E-1, 1.1676998740E-1, -1.2420140846E-1, 1.4249322787E-1,
                     -1.6668057665E-1, 2.0000714765E-1, -2.4999993993E-1, 3.3333331174E-1})
      y = fma(y, t, cst(x, c));
    y = B.CreateFMul(B.CreateFMul(y, t), z);
    y = fma(ef, cst(x, -2.12194440e-4), y);
    y = fma(z, cst(x, -0.5), y);
    LV* r = B.CreateFAdd(t, y);
    r = fma(ef, cst(x, 0.693359375), r);
    // Denormals are flushed (FTZ/DAZ), so x <= 0 covers them: -inf at 0, NaN below.
    r = B.CreateSelect(B.CreateFCmpOEQ(x, cst(x, 0.0)), cst(x, -INFINITY), r);
    r = B.CreateSelect(B.CreateFCmpOLT(x, cst(x, 0.0)), cst(x, NAN), r);
    r = B.CreateSelect(B.CreateFCmpOEQ(x, cst(x, INFINITY)), cst(x, INFINITY), r);
    return r;
  }

  LV* sigmoid(LV* x) {
    return B.CreateFDiv(cst(x, 1.0), B.CreateFAdd(cst(x, 1.0), exp(B.CreateFNeg(x))));
  }

  LV* tanh(LV* x) {
    // |x| < 0.625: odd polynomial (Cephes tanhf); else 1 - 2/(exp(2|x|)+1) with the sign of x.
    LV* ax = B.CreateIntrinsic(llvm::Intrinsic::fabs, {x->getType()}, {x});
    LV* z = B.CreateFMul(x, x);
    LV* p = cst(x, -5.70498872745E-3);
    for (double c : {2.06390887954E-2, -5.37397155531E-2, 1.33314422036E-1, -3.33332819422E-1})
      p = fma(p, z, cst(x, c));
    LV* small = fma(B.CreateFMul(p, z), x, x);
    LV* e = exp(B.CreateFAdd(ax, ax));
    LV* big = B.CreateFSub(cst(x, 1.0), B.CreateFDiv(cst(x, 2.0), B.CreateFAdd(e, cst(x, 1.0))));
    big = B.CreateIntrinsic(llvm::Intrinsic::copysign, {x->getType()}, {big, x});
    return B.CreateSelect(B.CreateFCmpOLT(ax, cst(x, 0.625)), small, big);
  }

  // --- elementwise ------------------------------------------------------------------------------

  /// 1/n or 1/(n*cols) for mean reductions, 1 for sum (as a float divisor).
  LV* lossDivisor(const Op* op, int64_t cols_per_row) {
    if (op->attrs.getString("reduction", "mean") != "mean") return nullptr;
    LV* cnt = kg_->batched.count(op->operands[0]) ? nArg : c64(op->operands[0]->type.shape[0]);
    cnt = B.CreateMul(cnt, c64(cols_per_row));
    return B.CreateSIToFP(cnt, f32);
  }

  /// The dropout mask at ctx: 0 or 1/(1-p), from the counter-based hash of
  /// compiler/interp/dropout_rng.h (bit-exact with the interpreter).
  LV* dropoutMask(const Op* op, const ElemCtx& ctx) {
    int64_t cols = op->attrs.getInt("cols");
    double p = op->attrs.getDouble("p", 0.5);
    int64_t salt = op->attrs.getInt("salt");
    LV* k1 = B.CreateAdd(B.CreateShl(B.CreateZExt(seedArg, i64), 32), stepArg);
    LV* h1 = mix(B.CreateXor(k1, c64(int64_t(0x9E3779B97F4A7C15ull))));
    std::vector<Constant*> lanes;
    for (int i = 0; i < W; ++i) lanes.push_back(ConstantInt::get(i64, i));
    LV* idx = B.CreateAdd(splat(B.CreateAdd(B.CreateMul(ctx.row, c64(cols)), ctx.col)),
                          llvm::ConstantVector::get(lanes));
    LV* k2 = B.CreateOr(B.CreateAnd(idx, ConstantInt::get(vi64, 0xffffffffull)),
                        ConstantInt::get(vi64, uint64_t(uint32_t(salt)) << 32));
    LV* h = mix(B.CreateXor(splat(h1), k2));
    LV* r = B.CreateTrunc(B.CreateLShr(h, ConstantInt::get(vi64, 40)), vi32);
    uint32_t thr = uint32_t(std::ceil(p * 16777216.0));
    float scale = 1.0f / float(1.0 - p);
    return B.CreateSelect(B.CreateICmpUGE(r, ConstantInt::get(vi32, thr)), vcf(scale), vcf(0.0));
  }
  LV* mix(LV* z) {
    Type* t = z->getType();
    z = B.CreateMul(B.CreateXor(z, B.CreateLShr(z, ConstantInt::get(t, 30))),
                    ConstantInt::get(t, 0xBF58476D1CE4E5B9ull));
    z = B.CreateMul(B.CreateXor(z, B.CreateLShr(z, ConstantInt::get(t, 27))),
                    ConstantInt::get(t, 0x94D049BB133111EBull));
    return B.CreateXor(z, B.CreateLShr(z, ConstantInt::get(t, 31)));
  }

  /// Loads operand `v` at ctx as a float vector (labels: the splatted row label).
  LV* loadOperand(const Value* v, const ElemCtx& ctx) {
    if (v->def && v->def->kind == OpKind::DropoutMask) return dropoutMask(v->def, ctx);
    LV* base = bufBase(v);
    if (v->type.dtype == DType::I32) {
      LV* p = B.CreateInBoundsGEP(i32, base, ctx.row);
      return splat(B.CreateAlignedLoad(i32, p, llvm::Align(4)));
    }
    if (v->type.rank() == 0) return splat(B.CreateAlignedLoad(f32, base, llvm::Align(4)));
    if (v->type.rank() == 1) return loadVec(base, ctx.col, vecAlign(v, 0), ctx.lanes_valid);
    int64_t ld = v->type.shape[1];
    LV* index = B.CreateAdd(B.CreateMul(ctx.row, c64(ld)), ctx.col);
    if (v->type.dtype == DType::U8) {
      auto* vu8 = llvm::FixedVectorType::get(i8, W);
      LV* p = B.CreateInBoundsGEP(i8, base, index);
      LV* raw = ctx.lanes_valid >= W
                    ? (LV*)B.CreateAlignedLoad(vu8, p, llvm::Align(1))
                    : B.CreateMaskedLoad(vu8, p, llvm::Align(1), laneMask(ctx.lanes_valid),
                                         llvm::ConstantAggregateZero::get(vu8));
      return B.CreateUIToFP(raw, vf);
    }
    return loadVec(base, index, vecAlign(v, ld), ctx.lanes_valid);
  }

  void storeValue(const Value* v, LV* val, const ElemCtx& ctx) {
    LV* base = bufBase(v);
    if (v->type.rank() == 1) return storeVec(val, base, ctx.col, vecAlign(v, 0), ctx.lanes_valid);
    int64_t ld = v->type.shape[1];
    storeVec(val, base, B.CreateAdd(B.CreateMul(ctx.row, c64(ld)), ctx.col), vecAlign(v, ld),
             ctx.lanes_valid);
  }

  /// onehot(col == label[row]) as 0/1 floats.
  LV* oneHot(const Value* labels, const ElemCtx& ctx) {
    LV* lab = B.CreateAlignedLoad(i32, B.CreateInBoundsGEP(i32, bufBase(labels), ctx.row), llvm::Align(4));
    std::vector<Constant*> lanes;
    for (int i = 0; i < W; ++i) lanes.push_back(ConstantInt::get(i64, i));
    LV* cols = B.CreateAdd(splat(ctx.col), llvm::ConstantVector::get(lanes));
    LV* eq = B.CreateICmpEQ(cols, splat(B.CreateSExt(lab, i64)));
    return B.CreateSelect(eq, vcf(1.0), vcf(0.0));
  }

  /// One elementwise op on vectors. `get(i)` yields operand i as a float vector.
  LV* elem(const Op* op, const ElemCtx& ctx, const std::function<LV*(size_t)>& get) {
    switch (op->kind) {
    case OpKind::Normalize: {
      LV* x = get(0);
      x = B.CreateFDiv(x, vcf(op->attrs.getDouble("divisor", 1.0)));
      x = B.CreateFSub(x, vcf(op->attrs.getDouble("mean", 0.0)));
      return B.CreateFDiv(x, vcf(op->attrs.getDouble("std", 1.0)));
    }
    case OpKind::AddBias:
    case OpKind::Add: return B.CreateFAdd(get(0), get(1));
    case OpKind::Mul: return B.CreateFMul(get(0), get(1));
    case OpKind::Relu: {
      LV* x = get(0);
      return B.CreateSelect(B.CreateFCmpOGT(x, vcf(0)), x, vcf(0));
    }
    case OpKind::Sigmoid: return sigmoid(get(0));
    case OpKind::Tanh: return tanh(get(0));
    case OpKind::LeakyRelu: {
      LV* x = get(0);
      return B.CreateSelect(B.CreateFCmpOGT(x, vcf(0)), x,
                            B.CreateFMul(x, vcf(op->attrs.getDouble("negative_slope", 0.01))));
    }
    case OpKind::ReluGrad: return B.CreateSelect(B.CreateFCmpOGT(get(1), vcf(0)), get(0), vcf(0));
    case OpKind::SigmoidGrad: {
      LV* y = get(1);
      return B.CreateFMul(B.CreateFMul(get(0), B.CreateFSub(vcf(1), y)), y);
    }
    case OpKind::TanhGrad: {
      LV* y = get(1);
      return B.CreateFMul(get(0), B.CreateFSub(vcf(1), B.CreateFMul(y, y)));
    }
    case OpKind::LeakyReluGrad: {
      LV* dy = get(0);
      return B.CreateSelect(B.CreateFCmpOGT(get(1), vcf(0)), dy,
                            B.CreateFMul(dy, vcf(op->attrs.getDouble("negative_slope", 0.01))));
    }
    case OpKind::NllLossGrad:
    case OpKind::LogSoftmaxNllGrad: {
      LV* oh = oneHot(op->operands[1], ctx);
      LV* g = op->kind == OpKind::NllLossGrad ? B.CreateFNeg(oh) : B.CreateFSub(exp(get(0)), oh);
      if (LV* d = lossDivisor(op, 1)) g = B.CreateFDiv(g, splat(d));
      return g;
    }
    case OpKind::MseLossGrad:
    case OpKind::BceLossGrad:
    case OpKind::BceWithLogitsGrad:
    case OpKind::SigmoidBceGrad: {
      LV* p = get(0);
      LV* t = get(1);
      LV* g = nullptr;
      if (op->kind == OpKind::MseLossGrad) {
        // PyTorch: norm * (p - y), norm = 2/numel (mean) or 2 (sum)
        LV* norm = vcf(2.0);
        if (LV* d = lossDivisor(op, op->operands[0]->type.shape[1])) norm = splat(B.CreateFDiv(cf(2.0, f32), d));
        return B.CreateFMul(norm, B.CreateFSub(p, t));
      }
      else if (op->kind == OpKind::BceLossGrad) {
        LV* den = B.CreateFMul(B.CreateFSub(vcf(1), p), p);
        den = vmax(den, vcf(1e-12));
        g = B.CreateFDiv(B.CreateFSub(p, t), den);
      } else if (op->kind == OpKind::BceWithLogitsGrad) g = B.CreateFSub(sigmoid(p), t);
      else g = B.CreateFSub(p, t);
      if (LV* d = lossDivisor(op, op->operands[0]->type.shape[1])) g = B.CreateFDiv(g, splat(d));
      return g;
    }
    default: break;
    }
    llvm::report_fatal_error(llvm::Twine("descent: not an elementwise op: ") + opName(op->kind));
  }

  /// Applies update op `u` to its param at ctx (param viewed as [rows, cols]) with gradient g.
  void update(const Op* u, LV* g, const ElemCtx& ctx) {
    const Value* w = u->operands[0];
    LV* wv = loadOperand(w, ctx);
    double wd = u->attrs.getDouble("weight_decay", 0.0);
    if (wd != 0) g = B.CreateFAdd(g, B.CreateFMul(wv, vcf(wd)));
    double lr = u->attrs.getDouble("lr", 0.001);
    if (u->kind == OpKind::SgdUpdate) {
      double mom = u->attrs.getDouble("momentum", 0.0);
      if (mom != 0) {
        const Value* bufv = u->operands[3];
        LV* buf = loadOperand(bufv, ctx);
        double damp = u->attrs.getDouble("dampening", 0.0);
        LV* blended = B.CreateFAdd(B.CreateFMul(buf, vcf(mom)), B.CreateFMul(g, vcf(1.0 - damp)));
        // torch.optim.SGD: the buffer starts as a copy of the first gradient.
        LV* first = B.CreateICmpSLE(stepArg, c64(1));
        buf = B.CreateSelect(first, g, blended);
        storeValue(bufv, buf, ctx);
        g = u->attrs.getBool("nesterov") ? B.CreateFAdd(g, B.CreateFMul(buf, vcf(mom))) : buf;
      }
      storeValue(w, B.CreateFAdd(wv, B.CreateFMul(g, vcf(-lr))), ctx);
      return;
    }
    double b1 = u->attrs.getDouble("beta1", 0.9), b2 = u->attrs.getDouble("beta2", 0.999);
    double eps = u->attrs.getDouble("eps", 1e-8);
    const Value* mv = u->operands[3];
    const Value* vv = u->operands[4];
    LV* m = loadOperand(mv, ctx);
    LV* v = loadOperand(vv, ctx);
    m = B.CreateFAdd(B.CreateFMul(m, vcf(b1)), B.CreateFMul(g, vcf(1.0 - b1)));
    v = B.CreateFAdd(B.CreateFMul(v, vcf(b2)), B.CreateFMul(B.CreateFMul(g, g), vcf(1.0 - b2)));
    storeValue(mv, m, ctx);
    storeValue(vv, v, ctx);
    int64_t so = bg_->scalar_offset.at(u);
    LV* sp = B.CreateInBoundsGEP(i8, arena, c64(so));
    LV* step_size = splat(B.CreateAlignedLoad(f32, sp, llvm::Align(4)));
    LV* bc2 = splat(B.CreateAlignedLoad(f32, B.CreateInBoundsGEP(f32, sp, c64(1)), llvm::Align(4)));
    LV* denom = B.CreateFAdd(B.CreateFDiv(B.CreateIntrinsic(llvm::Intrinsic::sqrt, {vf}, {v}), bc2), vcf(eps));
    // param.addcdiv_(m, denom, value=-step_size): w + (-step_size)*m/denom
    storeValue(w, B.CreateFAdd(wv, B.CreateFDiv(B.CreateFMul(B.CreateFNeg(step_size), m), denom)), ctx);
  }

  /// Runs the elementwise ops of `k` (all but the anchor) at ctx, starting from
  /// `seed` values, stores what must be stored, and applies the sink.
  void epilogue(const Kernel& k, std::map<const Value*, LV*> vals, const ElemCtx& ctx, size_t first_op) {
    for (const auto& [v, x] : vals)
      if (k.stores.count(v)) storeValue(v, x, ctx);
    for (size_t oi = first_op; oi < k.ops.size(); ++oi) {
      const Op* op = k.ops[oi];
      auto get = [&](size_t i) -> LV* {
        const Value* o = op->operands[i];
        auto it = vals.find(o);
        if (it != vals.end()) return it->second;
        LV* l = loadOperand(o, ctx);
        vals[o] = l;
        return l;
      };
      if (op == k.sink) {
        update(op, get(1), ctx);
        continue;
      }
      LV* r = elem(op, ctx, get);
      vals[op->result] = r;
      if (k.stores.count(op->result)) storeValue(op->result, r, ctx);
    }
  }

  /// Visits the column vectors [vbegin, vend) of a `cols`-wide row: full
  /// vectors in a loop, then the masked tail vector.
  void forColumnVectors(LV* vbegin, LV* vend, int64_t cols, const std::function<void(LV* col, int64_t valid)>& body) {
    int64_t full = cols / W, tail = cols % W;
    LV* fe = B.CreateSelect(B.CreateICmpSLT(vend, c64(full)), vend, c64(full));
    forLoop(vbegin, fe, 1, [&](LV* v) { body(B.CreateMul(v, c64(W)), W); }, "v");
    if (tail) {
      LV* own = B.CreateAnd(B.CreateICmpSLE(vbegin, c64(full)), B.CreateICmpSGT(vend, c64(full)));
      ifThen(own, [&] { body(c64(full * W), tail); });
    }
  }

  // --- kernels --------------------------------------------------------------------------------

  void emitMap(const Kernel& k) {
    LV* rows = rowsOf(k.rows_batched, k.rows);
    int64_t nvec = (k.cols + W - 1) / W;
    if (k.rows == 1) {
      // A vector (bias update): split the columns.
      auto [vb, ve] = split(c64(nvec));
      forColumnVectors(vb, ve, k.cols, [&](LV* col, int64_t valid) {
        epilogue(k, {}, ElemCtx{c64(0), col, valid}, 0);
      });
      return;
    }
    auto [rb, re] = split(rows);
    forLoop(rb, re, 1, [&](LV* r) {
      forColumnVectors(c64(0), c64(nvec), k.cols, [&](LV* col, int64_t valid) {
        epilogue(k, {}, ElemCtx{r, col, valid}, 0);
      });
    }, "r");
  }

  void emitColumnSum(const Kernel& k) {
    const Op* sr = k.ops[0];
    const Value* src = sr->operands[0];
    LV* rows = rowsOf(k.rows_batched, k.rows);
    int64_t nvec = (k.cols + W - 1) / W;
    auto [vb, ve] = split(c64(nvec));
    forColumnVectors(vb, ve, k.cols, [&](LV* col, int64_t valid) {
      // Sum over rows in row order: the same for every partition.
      BasicBlock* pre = B.GetInsertBlock();
      BasicBlock* hdr = BasicBlock::Create(C, "cs.hdr", F);
      BasicBlock* body = BasicBlock::Create(C, "cs.body", F);
      BasicBlock* exit = BasicBlock::Create(C, "cs.exit", F);
      B.CreateBr(hdr);
      B.SetInsertPoint(hdr);
      PHINode* r = B.CreatePHI(i64, 2);
      PHINode* acc = B.CreatePHI(vf, 2);
      r->addIncoming(c64(0), pre);
      acc->addIncoming(vcf(0), pre);
      B.CreateCondBr(B.CreateICmpSLT(r, rows), body, exit);
      B.SetInsertPoint(body);
      LV* x = loadOperand(src, ElemCtx{r, col, valid});
      LV* nacc = B.CreateFAdd(acc, x);
      r->addIncoming(B.CreateAdd(r, c64(1)), body);
      acc->addIncoming(nacc, body);
      B.CreateBr(hdr);
      B.SetInsertPoint(exit);
      epilogue(k, {{sr->result, acc}}, ElemCtx{c64(0), col, valid}, 1);
    });
  }

  void emitTranspose(const Kernel& k) {
    // dst[c, r] = src[r, c] for src [R, C]. Tasks split dst rows in blocks of
    // W columns of src (a copy: any split gives the same bits). Full W x W
    // blocks are transposed in registers (W vector loads, log2(W) shuffle
    // stages, W vector stores); the ragged edges are copied element by element.
    const int64_t R = k.t_rows, Cn = k.t_cols;
    const int64_t fullR = R / W, fullC = Cn / W;
    LV* src = bufBase(k.transpose_src);
    LV* dst = bufBase(k.transpose_dst);
    auto scalarCopy = [&](LV* cb, LV* ce, LV* rb, LV* re) {
      forLoop(cb, ce, 1, [&](LV* c) {
        forLoop(rb, re, 1, [&](LV* r) {
          LV* v = B.CreateAlignedLoad(f32, B.CreateInBoundsGEP(f32, src, B.CreateAdd(B.CreateMul(r, c64(Cn)), c)), llvm::Align(4));
          B.CreateAlignedStore(v, B.CreateInBoundsGEP(f32, dst, B.CreateAdd(B.CreateMul(c, c64(R)), r)), llvm::Align(4));
        }, "tr");
      }, "tc");
    };
    auto [bb, be] = split(c64((Cn + W - 1) / W));
    // Full column blocks of this task: [bb, min(be, fullC)).
    LV* fe = B.CreateSelect(B.CreateICmpSLT(be, c64(fullC)), be, c64(fullC));
    if (fullR > 0 && fullC > 0) {
      llvm::Align sal(uint64_t(std::gcd(std::gcd(Cn * 4, int64_t(W) * 4), int64_t(64))));
      llvm::Align dal(uint64_t(std::gcd(std::gcd(R * 4, int64_t(W) * 4), int64_t(64))));
      forLoop(bb, fe, 1, [&](LV* cblk) {
        LV* c0 = B.CreateMul(cblk, c64(W));
        forLoop(c64(0), c64(fullR), 1, [&](LV* rblk) {
          LV* r0 = B.CreateMul(rblk, c64(W));
          std::vector<LV*> v(W);
          for (int i = 0; i < W; ++i)
            v[i] = loadVec(src, B.CreateAdd(B.CreateMul(B.CreateAdd(r0, c64(i)), c64(Cn)), c0), sal, W);
          // Swap the off-diagonal h x h blocks of every 2h x 2h block, for
          // every h: that is the transpose.
          for (int h = W / 2; h >= 1; h /= 2) {
            std::vector<int> lo(W), hi(W);
            for (int j = 0; j < W; ++j) {
              lo[j] = (j & h) ? W + j - h : j;
              hi[j] = (j & h) ? W + j : j + h;
            }
            for (int i = 0; i < W; ++i) {
              if (i & h) continue;
              LV* a = v[i];
              LV* b = v[i + h];
              v[i] = B.CreateShuffleVector(a, b, lo);
              v[i + h] = B.CreateShuffleVector(a, b, hi);
            }
          }
          for (int i = 0; i < W; ++i)
            storeVec(v[i], dst, B.CreateAdd(B.CreateMul(B.CreateAdd(c0, c64(i)), c64(R)), r0), dal, W);
        }, "trb");
        if (R % W) scalarCopy(c0, B.CreateAdd(c0, c64(W)), c64(fullR * W), c64(R));
      }, "tcb");
    } else if (fullC > 0) {
      scalarCopy(B.CreateMul(bb, c64(W)), B.CreateMul(fe, c64(W)), c64(0), c64(R));
    }
    if (Cn % W) // the last, partial column block
      ifThen(B.CreateAnd(B.CreateICmpSLE(bb, c64(fullC)), B.CreateICmpSGT(be, c64(fullC))), [&] { scalarCopy(c64(fullC * W), c64(Cn), c64(0), c64(R)); });
  }

  /// Tile shape of the micro-kernel for a GEMM with `nvec` column vectors.
  std::pair<int, int> tileShape(int64_t N) {
    int maxv = W == 16 ? 4 : 2;
    int nv = int(std::min<int64_t>(maxv, (N + W - 1) / W));
    int budget = W == 16 ? 16 : 8; // accumulators: 16 of 32 zmm, 8 of 16 ymm
    int mr = std::max(1, std::min(8, budget / nv));
    return {mr, nv};
  }

  /// A(i, k) as a float scalar (with the normalize folded into the load).
  LV* loadA(const GemmInfo& g, LV* i, LV* kk) {
    LV* idx = g.ta ? B.CreateAdd(B.CreateMul(kk, c64(g.lda)), i) : B.CreateAdd(B.CreateMul(i, c64(g.lda)), kk);
    LV* base = bufBase(g.a_buffer);
    if (!g.a_normalize) return B.CreateAlignedLoad(f32, B.CreateInBoundsGEP(f32, base, idx), llvm::Align(4));
    const Op* nz = g.a_normalize;
    if (nz->operands[0]->type.dtype == DType::U8) {
      LV* byte = B.CreateAlignedLoad(i8, B.CreateInBoundsGEP(i8, base, idx), llvm::Align(1));
      LV* lut = B.CreateInBoundsGEP(i8, arena, c64(bg_->lut_offset.at(nz)));
      return B.CreateAlignedLoad(f32, B.CreateInBoundsGEP(f32, lut, B.CreateZExt(byte, i64)), llvm::Align(4));
    }
    LV* x = B.CreateAlignedLoad(f32, B.CreateInBoundsGEP(f32, base, idx), llvm::Align(4));
    x = B.CreateFDiv(x, cf(nz->attrs.getDouble("divisor", 1.0), f32));
    x = B.CreateFSub(x, cf(nz->attrs.getDouble("mean", 0.0), f32));
    return B.CreateFDiv(x, cf(nz->attrs.getDouble("std", 1.0), f32));
  }

  /// Alignment of B-operand vector loads at (k*ldb + j), j a multiple of W:
  /// an input batch guarantees 4 bytes; arena buffers are 64-byte aligned, so
  /// the row stride decides (a transposed copy of W has no graph value).
  llvm::Align bAlign(const GemmInfo& g) {
    const Value* bv = kg_->buffers[g.b_buffer].value;
    if (bv && isInput(bv)) return llvm::Align(4);
    return llvm::Align(uint64_t(std::gcd(std::gcd(g.ldb * 4, int64_t(W) * 4), int64_t(64))));
  }

  /// The register-blocked micro-kernel: an mr x (nv*W) tile of C at (i0, j0),
  /// K-loop with accumulators in registers (loop-carried phis), then the epilogue.
  void microKernel(const Kernel& k, LV* i0, LV* j0, int mr, int nv, int64_t last_valid, LV* K, LV* M,
                   LV* packed = nullptr, int64_t packed_ld = 0) {
    // Row indices, clamped to M-1 (see emitGemm).
    std::vector<LV*> rowIdx;
    LV* last = B.CreateSub(M, c64(1));
    for (int r = 0; r < mr; ++r) {
      LV* i = B.CreateAdd(i0, c64(r));
      rowIdx.push_back(r == 0 ? i : B.CreateSelect(B.CreateICmpSLT(i, M), i, last));
    }
    const GemmInfo& g = k.gemm;
    LV* bbase = packed ? packed : bufBase(g.b_buffer);
    const int64_t ldb = packed ? packed_ld : g.ldb;
    LV* bcol = packed ? c64(0) : j0; // a packed panel starts at the tile's first column
    llvm::Align balign = packed ? llvm::Align(64) : bAlign(g);
    BasicBlock* pre = B.GetInsertBlock();
    BasicBlock* hdr = BasicBlock::Create(C, "k.hdr", F);
    BasicBlock* body = BasicBlock::Create(C, "k.body", F);
    BasicBlock* exit = BasicBlock::Create(C, "k.exit", F);
    B.CreateBr(hdr);
    B.SetInsertPoint(hdr);
    PHINode* kk = B.CreatePHI(i64, 2, "k");
    kk->addIncoming(c64(0), pre);
    std::vector<PHINode*> acc;
    for (int a = 0; a < mr * nv; ++a) {
      acc.push_back(B.CreatePHI(vf, 2, "acc"));
      acc.back()->addIncoming(vcf(0), pre);
    }
    B.CreateCondBr(B.CreateICmpSLT(kk, K), body, exit);
    B.SetInsertPoint(body);
    std::vector<LV*> bv;
    LV* brow = B.CreateAdd(B.CreateMul(kk, c64(ldb)), bcol);
    for (int v = 0; v < nv; ++v)
      bv.push_back(loadVec(bbase, B.CreateAdd(brow, c64(v * W)), balign, v == nv - 1 ? last_valid : W));
    for (int r = 0; r < mr; ++r) {
      LV* a = splat(loadA(g, rowIdx[r], kk));
      for (int v = 0; v < nv; ++v) {
        LV* n = fma(a, bv[v], acc[r * nv + v]);
        acc[r * nv + v]->addIncoming(n, body);
      }
    }
    kk->addIncoming(B.CreateAdd(kk, c64(1), "", true, true), body);
    B.CreateBr(hdr);
    B.SetInsertPoint(exit);
    bool mayClamp = g.m_batched || g.M % mr != 0;
    for (int r = 0; r < mr; ++r) {
      auto rowEpilogue = [&] {
        for (int v = 0; v < nv; ++v) {
          ElemCtx ctx{rowIdx[r], B.CreateAdd(j0, c64(v * W)), v == nv - 1 ? last_valid : W};
          epilogue(k, {{g.matmul->result, acc[r * nv + v]}}, ctx, 1);
        }
      };
      // An update is read-modify-write: a clamped duplicate row must not apply it twice.
      if (k.sink && r > 0 && mayClamp) ifThen(B.CreateICmpSLT(B.CreateAdd(i0, c64(r)), M), rowEpilogue);
      else rowEpilogue();
    }
  }

  void emitGemm(const Kernel& k) {
    const GemmInfo& g = k.gemm;
    auto [MR, NV] = tileShape(g.N);
    int64_t NR = int64_t(NV) * W;
    int64_t fullCT = g.N / NR, remCols = g.N % NR;
    int64_t nCT = fullCT + (remCols ? 1 : 0);
    int remNV = int((remCols + W - 1) / W);
    int64_t remLast = remCols % W ? remCols % W : W;
    LV* Mv = rowsOf(g.m_batched, g.M);
    LV* Kv = g.k_batched ? nArg : c64(g.K);
    LV* nRT = B.CreateSDiv(B.CreateAdd(Mv, c64(MR - 1)), c64(MR));
    // Tiles are numbered column-tile-major so a task's tiles share B panels.
    // Each C element is one dot product in K order: any tile split gives the
    // same bits, so results do not depend on the thread count.
    auto [tb, te] = split(B.CreateMul(nRT, c64(nCT)));
    // B rows 1 KB or more apart (wide layers) make the K loop's B loads walk
    // the same few L1 sets (4 KB aliasing at N = 1024): copy the column
    // tile's K x NR panel into a contiguous, 64-byte-aligned stack buffer once
    // per column tile and let every row tile read it from there. The copy
    // changes no arithmetic, so results stay bit-identical. Only whole column
    // tiles are packed (wide layers have N % NR == 0). Measured on
    // wide_mlp.nn: forward and dX GEMMs 31% -> 52-55% of peak.
    // dW GEMMs (K = the batch rows) reuse each panel for few FMAs: not worth it.
    const bool pack = remCols == 0 && !g.k_batched && g.ldb >= 256 && g.K * NR * 4 <= kMaxPanelBytes;
    LV* panel = nullptr;
    if (pack) {
      llvm::IRBuilder<> eb(&F->getEntryBlock(), F->getEntryBlock().begin());
      auto* a = eb.CreateAlloca(f32, c64(g.K * NR));
      a->setAlignment(llvm::Align(64));
      panel = a;
    }
    forLoop(tb, te, 1, [&](LV* t) {
      LV* ct = B.CreateSDiv(t, nRT);
      LV* rt = B.CreateSRem(t, nRT);
      LV* i0 = B.CreateMul(rt, c64(MR));
      LV* j0 = B.CreateMul(ct, c64(NR));
      if (pack) {
        // A new column tile starts here (or this task's first tile is mid-column).
        ifThen(B.CreateOr(B.CreateICmpEQ(t, tb), B.CreateICmpEQ(rt, c64(0))), [&] {
          LV* src = bufBase(g.b_buffer);
          llvm::Align al = bAlign(g);
          forLoop(c64(0), Kv, 1, [&](LV* kk) {
            for (int v = 0; v < NV; ++v) {
              LV* x = loadVec(src, B.CreateAdd(B.CreateMul(kk, c64(g.ldb)), B.CreateAdd(j0, c64(v * W))), al, W);
              storeVec(x, panel, B.CreateAdd(B.CreateMul(kk, c64(NR)), c64(v * W)), llvm::Align(64), W);
            }
          }, "pack");
        });
      }
      // Rows past M in the last row tile are clamped to row M-1: they load and
      // store exactly what row M-1 does (idempotent), so one micro-kernel
      // serves every tile and no remainder path is needed (fused updates skip
      // the duplicates: see microKernel).
      auto tileCols = [&](int nv, int64_t lastValid) {
        microKernel(k, i0, j0, MR, nv, lastValid, Kv, Mv, panel, NR);
      };
      if (!remCols) {
        tileCols(NV, W);
      } else if (fullCT == 0) {
        tileCols(remNV, remLast);
      } else {
        BasicBlock* full = BasicBlock::Create(C, "fullcols", F);
        BasicBlock* rem = BasicBlock::Create(C, "remcols", F);
        BasicBlock* done = BasicBlock::Create(C, "colsdone", F);
        B.CreateCondBr(B.CreateICmpSLT(ct, c64(fullCT)), full, rem);
        B.SetInsertPoint(full);
        tileCols(NV, W);
        B.CreateBr(done);
        B.SetInsertPoint(rem);
        tileCols(remNV, remLast);
        B.CreateBr(done);
        B.SetInsertPoint(done);
      }
    }, "tile");
  }

  /// Row maximum, sum of exp(x - max) and log of that sum over one row of `v`.
  struct RowStats { LV* mx; LV* sum; };
  RowStats rowSoftmaxStats(const Value* v, LV* r, int64_t cols) {
    int64_t nvec = (cols + W - 1) / W;
    LV* base = bufBase(v);
    llvm::Align al = vecAlign(v, cols);
    LV* m = vcf(-INFINITY);
    for (int64_t c = 0; c < nvec; ++c) {
      int64_t valid = std::min<int64_t>(W, cols - c * W);
      LV* x = loadVec(base, B.CreateAdd(B.CreateMul(r, c64(cols)), c64(c * W)), al, valid, vcf(-INFINITY));
      m = vmax(m, x);
    }
    LV* mx = hmax(m);
    LV* s = vcf(0);
    for (int64_t c = 0; c < nvec; ++c) {
      int64_t valid = std::min<int64_t>(W, cols - c * W);
      LV* x = loadVec(base, B.CreateAdd(B.CreateMul(r, c64(cols)), c64(c * W)), al, valid, vcf(-INFINITY));
      s = B.CreateFAdd(s, exp(B.CreateFSub(x, splat(mx))));
    }
    return {mx, hsum(s)};
  }

  void emitRowSoftmaxLoss(const Kernel& k) {
    const Op* ls = k.ops[0];
    const Value* z = ls->operands[0];
    const Value* logp = ls->result;
    int64_t cols = k.cols;
    int64_t nvec = (cols + W - 1) / W;
    LV* rows = rowsOf(k.rows_batched, k.rows);
    // Task 0 does all rows: the loss is a sum in row order.
    ifThen(B.CreateICmpEQ(taskArg, c32(0)), [&] {
      LV* lossAcc = entryAlloca(f32);
      LV* corrAcc = entryAlloca(f32);
      B.CreateStore(cf(0.0, f32), lossAcc);
      B.CreateStore(cf(0.0, f32), corrAcc);
      forLoop(c64(0), rows, 1, [&](LV* r) {
        RowStats st = rowSoftmaxStats(z, r, cols);
        LV* lse = log(st.sum);
        std::map<const Value*, LV*> rowVals;
        for (int64_t c = 0; c < nvec; ++c) {
          int64_t valid = std::min<int64_t>(W, cols - c * W);
          ElemCtx ctx{r, c64(c * W), valid};
          LV* x = loadOperand(z, ctx);
          LV* lp = B.CreateFSub(B.CreateFSub(x, splat(st.mx)), splat(lse));
          if (k.stores.count(logp)) storeValue(logp, lp, ctx);
          for (const Op* op : k.ops)
            if (op->kind == OpKind::LogSoftmaxNllGrad) {
              LV* gr = elem(op, ctx, [&](size_t) { return lp; });
              storeValue(op->result, gr, ctx);
            }
        }
        for (const Op* op : k.ops) {
          if (op->kind != OpKind::NllLoss && op->kind != OpKind::CountCorrect) continue;
          LV* lab = B.CreateSExt(B.CreateAlignedLoad(i32, B.CreateInBoundsGEP(i32, bufBase(op->operands[1]), r), llvm::Align(4)), i64);
          LV* zrow = B.CreateInBoundsGEP(f32, bufBase(z), B.CreateMul(r, c64(cols)));
          if (op->kind == OpKind::NllLoss) {
            LV* zl = B.CreateAlignedLoad(f32, B.CreateInBoundsGEP(f32, zrow, lab), llvm::Align(4));
            LV* lpl = B.CreateFSub(B.CreateFSub(zl, st.mx), lse);
            B.CreateStore(B.CreateFSub(B.CreateLoad(f32, lossAcc), lpl), lossAcc);
          } else {
            B.CreateStore(B.CreateFAdd(B.CreateLoad(f32, corrAcc), argmaxIs(zrow, cols, lab, st.mx, lse)), corrAcc);
          }
        }
      }, "row");
      for (const Op* op : k.ops) {
        if (op->kind == OpKind::NllLoss) {
          LV* l = B.CreateLoad(f32, lossAcc);
          if (LV* d = lossDivisor(op, 1)) l = B.CreateFDiv(l, d);
          B.CreateAlignedStore(l, bufBase(op->result), llvm::Align(4));
        } else if (op->kind == OpKind::CountCorrect) {
          B.CreateAlignedStore(B.CreateLoad(f32, corrAcc), bufBase(op->result), llvm::Align(4));
        }
      }
    });
  }

  /// 1.0 when the first maximum of row (x - mx) - lse equals `label`, else 0.
  LV* argmaxIs(LV* row, int64_t cols, LV* label, LV* mx, LV* lse) {
    LV* best = entryAlloca(f32);
    LV* bestIdx = entryAlloca(i64);
    B.CreateStore(cf(-INFINITY, f32), best);
    B.CreateStore(c64(0), bestIdx);
    forLoop(c64(0), c64(cols), 1, [&](LV* c) {
      LV* x = B.CreateAlignedLoad(f32, B.CreateInBoundsGEP(f32, row, c), llvm::Align(4));
      if (mx) x = B.CreateFSub(B.CreateFSub(x, mx), lse);
      LV* gt = B.CreateFCmpOGT(x, B.CreateLoad(f32, best));
      B.CreateStore(B.CreateSelect(gt, x, B.CreateLoad(f32, best)), best);
      B.CreateStore(B.CreateSelect(gt, c, B.CreateLoad(i64, bestIdx)), bestIdx);
    }, "am");
    return B.CreateSelect(B.CreateICmpEQ(B.CreateLoad(i64, bestIdx), label), cf(1.0, f32), cf(0.0, f32));
  }

  void emitRowOp(const Kernel& k) {
    const Op* op = k.ops[0];
    int64_t cols = k.cols;
    int64_t nvec = (cols + W - 1) / W;
    LV* rows = rowsOf(k.rows_batched, k.rows);
    auto [rb, re] = split(rows);
    forLoop(rb, re, 1, [&](LV* r) {
      if (op->kind == OpKind::Softmax || op->kind == OpKind::LogSoftmax) {
        RowStats st = rowSoftmaxStats(op->operands[0], r, cols);
        LV* lse = op->kind == OpKind::LogSoftmax ? log(st.sum) : nullptr;
        for (int64_t c = 0; c < nvec; ++c) {
          ElemCtx ctx{r, c64(c * W), std::min<int64_t>(W, cols - c * W)};
          LV* d = B.CreateFSub(loadOperand(op->operands[0], ctx), splat(st.mx));
          LV* y = lse ? B.CreateFSub(d, splat(lse)) : B.CreateFDiv(exp(d), splat(st.sum));
          storeValue(op->result, y, ctx);
        }
        return;
      }
      // softmax_grad: y*(dy - sum(dy*y)); log_softmax_grad: dy - exp(y)*sum(dy)
      LV* s = vcf(0);
      for (int64_t c = 0; c < nvec; ++c) {
        ElemCtx ctx{r, c64(c * W), std::min<int64_t>(W, cols - c * W)};
        LV* dy = loadOperand(op->operands[0], ctx);
        s = B.CreateFAdd(s, op->kind == OpKind::SoftmaxGrad ? B.CreateFMul(dy, loadOperand(op->operands[1], ctx)) : dy);
      }
      LV* sum = splat(hsum(s));
      for (int64_t c = 0; c < nvec; ++c) {
        ElemCtx ctx{r, c64(c * W), std::min<int64_t>(W, cols - c * W)};
        LV* dy = loadOperand(op->operands[0], ctx);
        LV* y = loadOperand(op->operands[1], ctx);
        LV* res = op->kind == OpKind::SoftmaxGrad ? B.CreateFMul(y, B.CreateFSub(dy, sum))
                                                  : B.CreateFSub(dy, B.CreateFMul(exp(y), sum));
        storeValue(op->result, res, ctx);
      }
    }, "row");
  }

  void emitLoss(const Kernel& k) {
    const Op* op = k.ops[0];
    ifThen(B.CreateICmpEQ(taskArg, c32(0)), [&] {
      LV* acc = entryAlloca(f32);
      B.CreateStore(cf(0.0, f32), acc);
      LV* rows = rowsOf(k.rows_batched, k.rows);
      int64_t cols = k.cols;
      forLoop(c64(0), rows, 1, [&](LV* r) {
        if (op->kind == OpKind::NllLoss || op->kind == OpKind::CountCorrect) {
          LV* lab = B.CreateSExt(B.CreateAlignedLoad(i32, B.CreateInBoundsGEP(i32, bufBase(op->operands[1]), r), llvm::Align(4)), i64);
          LV* row = B.CreateInBoundsGEP(f32, bufBase(op->operands[0]), B.CreateMul(r, c64(cols)));
          LV* term = op->kind == OpKind::NllLoss
                         ? B.CreateFNeg(B.CreateAlignedLoad(f32, B.CreateInBoundsGEP(f32, row, lab), llvm::Align(4)))
                         : argmaxIs(row, cols, lab, nullptr, nullptr);
          B.CreateStore(B.CreateFAdd(B.CreateLoad(f32, acc), term), acc);
          return;
        }
        int64_t nvec = (cols + W - 1) / W;
        LV* s = vcf(0);
        for (int64_t c = 0; c < nvec; ++c) {
          ElemCtx ctx{r, c64(c * W), std::min<int64_t>(W, cols - c * W)};
          LV* p = loadOperand(op->operands[0], ctx);
          LV* t = loadOperand(op->operands[1], ctx);
          LV* term = nullptr;
          if (op->kind == OpKind::MseLoss) {
            LV* d = B.CreateFSub(p, t);
            term = B.CreateFMul(d, d);
          } else if (op->kind == OpKind::BceLoss) {
            // -(t*log(p) + (1-t)*log(1-p)), each log clamped at -100 like PyTorch
            // PyTorch: (y - 1) * max(log1p(-p), -100) - y * max(log(p), -100)
            LV* lp = vmax(log(p), vcf(-100));
            LV* l1p = vmax(log(B.CreateFSub(vcf(1), p)), vcf(-100));
            term = B.CreateFSub(B.CreateFMul(B.CreateFSub(t, vcf(1)), l1p), B.CreateFMul(t, lp));
          } else {
            // max(z,0) - z*t + log(1 + exp(-|z|))
            LV* az = B.CreateIntrinsic(llvm::Intrinsic::fabs, {vf}, {p});
            LV* sp = log(B.CreateFAdd(vcf(1), exp(B.CreateFNeg(az))));
            term = B.CreateFAdd(B.CreateFSub(vmax(p, vcf(0)), B.CreateFMul(p, t)), sp);
          }
          if (ctx.lanes_valid < W) term = B.CreateSelect(laneMask(ctx.lanes_valid), term, vcf(0));
          s = B.CreateFAdd(s, term);
        }
        B.CreateStore(B.CreateFAdd(B.CreateLoad(f32, acc), hsum(s)), acc);
      }, "row");
      LV* l = B.CreateLoad(f32, acc);
      if (op->kind != OpKind::CountCorrect)
        if (LV* d = lossDivisor(op, op->kind == OpKind::NllLoss ? 1 : cols)) l = B.CreateFDiv(l, d);
      B.CreateAlignedStore(l, bufBase(op->result), llvm::Align(4));
    });
  }

  llvm::LLVMContext& C;
  llvm::Module& M;
  llvm::IRBuilder<> B;
  int W;
  std::string cpu_, features_;
  Type *f32, *f64, *i1, *i8, *i32, *i64, *ptr;
  llvm::FixedVectorType *vf, *vi32, *vi64;
  const BackendGraph* bg_ = nullptr;
  const KernelGraph* kg_ = nullptr;
  const Kernel* kernel_ = nullptr;
  Function* F = nullptr;
  LV *arena = nullptr, *xArg = nullptr, *yArg = nullptr, *nArg = nullptr, *stepArg = nullptr,
     *seedArg = nullptr, *taskArg = nullptr, *ntasksArg = nullptr;
};

} // namespace

std::unique_ptr<llvm::Module> emitKernels(llvm::LLVMContext& ctx, const std::vector<BackendGraph>& graphs,
                                          int width, const std::string& cpu, const std::string& features,
                                          const std::vector<KernelRef>& only) {
  auto m = std::make_unique<llvm::Module>("descent", ctx);
  Emitter e(ctx, *m, width, cpu, features);
  if (only.empty())
    for (const BackendGraph& g : graphs) e.emitGraph(g);
  else
    for (auto [g, k] : only) e.emitOne(graphs.at(g), k);
  return m;
}

} // namespace descent
