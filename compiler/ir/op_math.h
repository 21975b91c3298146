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
#include <string>

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
/// With one value per channel (`mean` and `std` are lists of C values and
/// `channel_size` is H*W), element i of a sample uses channel
/// (i / channel_size) % C: torchvision's mean[:, None, None] broadcast. The
/// engines pick each element's constants (perChannel) and call apply, so
/// both forms run the same operations.
struct NormalizeMath {
  struct P {
    double divisor, mean, std;
  };
  static P params(const Attrs& a) {
    return {a.getDouble("divisor", 1.0), a.getDouble("mean", 0.0), a.getDouble("std", 1.0)};
  }
  static bool perChannel(const Attrs& a) { return a.has("channel_size"); }
  template <class M>
  static typename M::V apply(M& m, typename M::V divisor, typename M::V mean, typename M::V std,
                             typename M::V x) {
    return m.div(m.sub(m.div(x, divisor), mean), std);
  }
  template <class M> static typename M::V eval(M& m, const P& p, const typename M::V* x) {
    return apply(m, m.c(p.divisor), m.c(p.mean), m.c(p.std), x[0]);
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

// --- GELU, SiLU, ELU, Softplus: PyTorch 1.13's scalar CPU kernels -------------------------------
// (aten/src/ATen/native/cpu/Activation.cpp: GeluKernelImpl, GeluBackwardKernelImpl,
// silu_kernel, silu_backward_kernel, elu_kernel, elu_backward_kernel,
// softplus_kernel, softplus_backward_kernel), with the same order of operations.

/// approximate="none": x/2 (1 + erf(x/sqrt 2)); "tanh": x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715
/// x^3))).
struct GeluParams {
  bool tanh;
};
inline GeluParams geluParams(const Attrs& a) {
  return {a.getString("approximate", "none") == "tanh"};
}
inline std::string geluCheck(const Attrs& a) {
  std::string s = a.getString("approximate", "none");
  if (s == "none" || s == "tanh") return {};
  return "approximate must be \"none\" or \"tanh\", got \"" + s + "\"";
}
constexpr double kGeluBeta = 0.79788456080286535588; // sqrt(2) * (2/sqrt(pi)) * 0.5 = sqrt(2/pi)
constexpr double kGeluKappa = 0.044715;
constexpr double kSqrtHalf = 0.70710678118654752440; // M_SQRT1_2
constexpr double kGeluPdf = 0.39894228040143267794; // (2/sqrt(pi)) * sqrt(1/2) * 0.5 = 1/sqrt(2 pi)

struct GeluMath {
  static GeluParams params(const Attrs& a) { return geluParams(a); }
  static std::string check(const Attrs& a) { return geluCheck(a); }
  template <class M> static typename M::V eval(M& m, const GeluParams& p, const typename M::V* in) {
    auto x = in[0];
    if (p.tanh) {
      auto cube = m.mul(m.mul(x, x), x);
      auto inner = m.mul(m.c(kGeluBeta), m.add(x, m.mul(m.c(kGeluKappa), cube)));
      return m.mul(m.mul(m.c(0.5), x), m.add(m.c(1), m.tanh(inner)));
    }
    return m.mul(m.mul(x, m.c(0.5)), m.add(m.c(1), m.erf(m.mul(x, m.c(kSqrtHalf)))));
  }
};
/// (dy, x)
struct GeluGradMath {
  static GeluParams params(const Attrs& a) { return geluParams(a); }
  static std::string check(const Attrs& a) { return geluCheck(a); }
  template <class M> static typename M::V eval(M& m, const GeluParams& p, const typename M::V* in) {
    auto dy = in[0], x = in[1];
    if (p.tanh) {
      auto sq = m.mul(x, x);
      auto cube = m.mul(sq, x);
      auto t = m.tanh(m.mul(m.c(kGeluBeta), m.add(x, m.mul(m.c(kGeluKappa), cube))));
      auto left = m.mul(m.c(0.5), x);
      auto right = m.add(m.c(1), t);
      auto left_d = m.mul(m.c(0.5), right);
      auto tanh_d = m.sub(m.c(1), m.mul(t, t));
      auto inner_d =
          m.mul(m.c(kGeluBeta), m.add(m.c(1), m.mul(m.mul(m.c(3), m.c(kGeluKappa)), sq)));
      auto right_d = m.mul(m.mul(left, tanh_d), inner_d);
      return m.mul(dy, m.add(left_d, right_d));
    }
    auto cdf = m.mul(m.c(0.5), m.add(m.c(1), m.erf(m.mul(x, m.c(kSqrtHalf)))));
    auto pdf = m.mul(m.c(kGeluPdf), m.exp(m.mul(m.mul(x, x), m.c(-0.5))));
    return m.mul(dy, m.add(cdf, m.mul(x, pdf)));
  }
};

/// x / (1 + exp(-x))
struct SiluMath : Plain<SiluMath> {
  template <class M> static typename M::V eval(M& m, NoParams, const typename M::V* in) {
    return m.div(in[0], m.add(m.c(1), m.exp(m.neg(in[0]))));
  }
};
/// (dy, x): dy * s * (1 + x (1 - s)), s = sigmoid(x)
struct SiluGradMath : Plain<SiluGradMath> {
  template <class M> static typename M::V eval(M& m, NoParams, const typename M::V* in) {
    auto dy = in[0], x = in[1];
    auto s = m.div(m.c(1), m.add(m.c(1), m.exp(m.neg(x))));
    return m.mul(m.mul(dy, s), m.add(m.c(1), m.mul(x, m.sub(m.c(1), s))));
  }
};

/// x <= 0 ? (exp(x) - 1) * alpha : x   (nn.ELU: scale = input_scale = 1,
/// whose multiplications are exact and left out)
struct EluParams {
  double alpha;
};
struct EluMath {
  static EluParams params(const Attrs& a) { return {a.getDouble("alpha", 1.0)}; }
  template <class M> static typename M::V eval(M& m, const EluParams& p, const typename M::V* in) {
    auto x = in[0];
    return m.select(m.le(x, m.c(0)), m.mul(m.sub(m.exp(x), m.c(1)), m.c(p.alpha)), x);
  }
};
/// (dy, x): x <= 0 ? dy * alpha * exp(x) : dy   (is_result = false: the input is saved)
struct EluGradMath {
  static EluParams params(const Attrs& a) { return {a.getDouble("alpha", 1.0)}; }
  template <class M> static typename M::V eval(M& m, const EluParams& p, const typename M::V* in) {
    auto dy = in[0], x = in[1];
    return m.select(m.le(x, m.c(0)), m.mul(m.mul(dy, m.c(p.alpha)), m.exp(x)), dy);
  }
};

/// x*beta > threshold ? x : log1p(exp(x*beta)) / beta
struct SoftplusParams {
  double beta, threshold;
};
inline SoftplusParams softplusParams(const Attrs& a) {
  return {a.getDouble("beta", 1.0), a.getDouble("threshold", 20.0)};
}
inline std::string softplusCheck(const Attrs& a) {
  return a.getDouble("beta", 1.0) == 0 ? "softplus beta must not be 0" : "";
}
struct SoftplusMath {
  static SoftplusParams params(const Attrs& a) { return softplusParams(a); }
  static std::string check(const Attrs& a) { return softplusCheck(a); }
  template <class M>
  static typename M::V eval(M& m, const SoftplusParams& p, const typename M::V* in) {
    auto x = in[0];
    auto xb = m.mul(x, m.c(p.beta));
    return m.select(m.gt(xb, m.c(p.threshold)), x, m.div(m.log1p(m.exp(xb)), m.c(p.beta)));
  }
};
/// (dy, x): x*beta > threshold ? dy : dy * z / (z + 1), z = exp(x*beta)
struct SoftplusGradMath {
  static SoftplusParams params(const Attrs& a) { return softplusParams(a); }
  static std::string check(const Attrs& a) { return softplusCheck(a); }
  template <class M>
  static typename M::V eval(M& m, const SoftplusParams& p, const typename M::V* in) {
    auto dy = in[0], x = in[1];
    auto xb = m.mul(x, m.c(p.beta));
    auto z = m.exp(xb);
    return m.select(m.gt(xb, m.c(p.threshold)), dy, m.div(m.mul(dy, z), m.add(z, m.c(1))));
  }
};

// --- real-target losses (PyTorch 1.13's CPU kernels) ------------------------------------------
//
// A loss op's struct is its per-element term (the kernel sums the terms and
// divides by the element count for reduction "mean"); its gradient's struct
// reads x[0] = prediction, x[1] = target, x[2] = norm (1/count for "mean",
// 1 for "sum"), in the order of PyTorch's backward kernel with grad_output 1.
// Where ATen has a vector and a scalar form, the vector one is written: it is
// what runs on all but the tail of a contiguous tensor.

/// L1Loss: |p - y| (composite in 1.13: abs, then mean/sum).
struct L1LossMath : Plain<L1LossMath> {
  template <class M> static typename M::V eval(M& m, NoParams, const typename M::V* x) {
    typename M::V d = m.sub(x[0], x[1]);
    return m.select(m.gt(d, m.c(0)), d, m.neg(d));
  }
};
/// Autograd through abs and mean: norm * sgn(p - y), sgn(0) = 0.
struct L1LossGradMath : Plain<L1LossGradMath> {
  template <class M> static typename M::V eval(M& m, NoParams, const typename M::V* x) {
    typename M::V d = m.sub(x[0], x[1]);
    typename M::V sgn =
        m.select(m.gt(d, m.c(0)), m.c(1), m.select(m.gt(m.c(0), d), m.c(-1), m.c(0)));
    return m.mul(x[2], sgn);
  }
};

/// SmoothL1Loss(beta): z = |p - y|; z >= beta ? z - 0.5*beta : 0.5*z*z/beta.
struct SmoothL1LossMath {
  struct P {
    double beta;
  };
  static P params(const Attrs& a) { return {a.getDouble("beta", 1.0)}; }
  template <class M> static typename M::V eval(M& m, const P& p, const typename M::V* x) {
    typename M::V d = m.sub(x[0], x[1]);
    typename M::V z = m.select(m.gt(d, m.c(0)), d, m.neg(d));
    typename M::V beta = m.c(p.beta);
    return m.select(m.le(beta, z), m.sub(z, m.mul(m.c(0.5), beta)),
                    m.div(m.mul(m.mul(m.c(0.5), z), z), beta));
  }
};
/// norm * (|x| >= beta ? (x > 0 ? 1 : -1) : x / beta), x = p - y.
struct SmoothL1LossGradMath {
  using P = SmoothL1LossMath::P;
  static P params(const Attrs& a) { return SmoothL1LossMath::params(a); }
  template <class M> static typename M::V eval(M& m, const P& p, const typename M::V* x) {
    typename M::V d = m.sub(x[0], x[1]);
    typename M::V z = m.select(m.gt(d, m.c(0)), d, m.neg(d));
    typename M::V beta = m.c(p.beta);
    typename M::V sign = m.select(m.gt(d, m.c(0)), m.c(1), m.c(-1));
    return m.mul(x[2], m.select(m.le(beta, z), sign, m.div(d, beta)));
  }
};

/// HuberLoss(delta): z = |p - y|; z < delta ? 0.5*z*z : delta*(z - 0.5*delta).
struct HuberLossMath {
  struct P {
    double delta;
  };
  static P params(const Attrs& a) { return {a.getDouble("delta", 1.0)}; }
  template <class M> static typename M::V eval(M& m, const P& p, const typename M::V* x) {
    typename M::V d = m.sub(x[0], x[1]);
    typename M::V z = m.select(m.gt(d, m.c(0)), d, m.neg(d));
    typename M::V delta = m.c(p.delta);
    return m.select(m.le(delta, z), m.mul(delta, m.sub(z, m.mul(m.c(0.5), delta))),
                    m.mul(m.mul(m.c(0.5), z), z));
  }
};
/// norm * (|x| >= delta ? (x > 0 ? 1 : -1) * delta : x), x = p - y.
struct HuberLossGradMath {
  using P = HuberLossMath::P;
  static P params(const Attrs& a) { return HuberLossMath::params(a); }
  template <class M> static typename M::V eval(M& m, const P& p, const typename M::V* x) {
    typename M::V d = m.sub(x[0], x[1]);
    typename M::V z = m.select(m.gt(d, m.c(0)), d, m.neg(d));
    typename M::V delta = m.c(p.delta);
    typename M::V sign = m.select(m.gt(d, m.c(0)), m.c(1), m.c(-1));
    return m.mul(x[2], m.select(m.le(delta, z), m.mul(sign, delta), d));
  }
};

// --- gradient clipping --------------------------------------------------------------------------

/// torch.nn.utils.clip_grad_norm_ 1.13 from the total norm:
///   clip_coef = max_norm / (total_norm + 1e-6)   (Tensor.__rtruediv__ is
///               reciprocal() * max_norm: two float roundings)
///   clip_coef_clamped = clamp(clip_coef, max=1.0)  (NaN stays NaN)
struct ClipCoefMath {
  struct P {
    double max_norm;
  };
  static P params(const Attrs& a) { return {a.getDouble("max_norm", 1.0)}; }
  static std::string check(const Attrs& a) {
    if (!(a.getDouble("max_norm", 1.0) >= 0)) return "clip_coef: max_norm must be >= 0";
    return {};
  }
  template <class M> static typename M::V eval(M& m, const P& p, const typename M::V* x) {
    typename M::V coef = m.mul(m.div(m.c(1), m.add(x[0], m.c(1e-6))), m.c(p.max_norm));
    return m.select(m.gt(coef, m.c(1)), m.c(1), coef);
  }
};

/// KLDivLoss, torch 1.13's kl_div: log_target ? exp(y)*(y - x) : xlogy(y, y) - y*x
/// (x the input log-probabilities; xlogy(0, 0) = 0).
struct KlDivLossMath {
  struct P {
    bool log_target;
  };
  static P params(const Attrs& a) { return {a.getBool("log_target", false)}; }
  template <class M> static typename M::V eval(M& m, const P& p, const typename M::V* x) {
    if (p.log_target) return m.mul(m.exp(x[1]), m.sub(x[1], x[0]));
    typename M::V ylogy = m.select(m.gt(x[1], m.c(0)), m.mul(x[1], m.log(x[1])), m.c(0));
    return m.sub(ylogy, m.mul(x[1], x[0]));
  }
};
/// norm * (log_target ? -exp(y) : -y); norm = 1/numel (mean), 1/B (batchmean), 1 (sum).
struct KlDivLossGradMath {
  using P = KlDivLossMath::P;
  static P params(const Attrs& a) { return KlDivLossMath::params(a); }
  template <class M> static typename M::V eval(M& m, const P& p, const typename M::V* x) {
    return m.mul(x[2], m.neg(p.log_target ? m.exp(x[1]) : x[1]));
  }
};

} // namespace descent::opmath
