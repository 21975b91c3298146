// LLVM IR emission of conv2d and conv2d_input_grad (stride 1 along the
// width, one group) with vectors along the output channels: the scheme for
// shapes whose output rows fill the lanes badly (rows of 10, 24, 26 floats in
// 16-lane vectors) while the channel count fills them well (16, 32, 64).
// emitConvGather (emit_window.cpp) calls it first and keeps its row-vector
// kernel for the other shapes.
#include "compiler/codegen/emitter.h"
#include "compiler/ir/window_attrs.h"
#include "compiler/support/window2d.h"

#include <algorithm>
#include <climits>

namespace descent::emit_detail {

bool Emitter::emitConvChannels(const Kernel& k) {
  const Op* op = k.ops[0];
  const bool fwd = op->kind == OpKind::Conv2d;
  const Value* inV = op->operands[0];
  const Value* wv = op->operands[1];
  const Value* res = op->result;
  const Shape &is = inV->type.shape, &ws = wv->type.shape, &os = res->type.shape;
  const Window2d w = convWindow(op->attrs, ws[2], ws[3]);
  const int64_t P = os[1], Ho = os[2], Wo = os[3], Q = is[1], Hi = is[2], Wi = is[3];
  const int64_t taps = w.kh * w.kw;
  // (few input channels: the per-row transposes would cost as much as the taps)
  if (w.groups != 1 || w.sw != 1 || Q < 4 || 2 * w.kw + 2 > (W >= 16 ? 32 : 16)) return false;
  // channels padded to whole vectors; the output row's vectors
  const int64_t nvP = (P + W - 1) / W, Pp = nvP * W, vecs = (Wo + W - 1) / W, Wop = vecs * W;
  // Lanes filled: P of Pp here, Wo of vecs·W in the row-vector kernel.
  if (P * Wop <= Wo * Pp) return false;
  // the transposed weights and the row scratches live on the stack
  if (Q * taps * Pp + 2 * Wop * Pp > (64 << 10)) return false;

  // Block: ob channel vectors x np output positions of a row. Per tap row
  // and channel it costs max(ob·np·kw FMAs, ob·kw weight loads + the
  // np + (kw-1)·dw input columns broadcast once each) slots (two FMA and two
  // load ports) + 1; ob·np accumulators, ob·kw weights and a broadcast must
  // fit in the registers. Ties go to the fewer channel vectors (a smaller
  // slice of the weights to keep in L1).
  const int regs = W >= 16 ? 32 : 16;
  int ob = 1, np = 1;
  {
    int64_t best = INT64_MAX;
    auto c = [&](int64_t a, int64_t b) {
      return std::max(a * b * w.kw, a * w.kw + b + (w.kw - 1) * w.dw) + 1;
    };
    for (int o = 1; o <= nvP; ++o)
      for (int n = 1; n <= std::min<int64_t>(Wo, 32); ++n) {
        if (o * n + o * w.kw + 1 > regs) continue;
        const int64_t fo = nvP / o, ro = nvP % o, fs = Wo / n, rs = Wo % n;
        const int64_t cost = fo * fs * c(o, n) + (ro ? fs * c(ro, n) : 0) +
                             (rs ? fo * c(o, rs) : 0) + (ro && rs ? c(ro, rs) : 0);
        if (cost < best) best = cost, ob = o, np = n;
      }
  }

  // input column of output column s at tap j: s + b0 + j·bj
  const int64_t b0 = fwd ? -w.pl : w.pl, bj = fwd ? w.dw : -w.dw;
  LV *ib = bufBase(inV), *wb = bufBase(wv);
  LV* bias = fwd && op->operands.size() == 3 ? bufBase(op->operands[2]) : nullptr;
  auto mul = [&](LV* a, int64_t c) { return B.CreateMul(a, c64(c), "", false, true); };
  auto add = [&](LV* a, LV* b) { return B.CreateAdd(a, b, "", false, true); };
  const llvm::Align va(size_t(W) * 4);

  // wt[(q·kh + i)·kw + j][p] = the weight of output channel p, reduction
  // channel q, tap (i, j) (fwd: w[p,q,i,j]; input gradient: w[q,p,i,j], its
  // taps mirrored by the input index as in emitConvGather); the channels
  // past P are zero. Each piece transposes the (small) weights itself.
  LV* wt = alignedScratch(Q * taps * Pp);
  if (Pp != P) B.CreateMemSet(wt, llvm::ConstantInt::get(i8, 0), uint64_t(Q * taps * Pp * 4), va);
  // S [Wop][Pp]: a row's accumulators as computed (channels along lanes);
  // T [Pp][Wop]: the same transposed, an NCHW output row per channel.
  LV* S = alignedScratch(Wop * Pp);
  LV* T = alignedScratch(Pp * Wop);
  // (positions past Wo are never written: zero them once so the transpose reads defined data)
  B.CreateMemSet(S, llvm::ConstantInt::get(i8, 0), uint64_t(Wop * Pp * 4), va);

  LV* rows = rowsOf(kg_->batched.count(res) > 0, os[0]);
  auto [n0, n1] = split(rows);
  ifThen(B.CreateICmpSGT(n1, n0), [&] {
    forLoop(
        c64(0), c64(P), 1,
        [&](LV* p) {
          forLoop(
              c64(0), c64(Q * taps), 1,
              [&](LV* t) { // t = (q·kh + i)·kw + j
                LV* src = fwd ? add(mul(p, Q * taps), t)
                              : add(add(mul(B.CreateSDiv(t, c64(taps)), P * taps), mul(p, taps)),
                                    B.CreateSRem(t, c64(taps)));
                B.CreateStore(B.CreateLoad(f32, B.CreateInBoundsGEP(f32, wb, src)),
                              B.CreateInBoundsGEP(f32, wt, add(mul(t, Pp), p)));
              },
              "wt");
        },
        "wp");
  });

  // Whether output positions [s, s+cnt) read no padding at any tap column.
  auto interior = [&](int64_t s, int64_t cnt) {
    const int64_t lo = s + b0 + std::min<int64_t>(0, (w.kw - 1) * bj),
                  hi = s + cnt - 1 + b0 + std::max<int64_t>(0, (w.kw - 1) * bj);
    return s + cnt <= Wo && lo >= 0 && hi < Wi;
  };

  // One block: channel vectors [cv0, cv0+nb), positions [s0, s0+cnt) of
  // output row r of sample n; `sc` is s0 when a compile-time constant (the
  // padded taps are then skipped), -1 inside the loop over interior blocks.
  // Each output sums its taps in the order tap row i, channel q, tap column
  // j, whatever the split.
  auto block = [&](LV* n, LV* r, LV* cv0, int nb, LV* s0, int64_t sc, int cnt) {
    std::vector<LV*> acc(size_t(nb * cnt));
    for (LV*& a : acc) {
      a = entryAlloca(vf);
      B.CreateStore(vcf(0), a);
    }
    auto tapRow = [&](LV* i) {
      auto [row, ok] = convTapRow(fwd, w, r, i, Hi);
      ifThen(ok, [&] {
        forLoop(
            c64(0), c64(Q), 1,
            [&](LV* q) {
              LV* xrow = add(mul(add(mul(add(mul(n, Q), q), Hi), row), Wi), s0);
              LV* wrow = add(mul(add(mul(q, w.kh), i), w.kw * Pp), mul(cv0, W));
              // the block's weights at this (q, i): nb x kw vectors
              std::vector<LV*> wvec(static_cast<size_t>(nb * w.kw));
              for (int64_t j = 0; j < w.kw; ++j)
                for (int b = 0; b < nb; ++b)
                  wvec[size_t(b * w.kw + j)] = B.CreateAlignedLoad(
                      vf, B.CreateInBoundsGEP(f32, wt, add(wrow, c64(j * Pp + b * W))), va);
              // each input column once: broadcast, then every (position e,
              // tap column j) that reads it, in the order of the columns (so
              // an accumulator takes its taps j in one fixed order)
              const int64_t lo = b0 + std::min<int64_t>(0, (w.kw - 1) * bj),
                            hi = cnt - 1 + b0 + std::max<int64_t>(0, (w.kw - 1) * bj);
              for (int64_t dc = lo; dc <= hi; ++dc) {                    // input column - s0
                if (sc >= 0 && (sc + dc < 0 || sc + dc >= Wi)) continue; // padding
                LV* x = nullptr;
                for (int64_t j = 0; j < w.kw; ++j) {
                  const int64_t e = dc - b0 - j * bj;
                  if (e < 0 || e >= cnt) continue;
                  if (!x) x = splat(B.CreateLoad(f32, B.CreateGEP(f32, ib, add(xrow, c64(dc)))));
                  for (int b = 0; b < nb; ++b) {
                    LV* a = acc[size_t(b * cnt + e)];
                    B.CreateStore(fma(wvec[size_t(b * w.kw + j)], x, B.CreateLoad(vf, a)), a);
                  }
                }
              }
            },
            "q");
      });
    };
    forLoop(c64(0), c64(w.kh), 1, tapRow, "tap_i");
    for (int e = 0; e < cnt; ++e)
      for (int b = 0; b < nb; ++b)
        B.CreateAlignedStore(
            B.CreateLoad(vf, acc[size_t(b * cnt + e)]),
            B.CreateInBoundsGEP(f32, S, add(mul(add(s0, c64(e)), Pp), mul(add(cv0, c64(b)), W))),
            va);
  };

  // A row's positions in blocks of np (the last narrower); the run of
  // interior blocks is a loop when longer than one.
  const int64_t nblocks = (Wo + np - 1) / np;
  auto width = [&](int64_t bi) { return int(std::min<int64_t>(np, Wo - bi * np)); };
  int64_t ilo = 0;
  while (ilo < nblocks && !(width(ilo) == np && interior(ilo * np, np)))
    ++ilo;
  int64_t ihi = ilo;
  while (ihi < nblocks && width(ihi) == np && interior(ihi * np, np))
    ++ihi;
  auto rowBlocks = [&](LV* n, LV* r, LV* cv0, int nb) {
    for (int64_t bi = 0; bi < nblocks; ++bi) {
      if (bi == ilo && ihi - ilo > 1) {
        forLoop(
            c64(ilo), c64(ihi), 1, [&](LV* bv) { block(n, r, cv0, nb, mul(bv, np), -1, np); },
            "sb");
        bi = ihi - 1;
        continue;
      }
      block(n, r, cv0, nb, c64(bi * np), bi * np, width(bi));
    }
  };

  const int64_t full = nvP / ob, tail = nvP % ob;
  forLoop(
      n0, n1, 1,
      [&](LV* n) {
        forLoop(
            c64(0), c64(Ho), 1,
            [&](LV* r) {
              if (full)
                forLoop(
                    c64(0), c64(full), 1, [&](LV* cb) { rowBlocks(n, r, mul(cb, ob), ob); }, "cb");
              if (tail) rowBlocks(n, r, c64(full * ob), int(tail));
              // S [Wop][Pp] -> T [Pp][Wop] in W x W tiles
              forLoop(
                  c64(0), c64(nvP), 1,
                  [&](LV* pt) {
                    forLoop(
                        c64(0), c64(vecs), 1,
                        [&](LV* st) {
                          std::vector<LV*> v(static_cast<size_t>(W));
                          for (int l = 0; l < W; ++l)
                            v[size_t(l)] = B.CreateAlignedLoad(
                                vf,
                                B.CreateInBoundsGEP(
                                    f32, S, add(mul(add(mul(st, W), c64(l)), Pp), mul(pt, W))),
                                va);
                          transposeRegs(B, v);
                          for (int l = 0; l < W; ++l)
                            B.CreateAlignedStore(
                                v[size_t(l)],
                                B.CreateInBoundsGEP(
                                    f32, T, add(mul(add(mul(pt, W), c64(l)), Wop), mul(st, W))),
                                va);
                        },
                        "st");
                  },
                  "pt");
              // the output rows, through the epilogue
              forLoop(
                  c64(0), c64(P), 1,
                  [&](LV* p) {
                    LV* bv = bias ? splat(B.CreateLoad(f32, B.CreateInBoundsGEP(f32, bias, p)))
                                  : nullptr;
                    auto out = [&](LV* s, int64_t valid) {
                      LV* val = B.CreateAlignedLoad(
                          vf, B.CreateInBoundsGEP(f32, T, add(mul(p, Wop), s)), va);
                      if (bv) val = B.CreateFAdd(val, bv);
                      windowOut(k, val, n, add(mul(add(mul(p, Ho), r), Wo), s), valid);
                    };
                    if (Wo / W > 0)
                      forLoop(
                          c64(0), c64(Wo / W), 1, [&](LV* v) { out(mul(v, W), W); }, "ov");
                    if (Wo % W) out(c64(Wo / W * W), Wo % W);
                  },
                  "op");
            },
            "r");
      },
      "n");
  return true;
}

} // namespace descent::emit_detail
