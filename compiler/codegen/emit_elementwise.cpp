// Elementwise code of the emitter: the vector backend that instantiates the
// op math of compiler/ir/op_math.h (ops.def's math column), the loss
// gradients (they read labels and the runtime row count), dropout masks,
// optimizer updates and the epilogue that chains them after a kernel's anchor.
#include "compiler/codegen/emitter.h"
#include "compiler/codegen/step_scalars.h"
#include "compiler/ir/op_defs.h"
#include "compiler/ir/op_math.h"

#include <cmath>
#include <type_traits>

namespace descent::emit_detail {

struct Emitter::VecMath {
  Emitter& e;
  using V = LV*;
  using Mask = LV*;
  V c(double v) { return e.vcf(v); }
  V add(V a, V b) { return e.B.CreateFAdd(a, b); }
  V sub(V a, V b) { return e.B.CreateFSub(a, b); }
  V mul(V a, V b) { return e.B.CreateFMul(a, b); }
  V div(V a, V b) { return e.B.CreateFDiv(a, b); }
  V neg(V a) { return e.B.CreateFNeg(a); }
  V exp(V a) { return e.exp(a); }
  V log(V a) { return e.log(a); }
  V log1p(V a) { return e.log1p(a); }
  V tanh(V a) { return e.tanh(a); }
  V erf(V a) { return e.erf(a); }
  Mask gt(V a, V b) { return e.B.CreateFCmpOGT(a, b); }
  Mask le(V a, V b) { return e.B.CreateFCmpOLE(a, b); }
  V select(Mask m, V a, V b) { return e.B.CreateSelect(m, a, b); }
};

template <class Math> LV* Emitter::evalMath(const Op* op, const std::function<LV*(size_t)>& get) {
  if constexpr (std::is_same_v<Math, opmath::NoMath>) {
    return nullptr;
  } else {
    auto p = Math::params(op->attrs);
    // x[2]: a loss gradient's norm (LossNorm), which `get` supplies.
    LV* x[3] = {nullptr, nullptr, nullptr};
    for (size_t i = 0; i < op->operands.size() && i < 2; ++i)
      x[i] = get(i);
    if (hasTrait(op->kind, optrait::LossNorm)) x[2] = get(2);
    VecMath m{*this};
    return Math::eval(m, p, x);
  }
}

LV* Emitter::elemMath(const Op* op, const std::function<LV*(size_t)>& get) {
  switch (op->kind) {
#define OP(Enum, Name, Min, Max, Cat, Shape, Traits, Grad, Math)                                   \
  case OpKind::Enum:                                                                               \
    return evalMath<opmath::Math>(op, get);
#include "compiler/ir/ops.def"
#undef OP
  }
  return nullptr;
}

LV* Emitter::lossDivisor(const Op* op, int64_t cols_per_row) {
  const std::string r = op->attrs.getString("reduction", "mean");
  if (r != "mean" && r != "batchmean") return nullptr;
  LV* cnt = kg_->batched.count(op->operands[0]) ? nArg : c64(op->operands[0]->type.shape[0]);
  if (r == "batchmean") return B.CreateSIToFP(cnt, f32); // KLDivLoss: the batch rows
  cnt = B.CreateMul(cnt, c64(cols_per_row));
  return B.CreateSIToFP(cnt, f32);
}

LV* Emitter::dropoutMask(const Op* op, const ElemCtx& ctx) {
  int64_t cols = op->attrs.getInt("cols");
  double p = op->attrs.getDouble("p", 0.5);
  int64_t salt = op->attrs.getInt("salt");
  // Keyed by the sample's row in the global batch (data-parallel training:
  // firstRow is this rank's shard start), so a mask does not depend on the
  // number of processes.
  LV* row = B.CreateAdd(ctx.row, firstRow);
  LV* k1 = B.CreateAdd(B.CreateShl(B.CreateZExt(seedArg, i64), 32), stepArg);
  LV* h1 = mix(B.CreateXor(k1, c64(int64_t(0x9E3779B97F4A7C15ull))));
  std::vector<Constant*> lanes;
  for (int i = 0; i < W; ++i)
    lanes.push_back(ConstantInt::get(i64, i));
  LV* idx = B.CreateAdd(splat(B.CreateAdd(B.CreateMul(row, c64(cols)), ctx.col)),
                        llvm::ConstantVector::get(lanes));
  LV* k2 = B.CreateOr(B.CreateAnd(idx, ConstantInt::get(vi64, 0xffffffffull)),
                      ConstantInt::get(vi64, uint64_t(uint32_t(salt)) << 32));
  LV* h = mix(B.CreateXor(splat(h1), k2));
  LV* r = B.CreateTrunc(B.CreateLShr(h, ConstantInt::get(vi64, 40)), vi32);
  uint32_t thr = uint32_t(std::ceil(p * 16777216.0));
  float scale = 1.0f / float(1.0 - p);
  return B.CreateSelect(B.CreateICmpUGE(r, ConstantInt::get(vi32, thr)), vcf(scale), vcf(0.0));
}

LV* Emitter::normalizeChannels(const Op* op, const ElemCtx& ctx, LV* x) {
  // Lane l holds element e = row * per_sample + col + l of the [batch, C,
  // H, W] input; its channel is (e / channel_size) % C. Each lane's mean and
  // std come from a select chain over the C channels (C is small: an
  // image's colours), then the scalar form's operations (NormalizeMath).
  const auto mean = op->attrs.getDoubles("mean"), sd = op->attrs.getDoubles("std");
  const int64_t cs = op->attrs.getInt("channel_size");
  const Value* in = op->operands[0];
  const int64_t per_sample = in->type.numel() / in->type.shape[0];
  std::vector<Constant*> lanes;
  for (int i = 0; i < W; ++i)
    lanes.push_back(ConstantInt::get(i64, i));
  LV* e = B.CreateAdd(splat(B.CreateAdd(B.CreateMul(ctx.row, c64(per_sample)), ctx.col)),
                      llvm::ConstantVector::get(lanes));
  LV* ch = B.CreateURem(B.CreateUDiv(e, splat(c64(cs))), splat(c64(int64_t(mean.size()))));
  LV* m = vcf(mean[0]);
  LV* s = vcf(sd[0]);
  for (size_t c = 1; c < mean.size(); ++c) {
    LV* is = B.CreateICmpEQ(ch, splat(c64(int64_t(c))));
    m = B.CreateSelect(is, vcf(mean[c]), m);
    s = B.CreateSelect(is, vcf(sd[c]), s);
  }
  VecMath vm{*this};
  return opmath::NormalizeMath::apply(vm, vcf(op->attrs.getDouble("divisor", 1.0)), m, s, x);
}

LV* Emitter::mix(LV* z) {
  Type* t = z->getType();
  z = B.CreateMul(B.CreateXor(z, B.CreateLShr(z, ConstantInt::get(t, 30))),
                  ConstantInt::get(t, 0xBF58476D1CE4E5B9ull));
  z = B.CreateMul(B.CreateXor(z, B.CreateLShr(z, ConstantInt::get(t, 27))),
                  ConstantInt::get(t, 0x94D049BB133111EBull));
  return B.CreateXor(z, B.CreateLShr(z, ConstantInt::get(t, 31)));
}

LV* Emitter::oneHot(const Value* labels, const ElemCtx& ctx) {
  LV* lab =
      B.CreateAlignedLoad(i32, B.CreateInBoundsGEP(i32, bufBase(labels), ctx.row), llvm::Align(4));
  std::vector<Constant*> lanes;
  for (int i = 0; i < W; ++i)
    lanes.push_back(ConstantInt::get(i64, i));
  LV* cols = B.CreateAdd(splat(ctx.col), llvm::ConstantVector::get(lanes));
  LV* eq = B.CreateICmpEQ(cols, splat(B.CreateSExt(lab, i64)));
  return B.CreateSelect(eq, vcf(1.0), vcf(0.0));
}

LV* Emitter::elem(const Op* op, const ElemCtx& ctx, const std::function<LV*(size_t)>& get) {
  if (hasTrait(op->kind, optrait::LossNorm)) {
    // x[2] = 1/count for "mean" (computed in double, then rounded, like
    // PyTorch's norm scalar), 1 for "sum".
    LV* norm = vcf(1.0);
    if (LV* d = lossDivisor(op, op->operands[0]->type.shape[1]))
      norm = splat(B.CreateFPTrunc(
          B.CreateFDiv(cf(1.0, B.getDoubleTy()), B.CreateFPExt(d, B.getDoubleTy())), f32));
    return elemMath(op, [&](size_t i) { return i == 2 ? norm : get(i); });
  }
  if (op->kind == OpKind::Normalize && opmath::NormalizeMath::perChannel(op->attrs))
    return normalizeChannels(op, ctx, get(0));
  if (LV* r = elemMath(op, get)) return r;
  switch (op->kind) {
  case OpKind::NllLossGrad:
  case OpKind::LogSoftmaxNllGrad: {
    if (weightedClassLoss(op)) return weightedClassGrad(op, ctx, get);
    LV* oh = oneHot(op->operands[1], ctx);
    // label_smoothing e: the target distribution (1 - e)*onehot + e/C.
    if (double e = op->attrs.getDouble("label_smoothing", 0.0); e != 0)
      oh = B.CreateFAdd(B.CreateFMul(vcf(1 - e), oh),
                        vcf(e / double(op->operands[0]->type.shape[1])));
    LV* g = op->kind == OpKind::NllLossGrad ? B.CreateFNeg(oh) : B.CreateFSub(exp(get(0)), oh);
    if (LV* d = lossDivisor(op, 1)) g = B.CreateFDiv(g, splat(d));
    return g;
  }
  case OpKind::MseLossGrad:
  case OpKind::BceLossGrad:
  case OpKind::BceWithLogitsGrad:
  case OpKind::SigmoidBceGrad: {
    LV* p = get(0);
    LV* t = get(1);
    LV* g = nullptr;
    if (op->kind == OpKind::MseLossGrad) {
      // PyTorch: norm * (p - y), norm = 2/numel (mean) or 2 (sum)
      LV* norm = vcf(2.0);
      if (LV* d = lossDivisor(op, op->operands[0]->type.shape[1]))
        norm = splat(B.CreateFDiv(cf(2.0, f32), d));
      return B.CreateFMul(norm, B.CreateFSub(p, t));
    } else if (op->kind == OpKind::BceLossGrad) {
      LV* den = B.CreateFMul(B.CreateFSub(vcf(1), p), p);
      den = vmax(den, vcf(1e-12));
      g = B.CreateFDiv(B.CreateFSub(p, t), den);
    } else if (op->kind == OpKind::BceWithLogitsGrad && op->attrs.has("pos_weight")) {
      // torch 1.13: (p_w*t + 1 - t) * sigmoid(z) - p_w*t
      LV* pt = B.CreateFMul(posWeightVec(op, ctx), t);
      g = B.CreateFSub(B.CreateFMul(B.CreateFAdd(pt, B.CreateFSub(vcf(1), t)), sigmoid(p)), pt);
    } else if (op->kind == OpKind::BceWithLogitsGrad)
      g = B.CreateFSub(sigmoid(p), t);
    else
      g = B.CreateFSub(p, t);
    if (LV* d = lossDivisor(op, op->operands[0]->type.shape[1])) g = B.CreateFDiv(g, splat(d));
    return g;
  }
  default:
    break;
  }
  llvm::report_fatal_error(llvm::Twine("descent: not an elementwise op: ") + opName(op->kind));
}

void Emitter::update(const Op* u, LV* g, const ElemCtx& ctx) {
  const Value* w = u->operands[0];
  if (u->attrs.has("clip_value")) { // clip_grad_value_: g.clamp_(-v, v) before step(); NaN stays
    double cv = u->attrs.getDouble("clip_value");
    g = B.CreateSelect(B.CreateFCmpOLT(g, vcf(-cv)), vcf(-cv), g);
    g = B.CreateSelect(B.CreateFCmpOGT(g, vcf(cv)), vcf(cv), g);
  }
  LV* wv = loadOperand(w, ctx);
  if (u->attrs.getBool("maximize")) g = B.CreateFNeg(g); // torch: grad = -grad first
  double wd = u->attrs.getDouble("weight_decay", 0.0);
  // The hyper-parameters a schedule changes are per-step scalars, loaded from
  // the op's slot (compiler/codegen/step_scalars.h), never constants.
  auto scalar = [&](int i) { return splat(stepScalar(u, i)); };
  // ATen's CPU kernels on every x86 CPU with AVX2 fuse `add(b, alpha=a)` into
  // fma(b, a, self) and `addcmul(t1, t2, value=v)` into fma(v*t1, t2, self)
  // (measured on torch 1.13; addcdiv divides, so it rounds twice). The updates
  // below other than SGD's use always-fused llvm.fma there (never fmuladd, which
  // would round twice on a target without FMA), so their numbers are PyTorch's
  // bit for bit given the same gradients, on any --cpu. SGD keeps its two
  // roundings: the notebook model's numbers must not change.
  auto fmaExact = [&](LV* a, LV* b, LV* c) {
    return B.CreateIntrinsic(llvm::Intrinsic::fma, {a->getType()}, {a, b, c});
  };
  auto sqrt = [&](LV* x) { return B.CreateIntrinsic(llvm::Intrinsic::sqrt, {vf}, {x}); };
  if (u->kind == OpKind::SgdUpdate) {
    if (wd != 0) g = B.CreateFAdd(g, B.CreateFMul(wv, vcf(wd))); // d_p.add(param, alpha=wd)
    if (u->operands.size() > 3) {
      const Value* bufv = u->operands[3];
      LV* buf = loadOperand(bufv, ctx);
      LV* mom = scalar(DESCENT_SGD_MOMENTUM);
      double damp = u->attrs.getDouble("dampening", 0.0);
      LV* blended = B.CreateFAdd(B.CreateFMul(buf, mom), B.CreateFMul(g, vcf(1.0 - damp)));
      // torch.optim.SGD: the buffer starts as a copy of the first gradient.
      LV* first = B.CreateICmpSLE(stepArg, c64(1));
      buf = B.CreateSelect(first, g, blended);
      storeValue(bufv, buf, ctx);
      g = u->attrs.getBool("nesterov") ? B.CreateFAdd(g, B.CreateFMul(buf, mom)) : buf;
    }
    // param.add_(d_p, alpha=-lr)
    storeValue(w, B.CreateFAdd(wv, B.CreateFMul(g, B.CreateFNeg(scalar(DESCENT_SGD_LR)))), ctx);
    return;
  }
  if (u->kind == OpKind::RmspropUpdate) { // torch.optim.RMSprop, _single_tensor_rmsprop
    if (wd != 0) g = fmaExact(wv, vcf(wd), g); // grad.add(param, alpha=wd)
    double alpha = u->attrs.getDouble("alpha", 0.99), eps = u->attrs.getDouble("eps", 1e-8);
    bool has_buf = u->attrs.getDouble("momentum", 0.0) > 0;
    const Value* sqv = u->operands[3];
    // square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
    LV* sq = B.CreateFMul(loadOperand(sqv, ctx), vcf(alpha));
    sq = fmaExact(B.CreateFMul(vcf(1.0 - alpha), g), g, sq);
    storeValue(sqv, sq, ctx);
    LV* avg = sq;
    if (u->attrs.getBool("centered")) {
      const Value* gav = u->operands[has_buf ? 5 : 4];
      // grad_avg.mul_(alpha).add_(grad, alpha=1 - alpha); square_avg.addcmul(ga, ga, value=-1)
      LV* ga = B.CreateFMul(loadOperand(gav, ctx), vcf(alpha));
      ga = fmaExact(g, vcf(1.0 - alpha), ga);
      storeValue(gav, ga, ctx);
      avg = fmaExact(B.CreateFNeg(ga), ga, sq);
    }
    avg = B.CreateFAdd(sqrt(avg), vcf(eps));
    LV* lr = B.CreateFNeg(scalar(DESCENT_SGD_LR));
    if (has_buf) { // buf.mul_(momentum).addcdiv_(grad, avg); param.add_(buf, alpha=-lr)
      const Value* bufv = u->operands[4];
      LV* buf = B.CreateFMul(loadOperand(bufv, ctx), scalar(DESCENT_SGD_MOMENTUM));
      buf = B.CreateFAdd(buf, B.CreateFDiv(g, avg));
      storeValue(bufv, buf, ctx);
      storeValue(w, fmaExact(buf, lr, wv), ctx);
    } else { // param.addcdiv_(grad, avg, value=-lr)
      storeValue(w, B.CreateFAdd(wv, B.CreateFDiv(B.CreateFMul(lr, g), avg)), ctx);
    }
    return;
  }
  if (u->kind == OpKind::AdagradUpdate) { // torch.optim.Adagrad, _single_tensor_adagrad
    if (wd != 0) g = fmaExact(wv, vcf(wd), g); // grad.add(param, alpha=wd)
    const Value* sv = u->operands[3];
    LV* sum = loadOperand(sv, ctx);
    // torch.full_like(p, initial_accumulator_value) before the first step
    // (the state starts as zeros here, like every optimizer state).
    double init = u->attrs.getDouble("initial_accumulator_value", 0.0);
    if (init != 0) sum = B.CreateSelect(B.CreateICmpSLE(stepArg, c64(1)), vcf(init), sum);
    sum = fmaExact(g, g, sum); // state_sum.addcmul_(grad, grad, value=1)
    storeValue(sv, sum, ctx);
    LV* std = B.CreateFAdd(sqrt(sum), vcf(u->attrs.getDouble("eps", 1e-10))); // sqrt().add_(eps)
    // param.addcdiv_(grad, std, value=-clr)
    LV* clr = B.CreateFNeg(scalar(DESCENT_SGD_LR));
    storeValue(w, B.CreateFAdd(wv, B.CreateFDiv(B.CreateFMul(clr, g), std)), ctx);
    return;
  }
  if (u->kind == OpKind::AdadeltaUpdate) { // torch.optim.Adadelta, _single_tensor_adadelta
    if (wd != 0) g = fmaExact(wv, vcf(wd), g); // grad.add(param, alpha=wd)
    double rho = u->attrs.getDouble("rho", 0.9);
    LV* eps = vcf(u->attrs.getDouble("eps", 1e-6));
    const Value* sqv = u->operands[3];
    const Value* accv = u->operands[4];
    // square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)
    LV* sq =
        fmaExact(B.CreateFMul(vcf(1.0 - rho), g), g, B.CreateFMul(loadOperand(sqv, ctx), vcf(rho)));
    storeValue(sqv, sq, ctx);
    LV* std = sqrt(B.CreateFAdd(sq, eps)); // square_avg.add(eps).sqrt_()
    // delta = acc_delta.add(eps).sqrt_().div_(std).mul_(grad)
    LV* acc = loadOperand(accv, ctx);
    LV* delta = B.CreateFMul(B.CreateFDiv(sqrt(B.CreateFAdd(acc, eps)), std), g);
    // acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)
    acc = fmaExact(B.CreateFMul(vcf(1.0 - rho), delta), delta, B.CreateFMul(acc, vcf(rho)));
    storeValue(accv, acc, ctx);
    // param.add_(delta, alpha=-lr)
    storeValue(w, fmaExact(delta, B.CreateFNeg(scalar(DESCENT_SGD_LR)), wv), ctx);
    return;
  }
  // AdamW: param.mul_(1 - lr * weight_decay); Adam: grad = grad.add(param, alpha=wd).
  if (u->attrs.getBool("decoupled")) wv = B.CreateFMul(wv, scalar(DESCENT_ADAM_DECAY));
  else if (wd != 0) g = fmaExact(wv, vcf(wd), g);
  double b2 = u->attrs.getDouble("beta2", 0.999);
  double eps = u->attrs.getDouble("eps", 1e-8);
  const Value* mv = u->operands[3];
  const Value* vv = u->operands[4];
  LV* m = loadOperand(mv, ctx);
  LV* v = loadOperand(vv, ctx);
  // exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
  m = fmaExact(g, scalar(DESCENT_ADAM_ONE_MINUS_BETA1),
               B.CreateFMul(m, scalar(DESCENT_ADAM_BETA1)));
  // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
  v = fmaExact(B.CreateFMul(vcf(1.0 - b2), g), g, B.CreateFMul(v, vcf(b2)));
  storeValue(mv, m, ctx);
  storeValue(vv, v, ctx);
  if (u->attrs.getBool("amsgrad")) {
    // torch.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq): NaN propagates.
    const Value* xv = u->operands[5];
    LV* mx = loadOperand(xv, ctx);
    LV* bigger = B.CreateSelect(B.CreateFCmpUGT(v, mx), v, mx); // v NaN or v > mx: v
    mx = B.CreateSelect(B.CreateFCmpUNO(mx, mx), mx, bigger);
    storeValue(xv, mx, ctx);
    v = mx;
  }
  LV* step_size = scalar(DESCENT_ADAM_STEP_SIZE);
  LV* denom = B.CreateFAdd(B.CreateFDiv(sqrt(v), scalar(DESCENT_ADAM_BC2_SQRT)), vcf(eps));
  // param.addcdiv_(m, denom, value=-step_size): w + (-step_size)*m/denom
  storeValue(w, B.CreateFAdd(wv, B.CreateFDiv(B.CreateFMul(B.CreateFNeg(step_size), m), denom)),
             ctx);
}

void Emitter::epilogue(const Kernel& k, std::map<const Value*, LV*> vals, const ElemCtx& ctx,
                       size_t first_op) {
  for (const auto& [v, x] : vals)
    if (k.stores.count(v)) storeValue(v, x, ctx);
  for (size_t oi = first_op; oi < k.ops.size(); ++oi) {
    const Op* op = k.ops[oi];
    auto get = [&](size_t i) -> LV* {
      const Value* o = op->operands[i];
      auto it = vals.find(o);
      if (it != vals.end()) return it->second;
      LV* l = loadOperand(o, ctx);
      vals[o] = l;
      return l;
    };
    if (op == k.sink) {
      update(op, get(1), ctx);
      continue;
    }
    LV* r = elem(op, ctx, get);
    vals[op->result] = r;
    if (k.stores.count(op->result)) storeValue(op->result, r, ctx);
  }
}

} // namespace descent::emit_detail
