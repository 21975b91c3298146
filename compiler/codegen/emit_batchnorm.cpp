// LLVM IR emission of BatchNorm's window kernels (emitter.h): the batch
// statistics, the eval statistics, the running-statistics update and the two
// gradients as ordered scalar loops on task 0, the normalization split by
// sample. Every operation is the interpreter's (interpreter.cpp, ATen 1.13's
// CPU kernels) in the same order and precision (double sums, float terms),
// so the results do not depend on the thread count.
#include "compiler/codegen/emitter.h"

namespace descent::emit_detail {

bool Emitter::emitBatchNorm(const Kernel& k) {
  const Op* op = k.ops[0];
  switch (op->kind) {
  case OpKind::BatchNormStats:
  case OpKind::BatchNormEvalStats:
  case OpKind::BatchNorm:
  case OpKind::BatchNormUpdateStats:
  case OpKind::BatchNormGrad:
  case OpKind::BatchNormWeightGrad:
  case OpKind::BatchNormBiasGrad:
    break;
  default:
    return false;
  }
  Type* f64 = B.getDoubleTy();
  auto at = [&](LV* base, LV* idx) { return B.CreateInBoundsGEP(f32, base, idx); };
  auto load = [&](LV* base, LV* idx) -> LV* { return B.CreateLoad(f32, at(base, idx)); };
  auto store = [&](LV* v, LV* base, LV* idx) { B.CreateStore(v, at(base, idx)); };
  auto mul = [&](LV* a, int64_t c) { return B.CreateMul(a, c64(c), "", false, true); };
  auto add = [&](LV* a, LV* b) { return B.CreateAdd(a, b, "", false, true); };
  auto range = [&](int64_t n, const std::function<void(LV*)>& body, const char* name) {
    forLoop(c64(0), c64(n), 1, body, name);
  };
  auto ext = [&](LV* v) { return B.CreateFPExt(v, f64); };
  auto trunc = [&](LV* v) { return B.CreateFPTrunc(v, f32); };
  auto sqrt = [&](LV* v) { return B.CreateIntrinsic(llvm::Intrinsic::sqrt, {v->getType()}, {v}); };
  auto accumulate = [&](LV* acc, LV* v) {
    B.CreateStore(B.CreateFAdd(B.CreateLoad(v->getType(), acc), v), acc);
  };
  auto task0 = [&](const std::function<void()>& body) {
    ifThen(B.CreateICmpEQ(taskArg, c32(0)), body);
  };

  if (op->kind == OpKind::BatchNormEvalStats || op->kind == OpKind::BatchNormUpdateStats) {
    // Per channel only: [running_mean; 1/sqrt(running_var + eps); running_var],
    // or the running statistics' update.
    task0([&] {
      if (op->kind == OpKind::BatchNormEvalStats) {
        LV *rm = bufBase(op->operands[0]), *rv = bufBase(op->operands[1]),
           *out = bufBase(op->result);
        const int64_t C = op->operands[0]->type.shape[0];
        LV* eps = cf(float(op->attrs.getDouble("eps", 1e-5)), f32);
        range(
            C,
            [&](LV* c) {
              LV* var = load(rv, c);
              store(load(rm, c), out, c);
              store(B.CreateFDiv(cf(1.0, f32), sqrt(B.CreateFAdd(var, eps))), out, add(c, c64(C)));
              store(var, out, add(c, c64(2 * C)));
            },
            "c");
        return;
      }
      LV *rm = bufBase(op->operands[0]), *rv = bufBase(op->operands[1]);
      LV *count = bufBase(op->operands[2]), *st = bufBase(op->operands[3]);
      const int64_t C = op->operands[0]->type.shape[0];
      LV* n = B.CreateFAdd(load(count, c64(0)), cf(1.0, f32));
      store(n, count, c64(0));
      LV* m = op->attrs.has("momentum") ? cf(float(op->attrs.getDouble("momentum")), f32)
                                        : trunc(B.CreateFDiv(cf(1.0, f64), ext(n)));
      LV* m1 = B.CreateFSub(cf(1.0, f32), m);
      range(
          C,
          [&](LV* c) {
            store(B.CreateFAdd(B.CreateFMul(m, load(st, c)), B.CreateFMul(m1, load(rm, c))), rm, c);
            LV* unbiased = load(st, add(c, c64(2 * C)));
            store(trunc(B.CreateFAdd(B.CreateFMul(ext(m), ext(unbiased)),
                                     ext(B.CreateFMul(m1, load(rv, c))))),
                  rv, c);
          },
          "c");
    });
    return true;
  }

  // x [B,C,...]: B rows (n at run time when batched), C channels, S elements per (sample, channel)
  const bool grad = op->kind == OpKind::BatchNormGrad || op->kind == OpKind::BatchNormWeightGrad ||
                    op->kind == OpKind::BatchNormBiasGrad;
  const Value* xv = op->operands[grad ? 1 : 0];
  const int64_t C = xv->type.shape[1], S = xv->type.numel() / (xv->type.shape[0] * C);
  LV* rows = rowsOf(kg_->batched.count(xv) > 0, xv->type.shape[0]);
  LV* count = B.CreateMul(rows, c64(S)); // N = B·S values per channel
  LV* xb = bufBase(xv);
  LV* out = bufBase(op->result);
  auto elem = [&](LV* n, LV* c, LV* s) { return add(mul(add(mul(n, C), c), S), s); };

  if (op->kind == OpKind::BatchNorm) {
    // y = x·alpha + beta per sample (each element depends only on its channel's terms)
    LV* st = bufBase(op->operands[1]);
    const bool affine = op->operands.size() == 4;
    LV* wb = affine ? bufBase(op->operands[2]) : nullptr;
    LV* bb = affine ? bufBase(op->operands[3]) : nullptr;
    auto [s0, s1] = split(rows);
    forLoop(
        s0, s1, 1,
        [&](LV* n) {
          range(
              C,
              [&](LV* c) {
                LV* w = affine ? load(wb, c) : cf(1.0, f32);
                LV* b = affine ? load(bb, c) : cf(0.0, f32);
                LV* alpha = B.CreateFMul(load(st, add(c, c64(C))), w);
                LV* beta = B.CreateFSub(b, B.CreateFMul(load(st, c), alpha));
                range(
                    S,
                    [&](LV* s) {
                      LV* i = elem(n, c, s);
                      store(B.CreateFAdd(B.CreateFMul(load(xb, i), alpha), beta), out, i);
                    },
                    "s");
              },
              "c");
        },
        "n");
    return true;
  }

  LV* acc0 = entryAlloca(f64);
  LV* acc1 = entryAlloca(f64);
  if (op->kind == OpKind::BatchNormStats) {
    const double eps = op->attrs.getDouble("eps", 1e-5);
    task0([&] {
      LV* nd = B.CreateSIToFP(count, f64);
      LV* nf = B.CreateSIToFP(count, f32);
      LV* nf1 = B.CreateSIToFP(B.CreateSub(count, c64(1)), f32);
      range(
          C,
          [&](LV* c) {
            B.CreateStore(cf(0.0, f64), acc0);
            forLoop(
                c64(0), rows, 1,
                [&](LV* n) {
                  range(
                      S, [&](LV* s) { accumulate(acc0, ext(load(xb, elem(n, c, s)))); }, "s");
                },
                "n");
            LV* mean = trunc(B.CreateFDiv(B.CreateLoad(f64, acc0), nd));
            B.CreateStore(cf(0.0, f64), acc1);
            forLoop(
                c64(0), rows, 1,
                [&](LV* n) {
                  range(
                      S,
                      [&](LV* s) {
                        LV* d = B.CreateFSub(load(xb, elem(n, c, s)), mean);
                        accumulate(acc1, ext(B.CreateFMul(d, d)));
                      },
                      "s");
                },
                "n");
            LV* var_sum = trunc(B.CreateLoad(f64, acc1));
            LV* var = ext(B.CreateFDiv(var_sum, nf));
            LV* invstd = trunc(B.CreateFDiv(cf(1.0, f64), sqrt(B.CreateFAdd(var, cf(eps, f64)))));
            if (eps == 0)
              invstd = B.CreateSelect(B.CreateFCmpUNE(var, cf(0.0, f64)), invstd, cf(0.0, f32));
            store(mean, out, c);
            store(invstd, out, add(c, c64(C)));
            store(B.CreateFDiv(var_sum, nf1), out, add(c, c64(2 * C)));
          },
          "c");
    });
    return true;
  }

  // batch_norm_grad / batch_norm_weight_grad / batch_norm_bias_grad (dy, x, stats [, w])
  LV* dyb = bufBase(op->operands[0]);
  LV* st = bufBase(op->operands[2]);
  const bool weight_grad = op->kind == OpKind::BatchNormWeightGrad;
  const bool bias_grad = op->kind == OpKind::BatchNormBiasGrad;
  LV* wb =
      !weight_grad && !bias_grad && op->operands.size() == 4 ? bufBase(op->operands[3]) : nullptr;
  LV* s_acc = entryAlloca(f32);
  LV* d_acc = entryAlloca(f32);
  task0([&] {
    LV* nd = B.CreateSIToFP(count, f64);
    LV* nf = B.CreateSIToFP(count, f32);
    range(
        C,
        [&](LV* c) {
          LV* mean = load(st, c);
          LV* invstd = load(st, add(c, c64(C)));
          B.CreateStore(cf(0.0, f64), acc0);
          B.CreateStore(cf(0.0, f64), acc1);
          forLoop(
              c64(0), rows, 1,
              [&](LV* n) {
                B.CreateStore(cf(0.0, f32), s_acc);
                B.CreateStore(cf(0.0, f32), d_acc);
                range(
                    S,
                    [&](LV* s) {
                      LV* i = elem(n, c, s);
                      LV* dy = load(dyb, i);
                      accumulate(s_acc, dy);
                      accumulate(d_acc, B.CreateFMul(B.CreateFSub(load(xb, i), mean), dy));
                    },
                    "s");
                accumulate(acc0, ext(B.CreateLoad(f32, s_acc)));
                accumulate(acc1, ext(B.CreateLoad(f32, d_acc)));
              },
              "n");
          LV* dotp = B.CreateLoad(f64, acc1);
          if (weight_grad || bias_grad) {
            store(trunc(bias_grad ? B.CreateLoad(f64, acc0) : B.CreateFMul(dotp, ext(invstd))), out,
                  c);
            return;
          }
          LV* w = wb ? load(wb, c) : cf(1.0, f32);
          LV* kk = B.CreateFDiv(B.CreateFMul(B.CreateFMul(trunc(dotp), invstd), invstd), nf);
          LV* grad_mean = trunc(B.CreateFDiv(B.CreateLoad(f64, acc0), nd));
          LV* scale = B.CreateFMul(invstd, w);
          forLoop(
              c64(0), rows, 1,
              [&](LV* n) {
                range(
                    S,
                    [&](LV* s) {
                      LV* i = elem(n, c, s);
                      LV* dx = B.CreateFMul(B.CreateFSub(load(xb, i), mean), kk);
                      store(B.CreateFMul(B.CreateFSub(B.CreateFSub(load(dyb, i), grad_mean), dx),
                                         scale),
                            out, i);
                    },
                    "s");
              },
              "n");
        },
        "c");
  });
  return true;
}

} // namespace descent::emit_detail
