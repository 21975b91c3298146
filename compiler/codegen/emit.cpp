// LLVM IR emission of a kernel schedule (emit.h): kernel scaffolding (the
// signature and attributes, loops, the task split), memory access, the map
// and column-sum kernels, and emitKernels(). See emitter.h for the other parts.
#include "compiler/codegen/emitter.h"

#include <numeric>

namespace descent::emit_detail {

void Emitter::emitKernel(const Kernel& k) {
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
  // The n argument carries the row count in its low 32 bits and, in
  // data-parallel training, the first row of this rank's shard of the global
  // batch in its high 32 bits (Program::run; Dropout masks key on it).
  firstRow = B.CreateLShr(nArg, c64(32), "first_row");
  nArg = B.CreateAnd(nArg, c64(int64_t(0xffffffffll)), "rows");
  prepareClassDivisors(k);
  switch (k.kind) {
  case KernelKind::Gemm: emitGemm(k); break;
  case KernelKind::Map: emitMap(k); break;
  case KernelKind::ColumnSum: emitColumnSum(k); break;
  case KernelKind::Transpose: emitTranspose(k); break;
  case KernelKind::RowSoftmaxLoss: emitRowSoftmaxLoss(k); break;
  case KernelKind::RowOp: emitRowOp(k); break;
  case KernelKind::Loss: emitLoss(k); break;
  case KernelKind::Window: emitWindow(k); break;
  case KernelKind::GradNorm:
    emitGradNorm(k);
    break;
  case KernelKind::AllReduce:
    break; // the executor sums the gradient over the ranks itself (an empty function)
  }
  B.CreateRetVoid();
}

LV* Emitter::entryAlloca(Type* t) {
  llvm::IRBuilder<> eb(&F->getEntryBlock(), F->getEntryBlock().begin());
  return eb.CreateAlloca(t);
}

LV* Emitter::alignedScratch(int64_t floats) {
  auto* a = llvm::cast<llvm::AllocaInst>(entryAlloca(llvm::ArrayType::get(f32, uint64_t(floats))));
  a->setAlignment(llvm::Align(64));
  return B.CreateConstInBoundsGEP2_64(a->getAllocatedType(), a, 0, 0);
}

LV* Emitter::stepScalar(const Op* u, int index) {
  llvm::IRBuilder<> eb(&F->getEntryBlock(), F->getEntryBlock().begin());
  int64_t off = bg_->scalar_offset.at(u) + 4 * int64_t(index);
  return eb.CreateAlignedLoad(f32, eb.CreateInBoundsGEP(i8, arena, c64(off)), llvm::Align(4));
}

void Emitter::forLoop(LV* start, LV* end, int64_t step, const std::function<void(LV*)>& body,
             const char* name) {
  phiLoop(start, end, step, {}, [&](LV* i, const std::vector<LV*>&) {
    body(i);
    return std::vector<LV*>{};
  }, name);
}

std::vector<LV*> Emitter::phiLoop(LV* start, LV* end, int64_t step, const std::vector<LV*>& init,
                         const std::function<std::vector<LV*>(LV*, const std::vector<LV*>&)>& body,
                         const char* name) {
  BasicBlock* pre = B.GetInsertBlock();
  BasicBlock* hdr = BasicBlock::Create(C, std::string(name) + ".hdr", F);
  BasicBlock* bb = BasicBlock::Create(C, std::string(name) + ".body", F);
  BasicBlock* exit = BasicBlock::Create(C, std::string(name) + ".exit", F);
  B.CreateBr(hdr);
  B.SetInsertPoint(hdr);
  PHINode* i = B.CreatePHI(i64, 2, name);
  i->addIncoming(start, pre);
  std::vector<LV*> carried;
  for (LV* v : init) {
    PHINode* p = B.CreatePHI(v->getType(), 2, "acc");
    p->addIncoming(v, pre);
    carried.push_back(p);
  }
  B.CreateCondBr(B.CreateICmpSLT(i, end), bb, exit);
  B.SetInsertPoint(bb);
  std::vector<LV*> next = body(i, carried);
  BasicBlock* last = B.GetInsertBlock();
  for (size_t a = 0; a < carried.size(); ++a)
    llvm::cast<PHINode>(carried[a])->addIncoming(next[a], last);
  i->addIncoming(B.CreateAdd(i, c64(step), "", true, true), last);
  B.CreateBr(hdr);
  B.SetInsertPoint(exit);
  return carried;
}

void Emitter::ifThen(LV* cond, const std::function<void()>& then) {
  BasicBlock* t = BasicBlock::Create(C, "then", F);
  BasicBlock* e = BasicBlock::Create(C, "endif", F);
  B.CreateCondBr(cond, t, e);
  B.SetInsertPoint(t);
  then();
  B.CreateBr(e);
  B.SetInsertPoint(e);
}

void Emitter::ifThenElse(LV* cond, const std::function<void()>& then,
                         const std::function<void()>& otherwise) {
  BasicBlock* t = BasicBlock::Create(C, "then", F);
  BasicBlock* e = BasicBlock::Create(C, "else", F);
  BasicBlock* done = BasicBlock::Create(C, "endif", F);
  B.CreateCondBr(cond, t, e);
  B.SetInsertPoint(t);
  then();
  B.CreateBr(done);
  B.SetInsertPoint(e);
  otherwise();
  B.CreateBr(done);
  B.SetInsertPoint(done);
}

std::pair<LV*, LV*> Emitter::split(LV* count) {
  LV* t = B.CreateSExt(taskArg, i64);
  LV* nt = B.CreateSExt(ntasksArg, i64);
  LV* b = B.CreateSDiv(B.CreateMul(count, t), nt);
  LV* e = B.CreateSDiv(B.CreateMul(count, B.CreateAdd(t, c64(1))), nt);
  return {b, e};
}

LV* Emitter::bufBase(int buffer) {
  const Buffer& b = kg_->buffers[buffer];
  if (b.input) return b.value == kg_->y ? yArg : xArg;
  return B.CreateInBoundsGEP(i8, arena, c64(b.offset));
}

llvm::Align Emitter::vecAlign(const Value* v, int64_t ld) {
  if (isInput(viewRoot(v))) return llvm::Align(4); // a view of the batch is the batch
  int64_t a = std::gcd(ld * 4, int64_t(W) * 4);
  a = std::gcd(a, int64_t(64));
  return llvm::Align(uint64_t(a));
}

LV* Emitter::panelIndex(int64_t rows, LV* row, LV* col) {
  LV* panel = B.CreateUDiv(col, c64(kPanelCols));
  LV* within = B.CreateURem(col, c64(kPanelCols));
  return B.CreateAdd(B.CreateMul(B.CreateAdd(B.CreateMul(panel, c64(rows)), row), c64(kPanelCols)),
                     within);
}

LV* Emitter::elemIndex(const Value* v, LV* row, LV* col) {
  auto [rows, ld] = matrixShape(v->type);
  if (!inPanels(v)) return B.CreateAdd(B.CreateMul(row, c64(ld)), col);
  return panelIndex(rows, row, col);
}

Constant* Emitter::laneMask(int64_t valid) {
  std::vector<Constant*> m;
  for (int i = 0; i < W; ++i) m.push_back(ConstantInt::get(i1, i < valid ? 1 : 0));
  return llvm::ConstantVector::get(m);
}

LV* Emitter::loadVec(LV* base, LV* index, llvm::Align al, int64_t valid, LV* passthru) {
  LV* p = B.CreateInBoundsGEP(f32, base, index);
  if (valid >= W) return B.CreateAlignedLoad(vf, p, al);
  return B.CreateMaskedLoad(vf, p, al, laneMask(valid), passthru ? passthru : vcf(0));
}

void Emitter::storeVec(LV* val, LV* base, LV* index, llvm::Align al, int64_t valid) {
  LV* p = B.CreateInBoundsGEP(f32, base, index);
  if (valid >= W) B.CreateAlignedStore(val, p, al);
  else B.CreateMaskedStore(val, p, al, laneMask(valid));
}

LV* Emitter::loadOperand(const Value* v, const ElemCtx& ctx) {
  if (v->def && v->def->kind == OpKind::DropoutMask) return dropoutMask(v->def, ctx);
  LV* base = bufBase(v);
  if (v->type.dtype == DType::I32) {
    LV* p = B.CreateInBoundsGEP(i32, base, ctx.row);
    return splat(B.CreateAlignedLoad(i32, p, llvm::Align(4)));
  }
  if (v->type.rank() == 0) return splat(B.CreateAlignedLoad(f32, base, llvm::Align(4)));
  auto align = [&](int64_t ld) { return ctx.aligned ? vecAlign(v, ld) : llvm::Align(4); };
  if (v->type.rank() == 1) return loadVec(base, ctx.col, align(0), ctx.lanes_valid);
  // the row stride: the elements per row, any rank (a panel's 64 in panels)
  int64_t ld = inPanels(v) ? kPanelCols : matrixShape(v->type).second;
  LV* index = elemIndex(v, ctx.row, ctx.col);
  if (v->type.dtype == DType::U8) {
    auto* vu8 = llvm::FixedVectorType::get(i8, W);
    LV* p = B.CreateInBoundsGEP(i8, base, index);
    LV* raw = ctx.lanes_valid >= W
                  ? (LV*)B.CreateAlignedLoad(vu8, p, llvm::Align(1))
                  : B.CreateMaskedLoad(vu8, p, llvm::Align(1), laneMask(ctx.lanes_valid),
                                       llvm::ConstantAggregateZero::get(vu8));
    return B.CreateUIToFP(raw, vf);
  }
  return loadVec(base, index, align(ld), ctx.lanes_valid);
}

void Emitter::storeValue(const Value* v, LV* val, const ElemCtx& ctx) {
  LV* base = bufBase(v);
  auto align = [&](int64_t ld) { return ctx.aligned ? vecAlign(v, ld) : llvm::Align(4); };
  if (v->type.rank() <= 1) return storeVec(val, base, ctx.col, align(0), ctx.lanes_valid);
  int64_t ld = inPanels(v) ? kPanelCols : matrixShape(v->type).second;
  storeVec(val, base, elemIndex(v, ctx.row, ctx.col), align(ld), ctx.lanes_valid);
}

void Emitter::forColumnVectors(LV* vbegin, LV* vend, int64_t cols, const std::function<void(LV* col, int64_t valid)>& body) {
  int64_t full = cols / W, tail = cols % W;
  LV* fe = B.CreateSelect(B.CreateICmpSLT(vend, c64(full)), vend, c64(full));
  forLoop(vbegin, fe, 1, [&](LV* v) { body(B.CreateMul(v, c64(W)), W); }, "v");
  if (tail) {
    LV* own = B.CreateAnd(B.CreateICmpSLE(vbegin, c64(full)), B.CreateICmpSGT(vend, c64(full)));
    ifThen(own, [&] { body(c64(full * W), tail); });
  }
}

void Emitter::emitMap(const Kernel& k) {
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

void Emitter::emitColumnSum(const Kernel& k) {
  const Op* sr = k.ops[0];
  const Value* src = sr->operands[0];
  LV* rows = rowsOf(k.rows_batched, k.rows);
  // A sliced weight gradient sums its chunks' partials [chunks, weights]:
  // as many rows as the run's n samples make chunks.
  LV* partials = k.partials >= 0 ? bufBase(k.partials) : nullptr;
  if (partials) {
    LV* n = rowsOf(kg_->batched.count(src) > 0, src->type.shape[0]);
    rows = B.CreateSDiv(B.CreateAdd(n, c64(k.chunk_rows - 1)), c64(k.chunk_rows));
  }
  const llvm::Align palign(uint64_t(std::gcd(std::gcd(k.cols * 4, int64_t(W) * 4), int64_t(64))));
  auto load = [&](LV* r, LV* col, int64_t valid) {
    if (!partials) return loadOperand(src, ElemCtx{r, col, valid});
    return loadVec(partials, B.CreateAdd(B.CreateMul(r, c64(k.cols)), col), palign, valid);
  };
  int64_t nvec = (k.cols + W - 1) / W;
  auto [vb, ve] = split(c64(nvec));
  forColumnVectors(vb, ve, k.cols, [&](LV* col, int64_t valid) {
    // Sum over rows in row order: the same for every partition.
    LV* acc = phiLoop(
        c64(0), rows, 1, {vcf(0)},
        [&](LV* r, const std::vector<LV*>& a) {
          return std::vector<LV*>{B.CreateFAdd(a[0], load(r, col, valid))};
        },
        "cs")[0];
    epilogue(k, {{sr->result, acc}}, ElemCtx{c64(0), col, valid}, 1);
  });
}

void Emitter::emitGradNorm(const Kernel& k) {
  // Task 0 alone, in a fixed order (operands, then elements in W double
  // lanes, then the lanes in order): the same bits for any thread count.
  const Op* gn = k.ops[0];
  ifThen(B.CreateICmpEQ(taskArg, c32(0)), [&] {
    Type* f64 = B.getDoubleTy();
    auto* vd = llvm::FixedVectorType::get(f64, W);
    LV* acc = ConstantFP::get(vd, 0.0);
    for (const Value* g : gn->operands) {
      int64_t n = g->type.numel(), full = n / W, tail = n % W;
      LV* base = bufBase(g);
      llvm::Align al = vecAlign(g, 0);
      auto square = [&](LV* index, int64_t valid, LV* a) {
        LV* x = B.CreateFPExt(loadVec(base, index, al, valid), vd); // masked lanes load 0
        return fma(x, x, a); // float squares are exact in double
      };
      acc = phiLoop(
          c64(0), c64(full), 1, {acc},
          [&](LV* i, const std::vector<LV*>& a) {
            return std::vector<LV*>{square(B.CreateMul(i, c64(W)), W, a[0])};
          },
          "gn")[0];
      if (tail) acc = square(c64(full * W), tail, acc);
    }
    LV* sum = B.CreateIntrinsic(llvm::Intrinsic::vector_reduce_fadd, {vd}, {cf(0.0, f64), acc});
    LV* norm = B.CreateFPTrunc(B.CreateIntrinsic(llvm::Intrinsic::sqrt, {f64}, {sum}), f32);
    // clip_coef (and anything else fused after the norm) on lane 0.
    epilogue(k, {{gn->result, splat(norm)}}, ElemCtx{c64(0), c64(0), 1}, 1);
  });
}

} // namespace descent::emit_detail

namespace descent {

std::unique_ptr<llvm::Module> emitKernels(llvm::LLVMContext& ctx, const std::vector<BackendGraph>& graphs,
                                          int width, const std::string& cpu, const std::string& features,
                                          const std::vector<KernelRef>& only) {
  auto m = std::make_unique<llvm::Module>("descent", ctx);
  emit_detail::Emitter e(ctx, *m, width, cpu, features);
  if (only.empty())
    for (const BackendGraph& g : graphs) e.emitGraph(g);
  else
    for (auto [g, k] : only) e.emitOne(graphs.at(g), k);
  return m;
}

} // namespace descent
