// What the elementwise ops compute, written once as templates over a "math
// backend" M. The interpreter instantiates them with a scalar backend (float
// or double, std:: functions: the reference semantics); the LLVM emitter with
// a vector backend (its own vectorized exp/log/tanh/erf), so both engines run
// the same sequence of operations. No LLVM here.
//
// A backend provides:
//   using V (a value) and Mask (a comparison result);
//   V c(double)                      a constant, rounded to the backend's float type;
//   V add/sub/mul/div(V, V), neg(V);
//   V exp/log/log1p/tanh/erf(V);
//   Mask gt(V, V), le(V, V); V select(Mask, V if-true, V if-false).
//
// Each op is a struct with `P params(const Attrs&)` (its attributes decoded
// once per op, not per element) and `V eval(M&, const P&, const V* x)`, x[i]
// being operand i. ops.def names the struct in its math column; ops without
// elementwise math (GEMM, row and loss kernels) name NoMath.
#pragma once

#include "compiler/ir/graph.h"

#include <cmath>

namespace descent::opmath {

/// Ops whose computation is not an elementwise expression.
struct NoMath {};

/// Attribute-free ops.
struct NoParams {};
template <class Self> struct Plain {
  static NoParams params(const Attrs&) { return {}; }
};

// --- arithmetic ---------------------------------------------------------------------------------

struct AddMath : Plain<AddMath> {
  template <class M> static typename M::V eval(M& m, NoParams, const typename M::V* x) {
    return m.add(x[0], x[1]);
  }
};

struct MulMath : Plain<MulMath> {
  template <class M> static typename M::V eval(M& m, NoParams, const typename M::V* x) {
    return m.mul(x[0], x[1]);
  }
};

/// ToTensor's x/divisor, then Normalize's (x - mean)/std, in that order.
struct NormalizeMath {
  struct P {
    double divisor, mean, std;
  };
  static P params(const Attrs& a) {
    return {a.getDouble("divisor", 1.0), a.getDouble("mean", 0.0), a.getDouble("std", 1.0)};
  }
  template <class M> static typename M::V eval(M& m, const P& p, const typename M::V* x) {
    return m.div(m.sub(m.div(x[0], m.c(p.divisor)), m.c(p.mean)), m.c(p.std));
  }
};

// --- activations and their gradients (PyTorch 1.13's CPU kernels) ------------------------------

struct ReluMath : Plain<ReluMath> {
  template <class M> static typename M::V eval(M& m, NoParams, const typename M::V* x) {
    return m.select(m.gt(x[0], m.c(0)), x[0], m.c(0));
  }
};
/// (dy, y): dy where the saved output is positive.
struct ReluGradMath : Plain<ReluGradMath> {
  template <class M> static typename M::V eval(M& m, NoParams, const typename M::V* x) {
    return m.select(m.gt(x[1], m.c(0)), x[0], m.c(0));
  }
};

struct SigmoidMath : Plain<SigmoidMath> {
  template <class M> static typename M::V eval(M& m, NoParams, const typename M::V* x) {
    return m.div(m.c(1), m.add(m.c(1), m.exp(m.neg(x[0]))));
  }
};
/// (dy, y): dy * (1 - y) * y.
struct SigmoidGradMath : Plain<SigmoidGradMath> {
  template <class M> static typename M::V eval(M& m, NoParams, const typename M::V* x) {
    return m.mul(m.mul(x[0], m.sub(m.c(1), x[1])), x[1]);
  }
};

struct TanhMath : Plain<TanhMath> {
  template <class M> static typename M::V eval(M& m, NoParams, const typename M::V* x) {
    return m.tanh(x[0]);
  }
};
/// (dy, y): dy * (1 - y*y).
struct TanhGradMath : Plain<TanhGradMath> {
  template <class M> static typename M::V eval(M& m, NoParams, const typename M::V* x) {
    return m.mul(x[0], m.sub(m.c(1), m.mul(x[1], x[1])));
  }
};

struct SlopeParams {
  double slope;
};
inline SlopeParams slopeParams(const Attrs& a) {
  return {a.getDouble("negative_slope", 0.01)};
}

struct LeakyReluMath {
  static SlopeParams params(const Attrs& a) { return slopeParams(a); }
  template <class M> static typename M::V eval(M& m, const SlopeParams& p, const typename M::V* x) {
    return m.select(m.gt(x[0], m.c(0)), x[0], m.mul(x[0], m.c(p.slope)));
  }
};
/// (dy, x): PyTorch saves the input.
struct LeakyReluGradMath {
  static SlopeParams params(const Attrs& a) { return slopeParams(a); }
  template <class M> static typename M::V eval(M& m, const SlopeParams& p, const typename M::V* x) {
    return m.select(m.gt(x[1], m.c(0)), x[0], m.mul(x[0], m.c(p.slope)));
  }
};

} // namespace descent::opmath
