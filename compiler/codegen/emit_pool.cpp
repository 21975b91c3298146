// LLVM IR emission of the pooling kernels (emitter.h): max_pool2d,
// avg_pool2d, adaptive_avg_pool2d and their gradients, with the
// interpreter's rules (compiler/interp/interpreter.cpp: ATen's first maximum
// and NaN rule, its divisors) and its order of additions, so the results are
// the interpreter's bits.
#include "compiler/codegen/emitter.h"
#include "compiler/ir/window_attrs.h"

#include <limits>

namespace descent::emit_detail {

bool Emitter::emitPool(const Kernel& k) {
  const Op* op = k.ops[0];
  switch (op->kind) {
  case OpKind::MaxPool2d:
  case OpKind::MaxPool2dGrad:
  case OpKind::AvgPool2d:
  case OpKind::AvgPool2dGrad:
  case OpKind::AdaptiveAvgPool2d:
  case OpKind::AdaptiveAvgPool2dGrad:
    break;
  default:
    return false;
  }
  const Value* res = op->result;
  // a result only an update fused here reads has no buffer
  LV* out = k.stores.count(res) || (k.ops.size() == 1 && !k.sink) ? bufBase(res) : nullptr;
  auto at = [&](LV* base, LV* idx) { return B.CreateInBoundsGEP(f32, base, idx); };
  auto load = [&](LV* base, LV* idx) { return B.CreateLoad(f32, at(base, idx)); };
  auto addTo = [&](LV* base, LV* idx, LV* v) {
    LV* p = at(base, idx);
    B.CreateStore(B.CreateFAdd(B.CreateLoad(f32, p), v), p);
  };
  auto mul = [&](LV* a, int64_t c) { return B.CreateMul(a, c64(c), "", false, true); };
  auto add = [&](LV* a, LV* b) { return B.CreateAdd(a, b, "", false, true); };
  // ((a·d1 + b)·d2 + c)·d3 + e: a row-major [·,d1,d2,d3] index
  auto idx4 = [&](LV* a, int64_t d1, LV* b, int64_t d2, LV* c, int64_t d3, LV* e) {
    return add(mul(add(mul(add(mul(a, d1), b), d2), c), d3), e);
  };
  auto inRange = [&](LV* v, int64_t hi) {
    return B.CreateAnd(B.CreateICmpSGE(v, c64(0)), B.CreateICmpSLT(v, c64(hi)));
  };
  // Samples this task computes: the batch split over the tasks (each
  // sample's values come from the same code on any split).
  auto samples = [&](const Value* batchOf, const std::function<void(LV*)>& body) {
    LV* rows = rowsOf(kg_->batched.count(batchOf) > 0, batchOf->type.shape[0]);
    auto [s0, s1] = split(rows);
    if (op->kind == OpKind::MaxPool2dGrad || op->kind == OpKind::AvgPool2dGrad ||
        op->kind == OpKind::AdaptiveAvgPool2dGrad) {
      // scatter-add kernels: zero this task's samples first
      const int64_t per = res->type.numel() / res->type.shape[0] * 4;
      ifThen(B.CreateICmpSGT(s1, s0), [&] {
        B.CreateMemSet(B.CreateInBoundsGEP(i8, out, B.CreateMul(s0, c64(per))),
                       llvm::ConstantInt::get(i8, 0), B.CreateMul(B.CreateSub(s1, s0), c64(per)),
                       llvm::MaybeAlign(4));
      });
    }
    forLoop(s0, s1, 1, body, "n");
  };
  auto range = [&](int64_t n, const std::function<void(LV*)>& body, const char* name) {
    forLoop(c64(0), c64(n), 1, body, name);
  };
  // f(iy, ix, i, j) for every tap (i, j) of window w at output (oy, ox)
  // that falls inside the [H, Wd] input, row by row
  auto taps = [&](const Window2d& w, int64_t H, int64_t Wd, LV* oy, LV* ox,
                  const std::function<void(LV*, LV*, LV*, LV*)>& f) {
    range(
        w.kh,
        [&](LV* i) {
          LV* iy = add(B.CreateSub(mul(oy, w.sh), c64(w.pt)), mul(i, w.dh));
          ifThen(inRange(iy, H), [&] {
            range(
                w.kw,
                [&](LV* j) {
                  LV* ix = add(B.CreateSub(mul(ox, w.sw), c64(w.pl)), mul(j, w.dw));
                  ifThen(inRange(ix, Wd), [&] { f(iy, ix, i, j); });
                },
                "j");
          });
        },
        "i");
  };
  const bool grad = op->kind == OpKind::MaxPool2dGrad || op->kind == OpKind::AvgPool2dGrad ||
                    op->kind == OpKind::AdaptiveAvgPool2dGrad;
  const Value* xv = op->operands[grad ? 1 : 0];
  const Value* yv = grad ? op->operands[0] : res;
  const Shape &xs = xv->type.shape, &ys = yv->type.shape;
  const int64_t C = xs[1], H = xs[2], Wd = xs[3], Ho = ys[2], Wo = ys[3];
  LV *xb = bufBase(xv), *yb = bufBase(yv);
  const bool max = op->kind == OpKind::MaxPool2d || op->kind == OpKind::MaxPool2dGrad;
  const bool adaptive =
      op->kind == OpKind::AdaptiveAvgPool2d || op->kind == OpKind::AdaptiveAvgPool2dGrad;
  const Window2d w = adaptive ? Window2d{} : poolWindow(op->attrs);
  LV* acc = entryAlloca(f32);
  LV* best = entryAlloca(i64);
  auto smin = [&](LV* a, LV* b) { return B.CreateSelect(B.CreateICmpSLT(a, b), a, b); };
  auto smax = [&](LV* a, LV* b) { return B.CreateSelect(B.CreateICmpSGT(a, b), a, b); };
  samples(yv, [&](LV* n) {
    range(
        C,
        [&](LV* c) {
          range(
              Ho,
              [&](LV* oy) {
                range(
                    Wo,
                    [&](LV* ox) {
                      LV* yk = idx4(n, C, c, Ho, oy, Wo, ox);
                      LV* xrow =
                          mul(add(mul(n, C), c), H); // (n·C + c)·H: the first row of the plane
                      auto xi = [&](LV* iy, LV* ix) { return add(mul(add(xrow, iy), Wd), ix); };
                      if (max) {
                        // ATen's MaxPoolKernel: `val > max || isnan(val)`, starting at the
                        // first tap inside: the FIRST maximum wins (and gets the gradient).
                        B.CreateStore(cf(-std::numeric_limits<double>::infinity(), f32), acc);
                        B.CreateStore(c64(-1), best);
                        taps(w, H, Wd, oy, ox, [&](LV* iy, LV* ix, LV*, LV*) {
                          LV* kk = xi(iy, ix);
                          LV* v = load(xb, kk);
                          LV* mx = B.CreateLoad(f32, acc);
                          LV* b = B.CreateLoad(i64, best);
                          b = B.CreateSelect(B.CreateICmpEQ(b, c64(-1)), kk, b);
                          LV* take = B.CreateOr(B.CreateFCmpOGT(v, mx), B.CreateFCmpUNO(v, v));
                          B.CreateStore(B.CreateSelect(take, v, mx), acc);
                          B.CreateStore(B.CreateSelect(take, kk, b), best);
                        });
                        if (grad) {
                          LV* b = B.CreateLoad(i64, best);
                          ifThen(B.CreateICmpSGE(b, c64(0)), [&] { addTo(out, b, load(yb, yk)); });
                        } else {
                          B.CreateStore(B.CreateLoad(f32, acc), at(out, yk));
                        }
                        return;
                      }
                      LV *h0, *h1, *w0, *w1, *div;
                      if (adaptive) {
                        // rows [floor(oy·H/Ho), ceil((oy+1)·H/Ho)), the columns likewise
                        h0 = B.CreateSDiv(mul(oy, H), c64(Ho));
                        h1 = B.CreateSDiv(add(mul(add(oy, c64(1)), H), c64(Ho - 1)), c64(Ho));
                        w0 = B.CreateSDiv(mul(ox, Wd), c64(Wo));
                        w1 = B.CreateSDiv(add(mul(add(ox, c64(1)), Wd), c64(Wo - 1)), c64(Wo));
                        div = B.CreateSIToFP(B.CreateMul(B.CreateSub(h1, h0), B.CreateSub(w1, w0)),
                                             f32);
                      } else {
                        // ATen's AvgPoolKernel: the divisor counts the padding with
                        // count_include_pad, only the taps inside the input without it.
                        h0 = B.CreateSub(mul(oy, w.sh), c64(w.pt));
                        w0 = B.CreateSub(mul(ox, w.sw), c64(w.pl));
                        h1 = smin(add(h0, c64(w.kh)), c64(H + w.pb));
                        w1 = smin(add(w0, c64(w.kw)), c64(Wd + w.pr));
                        LV* pool = B.CreateMul(B.CreateSub(h1, h0), B.CreateSub(w1, w0));
                        h0 = smax(h0, c64(0));
                        w0 = smax(w0, c64(0));
                        h1 = smin(h1, c64(H));
                        w1 = smin(w1, c64(Wd));
                        LV* inside = B.CreateMul(B.CreateSub(h1, h0), B.CreateSub(w1, w0));
                        div = B.CreateSIToFP(w.count_include_pad ? pool : inside, f32);
                      }
                      // a window wholly in the padding averages nothing: 0 (and no gradient)
                      LV* empty = B.CreateOr(B.CreateICmpSGE(h0, h1), B.CreateICmpSGE(w0, w1));
                      if (grad) {
                        LV* g = B.CreateFDiv(load(yb, yk), div);
                        ifThen(B.CreateNot(empty), [&] {
                          forLoop(
                              h0, h1, 1,
                              [&](LV* iy) {
                                forLoop(
                                    w0, w1, 1, [&](LV* ix) { addTo(out, xi(iy, ix), g); }, "ix");
                              },
                              "iy");
                        });
                      } else {
                        B.CreateStore(cf(0.0, f32), acc);
                        forLoop(
                            h0, h1, 1,
                            [&](LV* iy) {
                              forLoop(
                                  w0, w1, 1,
                                  [&](LV* ix) {
                                    B.CreateStore(
                                        B.CreateFAdd(B.CreateLoad(f32, acc), load(xb, xi(iy, ix))),
                                        acc);
                                  },
                                  "ix");
                            },
                            "iy");
                        LV* avg = B.CreateFDiv(B.CreateLoad(f32, acc), div);
                        B.CreateStore(B.CreateSelect(empty, cf(0.0, f32), avg), at(out, yk));
                      }
                    },
                    "ox");
              },
              "oy");
        },
        "c");
  });
  return true;
}

} // namespace descent::emit_detail
