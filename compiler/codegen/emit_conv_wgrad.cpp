// LLVM IR emission of the conv2d weight gradient (emitter.h), two schemes
// that emitConvWeightGrad (emit_window.cpp) tries before its row kernel.
// Each runs over one WgradSlice: the whole batch with the items split over
// the tasks, or, for a sliced weight gradient, one chunk of samples with
// every item, its sums going to the chunk's row of the partials.
//
// Channel vectors (emitConvWeightGradChannels): dW as a GEMM,
// dw[o, (c,i,j)] = Σ_n Σ_p dyᵀ[p][o] · x[n, c, tap(p, i, j)], with vectors
// along the output channels o, x broadcast, and a register tile of channel
// vectors x input channels x one tap row's kw taps (mnist_cnn's conv2: 2 x
// 4 x 3 = 24 zmm accumulators). dy is NCHW: each block of whole output rows
// is transposed to [p][o] in registers (W x W tiles) into a 64-byte-aligned
// stack buffer that stays in L1, every work item of the task runs over it,
// and the items carry their partial sums in a stack array between blocks
// (one transpose per block and task, not per item: dy is read from memory
// once per task). Work items are output elements (channel-vector blocks x
// input-channel blocks x tap rows), each summed over n, then the positions
// in order, by exactly one task: the same bits on any thread count. Any
// stride and dilation; one group and no padding read (the old kernels serve
// the rest), and only where the channels fill the lanes better than the
// output rows (and the flat plane) do.
//
// Flat plane (emitConvWeightGradFlat): dw[o,c,i,j] = Σ_n Σ_p dy[n,o,p] · x[n,c, off(p) + i·dh·Wd +
// j·dw] with p = oy·Wo + ox the flat index of dy's plane and off(p) = oy·sh·Wd + ox. dy is
// contiguous along p, so its vectors fill every lane even when a row is narrower than a vector
// (lenet's 10- and mnist_cnn's 24-wide rows waste 37% and 25% of the lanes in the row kernel of
// emit_window.cpp); a vector of x is one load per output row the vector crosses, merged by masked
// loads with masks known at compile time (the plane is unrolled). Used when no tap reads padding
// (the run structure is then the same for every tap), the output rows are narrower than one vector
// and the plane is small; the row kernel serves the rest (mnist_cnn's 24-wide rows measured no
// faster flat).
#include "compiler/codegen/emitter.h"
#include "compiler/ir/window_attrs.h"

#include <algorithm>
#include <climits>
#include <functional>

namespace descent::emit_detail {

namespace {

/// Whether every tap of every output position of an [Ho, Wo] output reads
/// inside the [H, Wd] input: no padding is read, so both kernels here need
/// no bounds checks and the runs of x are the same for every tap.
bool readsNoPadding(const Window2d& w, int64_t H, int64_t Wd, int64_t Ho, int64_t Wo) {
  return w.pt == 0 && w.pl == 0 && (Ho - 1) * w.sh + (w.kh - 1) * w.dh < H &&
         (Wo - 1) * w.sw + (w.kw - 1) * w.dw < Wd;
}

/// One run of lanes of an x vector that are contiguous in memory: lanes
/// [l0, l1) read x at (off - l0) + lane, off relative to the tap's origin.
struct Run {
  int l0, l1;
  int64_t off;
};

} // namespace

bool Emitter::emitConvWeightGradFlat(const Kernel& k, const WgradSlice& sl) {
  const Op* op = anchorOp(k);
  const Value* xv = op->operands[0];
  const Value* yv = op->operands[1];
  const Shape &xs = xv->type.shape, &ws = op->result->type.shape, &ys = yv->type.shape;
  const Window2d w = convWindow(op->attrs, ws[2], ws[3]);
  const int64_t C = xs[1], H = xs[2], Wd = xs[3], O = ys[1], Ho = ys[2], Wo = ys[3];
  const int64_t G = w.groups, cg = C / G, og = O / G, P = Ho * Wo, taps = w.kh * w.kw;
  if (w.sw != 1 || P == 0 || !readsNoPadding(w, H, Wd, Ho, Wo)) return false;
  const int64_t vecs = (P + W - 1) / W;
  // The rule: the flat plane must use more lanes than the rows do (a row
  // that is a multiple of W loses nothing there and needs no merged loads).
  const int64_t row_lanes = Ho * ((Wo + W - 1) / W) * W, flat_lanes = vecs * W;
  if (flat_lanes >= row_lanes) return false;
  // Rows of a vector or more (mnist_cnn's conv2, 24 wide) measured no
  // faster flat (18.7 ms both, 2026-11-29) and the unrolled plane took its
  // JIT compile from 250 to 620 ms: only rows narrower than one vector
  // (LeNet-5's conv2, 10 wide: 497 -> 452 us) use the flat plane.
  if (Wo >= W) return false;

  // The runs of each vector of the plane (compile time).
  std::vector<std::vector<Run>> runs(static_cast<size_t>(vecs));
  int64_t nruns = 0;
  for (int64_t v = 0; v < vecs; ++v) {
    for (int l = 0; l < W && v * W + l < P; ++l) {
      const int64_t p = v * W + l, off = (p / Wo) * w.sh * Wd + p % Wo;
      auto& r = runs[size_t(v)];
      if (!r.empty() && r.back().l1 == l && r.back().off + (l - r.back().l0) == off)
        ++r.back().l1;
      else
        r.push_back({l, l + 1, off});
    }
    nruns += int64_t(runs[size_t(v)].size());
  }
  const double segs = double(nruns) / double(vecs);
  // The register block: ob output channels x nt taps. Per vector it costs
  // ob·nt FMAs plus nt·(segs-1) merges on the FMA ports, and ob + nt·segs
  // loads, and its dy and x vectors from L2; the accumulators, the nt x
  // vectors (kept: merged ones cost),
  // one dy vector and one spare fit in regs.
  const int regs = W >= 16 ? 32 : 16;
  int ob = 1, nt = 1;
  double best = 1e300;
  for (int b = 1; b <= std::min<int64_t>(og, 8); ++b)
    for (int t = 1; t <= std::min<int64_t>(taps, 16); ++t) {
      if (b * t + t + 2 > regs) continue;
      auto cyc = [&](int64_t bb, int64_t tt) {
        const double fp = double(bb * tt) + double(tt) * (segs - 1), ld = double(bb) + tt * segs;
        // dy streams from L2 (its planes over the batch outgrow L1) at
        // about 32 bytes a cycle: W·4 bytes per channel and one of x
        const double l2 = double(bb + 1) * W / 8;
        return std::max({fp / 2, ld / 2, l2}) + 0.5;
      };
      const int64_t fo = og / b, ro = og % b, ft = taps / t, rt = taps % t;
      double c = double(fo * ft) * cyc(b, t) + (ro ? double(ft) * cyc(ro, t) : 0) +
                 (rt ? double(fo) * cyc(b, rt) : 0) + (ro && rt ? cyc(ro, rt) : 0);
      if (c < best - 1e-9) best = c, ob = b, nt = t;
    }
  // Code size: the plane is unrolled in up to four item bodies.
  if (vecs * (ob * nt + ob + int64_t(nt) * nruns / vecs + 1) > 8000) return false;

  LV *xb = bufBase(xv), *yb = bufBase(yv);
  auto mul = [&](LV* a, int64_t c) { return B.CreateMul(a, c64(c), "", false, true); };
  auto add = [&](LV* a, LV* b) { return B.CreateAdd(a, b, "", false, true); };

  // Work item: channels [o0, o0+nb) x input channel c x taps [q0, q0+nq)
  // (q = i·kw + j), summed over n then the plane's vectors in order, then
  // each accumulator's lanes in order: one fixed order per weight.
  auto item = [&](LV* g, LV* o0, int nb, LV* c, LV* q0, int nq) {
    LV* ca = add(mul(g, cg), c);
    std::vector<LV*> tapoff(static_cast<size_t>(nq));
    for (int t = 0; t < nq; ++t) {
      LV* q = add(q0, c64(t));
      LV *i = B.CreateSDiv(q, c64(w.kw)), *j = B.CreateSRem(q, c64(w.kw));
      tapoff[size_t(t)] = add(mul(i, w.dh * Wd), mul(j, w.dw));
    }
    std::vector<LV*> init(size_t(nb * nq), vcf(0));
    std::vector<LV*> acc = phiLoop(
        sl.n0, sl.n1, 1, init,
        [&](LV* n, const std::vector<LV*>& in) {
          std::vector<LV*> a = in;
          LV* xplane = mul(add(mul(n, C), ca), H * Wd);
          std::vector<LV*> xtap(static_cast<size_t>(nq));
          for (int t = 0; t < nq; ++t)
            xtap[size_t(t)] = B.CreateGEP(f32, xb, add(xplane, tapoff[size_t(t)]));
          std::vector<LV*> yplane(static_cast<size_t>(nb));
          for (int b = 0; b < nb; ++b)
            yplane[size_t(b)] = mul(add(mul(n, O), add(o0, c64(b))), P);
          for (int64_t v = 0; v < vecs; ++v) {
            const int64_t valid = std::min<int64_t>(W, P - v * W);
            std::vector<LV*> xvec(static_cast<size_t>(nq), nullptr);
            for (int t = 0; t < nq; ++t) {
              // x's lanes: each run a masked load merged into the previous
              // ones (a plain load when one run fills the vector)
              for (const Run& r : runs[size_t(v)]) {
                LV* p = B.CreateGEP(f32, xtap[size_t(t)], c64(r.off - r.l0));
                if (r.l0 == 0 && r.l1 == W) {
                  xvec[size_t(t)] = B.CreateAlignedLoad(vf, p, llvm::Align(4));
                  continue;
                }
                std::vector<Constant*> m;
                for (int l = 0; l < W; ++l)
                  m.push_back(ConstantInt::get(i1, l >= r.l0 && l < r.l1));
                xvec[size_t(t)] =
                    B.CreateMaskedLoad(vf, p, llvm::Align(4), llvm::ConstantVector::get(m),
                                       xvec[size_t(t)] ? xvec[size_t(t)] : (LV*)vcf(0));
              }
            }
            for (int b = 0; b < nb; ++b) {
              LV* dy = loadVec(yb, add(yplane[size_t(b)], c64(v * W)), llvm::Align(4), valid);
              for (int t = 0; t < nq; ++t)
                a[size_t(b * nq + t)] = fma(dy, xvec[size_t(t)], a[size_t(b * nq + t)]);
            }
          }
          return a;
        },
        "n");
    // Each weight's lane sum and its fused update (the epilogue) in a loop
    // over the block's accumulators parked in a stack array: one copy of the
    // update's code; every weight gets the same operations.
    auto* arrTy = llvm::ArrayType::get(vf, uint64_t(nb * nq));
    LV* park = entryAlloca(arrTy);
    for (int a = 0; a < nb * nq; ++a)
      B.CreateStore(acc[size_t(a)], B.CreateConstInBoundsGEP2_64(arrTy, park, 0, uint64_t(a)));
    forLoop(
        c64(0), c64(nb * nq), 1,
        [&](LV* a) {
          LV* sum = hsum(B.CreateLoad(vf, B.CreateInBoundsGEP(arrTy, park, {c64(0), a})));
          LV *b = B.CreateSDiv(a, c64(nq)), *t = B.CreateSRem(a, c64(nq));
          // dw[o, c, i, j] as element (o, c·kh·kw + q) of the [O, cg·kh·kw] view
          wgradOut(k, sl, sum, add(o0, b), add(add(mul(c, taps), q0), t));
        },
        "wt");
  };
  // Items in a fixed list (full blocks of channels and taps, then the
  // tails), split over the tasks; each weight is summed by one item.
  const int64_t fo = og / ob, ro = og % ob, ft = taps / nt, rt = taps % nt;
  auto items = [&](int64_t nblk, int nb, int64_t ngrp, int nq) {
    if (!nblk || !ngrp || !nb || !nq) return;
    // tap group fastest, then the input channel: x's plane and the block's
    // dy planes stay in cache between consecutive items
    auto [t0, t1] = wgradItems(sl, c64(G * nblk * cg * ngrp));
    forLoop(
        t0, t1, 1,
        [&](LV* it) {
          LV* gq = B.CreateSRem(it, c64(ngrp));
          LV* r = B.CreateSDiv(it, c64(ngrp));
          LV* c = B.CreateSRem(r, c64(cg));
          r = B.CreateSDiv(r, c64(cg));
          LV* bk = B.CreateSRem(r, c64(nblk));
          LV* g = B.CreateSDiv(r, c64(nblk));
          LV* o0 = add(mul(g, og), nb == ob ? mul(bk, ob) : c64(fo * ob));
          LV* q0 = nq == nt ? mul(gq, nt) : c64(ft * nt);
          item(g, o0, nb, c, q0, nq);
        },
        "item");
  };
  items(fo, ob, ft, nt);
  items(fo, ob, rt ? 1 : 0, int(rt));
  items(ro ? 1 : 0, int(ro), ft, nt);
  items(ro ? 1 : 0, int(ro), rt ? 1 : 0, int(rt));
  return true;
}

bool Emitter::emitConvWeightGradChannels(const Kernel& k, const WgradSlice& sl) {
  const Op* op = anchorOp(k);
  const Value* xv = op->operands[0];
  const Value* yv = op->operands[1];
  const Shape &xs = xv->type.shape, &ws = op->result->type.shape, &ys = yv->type.shape;
  const Window2d w = convWindow(op->attrs, ws[2], ws[3]);
  const int64_t C = xs[1], H = xs[2], Wd = xs[3], O = ys[1], Ho = ys[2], Wo = ys[3];
  const int64_t P = Ho * Wo, taps = w.kh * w.kw;
  if (w.groups != 1 || P == 0 || O == 0 || C == 0 || !readsNoPadding(w, H, Wd, Ho, Wo))
    return false;
  const int regs = W >= 16 ? 32 : 16;
  // channels padded to whole vectors; lanes filled: O of Op here, Wo of the
  // row's vectors in the row kernel, which loses even when both are full
  // (its lane sums, dy read again per item: mnist_cnn's conv2 on AVX2, 24 =
  // 3 x 8, 21.0 -> 17.6 ms)
  const int64_t Ov = (O + W - 1) / W, Op = Ov * W, Wop = (Wo + W - 1) / W * W;
  if (O * Wop < Wo * Op) return false;
  // ... and better than the flat plane where that kernel would run
  if (w.sw == 1 && Wo < W && O * ((P + W - 1) / W * W) <= P * Op) return false;
  if (w.kw + 2 > regs) return false;
  // Each transposed dy element feeds C·kh·kw FMAs: with fewer than 8·W the
  // transposes cost more than a tenth of the sums (mnist_cnn's conv1, one
  // input channel: 938 -> 1146 us on AVX2), and the row kernels serve.
  if (C * taps < 8 * W) return false;

  // Register tile: ob channel vectors x nc input channels x the kw taps of
  // one tap row. Per output position it costs ob·nc·kw FMAs (two ports),
  // ob dy loads and nc·kw x broadcasts (two load ports), and at least one
  // FMA latency (4 cycles: each accumulator takes one FMA per position);
  // the accumulators, the ob dy vectors and a broadcast fit in registers.
  // (items differ in cost when there are tails; counting them equal is
  // close enough for the balance)
  int ob = 1, nc = 1;
  {
    double best = 1e300;
    for (int b = 1; b <= std::min<int64_t>(Ov, 8); ++b)
      for (int c = 1; c <= std::min<int64_t>(C, 16); ++c) {
        if (b * c * w.kw + b + 1 > regs) continue;
        auto cyc = [&](int64_t bb, int64_t cc) {
          const double f = double(bb * cc * w.kw) / 2, l = double(bb + cc * w.kw) / 2;
          return std::max({f, l, 4.0}) + 0.5;
        };
        const int64_t fo = Ov / b, ro = Ov % b, fc = C / c, rc = C % c;
        double cost = double(fo * fc) * cyc(b, c) + (ro ? double(fc) * cyc(ro, c) : 0) +
                      (rc ? double(fo) * cyc(b, rc) : 0) + (ro && rc ? cyc(ro, rc) : 0);
        // on two threads the busier one runs ceil(items / 2) of them: LeNet's
        // conv2 (6 input channels) in 2 x 3 channels (10 items, 224 us on one
        // thread) rather than 6 (5 items, 205 us)
        const int64_t items = (fo + (ro > 0)) * (fc + (rc > 0)) * w.kh;
        cost *= double((items + 1) / 2 * 2) / double(items);
        if (cost < best - 1e-9) best = cost, ob = b, nc = c;
      }
  }
  // Position block: R whole output rows, their dy transposed to [p][o] in a
  // buffer of at most about 24 KB that stays in L1 while every item runs
  // over it.
  // (mnist_cnn's conv2: blocks of 2 to 12 rows measured the same, 2026-11-29)
  const int64_t R = std::clamp<int64_t>(6144 / Op / Wo, 1, Ho);
  const int64_t chunks = (R * Wo + W - 1) / W; // W-position chunks of a full block
  const int64_t bufN = chunks * W * Op, carryN = Op * C * taps;
  if ((bufN + carryN) * 4 > (256 << 10)) return false;

  LV *xb = bufBase(xv), *yb = bufBase(yv);
  auto mul = [&](LV* a, int64_t c) { return B.CreateMul(a, c64(c), "", false, true); };
  auto add = [&](LV* a, LV* b) { return B.CreateAdd(a, b, "", false, true); };
  const llvm::Align va(size_t(W) * 4);
  LV* buf = alignedScratch(bufN);
  LV* carry = alignedScratch(carryN);

  // Work items: (channel vectors [ov0, ov0+nb), input channels [c0, c0+ncc),
  // tap row i) in four kinds (full and tail blocks of each), numbered in a
  // fixed list split over the tasks; item `it` of a kind carries its sums in
  // carry[(base + it·tile)·W ...], tile = nb·ncc·kw vectors.
  struct Kind {
    int nb, ncc;
    int64_t nob, ncb; // blocks of channel vectors and of input channels
    int64_t first_ov, first_c;
    int64_t count, item0, base;
  };
  std::vector<Kind> kinds;
  {
    const int64_t fo = Ov / ob, ro = Ov % ob, fc = C / nc, rc = C % nc;
    int64_t item0 = 0, base = 0;
    auto addKind = [&](int64_t nob, int nb, int64_t ncb, int ncc, int64_t fov, int64_t fcc) {
      if (!nob || !ncb || !nb || !ncc) return;
      Kind kd{nb, ncc, nob, ncb, fov, fcc, nob * ncb * w.kh, item0, base};
      kinds.push_back(kd);
      item0 += kd.count;
      base += kd.count * nb * ncc * w.kw;
    };
    addKind(fo, ob, fc, nc, 0, 0);
    addKind(fo, ob, rc ? 1 : 0, int(rc), 0, fc * nc);
    addKind(ro ? 1 : 0, int(ro), fc, nc, fo * ob, 0);
    addKind(ro ? 1 : 0, int(ro), rc ? 1 : 0, int(rc), fo * ob, fc * nc);
  }
  const int64_t total = kinds.back().item0 + kinds.back().count;
  auto [t0, t1] = wgradItems(sl, c64(total));
  // this task's items of kind kd: [lo, hi) of its numbering
  auto range = [&](const Kind& kd) {
    auto clampTo = [&](LV* v) {
      LV* r = B.CreateSub(v, c64(kd.item0));
      r = B.CreateSelect(B.CreateICmpSLT(r, c64(0)), c64(0), r);
      return B.CreateSelect(B.CreateICmpSGT(r, c64(kd.count)), c64(kd.count), r);
    };
    return std::pair<LV*, LV*>{clampTo(t0), clampTo(t1)};
  };
  struct ItemAt {
    LV *ov0, *c0, *i;
  };
  auto decode = [&](const Kind& kd, LV* it) {
    LV* i = B.CreateSRem(it, c64(w.kh));
    LV* r = B.CreateSDiv(it, c64(w.kh));
    LV* cb = B.CreateSRem(r, c64(kd.ncb));
    LV* obk = B.CreateSDiv(r, c64(kd.ncb));
    return ItemAt{add(c64(kd.first_ov), mul(obk, kd.nb)), add(c64(kd.first_c), mul(cb, kd.ncc)), i};
  };
  auto carryAt = [&](const Kind& kd, LV* it) {
    return B.CreateInBoundsGEP(f32, carry,
                               mul(add(c64(kd.base), mul(it, kd.nb * kd.ncc * w.kw)), W));
  };
  // body(kind, item, its carry, its accumulator count) for each of this
  // task's items, kind by kind, in item order
  auto eachItem = [&](const char* name,
                      const std::function<void(const Kind&, const ItemAt&, LV*, int)>& body) {
    for (const Kind& kd : kinds) {
      auto [lo, hi] = range(kd);
      const int nacc = kd.nb * kd.ncc * int(w.kw);
      forLoop(
          lo, hi, 1, [&](LV* it) { body(kd, decode(kd, it), carryAt(kd, it), nacc); }, name);
    }
  };

  ifThen(B.CreateICmpSGT(t1, t0), [&] {
    B.CreateMemSet(carry, llvm::ConstantInt::get(i8, 0), uint64_t(carryN * 4), va);
    // The channel vectors [ovlo, ovhi) this task's items use: the only ones
    // it transposes (a dW kernel runs as 4 pieces per thread, each with its
    // own transposes and reads of dy; items are numbered channels first).
    LV *ovlo = c64(Ov), *ovhi = c64(0);
    for (const Kind& kd : kinds) {
      auto [lo, hi] = range(kd);
      LV* some = B.CreateICmpSGT(hi, lo);
      LV* first = decode(kd, lo).ov0;
      LV* last = add(decode(kd, B.CreateSub(hi, c64(1))).ov0, c64(kd.nb));
      ovlo = B.CreateSelect(B.CreateAnd(some, B.CreateICmpSLT(first, ovlo)), first, ovlo);
      ovhi = B.CreateSelect(B.CreateAnd(some, B.CreateICmpSGT(last, ovhi)), last, ovhi);
    }
    LV* fullHi = B.CreateSelect(B.CreateICmpSLT(ovhi, c64(O / W)), ovhi, c64(O / W));
    forLoop(
        sl.n0, sl.n1, 1,
        [&](LV* n) {
          forLoop(
              c64(0), c64((Ho + R - 1) / R), 1,
              [&](LV* rb) {
                LV* r0 = mul(rb, R);
                LV* rr = B.CreateSub(c64(Ho), r0);
                rr = B.CreateSelect(B.CreateICmpSLT(rr, c64(R)), rr, c64(R));
                LV* p0 = mul(r0, Wo);
                LV* np = mul(rr, Wo);
                // buf[e][o] = dy[n, o, p0 + e] for the block's positions e,
                // in W x W tiles transposed in registers; lanes past the
                // plane and channels past O read as zero
                LV* nch = B.CreateSDiv(add(np, c64(W - 1)), c64(W));
                forLoop(
                    c64(0), nch, 1,
                    [&](LV* ch) {
                      LV* e0 = mul(ch, W);
                      LV* s = add(p0, e0);
                      std::vector<Constant*> lanes;
                      for (int l = 0; l < W; ++l)
                        lanes.push_back(ConstantInt::get(i64, l));
                      LV* mask = B.CreateICmpSLT(
                          B.CreateAdd(B.CreateVectorSplat(W, s), llvm::ConstantVector::get(lanes)),
                          B.CreateVectorSplat(W, c64(P)));
                      auto tile = [&](LV* oc, int64_t valid_o) {
                        std::vector<LV*> v(static_cast<size_t>(W));
                        for (int l = 0; l < W; ++l) {
                          if (l >= valid_o) {
                            v[size_t(l)] = vcf(0);
                            continue;
                          }
                          LV* src = add(mul(add(mul(n, O), add(mul(oc, W), c64(l))), P), s);
                          v[size_t(l)] = B.CreateMaskedLoad(vf, B.CreateGEP(f32, yb, src),
                                                            llvm::Align(4), mask, vcf(0));
                        }
                        transposeRegs(B, v);
                        for (int l = 0; l < W; ++l)
                          B.CreateAlignedStore(
                              v[size_t(l)],
                              B.CreateInBoundsGEP(f32, buf,
                                                  add(mul(add(e0, c64(l)), Op), mul(oc, W))),
                              va);
                      };
                      if (O / W)
                        forLoop(
                            ovlo, fullHi, 1, [&](LV* oc) { tile(oc, W); }, "tc");
                      if (O % W)
                        ifThen(B.CreateICmpEQ(ovhi, c64(Ov)), [&] { tile(c64(O / W), O % W); });
                    },
                    "tp");
                // every item of this task over the block
                eachItem("it", [&](const Kind& kd, const ItemAt& at, LV* cp, int nacc) {
                  std::vector<LV*> init(static_cast<size_t>(nacc));
                  for (int a = 0; a < nacc; ++a)
                    init[size_t(a)] = B.CreateAlignedLoad(
                        vf, B.CreateConstInBoundsGEP1_64(f32, cp, uint64_t(a * W)), va);
                  // x[n, c0, i·dh, 0]
                  LV* xbase = mul(add(mul(add(mul(n, C), at.c0), H), mul(at.i, w.dh)), Wd);
                  LV* dyb = B.CreateInBoundsGEP(f32, buf, mul(at.ov0, W));
                  std::vector<LV*> acc = phiLoop(
                      c64(0), rr, 1, init,
                      [&](LV* oy, const std::vector<LV*>& in) {
                        LV* xrow = add(xbase, mul(add(r0, oy), w.sh * Wd));
                        LV* erow = mul(oy, Wo);
                        return phiLoop(
                            c64(0), c64(Wo), 1, in,
                            [&](LV* ox, const std::vector<LV*>& a0) {
                              std::vector<LV*> a = a0;
                              LV* xp = B.CreateGEP(f32, xb, add(xrow, mul(ox, w.sw)));
                              LV* dp = B.CreateInBoundsGEP(f32, dyb, mul(add(erow, ox), Op));
                              std::vector<LV*> dy(static_cast<size_t>(kd.nb));
                              for (int b = 0; b < kd.nb; ++b)
                                dy[size_t(b)] = B.CreateAlignedLoad(
                                    vf, B.CreateConstInBoundsGEP1_64(f32, dp, uint64_t(b * W)), va);
                              for (int c = 0; c < kd.ncc; ++c)
                                for (int64_t j = 0; j < w.kw; ++j) {
                                  LV* x = splat(B.CreateLoad(
                                      f32, B.CreateConstGEP1_64(f32, xp,
                                                                uint64_t(c * H * Wd + j * w.dw))));
                                  for (int b = 0; b < kd.nb; ++b) {
                                    LV*& ac = a[size_t((b * kd.ncc + c) * w.kw + j)];
                                    ac = fma(dy[size_t(b)], x, ac);
                                  }
                                }
                              return a;
                            },
                            "ox");
                      },
                      "oy");
                  for (int a = 0; a < nacc; ++a)
                    B.CreateAlignedStore(
                        acc[size_t(a)], B.CreateConstInBoundsGEP1_64(f32, cp, uint64_t(a * W)), va);
                });
              },
              "rb");
        },
        "n");
    // The sums through the epilogue (the fused update), one weight at a
    // time: dw[o, c, i, j] is element (o, (c·kh + i)·kw + j) of [O, C·kh·kw].
    eachItem("wt", [&](const Kind& kd, const ItemAt& at, LV* cp, int nacc) {
      forLoop(
          c64(0), c64(nacc), 1,
          [&](LV* a) {
            LV* j = B.CreateSRem(a, c64(w.kw));
            LV* r = B.CreateSDiv(a, c64(w.kw));
            LV* c = add(at.c0, B.CreateSRem(r, c64(kd.ncc)));
            LV* b = B.CreateSDiv(r, c64(kd.ncc));
            LV* col = add(mul(add(mul(c, w.kh), at.i), w.kw), j);
            LV* o0 = mul(add(at.ov0, b), W);
            if (sl.partials) {
              // a chunk's partial sums: the vector's channels scattered to
              // their rows of [O, C·kh·kw] (no update to run per weight)
              std::vector<Constant*> lanes;
              for (int l = 0; l < W; ++l)
                lanes.push_back(ConstantInt::get(i64, l));
              LV* o = B.CreateAdd(B.CreateVectorSplat(W, o0), llvm::ConstantVector::get(lanes));
              LV* idx = B.CreateAdd(B.CreateMul(o, B.CreateVectorSplat(W, c64(C * taps))),
                                    B.CreateVectorSplat(W, col));
              B.CreateMaskedScatter(
                  B.CreateAlignedLoad(vf, B.CreateInBoundsGEP(f32, cp, mul(a, W)), va),
                  B.CreateGEP(f32, sl.partials, idx), llvm::Align(4),
                  B.CreateICmpSLT(o, B.CreateVectorSplat(W, c64(O))));
              return;
            }
            forLoop(
                c64(0), c64(W), 1,
                [&](LV* l) {
                  LV* o = add(o0, l);
                  ifThen(B.CreateICmpSLT(o, c64(O)), [&] {
                    LV* v = B.CreateLoad(f32, B.CreateInBoundsGEP(f32, cp, add(mul(a, W), l)));
                    wgradOut(k, sl, v, o, col);
                  });
                },
                "wl");
          },
          "wa");
    });
  });
  return true;
}

} // namespace descent::emit_detail
