// LLVM IR emission of conv2d_input_grad over dy's flat plane (emitter.h):
// the scheme for narrow planes with few input channels, where neither the
// row-vector kernel (emitConvGather, emit_window.cpp) nor the channel-vector
// one (emit_conv.cpp) fills the lanes. LeNet-5's conv2 dX (dy [16,10,10],
// w [16,6,5,5], dx [6,14,14]) in the row kernel has 14-wide dx rows whose
// taps read 10 real dy columns of 16 lanes: half of its FMAs multiply padding.
//
// Per sample and input channel c, two steps:
//  1. A GEMM with K = the dy channels: T[t][p] = Σ_o w[o,c,t] · dy[n,o,p] for
//     every tap t = (i, j) and every position p of dy's flat [Ho·Wo] plane,
//     vectors along p (LeNet: 100 positions in 7 vectors, 89% of the lanes;
//     only real products), a register tile of taps x plane vectors, w
//     broadcast; T (taps x the plane padded to whole vectors) is an L1 stack
//     buffer (11 KB for LeNet).
//  2. col2im in registers: each dx row of channel c is the sum, over the tap
//     rows i whose dy row exists and the tap columns j in order, of T[i,j]'s
//     row read at the column shift of j (masked loads, masks fixed at compile
//     time; LLVM makes them a load and an AND on the stack buffer: keeping
//     them masked, or masking the add instead, measured no faster); the
//     finished row goes through the epilogue (windowOut) once.
// Every dx element is Σ_i Σ_j (Σ_o ascending) in a fixed order, and each
// sample is computed by one task: the same bits on any thread count (not the
// row kernel's bits: it sums o inside the taps).
//
// Applies to one group, stride 1 along the width (any stride along the
// height, dilation, padding), when the vector operations it issues (the
// GEMM's O·⌈Ho·Wo/W⌉ per tap row and the col2im loads) are fewer than the
// row kernel's FMAs, and T fits in half of L1 (measurements at the rule in
// emitConvInputGradFlat). LeNet-5's conv2 dX: 413 -> 257 us on 1 thread
// (42% -> 68% of the FMA peak); its conv1's input gradient is not computed,
// and mnist_cnn's conv2 dX keeps the channel-vector kernel (tried first).
#include "compiler/codegen/emitter.h"
#include "compiler/ir/window_attrs.h"
#include "compiler/support/window2d.h"

#include <algorithm>
#include <climits>

namespace descent::emit_detail {

bool Emitter::emitConvInputGradFlat(const Kernel& k) {
  const Op* op = k.ops[0];
  if (op->kind != OpKind::Conv2dInputGrad) return false;
  // dx [N,C,H,Wd] = full correlation of dy [N,O,Ho,Wo] with w [O,C,kh,kw]
  const Value* yv = op->operands[0];
  const Value* wv = op->operands[1];
  const Value* res = op->result;
  const Shape &ys = yv->type.shape, &ws = wv->type.shape, &xs = res->type.shape;
  const Window2d w = convWindow(op->attrs, ws[2], ws[3]);
  const int64_t O = ys[1], Ho = ys[2], Wo = ys[3], C = xs[1], H = xs[2], Wd = xs[3];
  const int64_t P = Ho * Wo, taps = w.kh * w.kw;
  if (w.groups != 1 || w.sw != 1 || P == 0 || H == 0 || Wd == 0) return false;
  const int64_t nv = (P + W - 1) / W, Pp = nv * W, rv = (Wd + W - 1) / W;
  // T must stay in L1 next to dy's sample and the weights
  if (taps * Pp * 4 > (24 << 10)) return false;
  // (dx row, tap row) pairs whose dy row exists: the row kernel's tap rows
  int64_t pairs = 0;
  for (int64_t y = 0; y < H; ++y)
    for (int64_t i = 0; i < w.kh; ++i) {
      const int64_t t = y + w.pt - i * w.dh;
      pairs += t >= 0 && t % w.sh == 0 && t / w.sh < Ho;
    }
  // The rule, in vector operations per input channel and tap column: the row
  // kernel's FMAs O·pairs·rv against the GEMM's O·nv·kh and the col2im's
  // pairs·rv loads and adds; fewer is enough. Measured 1 thread, batch 64,
  // old -> new us (2026-11-29), AVX-512 / AVX2 (x86-64-v3):
  //   LeNet-5 conv2 dX, 6x14x14 <- 16x10x10, 5x5 (ratio 0.76 / 0.71):
  //     413 -> 257 / 572 -> 434
  //   6x14x14 <- 12x12x12, 3x3 (0.83): 137..192 -> 91..99 / 188 -> 160
  //   6x26x26 <- 16x24x24, 3x3 (0.81): 709 -> 543 / 967 -> 929
  //   6x16x16 <- 16x14x14, 3x3 (0.99 / 0.96): 214 -> 165..205 / 294 -> 290
  // The row kernel is load-bound on such shapes (a broadcast per channel
  // and tap next to each row vector), which the count leaves out. The
  // col2im is unrolled: at most 2048 of its loads per channel (JIT time).
  const int64_t rowOps = O * pairs * rv, flatOps = O * nv * w.kh + pairs * rv;
  if (flatOps >= rowOps || pairs * w.kw * rv > 2048) return false;

  // The GEMM's register tile: mt taps x nb plane vectors, the fewest issue
  // slots per dy channel (max(mt·nb FMAs, nb loads + mt broadcasts) + 1 of
  // loop overhead, the partial tiles at the edges counted as they are);
  // mt·nb accumulators, nb dy vectors and a broadcast in the registers.
  const int regs = W >= 16 ? 32 : 16;
  int mt = 1, nb = 1;
  {
    int64_t best = INT64_MAX;
    auto c = [](int64_t a, int64_t b) { return std::max(a * b, a + b) + 1; };
    for (int b = 1; b <= std::min<int64_t>(nv, 8); ++b)
      for (int t = 1; t <= std::min<int64_t>(taps, 16); ++t) {
        if (t * b + b + 1 > regs) continue;
        const int64_t ft = taps / t, rt = taps % t, fb = nv / b, rb = nv % b;
        const int64_t cost = ft * fb * c(t, b) + (rt ? fb * c(rt, b) : 0) +
                             (rb ? ft * c(t, rb) : 0) + (rt && rb ? c(rt, rb) : 0);
        if (cost < best) best = cost, mt = t, nb = b;
      }
  }

  LV *yb = bufBase(yv), *wb = bufBase(wv);
  auto mul = [&](LV* a, int64_t c) { return B.CreateMul(a, c64(c), "", false, true); };
  auto add = [&](LV* a, LV* b) { return B.CreateAdd(a, b, "", false, true); };
  const llvm::Align va(size_t(W) * 4);
  // T [taps][Pp]: row t = (i·kw + j) holds the plane's products for tap t
  LV* T = alignedScratch(taps * Pp);

  // One GEMM tile: taps [t0, t0+nt) x the cnt plane vectors from position
  // p0 of sample n, input channel c; `vc` the first vector's index when a
  // compile-time constant (the plane's last vector is then masked: no read
  // past dy), -1 for full vectors. Each element sums the dy channels o in order.
  auto tile = [&](LV* n, LV* c, LV* t0, int nt, LV* p0, int64_t vc, int cnt) {
    std::vector<LV*> acc(size_t(nt * cnt));
    for (LV*& a : acc) {
      a = entryAlloca(vf);
      B.CreateStore(vcf(0), a);
    }
    forLoop(
        c64(0), c64(O), 1,
        [&](LV* o) {
          LV* yrow = mul(add(mul(n, O), o), P);
          std::vector<LV*> yvec(static_cast<size_t>(cnt));
          for (int v = 0; v < cnt; ++v)
            yvec[size_t(v)] = loadVec(yb, add(add(yrow, p0), c64(v * W)), llvm::Align(4),
                                      vc < 0 ? W : std::min<int64_t>(W, P - (vc + v) * W));
          LV* wrow = add(mul(add(mul(o, C), c), taps), t0); // w[o, c, t0]
          for (int b = 0; b < nt; ++b) {
            LV* ws1 = splat(B.CreateLoad(f32, B.CreateInBoundsGEP(f32, wb, add(wrow, c64(b)))));
            for (int v = 0; v < cnt; ++v) {
              LV* a = acc[size_t(b * cnt + v)];
              B.CreateStore(fma(yvec[size_t(v)], ws1, B.CreateLoad(vf, a)), a);
            }
          }
        },
        "o");
    for (int b = 0; b < nt; ++b)
      for (int v = 0; v < cnt; ++v)
        B.CreateAlignedStore(
            B.CreateLoad(vf, acc[size_t(b * cnt + v)]),
            B.CreateInBoundsGEP(f32, T, add(add(mul(add(t0, c64(b)), Pp), p0), c64(v * W))), va);
  };
  // Every tap block's plane vectors: the full blocks before the plane's
  // last vector a loop (each tile's T stores inside its iteration: emitted
  // unrolled, LLVM kept a tile's accumulators live across the next tile's
  // loop and spilled), the rest with their masks.
  const int64_t fvb = (nv - 1) / nb;
  auto tapBlock = [&](LV* n, LV* c, LV* t0, int nt) {
    if (fvb)
      forLoop(
          c64(0), c64(fvb), 1, [&](LV* vb) { tile(n, c, t0, nt, mul(vb, nb * W), -1, nb); }, "vb");
    for (int64_t v0 = fvb * nb; v0 < nv; v0 += nb)
      tile(n, c, t0, nt, c64(v0 * W), v0, int(std::min<int64_t>(nb, nv - v0)));
  };

  const int64_t ft = taps / mt, rt = taps % mt;
  LV* rows = rowsOf(kg_->batched.count(res) > 0, xs[0]);
  auto [n0, n1] = split(rows);
  forLoop(
      n0, n1, 1,
      [&](LV* n) {
        forLoop(
            c64(0), c64(C), 1,
            [&](LV* c) {
              // 1. T = w[:, c]ᵀ · dy[n]
              if (ft)
                forLoop(
                    c64(0), c64(ft), 1, [&](LV* tb) { tapBlock(n, c, mul(tb, mt), mt); }, "tb");
              if (rt) tapBlock(n, c, c64(ft * mt), int(rt));
              // 2. dx[n, c, y, :] = Σ_i Σ_j T[i·kw + j] at dy row r(y, i),
              // shifted by j: unrolled, the tap rows of each dx row known at
              // compile time (a loop over y with a branch per tap row ran
              // this step at ~70 of LeNet's ~280 us: its rows' patterns of
              // tap rows mispredicted and each row's adds formed one chain)
              for (int64_t y = 0; y < H; ++y) {
                std::vector<LV*> acc(static_cast<size_t>(rv), nullptr);
                for (int64_t i = 0; i < w.kh; ++i) {
                  const int64_t t = y + w.pt - i * w.dh, r = t / w.sh;
                  if (t < 0 || t % w.sh || r >= Ho) continue; // no dy row at this tap row
                  for (int64_t j = 0; j < w.kw; ++j)
                    for (int64_t u = 0; u < rv; ++u) {
                      // lane l: dx column x = u·W + l reads dy column x + pl - j·dw
                      const int64_t d = u * W + w.pl - j * w.dw;
                      std::vector<Constant*> m;
                      int64_t valid = 0;
                      for (int l = 0; l < W; ++l) {
                        const bool in = u * W + l < Wd && d + l >= 0 && d + l < Wo;
                        m.push_back(ConstantInt::get(i1, in));
                        valid += in;
                      }
                      if (!valid) continue;
                      // (masked lanes may point before T: not inbounds)
                      LV* p = B.CreateConstGEP1_64(f32, T, (i * w.kw + j) * Pp + r * Wo + d);
                      LV* val = valid == W
                                    ? (LV*)B.CreateAlignedLoad(vf, p, llvm::Align(4))
                                    : B.CreateMaskedLoad(vf, p, llvm::Align(4),
                                                         llvm::ConstantVector::get(m), vcf(0));
                      LV*& a = acc[size_t(u)];
                      a = a ? B.CreateFAdd(a, val) : val;
                    }
                }
                for (int64_t u = 0; u < rv; ++u)
                  windowOut(k, acc[size_t(u)] ? acc[size_t(u)] : vcf(0), n,
                            add(mul(add(mul(c, H), c64(y)), Wd), c64(u * W)),
                            std::min<int64_t>(W, Wd - u * W));
              }
            },
            "c");
      },
      "n");
  return true;
}

} // namespace descent::emit_detail
