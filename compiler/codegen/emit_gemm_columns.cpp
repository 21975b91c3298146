// The emitter's GEMM in columns (gemmInColumns, kernel_graph.h): vectors
// along M instead of N. A tile of C is MV vectors of W rows x NJ columns:
// A's column segments are loaded as vectors (X's rows for a dW, dY's
// transposed copy for a dX), B's elements are broadcast (W's rows in place
// for a dX), and each W x W block is transposed in registers so that the
// epilogue sees row vectors, as in emitGemm.
#include "compiler/codegen/emitter.h"

#include <algorithm>
#include <stdexcept>

namespace descent::emit_detail {

/// How many k ahead a dX in columns prefetches W's rows (~700 cycles at
/// 24 FMAs per k, beyond a DRAM or L3 round trip).
constexpr int64_t kPrefetchK = 64;

void Emitter::emitGemmColumns(const Kernel& k) {
  const GemmInfo& g = k.gemm;
  // MV x NJ accumulators: 24 of 32 zmm (12 of 16 ymm), A's MV vectors beside
  // them, one broadcast of B at a time (per k: MV vector loads and NJ
  // broadcasts for MV*NJ FMAs). Measured on wide_mlp's 1024-wide dX: 2 x 12
  // 906 us, 2 x 8 947 us, 1 x 16 1242 us (17 loads per 16 FMAs).
  const int MV = 2;
  const int NJ = int(std::min<int64_t>(g.N, (W == 16 ? 24 : 12) / MV));
  const int64_t TR = int64_t(MV) * W; // rows of C per tile
  const int64_t fullCT = g.N / NJ, remCols = g.N % NJ;
  const int64_t nCT = fullCT + (remCols ? 1 : 0);
  LV* Mv = rowsOf(g.m_batched, g.M);
  LV* Kv = g.k_batched ? nArg : c64(g.K);
  LV* nRT = B.CreateSDiv(B.CreateAdd(Mv, c64(TR - 1)), c64(TR));
  // Tiles numbered column-tile-major: a task's tiles share B's elements
  // (a dX task reads the W rows of its columns only). Each C element is one
  // chain in k order whatever the split: the same bits on any thread count.
  auto [tb, te] = split(B.CreateMul(nRT, c64(nCT)));

  // Aᵀ [K][ldat]: A's columns as rows. A dW's A is Xᵀ (ta), so Aᵀ is X
  // itself; a dX's is dY's copy [K][M] made by the transpose kernel before
  // it (M whole tiles: gemmInColumns).
  LV* at = bufBase(g.ta ? g.a_buffer : g.at_buffer);
  const int64_t ldat = g.ta ? g.lda : g.M;
  const llvm::Align aal = g.ta ? vecAlign(g.matmul->operands[0], g.lda) : llvm::Align(64);
  if (!g.ta && (g.at_buffer < 0 || g.M % TR != 0))
    throw std::logic_error("emitGemmColumns: " + k.name + " has no transposed A of whole tiles");

  // B(kk, j0 + j) for the tile's columns: an index per k, constant offsets per j.
  const bool bPanels = kg_->buffers[size_t(g.b_buffer)].panels;
  if (bPanels && !g.tb) // (a dW's B is dY, never a weight)
    throw std::logic_error("emitGemmColumns: " + k.name + " reads a B in panels by rows");
  LV* bbase = bufBase(g.b_buffer);
  auto bIndex = [&](LV* kk, LV* j0) -> std::pair<LV*, int64_t> {
    if (g.tb) { // B(kk, j) = W[j][kk], W [N,K]
      if (bPanels) return {panelIndex(g.N, j0, kk), kPanelCols};
      return {B.CreateAdd(B.CreateMul(j0, c64(g.ldb)), kk), g.ldb};
    }
    return {B.CreateAdd(B.CreateMul(kk, c64(g.ldb)), j0), 1};
  };

  // One tile at (i0, j0): mv vectors of rows (the last one `lastValid`
  // lanes: a dW's Xᵀ ends at M), nj columns.
  const bool guardRows = g.m_batched || g.M % TR != 0;
  const bool prefetchW = g.tb && g.N * g.K * 4 >= kStreamedBytes;
  auto tile = [&](LV* i0, LV* j0, int mv, int64_t lastValid, int nj) {
    std::vector<LV*> init(size_t(mv * nj), vcf(0));
    std::vector<LV*> acc = phiLoop(
        c64(0), Kv, 1, init,
        [&](LV* kk, const std::vector<LV*>& a) {
          std::vector<LV*> next(a.size());
          std::vector<LV*> avec(static_cast<size_t>(mv));
          LV* arow = B.CreateAdd(B.CreateMul(kk, c64(ldat)), i0);
          for (int v = 0; v < mv; ++v)
            avec[size_t(v)] = loadVec(at, B.CreateAdd(arow, c64(int64_t(v) * W)), aal,
                                      v == mv - 1 ? lastValid : W);
          auto [bidx, bstride] = bIndex(kk, j0);
          LV* brow = B.CreateInBoundsGEP(f32, bbase, bidx);
          if (prefetchW) {
            // Software prefetch of W, kPrefetchK columns ahead, one row of the
            // tile per k in turn: a dX streams a W larger than L2 from L3 or
            // memory once, and the hardware prefetchers lose it at every
            // panel (256 KB apart on wide_mlp): 1024-wide dX 917 -> 859 us on
            // one thread, 507 -> 443 us on two (reading one L2-resident
            // panel instead: 805 us on one). A W that stays in L2 (LeNet-5's)
            // gains nothing and pays the instructions. Short rows
            // (K < 512) wrap to the next tile's rows (mnist_cnn's
            // Linear(9216, 128): 1294 -> ~1160 us); on long rows the compare
            // cost more than the prefetches past the row's end.
            LV* kp = B.CreateAdd(kk, c64(kPrefetchK));
            LV* jp = B.CreateAdd(j0, B.CreateURem(kk, c64(nj)));
            if (g.K < 512) {
              LV* wrap = B.CreateICmpSGE(kp, Kv);
              kp = B.CreateSelect(wrap, B.CreateSub(kp, Kv), kp);
              jp = B.CreateAdd(jp, B.CreateSelect(wrap, c64(nj), c64(0)));
            }
            // (not inbounds: the address may lie past W, and a prefetch never faults)
            B.CreateIntrinsic(
                llvm::Intrinsic::prefetch, {ptr},
                {B.CreateGEP(f32, bbase, bIndex(kp, jp).first), c32(0), c32(3), c32(1)});
          }
          for (int j = 0; j < nj; ++j) {
            LV* bj = splat(B.CreateAlignedLoad(
                f32, B.CreateConstInBoundsGEP1_64(f32, brow, uint64_t(j * bstride)),
                llvm::Align(4)));
            for (int v = 0; v < mv; ++v)
              next[size_t(v * nj + j)] = fma(avec[size_t(v)], bj, a[size_t(v * nj + j)]);
          }
          return next;
        },
        "kc");
    // Each W x nj block to rows: column j of the block in vector j, the
    // missing columns zero; after the transpose, vector r is row r.
    for (int v = 0; v < mv; ++v) {
      std::vector<LV*> cols(size_t(W), vcf(0));
      for (int j = 0; j < nj; ++j)
        cols[size_t(j)] = acc[size_t(v * nj + j)];
      transposeRegs(B, cols);
      const int rows = v == mv - 1 ? int(lastValid) : W;
      for (int r = 0; r < rows; ++r) {
        LV* row = B.CreateAdd(i0, c64(int64_t(v) * W + r));
        auto out = [&] {
          ElemCtx ctx{row, j0, nj, false};
          epilogue(k, {{g.matmul->result, cols[size_t(r)]}}, ctx, 1);
        };
        if (guardRows)
          ifThen(B.CreateICmpSLT(row, Mv), out);
        else
          out();
      }
    }
  };
  // A dW's last row tile ends at M (static): fewer vectors, the last masked.
  const int64_t tailRows = g.ta && g.M % TR ? g.M % TR : 0;
  auto rowTiles = [&](LV* rt, LV* i0, LV* j0, int nj) {
    if (!tailRows) return tile(i0, j0, MV, W, nj);
    const int tmv = int((tailRows + W - 1) / W);
    const int64_t tvalid = tailRows % W ? tailRows % W : W;
    ifThenElse(
        B.CreateICmpSLT(rt, B.CreateSub(nRT, c64(1))), [&] { tile(i0, j0, MV, W, nj); },
        [&] { tile(i0, j0, tmv, tvalid, nj); });
  };
  forLoop(
      tb, te, 1,
      [&](LV* t) {
        LV* ct = B.CreateSDiv(t, nRT);
        LV* rt = B.CreateSRem(t, nRT);
        LV* i0 = B.CreateMul(rt, c64(TR));
        LV* j0 = B.CreateMul(ct, c64(NJ));
        if (!remCols) return rowTiles(rt, i0, j0, NJ);
        if (fullCT == 0) return rowTiles(rt, i0, j0, int(remCols));
        ifThenElse(
            B.CreateICmpSLT(ct, c64(fullCT)), [&] { rowTiles(rt, i0, j0, NJ); },
            [&] { rowTiles(rt, i0, j0, int(remCols)); });
      },
      "ctile");
}

} // namespace descent::emit_detail
