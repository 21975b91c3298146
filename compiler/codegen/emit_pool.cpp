// LLVM IR emission of the pooling kernels (emitter.h): max_pool2d,
// avg_pool2d, adaptive_avg_pool2d and their gradients, with the
// interpreter's rules (compiler/interp/interpreter.cpp: ATen's first maximum
// and NaN rule, its divisors) and its order of additions, so the results are
// the interpreter's bits.
#include "compiler/codegen/emitter.h"
#include "compiler/ir/window_attrs.h"

#include <algorithm>
#include <limits>

namespace descent::emit_detail {

namespace {

/// max_pool2d_grad with relu_grad of the pool's input fused after it
/// (fuse.cpp): each contribution is masked by its window's max > 0.
bool reluMasked(const Kernel& k) {
  return k.ops.size() == 2 && k.ops[0]->kind == OpKind::MaxPool2dGrad &&
         k.ops[1]->kind == OpKind::ReluGrad;
}

/// The value a pooling kernel writes: its op's result, or the fused relu_grad's.
const Value* poolOut(const Kernel& k) {
  return reluMasked(k) ? k.ops[1]->result : k.ops[0]->result;
}

} // namespace

LV* Emitter::poolDy(const Kernel& k, LV* yb, LV* n, LV* yk, int64_t lanes) {
  if (k.folded.empty()) return loadVec(yb, yk, llvm::Align(4), lanes);
  // dy [B, C, Ho, Wo] is a view of the folded op's [B, C·Ho·Wo] result:
  // element (n, yk - n·C·Ho·Wo), its operands loaded there (the map kernel's
  // operation on the same operands, so the same bits)
  const Op* f = k.folded[0];
  const int64_t per = matrixShape(f->result->type).second;
  const ElemCtx ctx{n, B.CreateSub(yk, B.CreateMul(n, c64(per))), lanes, false};
  return elem(f, ctx, [&](size_t i) { return loadOperand(f->operands[i], ctx); });
}

void Emitter::poolSamples(const Kernel& k, const Value* batchOf,
                          const std::function<void(LV*)>& body, bool zero) {
  const Op* op = k.ops[0];
  const Value* res = poolOut(k);
  LV* rows = rowsOf(kg_->batched.count(batchOf) > 0, batchOf->type.shape[0]);
  auto [s0, s1] = split(rows);
  if (zero && (op->kind == OpKind::MaxPool2dGrad || op->kind == OpKind::AvgPool2dGrad ||
               op->kind == OpKind::AdaptiveAvgPool2dGrad)) {
    // scatter-add kernels: zero this task's samples first
    const int64_t per = res->type.numel() / res->type.shape[0] * 4;
    ifThen(B.CreateICmpSGT(s1, s0), [&] {
      B.CreateMemSet(B.CreateInBoundsGEP(i8, bufBase(res), B.CreateMul(s0, c64(per))),
                     llvm::ConstantInt::get(i8, 0), B.CreateMul(B.CreateSub(s1, s0), c64(per)),
                     llvm::MaybeAlign(4));
    });
  }
  forLoop(s0, s1, 1, body, "n");
}

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
  LV* out = reluMasked(k)                                           ? bufBase(poolOut(k))
            : k.stores.count(res) || (k.ops.size() == 1 && !k.sink) ? bufBase(res)
                                                                    : nullptr;
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
  auto samples = [&](const Value* batchOf, const std::function<void(LV*)>& body) {
    poolSamples(k, batchOf, body);
  };
  auto range = [&](int64_t n, const std::function<void(LV*)>& body, const char* name) {
    forLoop(c64(0), c64(n), 1, body, name);
  };
  const bool grad = op->kind == OpKind::MaxPool2dGrad || op->kind == OpKind::AvgPool2dGrad ||
                    op->kind == OpKind::AdaptiveAvgPool2dGrad;
  const Value* xv = op->operands[grad ? 1 : 0];
  const Value* yv = grad ? op->operands[0] : res;
  const Shape &xs = xv->type.shape, &ys = yv->type.shape;
  const int64_t C = xs[1], H = xs[2], Wd = xs[3], Ho = ys[2], Wo = ys[3];
  // (dy computed in the loads has no buffer)
  LV *xb = bufBase(xv), *yb = k.folded.empty() ? bufBase(yv) : nullptr;
  const bool max = op->kind == OpKind::MaxPool2d || op->kind == OpKind::MaxPool2dGrad;
  const bool adaptive =
      op->kind == OpKind::AdaptiveAvgPool2d || op->kind == OpKind::AdaptiveAvgPool2dGrad;
  const Window2d w = adaptive ? Window2d{} : poolWindow(op->attrs);
  if (emitPoolVector(k)) return true;
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
                        windowTaps(w, H, Wd, oy, ox, [&](LV* iy, LV* ix, LV*, LV*) {
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
                          LV* g = k.folded.empty() ? load(yb, yk)
                                                   : B.CreateExtractElement(poolDy(k, yb, n, yk, 1),
                                                                            uint64_t(0));
                          if (reluMasked(k)) // relu_grad: dy where the max (x at b) is > 0
                            g = B.CreateSelect(
                                B.CreateFCmpOGT(B.CreateLoad(f32, acc), cf(0.0, f32)), g,
                                cf(0.0, f32));
                          ifThen(B.CreateICmpSGE(b, c64(0)), [&] { addTo(out, b, g); });
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

// The vector path: W outputs of one output row per vector. The input row a
// tap row reads for those W outputs is one contiguous span of m vectors
// (loaded once, masked where it leaves the row: the padding), from which each
// tap's W lanes are one shuffle (stride sw, offset j·dw). Which lanes a tap
// reads inside the input is known at compile time (the output columns are
// constants of the unrolled row), the tap row's validity at run time.
// Per lane, the taps run in the interpreter's order, so every value is its:
//  - max: `v > max || isnan(v)` from -inf over the taps inside, the first
//    tap inside as the initial argmax (ATen's rule, the FIRST maximum);
//  - avg: 0 + the taps inside in row-major order, / the same integer divisor;
//  - gradients: out (zeroed) += dy (max: at the argmax, found again from x)
//    or dy/divisor (avg) per tap: the span is loaded, each tap's lanes added
//    at their positions, stored back. An input element receives its
//    contributions in the interpreter's order (output row, then output
//    column): rows and vectors in order, and within a vector the taps of a
//    row in DESCENDING j, since where windows overlap along the width
//    (stride < kernel) position l·sw + j·dw is reached by a smaller output
//    column l through a larger j. Adding +0.0 (a lane whose argmax is
//    another tap) leaves every value as it is: the sums start at +0.0 and
//    never become -0.0, the only value x + 0 would change.
// adaptive_avg_pool2d is avg pooling with kernel = stride = H/Ho (W/Wo) when
// those divide; otherwise, or when a span would exceed 8 vectors (strides
// or dilations so large that a tap row is mostly gaps), the scalar loops.
bool Emitter::emitPoolVector(const Kernel& k) {
  const Op* op = k.ops[0];
  const bool grad = op->kind == OpKind::MaxPool2dGrad || op->kind == OpKind::AvgPool2dGrad ||
                    op->kind == OpKind::AdaptiveAvgPool2dGrad;
  const bool max = op->kind == OpKind::MaxPool2d || op->kind == OpKind::MaxPool2dGrad;
  const bool adaptive =
      op->kind == OpKind::AdaptiveAvgPool2d || op->kind == OpKind::AdaptiveAvgPool2dGrad;
  const Value* res = op->result;
  const Value* xv = op->operands[grad ? 1 : 0];
  const Value* yv = grad ? op->operands[0] : res;
  const Shape &xs = xv->type.shape, &ys = yv->type.shape;
  const int64_t C = xs[1], H = xs[2], Wd = xs[3], Ho = ys[2], Wo = ys[3];
  Window2d w;
  if (adaptive) {
    if (H % Ho || Wd % Wo) return false;
    w.kh = w.sh = H / Ho;
    w.kw = w.sw = Wd / Wo;
  } else {
    w = poolWindow(op->attrs);
  }
  if (!max) w.dh = w.dw = 1; // avg pooling has no dilation (the interpreter ignores it too)
  const int64_t reach = (W - 1) * w.sw + (w.kw - 1) * w.dw + 1;
  const int64_t m = (reach + W - 1) / W;
  if (m > 8) return false;
  int64_t M = 1;
  while (M < m)
    M *= 2;

  // The gradient's windows tile the input (kernel = stride, no dilation or
  // padding, sizes that divide: 2x2/2 on 28x28): every element of dx gets
  // exactly one window's contribution, so each tap row's span starts from a
  // zero vector instead of being loaded from a zeroed dx (no memset, no
  // read-modify-write). The contribution is still added to +0.0, so a -0.0
  // dy becomes +0.0 as in the scatter-add: the same bits.
  const bool tiles = grad && w.sh == w.kh && w.sw == w.kw && w.dh == 1 && w.dw == 1 && w.pt == 0 &&
                     w.pb == 0 && w.pl == 0 && w.pr == 0 && H == Ho * w.kh && Wd == Wo * w.kw;
  LV* out = bufBase(poolOut(k));
  LV *xb = bufBase(xv), *yb = k.folded.empty() ? bufBase(yv) : nullptr;
  auto mul = [&](LV* a, int64_t c) { return B.CreateMul(a, c64(c), "", false, true); };
  auto add = [&](LV* a, LV* b) { return B.CreateAdd(a, b, "", false, true); };
  auto smin = [&](LV* a, LV* b) { return B.CreateSelect(B.CreateICmpSLT(a, b), a, b); };
  auto smax = [&](LV* a, LV* b) { return B.CreateSelect(B.CreateICmpSGT(a, b), a, b); };
  auto bools = [&](const std::vector<bool>& v) {
    std::vector<Constant*> c;
    for (bool b : v)
      c.push_back(ConstantInt::get(i1, b));
    return llvm::ConstantVector::get(c);
  };

  // Which lanes of the span's vector t (columns b + t·W ...) lie inside the
  // row, and how many.
  auto lanesInside = [&](int64_t b, int64_t t) {
    std::vector<bool> in(static_cast<size_t>(W));
    int64_t valid = 0;
    for (int64_t e = 0; e < W; ++e)
      valid += in[size_t(e)] = b + t * W + e >= 0 && b + t * W + e < Wd;
    return std::pair{in, valid};
  };
  // The span of a tap row: M·W floats from column b of the row at rowBase.
  auto loadSpan = [&](LV* base, LV* rowBase, int64_t b) -> LV* {
    std::vector<LV*> v(size_t(M), vcf(0));
    for (int64_t t = 0; t < m; ++t) {
      const auto [in, valid] = lanesInside(b, t);
      if (!valid) continue;
      LV* p = B.CreateGEP(f32, base, add(rowBase, c64(b + t * W)));
      v[size_t(t)] = valid == W ? (LV*)B.CreateAlignedLoad(vf, p, llvm::Align(4))
                                : B.CreateMaskedLoad(vf, p, llvm::Align(4), bools(in), vcf(0));
    }
    while (v.size() > 1) { // concatenate pairwise
      std::vector<LV*> next;
      for (size_t a = 0; a < v.size(); a += 2) {
        const int n2 =
            int(llvm::cast<llvm::FixedVectorType>(v[a]->getType())->getNumElements()) * 2;
        std::vector<int> idx(static_cast<size_t>(n2));
        for (int e = 0; e < n2; ++e)
          idx[size_t(e)] = e;
        next.push_back(B.CreateShuffleVector(v[a], v[a + 1], idx));
      }
      v = next;
    }
    return v[0];
  };
  auto storeSpan = [&](LV* span, LV* base, LV* rowBase, int64_t b) {
    for (int64_t t = 0; t < m; ++t) {
      const auto [in, valid] = lanesInside(b, t);
      if (!valid) continue;
      std::vector<int> idx(static_cast<size_t>(W));
      for (int64_t e = 0; e < W; ++e)
        idx[size_t(e)] = int(t * W + e);
      LV* val = M == 1 ? span : B.CreateShuffleVector(span, idx);
      LV* p = B.CreateGEP(f32, base, add(rowBase, c64(b + t * W)));
      if (valid == W)
        B.CreateAlignedStore(val, p, llvm::Align(4));
      else
        B.CreateMaskedStore(val, p, llvm::Align(4), bools(in));
    }
  };

  poolSamples(
      k, yv,
      [&](LV* n) {
        forLoop(
            c64(0), c64(C), 1,
            [&](LV* c) {
              LV* plane = mul(add(mul(n, C), c), H); // (n·C + c)·H: the plane's first row
              forLoop(
                  c64(0), c64(Ho), 1,
                  [&](LV* oy) {
                    LV* h0 = B.CreateSub(mul(oy, w.sh), c64(w.pt));
                    for (int64_t s0 = 0; s0 < Wo; s0 += W) {
                      const int64_t lanes = std::min<int64_t>(W, Wo - s0), b = s0 * w.sw - w.pl;
                      LV* yk = add(mul(add(mul(add(mul(n, C), c), Ho), oy), Wo), c64(s0));
                      // lane l of tap j reads span position l·sw + j·dw: inside the input?
                      auto inside = [&](int64_t j, int64_t l) {
                        const int64_t col = b + l * w.sw + j * w.dw;
                        return l < lanes && col >= 0 && col < Wd;
                      };
                      auto lanesOf = [&](int64_t j) {
                        std::vector<bool> v(static_cast<size_t>(W));
                        bool anyIn = false;
                        for (int64_t l = 0; l < W; ++l)
                          anyIn |= v[size_t(l)] = inside(j, l);
                        return std::make_pair(v, anyIn);
                      };
                      auto tap = [&](LV* span, int64_t j) {
                        std::vector<int> idx(static_cast<size_t>(W));
                        for (int64_t l = 0; l < W; ++l)
                          idx[size_t(l)] = int(l * w.sw + j * w.dw);
                        return B.CreateShuffleVector(span, idx);
                      };
                      // each tap row inside the input, in order: body(i, row base)
                      auto rows = [&](const std::function<void(int64_t, LV*)>& body) {
                        for (int64_t i = 0; i < w.kh; ++i) {
                          LV* iy = add(h0, c64(i * w.dh));
                          ifThen(
                              B.CreateAnd(B.CreateICmpSGE(iy, c64(0)), B.CreateICmpSLT(iy, c64(H))),
                              [&] { body(i, mul(add(plane, iy), Wd)); });
                        }
                      };
                      // out's span += contribution(j) at tap j's positions, j descending
                      auto scatter = [&](const std::function<LV*(int64_t)>& contribution) {
                        rows([&](int64_t i, LV* rowBase) {
                          LV* span = tiles ? llvm::Constant::getNullValue(
                                                 llvm::FixedVectorType::get(f32, unsigned(M * W)))
                                           : loadSpan(out, rowBase, b);
                          for (int64_t j = w.kw - 1; j >= 0; --j) {
                            auto [in, anyIn] = lanesOf(j);
                            if (!anyIn) continue;
                            std::vector<int> idx(size_t(M * W),
                                                 int(W)); // lane 0 of the zero vector
                            std::vector<bool> at(size_t(M * W), false);
                            for (int64_t l = 0; l < W; ++l)
                              if (in[size_t(l)]) {
                                idx[size_t(l * w.sw + j * w.dw)] = int(l);
                                at[size_t(l * w.sw + j * w.dw)] = true;
                              }
                            LV* d = B.CreateShuffleVector(contribution(i * w.kw + j), vcf(0), idx);
                            span = B.CreateSelect(bools(at), B.CreateFAdd(span, d), span);
                          }
                          storeSpan(span, out, rowBase, b);
                        });
                      };
                      if (max) {
                        LV* mxA = entryAlloca(vf);
                        LV* bestA = entryAlloca(vi32);
                        B.CreateStore(vcf(-std::numeric_limits<double>::infinity()), mxA);
                        B.CreateStore(ConstantInt::get(vi32, -1), bestA);
                        rows([&](int64_t i, LV* rowBase) {
                          LV* span = loadSpan(xb, rowBase, b);
                          for (int64_t j = 0; j < w.kw; ++j) {
                            auto [in, anyIn] = lanesOf(j);
                            if (!anyIn) continue;
                            LV* v = tap(span, j);
                            LV* mx = B.CreateLoad(vf, mxA);
                            LV* take = B.CreateAnd(bools(in), B.CreateOr(B.CreateFCmpOGT(v, mx),
                                                                         B.CreateFCmpUNO(v, v)));
                            B.CreateStore(B.CreateSelect(take, v, mx), mxA);
                            if (grad) {
                              LV* t = ConstantInt::get(vi32, i * w.kw + j);
                              LV* best = B.CreateLoad(vi32, bestA);
                              LV* first = B.CreateAnd(
                                  bools(in), B.CreateICmpEQ(best, ConstantInt::get(vi32, -1)));
                              best = B.CreateSelect(B.CreateOr(first, take), t, best);
                              B.CreateStore(best, bestA);
                            }
                          }
                        });
                        if (!grad) {
                          storeVec(B.CreateLoad(vf, mxA), out, yk, llvm::Align(4), lanes);
                          continue;
                        }
                        LV* dy = poolDy(k, yb, n, yk, lanes);
                        if (reluMasked(k)) // relu_grad: dy where the max (x at the argmax) is > 0
                          dy = B.CreateSelect(B.CreateFCmpOGT(B.CreateLoad(vf, mxA), vcf(0)), dy,
                                              vcf(0));
                        LV* best = B.CreateLoad(vi32, bestA);
                        scatter([&](int64_t t) {
                          return B.CreateSelect(B.CreateICmpEQ(best, ConstantInt::get(vi32, t)), dy,
                                                vcf(0));
                        });
                        continue;
                      }
                      // avg: the divisor per lane, rows at run time, columns constant
                      LV* h1 = smin(add(h0, c64(w.kh)), c64(H + w.pb));
                      LV* rowPool = B.CreateSub(h1, h0);
                      LV* rh0 = smax(h0, c64(0));
                      LV* rh1 = smin(h1, c64(H));
                      LV* rowIn = B.CreateSub(rh1, rh0);
                      std::vector<Constant*> colDiv;
                      std::vector<bool> colEmpty(static_cast<size_t>(W));
                      for (int64_t l = 0; l < W; ++l) {
                        const int64_t w0 = (s0 + l) * w.sw - w.pl,
                                      w1 = std::min(w0 + w.kw, Wd + w.pr);
                        const int64_t in = std::min(w1, Wd) - std::max<int64_t>(w0, 0);
                        colEmpty[size_t(l)] = l < lanes && in <= 0;
                        colDiv.push_back(ConstantInt::get(i64, l >= lanes            ? 1
                                                               : w.count_include_pad ? w1 - w0
                                                                                     : in));
                      }
                      LV* div = B.CreateSIToFP(
                          B.CreateMul(B.CreateVectorSplat(W, w.count_include_pad ? rowPool : rowIn),
                                      llvm::ConstantVector::get(colDiv)),
                          vf);
                      if (grad) {
                        LV* g = B.CreateFDiv(loadVec(yb, yk, llvm::Align(4), lanes), div);
                        scatter([&](int64_t) { return g; });
                        continue;
                      }
                      LV* accA = entryAlloca(vf);
                      B.CreateStore(vcf(0), accA);
                      rows([&](int64_t, LV* rowBase) {
                        LV* span = loadSpan(xb, rowBase, b);
                        for (int64_t j = 0; j < w.kw; ++j) {
                          auto [in, anyIn] = lanesOf(j);
                          if (!anyIn) continue;
                          LV* acc = B.CreateLoad(vf, accA);
                          B.CreateStore(
                              B.CreateSelect(bools(in), B.CreateFAdd(acc, tap(span, j)), acc),
                              accA);
                        }
                      });
                      // a window wholly in the padding averages nothing: 0
                      LV* empty = B.CreateOr(B.CreateVectorSplat(W, B.CreateICmpSGE(rh0, rh1)),
                                             bools(colEmpty));
                      LV* avg = B.CreateFDiv(B.CreateLoad(vf, accA), div);
                      storeVec(B.CreateSelect(empty, vcf(0), avg), out, yk, llvm::Align(4), lanes);
                    }
                  },
                  "oy");
            },
            "c");
      },
      /*zero=*/!tiles);
  return true;
}

} // namespace descent::emit_detail
