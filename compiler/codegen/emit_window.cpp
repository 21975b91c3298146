// LLVM IR emission of the window kernels (emitter.h): conv2d and its input
// and weight gradients as register-blocked direct convolutions (stride 1
// along the width; loops over the tap rows, input channels and interior row
// vectors, the tap columns unrolled), the scalar loop nests of the first
// lowering for the other strides, and channel_sum. Pooling is in
// emit_pool.cpp.
#include "compiler/codegen/emitter.h"
#include "compiler/ir/window_attrs.h"
#include "compiler/support/window2d.h"

#include <algorithm>
#include <climits>
#include <utility>

namespace descent::emit_detail {

namespace {

/// The first run [lo, hi) of items 0..count-1 that satisfy `inside` (empty
/// when none does): the interior of a row, emitted as a loop without masks.
template <class Pred> std::pair<int64_t, int64_t> firstRun(int64_t count, Pred inside) {
  int64_t lo = 0;
  while (lo < count && !inside(lo))
    ++lo;
  int64_t hi = lo;
  while (hi < count && inside(hi))
    ++hi;
  return {lo, hi};
}

/// A register block: `ob` output channels x `nv` vectors (or taps).
struct ConvBlock {
  int ob = 1, nv = 1;
};

/// The block with the fewest issue slots over a [outs, vecs] plane: per tap
/// a block costs max(ob·nv FMAs, ob broadcasts + nv loads) (two FMA and two
/// load ports), plus one slot of loop overhead, with the partial blocks at
/// the edges counted as they are (so 6 channels pick a block of 6, not 4 + 2);
/// the accumulators, the nv loaded vectors and one broadcast must fit in
/// `regs` vector registers.
ConvBlock pickBlock(int64_t outs, int64_t vecs, int regs, int max_nv) {
  ConvBlock best;
  int64_t best_cost = INT64_MAX;
  for (int nv = 1; nv <= std::min<int64_t>(vecs, max_nv); ++nv)
    for (int ob = 1; ob <= std::min<int64_t>(outs, 8); ++ob) {
      if (ob * nv + nv + 1 > regs) continue;
      auto c = [](int64_t a, int64_t b) { return std::max(a * b, a + b) + 1; };
      const int64_t fo = outs / ob, ro = outs % ob, fs = vecs / nv, rs = vecs % nv;
      int64_t cost = fo * fs * c(ob, nv) + (ro ? fs * c(ro, nv) : 0) + (rs ? fo * c(ob, rs) : 0) +
                     (ro && rs ? c(ro, rs) : 0);
      if (cost < best_cost) best_cost = cost, best = {ob, nv};
    }
  return best;
}

} // namespace

void Emitter::windowOut(const Kernel& k, LV* val, LV* row, LV* col, int64_t valid) {
  const Value* res = k.ops[0]->result;
  if (k.ops.size() > 1 || k.sink) {
    epilogue(k, {{res, val}}, ElemCtx{row, col, valid, false}, 1);
    return;
  }
  const int64_t ld = matrixShape(res->type).second;
  storeVec(val, bufBase(res), B.CreateAdd(B.CreateMul(row, c64(ld)), col), llvm::Align(4), valid);
}

std::pair<LV*, LV*> Emitter::convTapRow(bool fwd, const Window2d& w, LV* r, LV* i, int64_t Hi) {
  auto mul = [&](LV* a, int64_t c) { return B.CreateMul(a, c64(c), "", false, true); };
  auto add = [&](LV* a, LV* b) { return B.CreateAdd(a, b, "", false, true); };
  if (fwd) {
    LV* row = add(B.CreateSub(mul(r, w.sh), c64(w.pt)), mul(i, w.dh));
    return {row, B.CreateAnd(B.CreateICmpSGE(row, c64(0)), B.CreateICmpSLT(row, c64(Hi)))};
  }
  // dy row (r + pt - i·dh)/sh when that divides
  LV* t = B.CreateSub(add(r, c64(w.pt)), mul(i, w.dh));
  LV* q = B.CreateSDiv(t, c64(w.sh));
  LV* ok = B.CreateAnd(B.CreateICmpSGE(t, c64(0)), B.CreateICmpSLT(q, c64(Hi)));
  if (w.sh > 1) ok = B.CreateAnd(ok, B.CreateICmpEQ(B.CreateSRem(t, c64(w.sh)), c64(0)));
  return {q, ok};
}

void Emitter::emitConvGather(const Kernel& k) {
  if (emitConvChannels(k) || emitConvInputGradFlat(k)) return;
  const Op* op = k.ops[0];
  const bool fwd = op->kind == OpKind::Conv2d;
  // out [B,P,Ho,Wo] = Σ_q,i,j w · in [B,Q,Hi,Wi]: the forward (P = out
  // channels, in = x) and the input gradient (P = in channels, in = dy,
  // the taps mirrored: a stride-1 "full" correlation with the same weights)
  const Value* inV = op->operands[0];
  const Value* wv = op->operands[1];
  const Value* res = op->result;
  const Shape &is = inV->type.shape, &ws = wv->type.shape, &os = res->type.shape;
  const Window2d w = convWindow(op->attrs, ws[2], ws[3]);
  const int64_t P = os[1], Ho = os[2], Wo = os[3], Q = is[1], Hi = is[2], Wi = is[3];
  const int64_t G = w.groups, pg = P / G, qg = Q / G, taps = w.kh * w.kw;
  // input column of output column s at tap j: s + b0 + j·bj
  const int64_t b0 = fwd ? -w.pl : w.pl, bj = fwd ? w.dw : -w.dw;
  LV *ib = bufBase(inV), *wb = bufBase(wv);
  LV* bias = fwd && op->operands.size() == 3 ? bufBase(op->operands[2]) : nullptr;
  const int regs = W >= 16 ? 32 : 16;
  const int64_t vecs = (Wo + W - 1) / W;
  const ConvBlock blk = pickBlock(pg, vecs, regs, W >= 16 ? 4 : 3);
  auto mul = [&](LV* a, int64_t c) { return B.CreateMul(a, c64(c), "", false, true); };
  auto add = [&](LV* a, LV* b) { return B.CreateAdd(a, b, "", false, true); };
  // for (i = 0; i < count; ++i) body(i), without a loop when count is 1
  auto loop = [&](int64_t count, const std::function<void(LV*)>& body, const char* name) {
    if (count == 1)
      body(c64(0));
    else
      forLoop(c64(0), c64(count), 1, body, name);
  };

  // Whether vector v of an output row reads no padding and no lane past Wo
  // at any tap column j: its loads need no mask. Such vectors form one run.
  auto interior = [&](int64_t v) {
    const int64_t s = v * W, lo = s + b0 + std::min<int64_t>(0, (w.kw - 1) * bj),
                  hi = s + W - 1 + b0 + std::max<int64_t>(0, (w.kw - 1) * bj);
    return s + W <= Wo && lo >= 0 && hi < Wi;
  };

  // One block: channels [p0, p0+ob) of group g, output row r, vectors
  // [v0, v0+nv) of the row. `vc` is v0 when it is a compile-time constant
  // (the masks then come from it); -1 for a block of interior vectors at a
  // run-time v0. The taps are a loop over the tap rows i, the input channels
  // q inside it and the tap columns j unrolled: each accumulator sums i, q,
  // j in that order, as the fully unrolled code did, so the bits are the
  // same, and the code is one tap row's worth instead of kh of them.
  auto block = [&](LV* n, LV* g, LV* p0, int ob, LV* r, LV* v0, int64_t vc, int nv) {
    std::vector<LV*> acc(size_t(ob * nv));
    for (LV*& a : acc) {
      a = entryAlloca(vf);
      B.CreateStore(vcf(0), a);
    }
    LV* s0 = mul(v0, W); // first output column of the block
    auto tapRow = [&](LV* i) {
      // the input row of output row r at tap row i, and whether it exists
      auto [row, ok] = convTapRow(fwd, w, r, i, Hi);
      ifThen(ok, [&] {
        loop(
            qg,
            [&](LV* q) {
              LV* qa = add(mul(g, qg), q); // absolute input channel
              LV* plane = add(mul(add(mul(add(mul(n, Q), qa), Hi), row), Wi), s0);
              // weight index of (p, q) at tap (i, 0)
              std::vector<LV*> wrow(static_cast<size_t>(ob));
              for (int b = 0; b < ob; ++b) {
                LV* p = add(p0, c64(b));
                LV* base = fwd ? mul(add(mul(p, qg), q), taps)
                               : mul(add(mul(qa, pg), B.CreateSub(p, mul(g, pg))), taps);
                wrow[size_t(b)] = add(base, mul(i, w.kw));
              }
              for (int64_t j = 0; j < w.kw; ++j) {
                std::vector<LV*> xs(size_t(nv), nullptr);
                for (int v = 0; v < nv; ++v) {
                  // column c0 + l of the input row feeds lane l of the vector
                  const int64_t c0 = v * W + b0 + j * bj;
                  LV* pp = B.CreateGEP(f32, ib, add(plane, c64(c0)));
                  if (vc < 0) { // interior: every lane valid
                    xs[size_t(v)] = B.CreateAlignedLoad(vf, pp, llvm::Align(4));
                    continue;
                  }
                  const int64_t sv = (vc + v) * W, cv = sv + b0 + j * bj;
                  int64_t valid = 0;
                  std::vector<Constant*> m;
                  for (int l = 0; l < W; ++l) {
                    bool in = sv + l < Wo && cv + l >= 0 && cv + l < Wi;
                    m.push_back(ConstantInt::get(i1, in));
                    valid += in;
                  }
                  if (!valid) continue; // every lane in the padding
                  xs[size_t(v)] = valid == W ? (LV*)B.CreateAlignedLoad(vf, pp, llvm::Align(4))
                                             : B.CreateMaskedLoad(vf, pp, llvm::Align(4),
                                                                  llvm::ConstantVector::get(m),
                                                                  vcf(0));
                }
                for (int b = 0; b < ob; ++b) {
                  LV* wsc = B.CreateLoad(f32, B.CreateInBoundsGEP(f32, wb, add(wrow[size_t(b)], c64(j))));
                  LV* wvec = splat(wsc);
                  for (int v = 0; v < nv; ++v) {
                    if (!xs[size_t(v)]) continue;
                    LV* a = acc[size_t(b * nv + v)];
                    B.CreateStore(fma(xs[size_t(v)], wvec, B.CreateLoad(vf, a)), a);
                  }
                }
              }
            },
            "q");
      });
    };
    loop(w.kh, tapRow, "tap_i");
    for (int b = 0; b < ob; ++b) {
      LV* p = add(p0, c64(b));
      for (int v = 0; v < nv; ++v) {
        const int64_t valid = vc < 0 ? W : std::min<int64_t>(W, Wo - (vc + v) * W);
        LV* val = B.CreateLoad(vf, acc[size_t(b * nv + v)]);
        if (bias)
          val = B.CreateFAdd(val, splat(B.CreateLoad(f32, B.CreateInBoundsGEP(f32, bias, p))));
        windowOut(k, val, n, add(add(mul(add(mul(p, Ho), r), Wo), s0), c64(v * W)), valid);
      }
    }
  };
  // The row's vectors in blocks of blk.nv, the last block narrower; the run
  // of blocks whose vectors are all interior is one loop over v0 (wide
  // images), the others are emitted with their masks.
  const int64_t nblocks = (vecs + blk.nv - 1) / blk.nv;
  auto blockWidth = [&](int64_t bi) { return int(std::min<int64_t>(blk.nv, vecs - bi * blk.nv)); };
  auto interiorBlock = [&](int64_t bi) {
    if (blockWidth(bi) != blk.nv) return false;
    for (int64_t v = bi * blk.nv; v < (bi + 1) * blk.nv; ++v)
      if (!interior(v)) return false;
    return true;
  };
  const auto [ilo, ihi] = firstRun(nblocks, interiorBlock);
  auto row = [&](LV* n, LV* g, LV* p0, int ob, LV* r) {
    for (int64_t bi = 0; bi < nblocks; ++bi) {
      if (bi == ilo && ihi - ilo > 1) {
        forLoop(
            c64(ilo), c64(ihi), 1,
            [&](LV* bv) { block(n, g, p0, ob, r, mul(bv, blk.nv), -1, blk.nv); }, "vb");
        bi = ihi - 1;
        continue;
      }
      const int64_t v0 = bi * blk.nv;
      block(n, g, p0, ob, r, c64(v0), v0, blockWidth(bi));
    }
  };
  LV* rows = rowsOf(kg_->batched.count(res) > 0, os[0]);
  auto [s0, s1] = split(rows);
  const int64_t full = pg / blk.ob, tail = pg % blk.ob;
  forLoop(
      s0, s1, 1,
      [&](LV* n) {
        loop(
            G,
            [&](LV* g) {
              if (full)
                forLoop(
                    c64(0), c64(full), 1,
                    [&](LV* pb) {
                      LV* p0 = add(mul(g, pg), mul(pb, blk.ob));
                      forLoop(
                          c64(0), c64(Ho), 1, [&](LV* r) { row(n, g, p0, blk.ob, r); }, "r");
                    },
                    "pb");
              if (tail) {
                LV* p0 = add(mul(g, pg), c64(full * blk.ob));
                forLoop(
                    c64(0), c64(Ho), 1, [&](LV* r) { row(n, g, p0, int(tail), r); }, "r");
              }
            },
            "g");
      },
      "n");
}

void Emitter::wgradOut(const Kernel& k, const WgradSlice& s, LV* sum, LV* row, LV* col) {
  if (!s.partials) return windowOut(k, splat(sum), row, col, 1);
  const Value* res = anchorOp(k)->result;
  const int64_t ld = matrixShape(res->type).second;
  B.CreateStore(sum,
                B.CreateInBoundsGEP(f32, s.partials, B.CreateAdd(B.CreateMul(row, c64(ld)), col)));
}

void Emitter::emitConvWeightGrad(const Kernel& k) {
  const Op* op = anchorOp(k);
  const Value* xv = op->operands[0];
  LV* rows = rowsOf(kg_->batched.count(xv) > 0, xv->type.shape[0]);
  auto scheme = [&](const WgradSlice& s) {
    if (!emitConvWeightGradChannels(k, s) && !emitConvWeightGradFlat(k, s))
      convWeightGradRows(k, s);
  };
  if (!k.partials_of) return scheme({c64(0), rows});
  // Sliced: this task's chunks of samples, each summed over its samples in
  // order by every work item into its row of the partials (the ColumnSum
  // kernel after this one adds the rows in chunk order).
  auto [q0, q1] = split(B.CreateSDiv(B.CreateAdd(rows, c64(k.chunk_rows - 1)), c64(k.chunk_rows)));
  LV* base = bufBase(k.partials);
  forLoop(
      q0, q1, 1,
      [&](LV* q) {
        LV* n0 = B.CreateMul(q, c64(k.chunk_rows));
        LV* n1 = B.CreateAdd(n0, c64(k.chunk_rows));
        n1 = B.CreateSelect(B.CreateICmpSLT(n1, rows), n1, rows);
        scheme({n0, n1, B.CreateInBoundsGEP(f32, base, B.CreateMul(q, c64(k.cols)))});
      },
      "chunk");
}

void Emitter::convWeightGradRows(const Kernel& k, const WgradSlice& s) {
  const Op* op = anchorOp(k);
  // dw[o,c,i,j] = Σ_n,oy,ox dy[n,o,oy,ox] · x[n,c, oy·sh - pt + i·dh, ox - pl + j·dw]
  const Value* xv = op->operands[0];
  const Value* yv = op->operands[1];
  const Value* res = op->result;
  const Shape &xs = xv->type.shape, &ws = res->type.shape, &ys = yv->type.shape;
  const Window2d w = convWindow(op->attrs, ws[2], ws[3]);
  const int64_t C = xs[1], H = xs[2], Wd = xs[3], O = ys[1], Ho = ys[2], Wo = ys[3];
  const int64_t G = w.groups, cg = C / G, og = O / G;
  LV *xb = bufBase(xv), *yb = bufBase(yv);
  const int regs = W >= 16 ? 32 : 16;
  const int64_t vecs = (Wo + W - 1) / W;
  // taps per block: a whole kernel row if it fits with one output channel
  const int tb = int(std::min<int64_t>(w.kw, (regs - 2) / 2));
  const int ob = int(std::max<int64_t>(1, std::min<int64_t>({og, 8, (regs - 1 - tb) / tb})));
  auto mul = [&](LV* a, int64_t c) { return B.CreateMul(a, c64(c), "", false, true); };
  auto add = [&](LV* a, LV* b) { return B.CreateAdd(a, b, "", false, true); };
  // The run [ilo, ihi) of output-row vectors that read no padding and no
  // lane past Wo at any tap column: a loop without masks on wide rows.
  auto interior = [&](int64_t v) {
    const int64_t s = v * W;
    return s + W <= Wo && s - w.pl >= 0 && s + W - 1 - w.pl + (w.kw - 1) * w.dw < Wd;
  };
  const auto [ilo, ihi] = firstRun(vecs, interior);

  // Work item: channels [o0, o0+nb) x input channel c x tap row i x all j.
  auto item = [&](LV* g, LV* o0, int nb, LV* c, LV* i) {
    LV* ca = add(mul(g, cg), c);
    for (int64_t j0 = 0; j0 < w.kw; j0 += tb) {
      const int nt = int(std::min<int64_t>(tb, w.kw - j0));
      std::vector<LV*> acc(size_t(nb * nt));
      for (LV*& a : acc) {
        a = entryAlloca(vf);
        B.CreateStore(vcf(0), a);
      }
      forLoop(s.n0, s.n1, 1, [&](LV* n) {
        forLoop(c64(0), c64(Ho), 1, [&](LV* oy) {
          LV* iy = add(B.CreateSub(mul(oy, w.sh), c64(w.pt)), mul(i, w.dh));
          ifThen(B.CreateAnd(B.CreateICmpSGE(iy, c64(0)), B.CreateICmpSLT(iy, c64(H))), [&] {
            LV* xrow = mul(add(mul(add(mul(n, C), ca), H), iy), Wd);
            std::vector<LV*> dyrow(static_cast<size_t>(nb));
            for (int b = 0; b < nb; ++b)
              dyrow[size_t(b)] = mul(add(mul(add(mul(n, O), add(o0, c64(b))), Ho), oy), Wo);
            // One vector of the output row at column s0: `vc` its index when
            // a compile-time constant (the masks come from it), -1 inside the
            // loop over the interior vectors (no mask).
            auto vec = [&](LV* s0, int64_t vc) {
              const int64_t dvalid = vc < 0 ? W : std::min<int64_t>(W, Wo - vc * W);
              std::vector<LV*> xvals(size_t(nt), nullptr);
              for (int t = 0; t < nt; ++t) {
                const int64_t dc = -w.pl + (j0 + t) * w.dw; // input column - output column
                LV* pp = B.CreateGEP(f32, xb, add(add(xrow, s0), c64(dc)));
                if (vc < 0) {
                  xvals[size_t(t)] = B.CreateAlignedLoad(vf, pp, llvm::Align(4));
                  continue;
                }
                const int64_t sv = vc * W, c0 = sv + dc;
                int64_t valid = 0;
                std::vector<Constant*> m;
                for (int l = 0; l < W; ++l) {
                  bool in = sv + l < Wo && c0 + l >= 0 && c0 + l < Wd;
                  m.push_back(ConstantInt::get(i1, in));
                  valid += in;
                }
                if (!valid) continue;
                xvals[size_t(t)] =
                    valid == W ? (LV*)B.CreateAlignedLoad(vf, pp, llvm::Align(4))
                               : B.CreateMaskedLoad(vf, pp, llvm::Align(4),
                                                    llvm::ConstantVector::get(m), vcf(0));
              }
              for (int b = 0; b < nb; ++b) {
                LV* dy = loadVec(yb, add(dyrow[size_t(b)], s0), llvm::Align(4), dvalid);
                for (int t = 0; t < nt; ++t) {
                  if (!xvals[size_t(t)]) continue;
                  LV* a = acc[size_t(b * nt + t)];
                  B.CreateStore(fma(dy, xvals[size_t(t)], B.CreateLoad(vf, a)), a);
                }
              }
            };
            // The row's vectors in order: the masked ones before the
            // interior run, the run (a loop when longer than one), the rest.
            for (int64_t v = 0; v < vecs; ++v) {
              if (v == ilo && ihi - ilo > 1) {
                forLoop(
                    c64(ilo), c64(ihi), 1, [&](LV* vv) { vec(mul(vv, W), -1); }, "v");
                v = ihi - 1;
                continue;
              }
              vec(c64(v * W), v);
            }
          });
        }, "oy");
      }, "n");
      // Each weight's lane sum and its fused update (the epilogue) in a loop
      // over the block's nb·nt accumulators, parked in a stack array: one
      // copy of the update's code instead of nb·nt; every weight gets the
      // same operations, and the weights are independent of each other.
      auto* arrTy = llvm::ArrayType::get(vf, uint64_t(nb * nt));
      LV* park = entryAlloca(arrTy);
      for (int a = 0; a < nb * nt; ++a)
        B.CreateStore(B.CreateLoad(vf, acc[size_t(a)]),
                      B.CreateConstInBoundsGEP2_64(arrTy, park, 0, uint64_t(a)));
      forLoop(
          c64(0), c64(nb * nt), 1,
          [&](LV* a) {
            LV* sum = hsum(B.CreateLoad(vf, B.CreateInBoundsGEP(arrTy, park, {c64(0), a})));
            LV *b = B.CreateSDiv(a, c64(nt)), *t = B.CreateSRem(a, c64(nt));
            // dw[o, c, i, j] as element (o, (c·kh + i)·kw + j) of the [O, cg·kh·kw] view
            LV* col = add(add(mul(add(mul(c, w.kh), i), w.kw), c64(j0)), t);
            wgradOut(k, s, sum, add(o0, b), col);
          },
          "wt");
    }
  };
  // Items in a fixed list, split over the tasks: full blocks, then the tail
  // block of each group; each weight is summed by one item in one order.
  const int64_t full = og / ob, tail = og % ob;
  auto items = [&](int64_t nblk, int nb) {
    auto [t0, t1] = wgradItems(s, c64(G * nblk * cg * w.kh));
    forLoop(t0, t1, 1, [&](LV* t) {
      LV* i = B.CreateSRem(t, c64(w.kh));
      LV* r = B.CreateSDiv(t, c64(w.kh));
      LV* c = B.CreateSRem(r, c64(cg));
      r = B.CreateSDiv(r, c64(cg));
      LV* bk = B.CreateSRem(r, c64(nblk));
      LV* g = B.CreateSDiv(r, c64(nblk));
      LV* o0 = add(mul(g, og), nb == ob ? mul(bk, ob) : c64(full * ob));
      item(g, o0, nb, c, i);
    }, "item");
  };
  if (full) items(full, ob);
  if (tail) items(1, int(tail));
}

void Emitter::windowTaps(const Window2d& w, int64_t H, int64_t Wd, LV* oy, LV* ox,
                         const std::function<void(LV*, LV*, LV*, LV*)>& f) {
  auto mul = [&](LV* a, int64_t c) { return B.CreateMul(a, c64(c), "", false, true); };
  auto add = [&](LV* a, LV* b) { return B.CreateAdd(a, b, "", false, true); };
  auto inRange = [&](LV* v, int64_t hi) {
    return B.CreateAnd(B.CreateICmpSGE(v, c64(0)), B.CreateICmpSLT(v, c64(hi)));
  };
  forLoop(
      c64(0), c64(w.kh), 1,
      [&](LV* i) {
        LV* iy = add(B.CreateSub(mul(oy, w.sh), c64(w.pt)), mul(i, w.dh));
        ifThen(inRange(iy, H), [&] {
          forLoop(
              c64(0), c64(w.kw), 1,
              [&](LV* j) {
                LV* ix = add(B.CreateSub(mul(ox, w.sw), c64(w.pl)), mul(j, w.dw));
                ifThen(inRange(ix, Wd), [&] { f(iy, ix, i, j); });
              },
              "j");
        });
      },
      "i");
}

void Emitter::emitWindow(const Kernel& k) {
  if (k.partials_of) return emitConvWeightGrad(k); // (fuse.cpp slices stride-1 widths only)
  if (emitBatchNorm(k) || emitPool(k)) return;
  const Op* op = k.ops[0];
  const Value* res = op->result;
  if (op->kind == OpKind::Conv2d || op->kind == OpKind::Conv2dInputGrad ||
      op->kind == OpKind::Conv2dWeightGrad) {
    const Value* wv = op->kind == OpKind::Conv2dWeightGrad ? res : op->operands[1];
    if (convWindow(op->attrs, wv->type.shape[2], wv->type.shape[3]).sw == 1) {
      if (op->kind == OpKind::Conv2dWeightGrad) emitConvWeightGrad(k);
      else emitConvGather(k);
      return;
    }
  }
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
  // Samples this task computes: a per-sample kernel splits the batch over
  // the tasks (each sample's values come from the same code on any split).
  auto samples = [&](const Value* batchOf, const std::function<void(LV*)>& body) {
    LV* rows = rowsOf(kg_->batched.count(batchOf) > 0, batchOf->type.shape[0]);
    auto [s0, s1] = split(rows);
    if (op->kind == OpKind::Conv2dInputGrad) {
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

  switch (op->kind) {
  case OpKind::Conv2d:
  case OpKind::Conv2dInputGrad:
  case OpKind::Conv2dWeightGrad: {
    const bool fwd = op->kind == OpKind::Conv2d, dx = op->kind == OpKind::Conv2dInputGrad;
    // x [B,C,H,W], w [O,cg,kh,kw], y [B,O,Ho,Wo]
    const Value* xv = fwd ? op->operands[0] : dx ? res : op->operands[0];
    const Value* wv = fwd ? op->operands[1] : dx ? op->operands[1] : res;
    const Value* yv = fwd ? res : op->operands[dx ? 0 : 1];
    const Shape &xs = xv->type.shape, &ws = wv->type.shape, &ys = yv->type.shape;
    const Window2d w = convWindow(op->attrs, ws[2], ws[3]);
    const int64_t C = xs[1], H = xs[2], Wd = xs[3], O = ys[1], Ho = ys[2], Wo = ys[3];
    const int64_t cg = C / w.groups, og = O / w.groups;
    // a result whose only reader is an update fused here (dW) or an epilogue op has no buffer
    LV* xb = bufBase(xv);
    LV* wb = dx || fwd ? bufBase(wv) : nullptr;
    LV* yb = fwd ? nullptr : bufBase(yv);
    LV* bias = fwd && op->operands.size() == 3 ? bufBase(op->operands[2]) : nullptr;
    LV* acc = entryAlloca(f32);
    if (!fwd && !dx) {
      // dw[o,c,i,j] = Σ_{n,oy,ox} dy·x: a reduction over the batch, in order, on task 0
      ifThen(B.CreateICmpEQ(taskArg, c32(0)), [&] {
        LV* rows = rowsOf(kg_->batched.count(xv) > 0, xs[0]);
        range(
            O,
            [&](LV* o) {
              LV* c0 = mul(B.CreateSDiv(o, c64(og)), cg);
              range(
                  cg,
                  [&](LV* c) {
                    range(
                        w.kh,
                        [&](LV* i) {
                          range(
                              w.kw,
                              [&](LV* j) {
                                B.CreateStore(cf(0.0, f32), acc);
                                forLoop(
                                    c64(0), rows, 1,
                                    [&](LV* n) {
                                      range(
                                          Ho,
                                          [&](LV* oy) {
                                            LV* iy = add(B.CreateSub(mul(oy, w.sh), c64(w.pt)),
                                                         mul(i, w.dh));
                                            ifThen(inRange(iy, H), [&] {
                                              range(
                                                  Wo,
                                                  [&](LV* ox) {
                                                    LV* ix =
                                                        add(B.CreateSub(mul(ox, w.sw), c64(w.pl)),
                                                            mul(j, w.dw));
                                                    ifThen(inRange(ix, Wd), [&] {
                                                      LV* g =
                                                          load(yb, idx4(n, O, o, Ho, oy, Wo, ox));
                                                      LV* xval = load(xb, idx4(n, C, add(c0, c), H,
                                                                               iy, Wd, ix));
                                                      B.CreateStore(
                                                          B.CreateFAdd(B.CreateLoad(f32, acc),
                                                                       B.CreateFMul(g, xval)),
                                                          acc);
                                                    });
                                                  },
                                                  "ox");
                                            });
                                          },
                                          "oy");
                                    },
                                    "n");
                                windowOut(k, splat(B.CreateLoad(f32, acc)), o,
                                          add(mul(add(mul(c, w.kh), i), w.kw), j), 1);
                              },
                              "j");
                        },
                        "i");
                  },
                  "c");
            },
            "o");
      });
      break;
    }
    samples(yv, [&](LV* n) {
      range(
          O,
          [&](LV* o) {
            LV* c0 = mul(B.CreateSDiv(o, c64(og)), cg);
            range(
                Ho,
                [&](LV* oy) {
                  range(
                      Wo,
                      [&](LV* ox) {
                        LV* yk = idx4(n, O, o, Ho, oy, Wo, ox);
                        if (fwd) {
                          B.CreateStore(cf(0.0, f32), acc);
                          range(
                              cg,
                              [&](LV* c) {
                                windowTaps(w, H, Wd, oy, ox, [&](LV* iy, LV* ix, LV* i, LV* j) {
                                  LV* xval = load(xb, idx4(n, C, add(c0, c), H, iy, Wd, ix));
                                  LV* wval = load(wb, idx4(o, cg, c, w.kh, i, w.kw, j));
                                  B.CreateStore(B.CreateFAdd(B.CreateLoad(f32, acc),
                                                             B.CreateFMul(xval, wval)),
                                                acc);
                                });
                              },
                              "c");
                          LV* sum = B.CreateLoad(f32, acc);
                          if (bias) sum = B.CreateFAdd(sum, load(bias, o));
                          windowOut(k, splat(sum), n, add(mul(add(mul(o, Ho), oy), Wo), ox), 1);
                        } else {
                          LV* g = load(yb, yk);
                          range(
                              cg,
                              [&](LV* c) {
                                windowTaps(w, H, Wd, oy, ox, [&](LV* iy, LV* ix, LV* i, LV* j) {
                                  LV* wval = load(wb, idx4(o, cg, c, w.kh, i, w.kw, j));
                                  addTo(out, idx4(n, C, add(c0, c), H, iy, Wd, ix),
                                        B.CreateFMul(g, wval));
                                });
                              },
                              "c");
                        }
                      },
                      "ox");
                },
                "oy");
          },
          "o");
    });
    break;
  }
  case OpKind::ChannelSum: {
    // db[c] = Σ_n Σ_s x[n,c,s] in the interpreter's order: per sample, 16
    // partial sums over the plane (position s into partial s mod 16: the
    // lanes of 16 / W vectors, one vector load per 16 positions), folded
    // pairwise (partial l += partial l + h, h = 8, 4, 2, 1), and the
    // samples' sums added in batch order. Planes are independent, so
    // kChans channels are summed side by side (their chains overlap); the
    // tasks split the channels, each summed by one task: bitwise the same
    // for any thread count.
    constexpr int64_t kChans = 4;
    const Value* v = op->operands[0];
    const int64_t C = v->type.shape[1], S = v->type.numel() / (v->type.shape[0] * C);
    const int V = std::max(1, 16 / W);            // vectors per 16 partial sums
    const int64_t blocks = S / 16, tail = S % 16; // whole blocks of 16 positions
    LV* xb = bufBase(v);
    LV* rows = rowsOf(kg_->batched.count(v) > 0, v->type.shape[0]);
    // The 16 partial sums in q (lane l of vector l / W) folded to one float.
    auto fold = [&](std::vector<LV*> q) {
      for (int h = 8; h >= 1; h /= 2) {
        if (h >= W) {
          for (int i = 0; i < h / W; ++i)
            q[size_t(i)] = B.CreateFAdd(q[size_t(i)], q[size_t(i + h / W)]);
          continue;
        }
        std::vector<int> idx(static_cast<size_t>(W));
        for (int l = 0; l < W; ++l)
          idx[size_t(l)] = l < h ? l + h : l;
        q[0] = B.CreateFAdd(q[0], B.CreateShuffleVector(q[0], q[0], idx));
      }
      return B.CreateExtractElement(q[0], uint64_t(0));
    };
    // Channels c0 .. c0+G-1 (G <= kChans, a constant): their sums.
    auto group = [&](LV* c0, int64_t G) {
      std::vector<LV*> zero(size_t(G), cf(0.0, f32));
      std::vector<LV*> tot = phiLoop(
          c64(0), rows, 1, zero,
          [&](LV* n, const std::vector<LV*>& acc) {
            LV* base = mul(add(mul(n, C), c0), S); // x[n, c0, 0]
            std::vector<LV*> q(size_t(G * V), vcf(0));
            auto addBlock = [&](LV* s0, int64_t len, std::vector<LV*> a) {
              for (int64_t g = 0; g < G; ++g)
                for (int i = 0; i < V; ++i) {
                  const int64_t valid = std::min<int64_t>(W, len - int64_t(i) * W);
                  if (valid <= 0) continue;
                  LV* at = add(add(base, c64(g * S + i * W)), s0);
                  LV*& r = a[size_t(g * V + i)];
                  r = B.CreateFAdd(r, loadVec(xb, at, llvm::Align(4), valid));
                }
              return a;
            };
            if (blocks > 0)
              q = phiLoop(
                  c64(0), c64(blocks * 16), 16, q,
                  [&](LV* s0, const std::vector<LV*>& a) { return addBlock(s0, 16, a); }, "s");
            if (tail) q = addBlock(c64(blocks * 16), tail, q);
            std::vector<LV*> next(acc);
            for (int64_t g = 0; g < G; ++g)
              next[size_t(g)] =
                  B.CreateFAdd(acc[size_t(g)],
                               fold(std::vector<LV*>(q.begin() + g * V, q.begin() + (g + 1) * V)));
            return next;
          },
          "n");
      for (int64_t g = 0; g < G; ++g)
        windowOut(k, splat(tot[size_t(g)]), c64(0), add(c0, c64(g)), 1);
    };
    auto [cb, ce] = split(c64(C));
    LV* nfull = B.CreateSDiv(B.CreateSub(ce, cb), c64(kChans));
    forLoop(
        c64(0), nfull, 1, [&](LV* i) { group(add(cb, mul(i, kChans)), kChans); }, "c");
    forLoop(
        add(cb, mul(nfull, kChans)), ce, 1, [&](LV* c) { group(c, 1); }, "c1");
    break;
  }
  default:
    break;
  }
}

} // namespace descent::emit_detail
