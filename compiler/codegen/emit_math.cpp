// The emitter's math library: Cephes-style exp, log and tanh, sigmoid, erf
// and log1p on any float scalar or vector type (llvm.exp on vectors would
// become scalar expf calls).
#include "compiler/codegen/emitter.h"

#include <cmath>

namespace descent::emit_detail {

Type* Emitter::intLike(LV* like) {
  if (auto* vt = llvm::dyn_cast<llvm::FixedVectorType>(like->getType()))
    return llvm::FixedVectorType::get(i32, vt->getNumElements());
  return i32;
}

LV* Emitter::exp(LV* x) {
  // exp(x) = 2^k * e^r, k = round(x*log2(e)), r = x - k*ln2 (two-part ln2),
  // e^r by a degree-6 polynomial (Cephes expf, ~1 ulp).
  LV* xc =
      B.CreateSelect(B.CreateFCmpOGT(x, cst(x, 88.3762626647949)), cst(x, 88.3762626647949), x);
  xc = B.CreateSelect(B.CreateFCmpOLT(xc, cst(xc, -87.3365447505531)), cst(xc, -87.3365447505531),
                      xc);
  LV* fx = B.CreateIntrinsic(llvm::Intrinsic::floor, {x->getType()},
                             {fma(xc, cst(x, 1.44269504088896341), cst(x, 0.5))});
  LV* r = B.CreateFSub(xc, B.CreateFMul(fx, cst(x, 0.693359375)));
  r = B.CreateFSub(r, B.CreateFMul(fx, cst(x, -2.12194440e-4)));
  LV* z = B.CreateFMul(r, r);
  LV* y = cst(x, 1.9875691500E-4);
  y = fma(y, r, cst(x, 1.3981999507E-3));
  y = fma(y, r, cst(x, 8.3334519073E-3));
  y = fma(y, r, cst(x, 4.1665795894E-2));
  y = fma(y, r, cst(x, 1.6666665459E-1));
  y = fma(y, r, cst(x, 5.0000001201E-1));
  y = fma(y, z, B.CreateFAdd(r, cst(x, 1.0)));
  Type* it = intLike(x);
  LV* k = B.CreateFPToSI(fx, it);
  LV* pow2 =
      B.CreateBitCast(B.CreateShl(B.CreateAdd(k, icst(it, 127)), icst(it, 23)), x->getType());
  LV* res = B.CreateFMul(y, pow2);
  // Below the clamp the true value underflows: return 0 like expf.
  return B.CreateSelect(B.CreateFCmpOLT(x, cst(x, -87.3365447505531)), cst(x, 0.0), res);
}

LV* Emitter::log(LV* x) {
  // log(x) = e*ln2 + log(m), m in [sqrt(1/2), sqrt(2)), Cephes logf polynomial.
  Type* it = intLike(x);
  LV* xi = B.CreateBitCast(x, it);
  LV* e = B.CreateSub(B.CreateLShr(xi, icst(it, 23)), icst(it, 126));
  LV* m = B.CreateBitCast(B.CreateOr(B.CreateAnd(xi, icst(it, 0x807fffff)), icst(it, 0x3f000000)),
                          x->getType()); // [0.5, 1)
  LV* ef = B.CreateSIToFP(e, x->getType());
  LV* small = B.CreateFCmpOLT(m, cst(x, 0.707106781186547524));
  ef = B.CreateSelect(small, B.CreateFSub(ef, cst(x, 1.0)), ef);
  LV* t = B.CreateSelect(small, B.CreateFAdd(m, m), m);
  t = B.CreateFSub(t, cst(x, 1.0));
  LV* z = B.CreateFMul(t, t);
  LV* y = cst(x, 7.0376836292E-2);
  for (double c : {-1.1514610310E-1, 1.1676998740E-1, -1.2420140846E-1, 1.4249322787E-1,
                   -1.6668057665E-1, 2.0000714765E-1, -2.4999993993E-1, 3.3333331174E-1})
    y = fma(y, t, cst(x, c));
  y = B.CreateFMul(B.CreateFMul(y, t), z);
  y = fma(ef, cst(x, -2.12194440e-4), y);
  y = fma(z, cst(x, -0.5), y);
  LV* r = B.CreateFAdd(t, y);
  r = fma(ef, cst(x, 0.693359375), r);
  // Denormals are flushed (FTZ/DAZ), so x <= 0 covers them: -inf at 0, NaN below.
  r = B.CreateSelect(B.CreateFCmpOEQ(x, cst(x, 0.0)), cst(x, -INFINITY), r);
  r = B.CreateSelect(B.CreateFCmpOLT(x, cst(x, 0.0)), cst(x, NAN), r);
  r = B.CreateSelect(B.CreateFCmpOEQ(x, cst(x, INFINITY)), cst(x, INFINITY), r);
  return r;
}

LV* Emitter::sigmoid(LV* x) {
  return B.CreateFDiv(cst(x, 1.0), B.CreateFAdd(cst(x, 1.0), exp(B.CreateFNeg(x))));
}

LV* Emitter::tanh(LV* x) {
  // |x| < 0.625: odd polynomial (Cephes tanhf); else 1 - 2/(exp(2|x|)+1) with the sign of x.
  LV* ax = B.CreateIntrinsic(llvm::Intrinsic::fabs, {x->getType()}, {x});
  LV* z = B.CreateFMul(x, x);
  LV* p = cst(x, -5.70498872745E-3);
  for (double c : {2.06390887954E-2, -5.37397155531E-2, 1.33314422036E-1, -3.33332819422E-1})
    p = fma(p, z, cst(x, c));
  LV* small = fma(B.CreateFMul(p, z), x, x);
  LV* e = exp(B.CreateFAdd(ax, ax));
  LV* big = B.CreateFSub(cst(x, 1.0), B.CreateFDiv(cst(x, 2.0), B.CreateFAdd(e, cst(x, 1.0))));
  big = B.CreateIntrinsic(llvm::Intrinsic::copysign, {x->getType()}, {big, x});
  return B.CreateSelect(B.CreateFCmpOLT(ax, cst(x, 0.625)), small, big);
}

LV* Emitter::erf(LV* x) {
  LV* ax = B.CreateIntrinsic(llvm::Intrinsic::fabs, {x->getType()}, {x});
  LV* z = B.CreateFMul(x, x);
  LV* p = cst(x, -1.0 / 1320);
  for (double c : {1.0 / 216, -1.0 / 42, 1.0 / 10, -1.0 / 3, 1.0})
    p = fma(p, z, cst(x, c));
  LV* small = B.CreateFMul(B.CreateFMul(p, x), cst(x, 1.12837916709551257)); // 2/sqrt(pi)
  LV* t = B.CreateFDiv(cst(x, 1.0), fma(ax, cst(x, 0.3275911), cst(x, 1.0)));
  LV* q = cst(x, 1.061405429);
  for (double c : {-1.453152027, 1.421413741, -0.284496736, 0.254829592})
    q = fma(q, t, cst(x, c));
  LV* big = B.CreateFSub(cst(x, 1.0), B.CreateFMul(B.CreateFMul(q, t), exp(B.CreateFNeg(z))));
  big = B.CreateIntrinsic(llvm::Intrinsic::copysign, {x->getType()}, {big, x});
  return B.CreateSelect(B.CreateFCmpOLT(ax, cst(x, 0.5)), small, big);
}

LV* Emitter::log1p(LV* u) {
  LV* w = B.CreateFAdd(cst(u, 1.0), u);
  LV* r = B.CreateFSub(log(w), B.CreateFDiv(B.CreateFSub(B.CreateFSub(w, cst(u, 1.0)), u), w));
  return B.CreateSelect(B.CreateFCmpOEQ(u, cst(u, INFINITY)), u, r);
}

} // namespace descent::emit_detail
