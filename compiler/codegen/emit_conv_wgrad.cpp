// LLVM IR emission of the conv2d weight gradient over the flat output plane
// (emitter.h): dw[o,c,i,j] = Σ_n Σ_p dy[n,o,p] · x[n,c, off(p) + i·dh·Wd + j·dw]
// with p = oy·Wo + ox the flat index of dy's plane and off(p) = oy·sh·Wd + ox.
// dy is contiguous along p, so its vectors fill every lane even when a row is
// narrower than a vector (lenet's 10- and mnist_cnn's 24-wide rows waste 37%
// and 25% of the lanes in the row kernel of emit_window.cpp); a vector of x
// is one load per output row the vector crosses, merged by masked loads with
// masks known at compile time (the plane is unrolled). Used when no tap reads
// padding (the run structure is then the same for every tap), the output
// rows are narrower than one vector and the plane is small; the row kernel
// serves the rest (mnist_cnn's 24-wide rows measured no faster flat).
#include "compiler/codegen/emitter.h"
#include "compiler/ir/window_attrs.h"

#include <algorithm>
#include <climits>

namespace descent::emit_detail {

namespace {

/// One run of lanes of an x vector that are contiguous in memory: lanes
/// [l0, l1) read x at (off - l0) + lane, off relative to the tap's origin.
struct Run {
  int l0, l1;
  int64_t off;
};

} // namespace

bool Emitter::emitConvWeightGradFlat(const Kernel& k) {
  const Op* op = k.ops[0];
  const Value* xv = op->operands[0];
  const Value* yv = op->operands[1];
  const Shape &xs = xv->type.shape, &ws = op->result->type.shape, &ys = yv->type.shape;
  const Window2d w = convWindow(op->attrs, ws[2], ws[3]);
  const int64_t C = xs[1], H = xs[2], Wd = xs[3], O = ys[1], Ho = ys[2], Wo = ys[3];
  const int64_t G = w.groups, cg = C / G, og = O / G, P = Ho * Wo, taps = w.kh * w.kw;
  if (w.sw != 1 || P == 0) return false;
  // Every tap must read inside the input: no padding is read.
  if (w.pt != 0 || w.pl != 0 || (Ho - 1) * w.sh + (w.kh - 1) * w.dh >= H ||
      (Wo - 1) + (w.kw - 1) * w.dw >= Wd)
    return false;
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
  LV* rows = rowsOf(kg_->batched.count(xv) > 0, xs[0]);

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
        c64(0), rows, 1, init,
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
          windowOut(k, splat(sum), add(o0, b), add(add(mul(c, taps), q0), t), 1);
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
    auto [t0, t1] = split(c64(G * nblk * cg * ngrp));
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

} // namespace descent::emit_detail
