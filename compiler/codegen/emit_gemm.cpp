// The emitter's GEMM: a register-blocked micro-kernel (accumulators in
// registers, B panels packed for wide layers, K in L1-sized blocks for wide
// and huge panels, the fused epilogue per tile)
// and the register-transposing copy that gives dX its Wᵀ.
#include "compiler/codegen/emitter.h"

#include <functional>
#include <numeric>
#include <stdexcept>

namespace descent::emit_detail {

/// Largest B panel a GEMM copies to the stack (see emitGemm): far below the
/// 8 MiB thread stacks, and 512 KiB covers K = 2048 at 64 columns.
constexpr int64_t kMaxPanelBytes = 512 * 1024;

/// K rows per block of a K-blocked GEMM (see emitGemmKBlocked): a 128 x 64
/// packed panel is 32 KiB, within the 48 KiB L1d next to A's rows.
constexpr int64_t kKBlock = 128;

/// Largest array of carried partial sums of a K-blocked GEMM (M x NR floats).
constexpr int64_t kMaxCarryBytes = 256 * 1024;

} // namespace descent::emit_detail

namespace descent::emit_detail {

/// Transposes the W x W block held in the W vectors `v` (row i in v[i]):
/// swaps the off-diagonal h x h blocks of every 2h x 2h block, for every h.
void transposeRegs(llvm::IRBuilder<>& B, std::vector<LV*>& v) {
  const int W = int(v.size());
  for (int h = W / 2; h >= 1; h /= 2) {
    std::vector<int> lo(W), hi(W);
    for (int j = 0; j < W; ++j) {
      lo[j] = (j & h) ? W + j - h : j;
      hi[j] = (j & h) ? W + j : j + h;
    }
    for (int i = 0; i < W; ++i) {
      if (i & h) continue;
      LV* a = v[i];
      LV* b = v[i + h];
      v[i] = B.CreateShuffleVector(a, b, lo);
      v[i + h] = B.CreateShuffleVector(a, b, hi);
    }
  }
}

void Emitter::emitTranspose(const Kernel& k) {
  // dst[c, r] = src[r, c] for src [R, C]. Tasks split src's columns in
  // blocks of W (dst's rows), or its rows where they are not whole cache
  // lines (splitsRows: the dW GEMM before it updated W by rows then, and
  // each task reads the rows its thread wrote); a copy, so any split gives
  // the same bits. Full W x W blocks are transposed in registers (W vector
  // loads, log2(W) shuffle stages, W vector stores); the ragged edges are
  // copied element by element.
  const int64_t R = k.t_rows, Cn = k.t_cols;
  const int64_t fullR = R / W, fullC = Cn / W;
  LV* src = bufBase(k.transpose_src);
  LV* dst = bufBase(k.transpose_dst);
  auto smin = [&](LV* a, LV* b) { return B.CreateSelect(B.CreateICmpSLT(a, b), a, b); };
  auto smax = [&](LV* a, LV* b) { return B.CreateSelect(B.CreateICmpSGT(a, b), a, b); };
  auto scalarCopy = [&](LV* cb, LV* ce, LV* rb, LV* re) {
    forLoop(
        cb, ce, 1,
        [&](LV* c) {
          forLoop(
              rb, re, 1,
              [&](LV* r) {
                LV* v = B.CreateAlignedLoad(
                    f32, B.CreateInBoundsGEP(f32, src, B.CreateAdd(B.CreateMul(r, c64(Cn)), c)),
                    llvm::Align(4));
                B.CreateAlignedStore(
                    v, B.CreateInBoundsGEP(f32, dst, B.CreateAdd(B.CreateMul(c, c64(R)), r)),
                    llvm::Align(4));
              },
              "tr");
        },
        "tc");
  };
  // This task's blocks: rows [rb0, rb1) x columns [cb0, cb1) of W x W blocks.
  LV *rb0 = c64(0), *rb1 = c64((R + W - 1) / W), *cb0 = c64(0), *cb1 = c64((Cn + W - 1) / W);
  if (splitsRows(Cn))
    std::tie(rb0, rb1) = split(rb1);
  else
    std::tie(cb0, cb1) = split(cb1);
  // Full blocks: [rb0, min(rb1, fullR)) x [cb0, min(cb1, fullC)).
  LV* rfe = smin(rb1, c64(fullR));
  LV* cfe = smin(cb1, c64(fullC));
  if (fullR > 0 && fullC > 0) {
    llvm::Align sal(uint64_t(std::gcd(std::gcd(Cn * 4, int64_t(W) * 4), int64_t(64))));
    llvm::Align dal(uint64_t(std::gcd(std::gcd(R * 4, int64_t(W) * 4), int64_t(64))));
    forLoop(
        cb0, cfe, 1,
        [&](LV* cblk) {
          LV* c0 = B.CreateMul(cblk, c64(W));
          forLoop(
              rb0, rfe, 1,
              [&](LV* rblk) {
                LV* r0 = B.CreateMul(rblk, c64(W));
                std::vector<LV*> v(W);
                for (int i = 0; i < W; ++i)
                  v[i] = loadVec(
                      src, B.CreateAdd(B.CreateMul(B.CreateAdd(r0, c64(i)), c64(Cn)), c0), sal, W);
                transposeRegs(B, v);
                for (int i = 0; i < W; ++i)
                  storeVec(v[i], dst, B.CreateAdd(B.CreateMul(B.CreateAdd(c0, c64(i)), c64(R)), r0),
                           dal, W);
              },
              "trb");
        },
        "tcb");
  }
  // The ragged edges of the task's rectangle, element by element: its rows
  // past the full blocks (all its columns), then its columns past them
  // (the rows of its full blocks).
  LV* r0 = B.CreateMul(rb0, c64(W));
  LV* r1 = smin(B.CreateMul(rb1, c64(W)), c64(R));
  LV* c0 = B.CreateMul(cb0, c64(W));
  LV* c1 = smin(B.CreateMul(cb1, c64(W)), c64(Cn));
  LV* rFull = smax(r0, B.CreateMul(rfe, c64(W)));
  LV* cFull = smax(c0, B.CreateMul(cfe, c64(W)));
  if (fullR == 0 || fullC == 0) {
    scalarCopy(c0, c1, r0, r1);
    return;
  }
  if (R % W) scalarCopy(c0, c1, rFull, r1);
  if (Cn % W) scalarCopy(cFull, c1, r0, smin(rFull, r1));
}

void Emitter::packTransposed(const GemmInfo& g, LV* src, llvm::Align al, LV* j0, LV* kc, LV* panel,
                             LV* prow, int NV, int64_t NR) {
  // W [N,K] row-major, or in 64-column panels (weight_panels.h): kc is a
  // multiple of W, so the W floats of a row at kc lie in one panel.
  const bool panels = kg_->buffers[size_t(g.b_buffer)].panels;
  for (int v = 0; v < NV; ++v) {
    std::vector<LV*> x(W);
    for (int i = 0; i < W; ++i) {
      LV* row = B.CreateAdd(j0, c64(v * W + i));
      x[i] = loadVec(
          src, panels ? panelIndex(g.N, row, kc) : B.CreateAdd(B.CreateMul(row, c64(g.ldb)), kc),
          al, W);
    }
    transposeRegs(B, x);
    for (int i = 0; i < W; ++i)
      storeVec(x[i], panel,
               B.CreateAdd(B.CreateMul(B.CreateAdd(prow, c64(i)), c64(NR)), c64(v * W)),
               llvm::Align(64), W);
  }
}

std::pair<int, int> Emitter::tileShape(int64_t N) {
  int maxv = W == 16 ? 4 : 2;
  int nv = int(std::min<int64_t>(maxv, (N + W - 1) / W));
  int budget = W == 16 ? 16 : 8; // accumulators: 16 of 32 zmm, 8 of 16 ymm
  int mr = std::max(1, std::min(8, budget / nv));
  return {mr, nv};
}

LV* Emitter::loadA(const GemmInfo& g, LV* i, LV* kk) {
  LV* idx = g.ta ? B.CreateAdd(B.CreateMul(kk, c64(g.lda)), i)
                 : B.CreateAdd(B.CreateMul(i, c64(g.lda)), kk);
  LV* base = bufBase(g.a_buffer);
  if (!g.a_normalize)
    return B.CreateAlignedLoad(f32, B.CreateInBoundsGEP(f32, base, idx), llvm::Align(4));
  const Op* nz = g.a_normalize;
  if (nz->operands[0]->type.dtype == DType::U8) {
    LV* byte = B.CreateAlignedLoad(i8, B.CreateInBoundsGEP(i8, base, idx), llvm::Align(1));
    LV* lut = B.CreateInBoundsGEP(i8, arena, c64(bg_->lut_offset.at(nz)));
    return B.CreateAlignedLoad(f32, B.CreateInBoundsGEP(f32, lut, B.CreateZExt(byte, i64)),
                               llvm::Align(4));
  }
  LV* x = B.CreateAlignedLoad(f32, B.CreateInBoundsGEP(f32, base, idx), llvm::Align(4));
  x = B.CreateFDiv(x, cf(nz->attrs.getDouble("divisor", 1.0), f32));
  x = B.CreateFSub(x, cf(nz->attrs.getDouble("mean", 0.0), f32));
  return B.CreateFDiv(x, cf(nz->attrs.getDouble("std", 1.0), f32));
}

llvm::Align Emitter::bAlign(const GemmInfo& g) {
  const Value* bv = kg_->buffers[g.b_buffer].value;
  if (bv && isInput(bv)) return llvm::Align(4);
  return llvm::Align(uint64_t(std::gcd(std::gcd(g.ldb * 4, int64_t(W) * 4), int64_t(64))));
}

void Emitter::microKernel(const Kernel& k, LV* i0, LV* j0, int mr, int nv, int64_t last_valid,
                          LV* K, LV* M, LV* packed, int64_t packed_ld, const KBlock* kblock) {
  // Row indices, clamped to M-1 (see emitGemm).
  std::vector<LV*> rowIdx;
  LV* last = B.CreateSub(M, c64(1));
  for (int r = 0; r < mr; ++r) {
    LV* i = B.CreateAdd(i0, c64(r));
    rowIdx.push_back(r == 0 ? i : B.CreateSelect(B.CreateICmpSLT(i, M), i, last));
  }
  const GemmInfo& g = k.gemm;
  LV* bbase = packed ? packed : bufBase(g.b_buffer);
  int64_t ldb = packed ? packed_ld : g.ldb;
  LV* bcol = packed ? c64(0) : j0; // a packed panel starts at the tile's first column
  llvm::Align balign = packed ? llvm::Align(64) : bAlign(g);
  if (!packed && kg_->buffers[size_t(g.b_buffer)].panels) {
    // B stored in 64-column panels (weight_panels.h): the tile starts at
    // (0, j0) of its panel, whose rows are 64 floats apart.
    bbase = B.CreateInBoundsGEP(f32, bbase, panelIndex(g.K, c64(0), j0));
    bcol = c64(0);
    ldb = kPanelCols;
    balign = llvm::Align(uint64_t(std::gcd(int64_t(W) * 4, int64_t(64))));
  }
  // The K loop: mr x nv accumulators in registers. A K block starts from
  // the sums the previous block stored (stored and reloaded floats: the same
  // bits) and reads its packed panel from row 0.
  std::vector<LV*> init(size_t(mr * nv), vcf(0));
  LV* kBegin = c64(0);
  if (kblock) {
    kBegin = kblock->k0;
    for (int q = 0; q < mr * nv; ++q)
      init[q] = B.CreateSelect(kblock->first, vcf(0),
                               loadVec(kblock->carry, c64(int64_t(q) * W), llvm::Align(64), W));
  }
  std::vector<LV*> acc = phiLoop(
      kBegin, kblock ? B.CreateAdd(kBegin, K) : K, 1, init,
      [&](LV* kk, const std::vector<LV*>& a) {
        std::vector<LV*> bv, next(a.size());
        LV* brow = B.CreateAdd(B.CreateMul(kblock ? B.CreateSub(kk, kBegin) : kk, c64(ldb)), bcol);
        for (int v = 0; v < nv; ++v)
          bv.push_back(
              loadVec(bbase, B.CreateAdd(brow, c64(v * W)), balign, v == nv - 1 ? last_valid : W));
        for (int r = 0; r < mr; ++r) {
          LV* av = splat(loadA(g, rowIdx[r], kk));
          for (int v = 0; v < nv; ++v)
            next[r * nv + v] = fma(av, bv[v], a[r * nv + v]);
        }
        return next;
      },
      "k");
  BasicBlock* done = nullptr;
  if (kblock) {
    // Not the last block: store the partial sums for the next one.
    BasicBlock* store = BasicBlock::Create(C, "kcarry", F);
    BasicBlock* epi = BasicBlock::Create(C, "klast", F);
    done = BasicBlock::Create(C, "kdone", F);
    B.CreateCondBr(kblock->last, epi, store);
    B.SetInsertPoint(store);
    for (int q = 0; q < mr * nv; ++q)
      storeVec(acc[q], kblock->carry, c64(int64_t(q) * W), llvm::Align(64), W);
    B.CreateBr(done);
    B.SetInsertPoint(epi);
  }
  bool mayClamp = g.m_batched || g.M % mr != 0;
  for (int r = 0; r < mr; ++r) {
    auto rowEpilogue = [&] {
      for (int v = 0; v < nv; ++v) {
        ElemCtx ctx{rowIdx[r], B.CreateAdd(j0, c64(v * W)), v == nv - 1 ? last_valid : W};
        epilogue(k, {{g.matmul->result, acc[r * nv + v]}}, ctx, 1);
      }
    };
    // An update is read-modify-write: a clamped duplicate row must not apply it twice.
    if (k.sink && r > 0 && mayClamp)
      ifThen(B.CreateICmpSLT(B.CreateAdd(i0, c64(r)), M), rowEpilogue);
    else
      rowEpilogue();
  }
  if (kblock) {
    B.CreateBr(done);
    B.SetInsertPoint(done);
  }
}

/// Whether emitGemm runs a GEMM K-blocked (see emitGemmKBlocked): a static K
/// of more than one block, whole column tiles, and either a wide B (rows 1 KB
/// or more apart, packed anyway) or a K x NR panel too large for L2's share
/// (mnist_cnn's Linear(9216, 128)); the partial sums of a column tile's rows
/// (at most the static M) fit kMaxCarryBytes.
static bool kBlocked(const GemmInfo& g, int64_t MR, int64_t NR) {
  return !g.k_batched && g.K > kKBlock && g.N % NR == 0 &&
         (g.ldb >= 256 || g.K * NR * 4 > kMaxPanelBytes) &&
         (g.M + MR - 1) / MR * MR * NR * 4 <= kMaxCarryBytes;
}

void Emitter::emitGemmKBlocked(const Kernel& k, int MR, int NV) {
  // Loop order: K block, column tile, row tile (see kOuter below). Each
  // (K block, column tile) packs its kKBlock x NR panel of B into the stack
  // (32 KiB at NR = 64: it stays in L1 while every row tile of the task
  // reads it) and each row tile runs its chains over that block, its
  // mr x nv sums carried in a stack array between blocks (one slot per tile
  // of the task). With the K blocks outermost, a task's column tiles read
  // each block of A's rows while it is still in L1/L2: A is streamed once,
  // not once per column tile (mnist_cnn's Linear(9216, 128): A is 2.4 MB).
  // Every C element is still one fmuladd chain in k = 0..K-1 order (the
  // carry stores and reloads floats exactly), so the bits are those of the
  // unblocked kernel. Tasks own the same tiles as in emitGemm: tile t is
  // (column tile t / nRT, row tile t % nRT).
  const GemmInfo& g = k.gemm;
  const int64_t NR = int64_t(NV) * W;
  const int64_t nCT = g.N / NR;
  const int64_t nKB = (g.K + kKBlock - 1) / kKBlock;
  const int64_t lastLen = g.K - (nKB - 1) * kKBlock;
  const int64_t staticRT = (g.M + MR - 1) / MR;
  // K blocks outermost when the carry of all of C fits kMaxCarryBytes (it
  // does at batch 64: mnist_cnn's 32 KiB, wide_mlp's 256 KiB); column tiles
  // outermost otherwise (larger batches), one column tile's carry reused.
  const bool kOuter = staticRT * MR * g.N * 4 <= kMaxCarryBytes;
  if (g.tb && (g.K % W != 0 || kKBlock % W != 0))
    throw std::logic_error("emitGemm: " + k.name + " cannot pack its transposed B");
  // A B stored in panels (weight_panels.h) is not copied: its K block of a
  // column tile is already kKBlock contiguous rows of 64 floats.
  const bool inPlace = !g.tb && kg_->buffers[size_t(g.b_buffer)].panels;
  if (inPlace && kPanelCols % NR != 0)
    throw std::logic_error("emitGemm: " + k.name + " has tiles across its B's panels");
  LV* Mv = rowsOf(g.m_batched, g.M);
  LV* nRT = B.CreateSDiv(B.CreateAdd(Mv, c64(MR - 1)), c64(MR));
  auto [tb, te] = split(B.CreateMul(nRT, c64(nCT)));
  LV* panel = nullptr; // (none when B is read in place)
  LV* carry;
  {
    llvm::IRBuilder<> eb(&F->getEntryBlock(), F->getEntryBlock().begin());
    if (!inPlace) {
      auto* a = eb.CreateAlloca(f32, c64(kKBlock * NR));
      a->setAlignment(llvm::Align(64));
      panel = a;
    }
    auto* c = eb.CreateAlloca(f32, c64(staticRT * MR * NR * (kOuter ? nCT : 1)));
    c->setAlignment(llvm::Align(64));
    carry = c;
  }
  auto smin = [&](LV* a, LV* b) { return B.CreateSelect(B.CreateICmpSLT(a, b), a, b); };
  auto smax = [&](LV* a, LV* b) { return B.CreateSelect(B.CreateICmpSGT(a, b), a, b); };
  // A B read in place that does not stay in L2 between steps (wide_mlp's
  // 4 MB W2): its blocks lie 256 KB apart in kOuter order, and the hardware
  // prefetchers start each one cold; the row tiles of a block prefetch the
  // next (into L2: into L1 it evicted the block in use). wide_mlp's
  // 1024-wide forward 897-916 -> 858-880 us on one thread (reading one
  // L2-resident panel instead: 792-797).
  const bool prefetchNext = inPlace && kOuter && g.K * g.N * 4 >= kStreamedBytes;
  const int64_t linesPerRT = (kKBlock * NR * 4 / 64 + staticRT - 1) / staticRT;
  LV* ctB = B.CreateSDiv(tb, nRT);
  LV* ctE = B.CreateSelect(B.CreateICmpSLT(tb, te),
                           B.CreateSDiv(B.CreateAdd(te, B.CreateSub(nRT, c64(1))), nRT), ctB);
  // One (K block, column tile) step: pack the panel, run the task's row tiles.
  auto block = [&](LV* kb, LV* ct) {
    LV* k0 = B.CreateMul(kb, c64(kKBlock));
    LV* isLast = B.CreateICmpEQ(kb, c64(nKB - 1));
    LV* klen = B.CreateSelect(isLast, c64(lastLen), c64(kKBlock));
    LV* base = B.CreateMul(ct, nRT);
    LV* rtB = smax(B.CreateSub(tb, base), c64(0));
    LV* rtE = smin(B.CreateSub(te, base), nRT);
    LV* j0 = B.CreateMul(ct, c64(NR));
    LV* carryCT =
        kOuter ? B.CreateInBoundsGEP(f32, carry,
                                     B.CreateMul(B.CreateSub(ct, ctB), c64(staticRT * MR * NR)))
               : carry;
    LV* src = bufBase(g.b_buffer);
    llvm::Align al = bAlign(g);
    LV* blockPanel = panel;
    if (inPlace) {
      // the block's rows k0.. of the tile's panel, from its column j0
      blockPanel = B.CreateInBoundsGEP(f32, src, panelIndex(g.K, k0, j0));
    } else if (g.tb) {
      // panel[kk - k0][v*W + i] = W[j0 + v*W + i][kk], W x W blocks.
      forLoop(
          c64(0), B.CreateSDiv(klen, c64(W)), 1,
          [&](LV* wb) {
            LV* kr = B.CreateMul(wb, c64(W)); // panel row
            LV* kc = B.CreateAdd(k0, kr);     // W column
            packTransposed(g, src, al, j0, kc, panel, kr, NV, NR);
          },
          "kpackT");
    } else {
      forLoop(
          c64(0), klen, 1,
          [&](LV* kr) {
            LV* row = B.CreateMul(B.CreateAdd(k0, kr), c64(g.ldb));
            for (int v = 0; v < NV; ++v) {
              LV* x = loadVec(src, B.CreateAdd(row, B.CreateAdd(j0, c64(v * W))), al, W);
              storeVec(x, panel, B.CreateAdd(B.CreateMul(kr, c64(NR)), c64(v * W)), llvm::Align(64),
                       W);
            }
          },
          "kpack");
    }
    KBlock blk{k0, nullptr, B.CreateICmpEQ(kb, c64(0)), isLast};
    forLoop(
        rtB, rtE, 1,
        [&](LV* rt) {
          LV* i0 = B.CreateMul(rt, c64(MR));
          blk.carry = B.CreateInBoundsGEP(f32, carryCT, B.CreateMul(rt, c64(MR * NR)));
          if (prefetchNext) {
            // Each row tile prefetches its share of the next block's lines
            // into L2 (kOuter: the next column tile's block, or the first
            // one's in the next K block). Not inbounds: past the task's last
            // block the address may lie past W, and a prefetch never faults.
            LV* wrap = B.CreateICmpSGE(B.CreateAdd(ct, c64(1)), ctE);
            LV* nct = B.CreateSelect(wrap, ctB, B.CreateAdd(ct, c64(1)));
            LV* nk0 = B.CreateSelect(wrap, B.CreateAdd(k0, c64(kKBlock)), k0);
            LV* next = B.CreateGEP(f32, src, panelIndex(g.K, nk0, B.CreateMul(nct, c64(NR))));
            for (int64_t q = 0; q < linesPerRT; ++q) {
              LV* line = B.CreateAdd(B.CreateMul(rt, c64(linesPerRT)), c64(q));
              B.CreateIntrinsic(
                  llvm::Intrinsic::prefetch, {ptr},
                  {B.CreateGEP(f32, next, B.CreateMul(line, c64(16))), c32(0), c32(1), c32(1)});
            }
          }
          microKernel(k, i0, j0, MR, NV, W, klen, Mv, blockPanel, inPlace ? kPanelCols : NR, &blk);
        },
        "krow");
  };
  auto kLoop = [&](const std::function<void(LV*)>& f) { forLoop(c64(0), c64(nKB), 1, f, "kblk"); };
  auto ctLoop = [&](const std::function<void(LV*)>& f) { forLoop(ctB, ctE, 1, f, "kcol"); };
  if (kOuter)
    kLoop([&](LV* kb) { ctLoop([&](LV* ct) { block(kb, ct); }); });
  else
    ctLoop([&](LV* ct) { kLoop([&](LV* kb) { block(kb, ct); }); });
}

void Emitter::emitGemm(const Kernel& k) {
  const GemmInfo& g = k.gemm;
  if (g.columns) return emitGemmColumns(k);
  auto [MR, NV] = tileShape(g.N);
  int64_t NR = int64_t(NV) * W;
  if (kBlocked(g, MR, NR)) return emitGemmKBlocked(k, MR, NV);
  int64_t fullCT = g.N / NR, remCols = g.N % NR;
  int64_t nCT = fullCT + (remCols ? 1 : 0);
  int remNV = int((remCols + W - 1) / W);
  int64_t remLast = remCols % W ? remCols % W : W;
  LV* Mv = rowsOf(g.m_batched, g.M);
  LV* Kv = g.k_batched ? nArg : c64(g.K);
  LV* nRT = B.CreateSDiv(B.CreateAdd(Mv, c64(MR - 1)), c64(MR));
  // Tiles are numbered column-tile-major so a task's tiles share B panels
  // (row-major where C's rows are not whole cache lines, below).
  // Each C element is one dot product in K order: any tile split gives the
  // same bits, so results do not depend on the thread count.
  auto [tb, te] = split(B.CreateMul(nRT, c64(nCT)));
  // B rows 1 KB or more apart (wide layers) make the K loop's B loads walk
  // the same few L1 sets (4 KB aliasing at N = 1024): copy the column
  // tile's K x NR panel into a contiguous, 64-byte-aligned stack buffer once
  // per column tile and let every row tile read it from there. The copy
  // changes no arithmetic, so results stay bit-identical. Only whole column
  // tiles are packed (wide layers have N % NR == 0). Measured on
  // wide_mlp.nn: forward and dX GEMMs 31% -> 52-55% of peak.
  // dW GEMMs (K = the batch's n rows, at most the static g.K) are packed
  // too: their B is dY, whose rows are as far apart as W's, and each panel
  // serves all M/MR row tiles (M = the layer's inputs).
  // g.tb (dX of a wide layer, see packsTransposedB): B' = Wᵀ is packed
  // straight from W [N,K], W x W blocks transposed in registers, instead of
  // from a Wᵀ copy that a transpose kernel would write and this GEMM re-read.
  // A forward B stored in panels (weight_panels.h) is read in place: its
  // column tile is already K contiguous rows of 64 floats.
  const bool bPanels = kg_->buffers[size_t(g.b_buffer)].panels;
  const bool pack =
      g.tb || (!bPanels && remCols == 0 && g.ldb >= 256 && g.K * NR * 4 <= kMaxPanelBytes);
  if (bPanels && !g.tb && (remCols != 0 || kPanelCols % NR != 0))
    throw std::logic_error("emitGemm: " + k.name + " has tiles across its B's panels");
  if (g.tb && (remCols != 0 || g.K % W != 0 || g.K * NR * 4 > kMaxPanelBytes))
    throw std::logic_error("emitGemm: " + k.name + " cannot pack its transposed B");
  // Rows of C that are not whole lines: tiles numbered row-major, so that
  // tasks share no line of C (splitsRows; an unpacked B has no panel to
  // share). So are the tiles of a dW GEMM whose C is larger than L2
  // (kStreamedBytes; mnist_cnn's Linear(9216, 128): 4.7 MB, and the optimizer's state
  // beside it): a tile's A columns (Xᵀ rows) are read from memory by the
  // next column tile while still in L1, not again after all of C's rows.
  const bool rowMajor =
      !pack && nCT > 1 && (splitsRows(g.N) || (g.k_batched && g.M * g.N * 4 > kStreamedBytes));
  LV* panel = nullptr;
  if (pack) {
    llvm::IRBuilder<> eb(&F->getEntryBlock(), F->getEntryBlock().begin());
    auto* a = eb.CreateAlloca(f32, c64(g.K * NR));
    a->setAlignment(llvm::Align(64));
    panel = a;
  }
  forLoop(
      tb, te, 1,
      [&](LV* t) {
        LV* ct = rowMajor ? B.CreateSRem(t, c64(nCT)) : B.CreateSDiv(t, nRT);
        LV* rt = rowMajor ? B.CreateSDiv(t, c64(nCT)) : B.CreateSRem(t, nRT);
        LV* i0 = B.CreateMul(rt, c64(MR));
        LV* j0 = B.CreateMul(ct, c64(NR));
        if (pack) {
          // A new column tile starts here (or this task's first tile is mid-column).
          ifThen(B.CreateOr(B.CreateICmpEQ(t, tb), B.CreateICmpEQ(rt, c64(0))), [&] {
            LV* src = bufBase(g.b_buffer);
            llvm::Align al = bAlign(g);
            if (g.tb) {
              // panel[kk][v*W + i] = W[j0 + v*W + i][kk], one W x W block at a time.
              forLoop(
                  c64(0), c64(g.K / W), 1,
                  [&](LV* kb) {
                    LV* k0 = B.CreateMul(kb, c64(W));
                    packTransposed(g, src, al, j0, k0, panel, k0, NV, NR);
                  },
                  "packT");
              return;
            }
            forLoop(
                c64(0), Kv, 1,
                [&](LV* kk) {
                  for (int v = 0; v < NV; ++v) {
                    LV* x = loadVec(
                        src, B.CreateAdd(B.CreateMul(kk, c64(g.ldb)), B.CreateAdd(j0, c64(v * W))),
                        al, W);
                    storeVec(x, panel, B.CreateAdd(B.CreateMul(kk, c64(NR)), c64(v * W)),
                             llvm::Align(64), W);
                  }
                },
                "pack");
          });
        }
        // Rows past M in the last row tile are clamped to row M-1: they load and
        // store exactly what row M-1 does (idempotent), so one micro-kernel
        // serves every tile and no remainder path is needed (fused updates skip
        // the duplicates: see microKernel).
        auto tileCols = [&](int nv, int64_t lastValid) {
          microKernel(k, i0, j0, MR, nv, lastValid, Kv, Mv, panel, NR);
        };
        if (!remCols) {
          tileCols(NV, W);
        } else if (fullCT == 0) {
          tileCols(remNV, remLast);
        } else {
          ifThenElse(
              B.CreateICmpSLT(ct, c64(fullCT)), [&] { tileCols(NV, W); },
              [&] { tileCols(remNV, remLast); });
        }
      },
      "tile");
}

} // namespace descent::emit_detail
