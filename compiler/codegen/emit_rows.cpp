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

void Emitter::emitRowSoftmaxLoss(const Kernel& k) {
  const Op* ls = k.ops[0];
  const Value* z = ls->operands[0];
  const Value* logp = ls->result;
  int64_t cols = k.cols;
  int64_t nvec = (cols + W - 1) / W;
  LV* rows = rowsOf(k.rows_batched, k.rows);
  // CrossEntropyLoss(label_smoothing=e) also sums -logp over every class.
  double smoothing = 0;
  for (const Op* op : k.ops)
    if (op->kind == OpKind::NllLoss) smoothing = op->attrs.getDouble("label_smoothing", 0.0);
  // Task 0 does all rows: the loss is a sum in row order.
  ifThen(B.CreateICmpEQ(taskArg, c32(0)), [&] {
    LV* lossAcc = entryAlloca(f32);
    LV* corrAcc = entryAlloca(f32);
    LV* smoothAcc = entryAlloca(f32);
    B.CreateStore(cf(0.0, f32), lossAcc);
    B.CreateStore(cf(0.0, f32), corrAcc);
    B.CreateStore(cf(0.0, f32), smoothAcc);
    forLoop(
        c64(0), rows, 1,
        [&](LV* r) {
          RowStats st = rowSoftmaxStats(z, r, cols);
          LV* lse = log(st.sum);
          std::map<const Value*, LV*> rowVals;
          LV* negSum = vcf(0);
          for (int64_t c = 0; c < nvec; ++c) {
            int64_t valid = std::min<int64_t>(W, cols - c * W);
            ElemCtx ctx{r, c64(c * W), valid};
            LV* x = loadOperand(z, ctx);
            LV* lp = B.CreateFSub(B.CreateFSub(x, splat(st.mx)), splat(lse));
            if (k.stores.count(logp)) storeValue(logp, lp, ctx);
            if (smoothing != 0)
              negSum = B.CreateFSub(negSum,
                                    valid < W ? B.CreateSelect(laneMask(valid), lp, vcf(0)) : lp);
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
            if (op->kind == OpKind::NllLoss) {
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
        LV* l = B.CreateLoad(f32, lossAcc);
        if (LV* d = lossDivisor(op, 1)) l = B.CreateFDiv(l, d);
        if (smoothing != 0) {
          // torch 1.13: (1 - e) * nll + smooth * (e / C), each reduced alike.
          LV* smooth = B.CreateLoad(f32, smoothAcc);
          if (LV* d = lossDivisor(op, 1)) smooth = B.CreateFDiv(smooth, d);
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
            LV* term = op->kind == OpKind::NllLoss
                           ? B.CreateFNeg(B.CreateAlignedLoad(
                                 f32, B.CreateInBoundsGEP(f32, row, lab), llvm::Align(4)))
                           : argmaxIs(row, cols, lab, nullptr, nullptr);
            B.CreateStore(B.CreateFAdd(B.CreateLoad(f32, acc), term), acc);
            if (smoothing != 0) {
              LV* s = vcf(0);
              for (int64_t c = 0; c < (cols + W - 1) / W; ++c) {
                ElemCtx ctx{r, c64(c * W), std::min<int64_t>(W, cols - c * W)};
                LV* lp = loadOperand(op->operands[0], ctx);
                if (ctx.lanes_valid < W) lp = B.CreateSelect(laneMask(ctx.lanes_valid), lp, vcf(0));
                s = B.CreateFSub(s, lp);
              }
              B.CreateStore(B.CreateFAdd(B.CreateLoad(f32, smooth_acc), hsum(s)), smooth_acc);
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
    if (op->kind != OpKind::CountCorrect)
      if (LV* d = lossDivisor(op, op->kind == OpKind::NllLoss ? 1 : cols)) l = B.CreateFDiv(l, d);
    if (smoothing != 0) {
      // torch 1.13: (1 - e) * nll + smooth * (e / C), each reduced alike.
      LV* smooth = B.CreateLoad(f32, smooth_acc);
      if (LV* d = lossDivisor(op, 1)) smooth = B.CreateFDiv(smooth, d);
      l = B.CreateFAdd(B.CreateFMul(cf(1 - smoothing, f32), l),
                       B.CreateFMul(smooth, cf(smoothing / double(cols), f32)));
    }
    B.CreateAlignedStore(l, bufBase(op->result), llvm::Align(4));
  });
}

} // namespace descent::emit_detail
