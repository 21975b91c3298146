// The emitter's row kernels: softmax / log_softmax and their gradients one
// row at a time, log_softmax fused with nll_loss, its gradient and
// count_correct, and the scalar losses (ordered sums on task 0).
#include "compiler/codegen/emitter.h"

#include <cmath>

namespace descent::emit_detail {

Emitter::RowStats Emitter::rowSoftmaxStats(const Value* v, LV* r, int64_t cols) {
  int64_t nvec = (cols + W - 1) / W;
  LV* base = bufBase(v);
  llvm::Align al = vecAlign(v, cols);
  LV* m = vcf(-INFINITY);
  for (int64_t c = 0; c < nvec; ++c) {
    int64_t valid = std::min<int64_t>(W, cols - c * W);
    LV* x = loadVec(base, B.CreateAdd(B.CreateMul(r, c64(cols)), c64(c * W)), al, valid,
                    vcf(-INFINITY));
    m = vmax(m, x);
  }
  LV* mx = hmax(m);
  LV* s = vcf(0);
  for (int64_t c = 0; c < nvec; ++c) {
    int64_t valid = std::min<int64_t>(W, cols - c * W);
    LV* x = loadVec(base, B.CreateAdd(B.CreateMul(r, c64(cols)), c64(c * W)), al, valid,
                    vcf(-INFINITY));
    s = B.CreateFAdd(s, exp(B.CreateFSub(x, splat(mx))));
  }
  return {mx, hsum(s)};
}

void Emitter::blockSoftmaxStats(const Value* v, LV* r0, LV* rows, int64_t cols, LV* mxOut,
                                LV* lseOut) {
  // Lane l holds row r0 + l (rows past `rows` are masked off and their
  // lanes are never read). Each lane computes exactly what rowSoftmaxStats
  // and log() compute for its row, in the same order: the max over the
  // columns (exact: any order gives the same value), then the sum of
  // exp(x - max) as rowSoftmaxStats adds it, column c into vector lane
  // c mod W in column order, then those W partial sums lane 0 first, each
  // starting from +0.0 (lanes past the columns hold exp(-inf) = +0.0 there,
  // and adding them changes nothing, so they are left out).
  std::vector<Constant*> iota;
  for (int l = 0; l < W; ++l)
    iota.push_back(ConstantInt::get(i64, l));
  LV* rowIdx = B.CreateAdd(splat(r0), llvm::ConstantVector::get(iota));
  LV* live = B.CreateICmpSLT(rowIdx, splat(rows));
  LV* rowBase = B.CreateInBoundsGEP(f32, bufBase(v), B.CreateMul(rowIdx, splat(c64(cols))));
  std::vector<LV*> xs(static_cast<size_t>(cols));
  LV* mx = vcf(-INFINITY);
  for (int64_t c = 0; c < cols; ++c) {
    LV* p = B.CreateInBoundsGEP(f32, rowBase, c64(c));
    xs[size_t(c)] = B.CreateMaskedGather(vf, p, llvm::Align(4), live, vcf(0));
    mx = B.CreateBinaryIntrinsic(llvm::Intrinsic::maxnum, mx, xs[size_t(c)]);
  }
  LV* sum = vcf(0);
  for (int64_t l = 0; l < std::min<int64_t>(W, cols); ++l) {
    LV* part = vcf(0);
    for (int64_t c = l; c < cols; c += W)
      part = B.CreateFAdd(part, exp(B.CreateFSub(xs[size_t(c)], mx)));
    sum = B.CreateFAdd(sum, part);
  }
  B.CreateAlignedStore(mx, mxOut, llvm::Align(4));
  B.CreateAlignedStore(log(sum), lseOut, llvm::Align(4));
}

void Emitter::emitRowSoftmaxLoss(const Kernel& k) {
  const Op* ls = k.ops[0];
  const Value* z = ls->operands[0];
  const Value* logp = ls->result;
  int64_t cols = k.cols;
  int64_t nvec = (cols + W - 1) / W;
  LV* rows = rowsOf(k.rows_batched, k.rows);
  // CrossEntropyLoss(label_smoothing=e) also sums -logp over every class.
  double smoothing = 0;
  const Op* nll = nullptr;
  for (const Op* op : k.ops)
    if (op->kind == OpKind::NllLoss) {
      smoothing = op->attrs.getDouble("label_smoothing", 0.0);
      nll = op;
    }
  // weight=: the smoothing sum weighs each class.
  const bool weighted = nll && weightedClassLoss(nll);
  // Task 0 does all rows: the loss is a sum in row order.
  ifThen(B.CreateICmpEQ(taskArg, c32(0)), [&] {
    LV* lossAcc = entryAlloca(f32);
    LV* corrAcc = entryAlloca(f32);
    LV* smoothAcc = entryAlloca(f32);
    B.CreateStore(cf(0.0, f32), lossAcc);
    B.CreateStore(cf(0.0, f32), corrAcc);
    B.CreateStore(cf(0.0, f32), smoothAcc);
    // Few columns (10 classes): each row's max, sum and log are long
    // dependent chains of scalar steps (~240 cycles a row measured), so
    // they are computed W rows at a time, one row per lane
    // (blockSoftmaxStats), and the row loop below reads them back.
    const bool blocked = cols <= 2 * W;
    LV* mxArr = blocked ? entryAlloca(vf) : nullptr;
    LV* lseArr = blocked ? entryAlloca(vf) : nullptr;
    forLoop(
        c64(0), rows, 1,
        [&](LV* r) {
          RowStats st{};
          LV* lse = nullptr;
          if (blocked) {
            LV* lane = B.CreateAnd(r, c64(W - 1));
            ifThen(B.CreateICmpEQ(lane, c64(0)),
                   [&] { blockSoftmaxStats(z, r, rows, cols, mxArr, lseArr); });
            st.mx = B.CreateLoad(f32, B.CreateInBoundsGEP(f32, mxArr, lane));
            lse = B.CreateLoad(f32, B.CreateInBoundsGEP(f32, lseArr, lane));
          } else {
            st = rowSoftmaxStats(z, r, cols);
            lse = log(st.sum);
          }
          std::map<const Value*, LV*> rowVals;
          LV* negSum = vcf(0);
          for (int64_t c = 0; c < nvec; ++c) {
            int64_t valid = std::min<int64_t>(W, cols - c * W);
            ElemCtx ctx{r, c64(c * W), valid};
            LV* x = loadOperand(z, ctx);
            LV* lp = B.CreateFSub(B.CreateFSub(x, splat(st.mx)), splat(lse));
            if (k.stores.count(logp)) storeValue(logp, lp, ctx);
            if (smoothing != 0) {
              LV* term = valid < W ? B.CreateSelect(laneMask(valid), lp, vcf(0)) : lp;
              if (weighted) term = B.CreateFMul(term, classWeightVec(nll, ctx));
              negSum = B.CreateFSub(negSum, term);
            }
            for (const Op* op : k.ops)
              if (op->kind == OpKind::LogSoftmaxNllGrad) {
                LV* gr = elem(op, ctx, [&](size_t) { return lp; });
                storeValue(op->result, gr, ctx);
              }
          }
          for (const Op* op : k.ops) {
            if (op->kind != OpKind::NllLoss && op->kind != OpKind::CountCorrect) continue;
            LV* lab = B.CreateSExt(
                B.CreateAlignedLoad(i32, B.CreateInBoundsGEP(i32, bufBase(op->operands[1]), r),
                                    llvm::Align(4)),
                i64);
            LV* zrow = B.CreateInBoundsGEP(f32, bufBase(z), B.CreateMul(r, c64(cols)));
            if (op->kind == OpKind::NllLoss && weightedClassLoss(op)) {
              // torch's nll_loss: loss -= logp[y] * w[y]; an ignored row adds 0.
              LV *kept = nullptr, *safe = nullptr;
              LV* w = sampleWeight(op, lab, &kept, &safe);
              LV* zl =
                  B.CreateAlignedLoad(f32, B.CreateInBoundsGEP(f32, zrow, safe), llvm::Align(4));
              LV* lpl = B.CreateFSub(B.CreateFSub(zl, st.mx), lse);
              B.CreateStore(B.CreateFSub(B.CreateLoad(f32, lossAcc), B.CreateFMul(lpl, w)),
                            lossAcc);
              if (smoothing != 0)
                B.CreateStore(
                    B.CreateFAdd(B.CreateLoad(f32, smoothAcc), B.CreateFMul(hsum(negSum), kept)),
                    smoothAcc);
            } else if (op->kind == OpKind::NllLoss) {
              LV* zl =
                  B.CreateAlignedLoad(f32, B.CreateInBoundsGEP(f32, zrow, lab), llvm::Align(4));
              LV* lpl = B.CreateFSub(B.CreateFSub(zl, st.mx), lse);
              B.CreateStore(B.CreateFSub(B.CreateLoad(f32, lossAcc), lpl), lossAcc);
              if (smoothing != 0)
                B.CreateStore(B.CreateFAdd(B.CreateLoad(f32, smoothAcc), hsum(negSum)), smoothAcc);
            } else {
              B.CreateStore(
                  B.CreateFAdd(B.CreateLoad(f32, corrAcc), argmaxIs(zrow, cols, lab, st.mx, lse)),
                  corrAcc);
            }
          }
        },
        "row");
    for (const Op* op : k.ops) {
      if (op->kind == OpKind::NllLoss) {
        // "mean" divides by the batch rows, or by the weights' sum with weight=/ignore_index=.
        LV* div = weightedClassLoss(op) ? (classDiv_.count(op) ? classDiv_.at(op) : nullptr)
                                        : lossDivisor(op, 1);
        LV* l = B.CreateLoad(f32, lossAcc);
        if (div) l = B.CreateFDiv(l, div);
        if (smoothing != 0) {
          // torch 1.13: (1 - e) * nll + smooth * (e / C), each reduced alike.
          LV* smooth = B.CreateLoad(f32, smoothAcc);
          if (div) smooth = B.CreateFDiv(smooth, div);
          l = B.CreateFAdd(B.CreateFMul(cf(1 - smoothing, f32), l),
                           B.CreateFMul(smooth, cf(smoothing / double(cols), f32)));
        }
        B.CreateAlignedStore(l, bufBase(op->result), llvm::Align(4));
      } else if (op->kind == OpKind::CountCorrect) {
        B.CreateAlignedStore(B.CreateLoad(f32, corrAcc), bufBase(op->result), llvm::Align(4));
      }
    }
  });
}

LV* Emitter::argmaxIs(LV* row, int64_t cols, LV* label, LV* mx, LV* lse) {
  LV* best = entryAlloca(f32);
  LV* bestIdx = entryAlloca(i64);
  B.CreateStore(cf(-INFINITY, f32), best);
  B.CreateStore(c64(0), bestIdx);
  forLoop(
      c64(0), c64(cols), 1,
      [&](LV* c) {
        LV* x = B.CreateAlignedLoad(f32, B.CreateInBoundsGEP(f32, row, c), llvm::Align(4));
        if (mx) x = B.CreateFSub(B.CreateFSub(x, mx), lse);
        LV* gt = B.CreateFCmpOGT(x, B.CreateLoad(f32, best));
        B.CreateStore(B.CreateSelect(gt, x, B.CreateLoad(f32, best)), best);
        B.CreateStore(B.CreateSelect(gt, c, B.CreateLoad(i64, bestIdx)), bestIdx);
      },
      "am");
  return B.CreateSelect(B.CreateICmpEQ(B.CreateLoad(i64, bestIdx), label), cf(1.0, f32),
                        cf(0.0, f32));
}

void Emitter::emitRowOp(const Kernel& k) {
  const Op* op = k.ops[0];
  int64_t cols = k.cols;
  int64_t nvec = (cols + W - 1) / W;
  LV* rows = rowsOf(k.rows_batched, k.rows);
  auto [rb, re] = split(rows);
  forLoop(
      rb, re, 1,
      [&](LV* r) {
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
          s = B.CreateFAdd(s, op->kind == OpKind::SoftmaxGrad
                                  ? B.CreateFMul(dy, loadOperand(op->operands[1], ctx))
                                  : dy);
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
      },
      "row");
}

void Emitter::emitLoss(const Kernel& k) {
  const Op* op = k.ops[0];
  // CrossEntropyLoss(label_smoothing=e) also sums -logp over every class.
  const double smoothing =
      op->kind == OpKind::NllLoss ? op->attrs.getDouble("label_smoothing", 0.0) : 0.0;
  const bool weighted = op->kind == OpKind::NllLoss && weightedClassLoss(op);
  ifThen(B.CreateICmpEQ(taskArg, c32(0)), [&] {
    LV* acc = entryAlloca(f32);
    B.CreateStore(cf(0.0, f32), acc);
    LV* smooth_acc = entryAlloca(f32);
    B.CreateStore(cf(0.0, f32), smooth_acc);
    LV* rows = rowsOf(k.rows_batched, k.rows);
    int64_t cols = k.cols;
    forLoop(
        c64(0), rows, 1,
        [&](LV* r) {
          if (op->kind == OpKind::NllLoss || op->kind == OpKind::CountCorrect) {
            LV* lab = B.CreateSExt(
                B.CreateAlignedLoad(i32, B.CreateInBoundsGEP(i32, bufBase(op->operands[1]), r),
                                    llvm::Align(4)),
                i64);
            LV* row = B.CreateInBoundsGEP(f32, bufBase(op->operands[0]), B.CreateMul(r, c64(cols)));
            // weight=/ignore_index=: torch's nll_loss, loss -= logp[y] * w[y]
            // (0 for an ignored row, whose label may be no class at all).
            LV *kept = nullptr, *safe = lab, *w = nullptr;
            if (weighted) w = sampleWeight(op, lab, &kept, &safe);
            LV* term = op->kind == OpKind::NllLoss
                           ? B.CreateFNeg(B.CreateAlignedLoad(
                                 f32, B.CreateInBoundsGEP(f32, row, safe), llvm::Align(4)))
                           : argmaxIs(row, cols, lab, nullptr, nullptr);
            if (w) term = B.CreateFMul(term, w);
            B.CreateStore(B.CreateFAdd(B.CreateLoad(f32, acc), term), acc);
            if (smoothing != 0) {
              LV* s = vcf(0);
              for (int64_t c = 0; c < (cols + W - 1) / W; ++c) {
                ElemCtx ctx{r, c64(c * W), std::min<int64_t>(W, cols - c * W)};
                LV* lp = loadOperand(op->operands[0], ctx);
                if (ctx.lanes_valid < W) lp = B.CreateSelect(laneMask(ctx.lanes_valid), lp, vcf(0));
                if (weighted) lp = B.CreateFMul(lp, classWeightVec(op, ctx));
                s = B.CreateFSub(s, lp);
              }
              LV* rs = hsum(s);
              if (kept) rs = B.CreateFMul(rs, kept);
              B.CreateStore(B.CreateFAdd(B.CreateLoad(f32, smooth_acc), rs), smooth_acc);
            }
            return;
          }
          int64_t nvec = (cols + W - 1) / W;
          LV* s = vcf(0);
          for (int64_t c = 0; c < nvec; ++c) {
            ElemCtx ctx{r, c64(c * W), std::min<int64_t>(W, cols - c * W)};
            LV* p = loadOperand(op->operands[0], ctx);
            LV* t = loadOperand(op->operands[1], ctx);
            LV* term = nullptr;
            // A loss with a math struct (op_math.h) gives its term there.
            if (LV* t_math = elemMath(op, [&](size_t i) { return i == 0 ? p : t; })) {
              term = t_math;
            } else if (op->kind == OpKind::MseLoss) {
              LV* d = B.CreateFSub(p, t);
              term = B.CreateFMul(d, d);
            } else if (op->kind == OpKind::BceLoss) {
              // -(t*log(p) + (1-t)*log(1-p)), each log clamped at -100 like PyTorch
              // PyTorch: (y - 1) * max(log1p(-p), -100) - y * max(log(p), -100)
              LV* lp = vmax(log(p), vcf(-100));
              LV* l1p = vmax(log(B.CreateFSub(vcf(1), p)), vcf(-100));
              term = B.CreateFSub(B.CreateFMul(B.CreateFSub(t, vcf(1)), l1p), B.CreateFMul(t, lp));
            } else if (op->attrs.has("pos_weight")) {
              // torch 1.13: (1-t)*z + lw*(log(exp(-m) + exp(-z-m)) + m),
              // lw = 1 + (pos_weight-1)*t, m = max(-z, 0).
              LV* m = vmax(B.CreateFNeg(p), vcf(0));
              LV* lw = B.CreateFAdd(B.CreateFMul(B.CreateFSub(posWeightVec(op, ctx), vcf(1)), t),
                                    vcf(1));
              LV* lse = B.CreateFAdd(
                  log(B.CreateFAdd(exp(B.CreateFNeg(m)), exp(B.CreateFSub(B.CreateFNeg(p), m)))),
                  m);
              term = B.CreateFAdd(B.CreateFMul(B.CreateFSub(vcf(1), t), p), B.CreateFMul(lw, lse));
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
        },
        "row");
    LV* l = B.CreateLoad(f32, acc);
    // "mean": the rows (or elements), or the weights' sum with weight=/ignore_index=.
    LV* div = op->kind == OpKind::CountCorrect ? nullptr
              : weighted                       ? (classDiv_.count(op) ? classDiv_.at(op) : nullptr)
                         : lossDivisor(op, op->kind == OpKind::NllLoss ? 1 : cols);
    if (div) l = B.CreateFDiv(l, div);
    if (smoothing != 0) {
      // torch 1.13: (1 - e) * nll + smooth * (e / C), each reduced alike.
      LV* smooth = B.CreateLoad(f32, smooth_acc);
      if (div) smooth = B.CreateFDiv(smooth, div);
      l = B.CreateFAdd(B.CreateFMul(cf(1 - smoothing, f32), l),
                       B.CreateFMul(smooth, cf(smoothing / double(cols), f32)));
    }
    B.CreateAlignedStore(l, bufBase(op->result), llvm::Align(4));
  });
}

bool Emitter::weightedClassLoss(const Op* op) {
  return (op->kind == OpKind::NllLoss || op->kind == OpKind::NllLossGrad ||
          op->kind == OpKind::LogSoftmaxNllGrad) &&
         (op->attrs.has("weight") || op->attrs.has("ignore_index"));
}

void Emitter::prepareClassDivisors(const Kernel& k) {
  classDiv_.clear();
  listConstants_.clear();
  for (const Op* op : k.ops) {
    if (!weightedClassLoss(op) || op->attrs.getString("reduction", "mean") != "mean") continue;
    const Value* labels = op->operands[1];
    LV* rows = kg_->batched.count(labels) ? nArg : c64(labels->type.shape[0]);
    // In row order, like torch's sum of the target weights (total_weight).
    LV* sum = phiLoop(
        c64(0), rows, 1, {cf(0.0, f32)},
        [&](LV* r, const std::vector<LV*>& acc) {
          LV* lab =
              B.CreateSExt(B.CreateAlignedLoad(i32, B.CreateInBoundsGEP(i32, bufBase(labels), r),
                                               llvm::Align(4)),
                           i64);
          LV *kept = nullptr, *safe = nullptr;
          return std::vector<LV*>{B.CreateFAdd(acc[0], sampleWeight(op, lab, &kept, &safe))};
        },
        "wsum")[0];
    classDiv_[op] = sum;
  }
}

LV* Emitter::listConstant(const Op* op, const std::string& attr) {
  auto key = std::make_pair(op, attr);
  if (auto it = listConstants_.find(key); it != listConstants_.end()) return it->second;
  std::vector<double> w = op->attrs.getDoubles(attr);
  std::vector<float> padded((w.size() + size_t(W) - 1) / size_t(W) * size_t(W), 0.0f);
  for (size_t i = 0; i < w.size(); ++i)
    padded[i] = float(w[i]);
  auto* init = llvm::ConstantDataArray::get(C, padded);
  auto* gv = new llvm::GlobalVariable(M, init->getType(), true, llvm::GlobalValue::PrivateLinkage,
                                      init, attr);
  gv->setUnnamedAddr(llvm::GlobalValue::UnnamedAddr::Global);
  gv->setAlignment(llvm::Align(64));
  return listConstants_[key] = gv;
}

LV* Emitter::posWeightVec(const Op* op, const ElemCtx& ctx) {
  std::vector<double> pw = op->attrs.getDoubles("pos_weight");
  if (pw.size() == 1) return vcf(pw[0]);
  // Padded to whole vectors: a tail vector reads zeros (its lanes are not stored).
  return B.CreateAlignedLoad(vf, B.CreateInBoundsGEP(f32, listConstant(op, "pos_weight"), ctx.col),
                             llvm::Align(4));
}

LV* Emitter::sampleWeight(const Op* op, LV* lab, LV** kept, LV** safe) {
  LV* ignored = op->attrs.has("ignore_index")
                    ? B.CreateICmpEQ(lab, c64(op->attrs.getInt("ignore_index")))
                    : llvm::ConstantInt::getFalse(C);
  *safe = B.CreateSelect(ignored, c64(0), lab);
  *kept = B.CreateSelect(ignored, cf(0.0, f32), cf(1.0, f32));
  if (!op->attrs.has("weight")) return *kept;
  LV* w = B.CreateAlignedLoad(f32, B.CreateInBoundsGEP(f32, listConstant(op, "weight"), *safe),
                              llvm::Align(4));
  return B.CreateSelect(ignored, cf(0.0, f32), w);
}

LV* Emitter::classWeightVec(const Op* op, const ElemCtx& ctx) {
  if (!op->attrs.has("weight")) return vcf(1.0);
  // The array is padded to whole vectors: a tail vector reads zeros.
  return B.CreateAlignedLoad(vf, B.CreateInBoundsGEP(f32, listConstant(op, "weight"), ctx.col),
                             llvm::Align(4));
}

LV* Emitter::weightedClassGrad(const Op* op, const ElemCtx& ctx,
                               const std::function<LV*(size_t)>& get) {
  const int64_t classes = op->operands[0]->type.shape[1];
  const double e = op->attrs.getDouble("label_smoothing", 0.0);
  LV* lab = B.CreateSExt(
      B.CreateAlignedLoad(i32, B.CreateInBoundsGEP(i32, bufBase(op->operands[1]), ctx.row),
                          llvm::Align(4)),
      i64);
  LV *kept = nullptr, *safe = nullptr;
  LV* r = sampleWeight(op, lab, &kept, &safe);
  // t = (1 - e) * r * onehot + e/C * kept * w; its row sum (1 - e) * r + e/C * kept * sum(w).
  LV* rs = B.CreateFMul(cf(1 - e, f32), r);
  LV* t = B.CreateFMul(oneHot(op->operands[1], ctx), splat(rs));
  LV* total = rs;
  if (e != 0) {
    double wsum = 0;
    for (double w : op->attrs.getDoubles("weight"))
      wsum += w;
    if (!op->attrs.has("weight")) wsum = double(classes);
    LV* ek = B.CreateFMul(cf(e / double(classes), f32), kept);
    t = B.CreateFAdd(t, B.CreateFMul(splat(ek), classWeightVec(op, ctx)));
    total = B.CreateFAdd(total, B.CreateFMul(ek, cf(wsum, f32)));
  }
  LV* g = op->kind == OpKind::NllLossGrad
              ? B.CreateFNeg(t)
              : B.CreateFSub(B.CreateFMul(exp(get(0)), splat(total)), t);
  if (classDiv_.count(op)) g = B.CreateFDiv(g, splat(classDiv_.at(op)));
  return g;
}

} // namespace descent::emit_detail
