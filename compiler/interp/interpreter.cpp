// Reference interpreter (see interpreter.h). Elementwise ops evaluate their
// math from compiler/ir/op_math.h (ops.def's math column) with a scalar
// backend; the other ops have one small function each. Every loop is the
// textbook definition, with PyTorch's order of operations
// (e.g. ToTensor's x/255 before Normalize, max-subtracted softmax, the
// torch.optim update sequences) so fp32 results stay within rounding of it.
#include "compiler/interp/interpreter.h"

#include "compiler/interp/dropout_rng.h"
#include "compiler/ir/op_defs.h"
#include "compiler/ir/op_math.h"
#include "compiler/ir/window_attrs.h"
#include "compiler/passes/sync_batchnorm.h"
#include "compiler/support/window2d.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>
#include <fmt/format.h>
#include <limits>
#include <stdexcept>
#include <type_traits>

namespace descent {

namespace {

template <typename T> using Buf = std::vector<T>;

// Rows and columns, for the ops whose shape rules require rank 2 (matmul,
// the row ops, sum_rows, the class losses). Elementwise ops and views loop
// over the flat row-major elements instead, so they take any rank.
int64_t rows(const Value* v) { return v->type.shape[0]; }
int64_t cols(const Value* v) { return v->type.rank() >= 2 ? v->type.shape[1] : 1; }

/// The reduction divisor of a loss: batch rows for class losses (NLL), all
/// elements for real-valued ones (MSE, BCE), 1 for reduction=sum.
template <typename T> T reductionDivisor(const Op& op, int64_t count) {
  const std::string r = op.attrs.getString("reduction", "mean");
  // KLDivLoss's "batchmean": the sum over the batch rows.
  if (r == "batchmean") return T(op.operands[0]->type.shape[0]);
  return r == "mean" ? T(count) : T(1);
}

/// The math backend of the reference semantics: scalars of type T and the
/// std:: functions (compiler/ir/op_math.h).
template <typename T> struct ScalarMath {
  using V = T;
  using Mask = bool;
  V c(double v) const { return T(v); }
  V add(V a, V b) const { return a + b; }
  V sub(V a, V b) const { return a - b; }
  V mul(V a, V b) const { return a * b; }
  V div(V a, V b) const { return a / b; }
  V neg(V a) const { return -a; }
  V exp(V a) const { return std::exp(a); }
  V log(V a) const { return std::log(a); }
  V log1p(V a) const { return std::log1p(a); }
  V tanh(V a) const { return std::tanh(a); }
  V erf(V a) const { return std::erf(a); }
  Mask gt(V a, V b) const { return a > b; }
  Mask le(V a, V b) const { return a <= b; }
  V select(Mask m, V a, V b) const { return m ? a : b; }
};

template <typename T> class Interp {
public:
  Interp(const Graph& g, const InterpInputs<T>& in, InterpState<T>& st) : g_(g), in_(in), st_(st) {}

  std::map<std::string, Buf<T>> run(std::unordered_map<const Value*, Buf<T>>* trace) {
    bind();
    for (const auto& op : g_.ops()) {
      if (op->result) {
        Buf<T> out(size_t(op->result->type.numel()), T(0));
        exec(*op, out);
        auto& slot = results_[op->result];
        slot = std::move(out);
        env_[op->result] = &slot;
      } else {
        Buf<T> unused;
        exec(*op, unused);
      }
    }
    std::map<std::string, Buf<T>> outs;
    for (const auto& [name, v] : g_.outputs()) outs[name] = get(v);
    if (trace)
      for (auto& [v, b] : results_) (*trace)[v] = b;
    return outs;
  }

private:
  void bind() {
    if (st_.params.size() != g_.params().size())
      throw std::invalid_argument(fmt::format("interpreter: {} params given, graph has {}",
                                              st_.params.size(), g_.params().size()));
    if (st_.states.size() != g_.states().size())
      throw std::invalid_argument(fmt::format("interpreter: {} states given, graph has {}",
                                              st_.states.size(), g_.states().size()));
    for (const Value* v : g_.inputs()) {
      auto it = in_.values.find(v->name);
      if (it == in_.values.end())
        throw std::invalid_argument(fmt::format("interpreter: missing input %{}", v->name));
      check(v, it->second);
      env_[v] = const_cast<Buf<T>*>(&it->second); // inputs are only read
    }
    for (size_t i = 0; i < g_.params().size(); ++i) {
      check(g_.params()[i], st_.params[i]);
      env_[g_.params()[i]] = &st_.params[i];
    }
    for (size_t i = 0; i < g_.states().size(); ++i) {
      check(g_.states()[i], st_.states[i]);
      env_[g_.states()[i]] = &st_.states[i];
    }
  }

  static void check(const Value* v, const Buf<T>& b) {
    if (int64_t(b.size()) != v->type.numel())
      throw std::invalid_argument(fmt::format("interpreter: %{} needs {} elements ({}), got {}",
                                              v->name, v->type.numel(), v->type.str(), b.size()));
  }

  const Buf<T>& get(const Value* v) const { return *env_.at(v); }
  Buf<T>& mut(const Value* v) { return *env_.at(v); }

  /// Evaluates an op's math (ops.def's math column) element by element over
  /// the flat row-major buffers, so any rank; an operand with fewer elements
  /// (add_bias's [N] bias) repeats along the rows. A loss (Reduction) sums its terms, divided by their count for
  /// "mean"; a loss gradient (LossNorm) also reads x[2] = 1/count or 1, as
  /// PyTorch's backward kernels scale. False for ops without elementwise math.
  template <class Math> bool evalMath(const Op& op, Buf<T>& out) {
    if constexpr (std::is_same_v<Math, opmath::NoMath>) {
      return false;
    } else {
      auto p = Math::params(op.attrs);
      ScalarMath<T> m;
      const size_t n = op.operands.size();
      assert(n <= 2);
      const Buf<T>* in[2] = {&get(op.operands[0]), n > 1 ? &get(op.operands[1]) : nullptr};
      const auto count = int64_t(in[0]->size());
      T x[3] = {T(0), T(0), T(1.0 / double(reductionDivisor<double>(op, count)))};
      if (hasTrait(op.kind, optrait::Reduction)) {
        T sum = T(0);
        for (size_t i = 0; i < in[0]->size(); ++i) {
          for (size_t k = 0; k < n; ++k)
            x[k] = (*in[k])[i];
          sum += Math::eval(m, p, x);
        }
        out[0] = sum / reductionDivisor<T>(op, count);
        return true;
      }
      for (size_t i = 0; i < out.size(); ++i) {
        for (size_t k = 0; k < n; ++k) x[k] = (*in[k])[i % in[k]->size()];
        out[i] = Math::eval(m, p, x);
      }
      return true;
    }
  }

  bool execMath(const Op& op, Buf<T>& out) {
    switch (op.kind) {
#define OP(Enum, Name, Min, Max, Cat, Shape, Traits, Grad, Math)                                   \
  case OpKind::Enum: return evalMath<opmath::Math>(op, out);
#include "compiler/ir/ops.def"
#undef OP
    }
    return false;
  }

  /// Normalize with one mean and std per channel: torchvision's
  /// (x - mean[c]) / std[c], c = (i / channel_size) % C for element i.
  void normalizeChannels(const Op& op, Buf<T>& out) {
    const Buf<T>& x = get(op.operands[0]);
    const auto mean = op.attrs.getDoubles("mean"), sd = op.attrs.getDoubles("std");
    const auto cs = size_t(op.attrs.getInt("channel_size"));
    ScalarMath<T> m;
    const T divisor = m.c(op.attrs.getDouble("divisor", 1.0));
    for (size_t i = 0; i < out.size(); ++i) {
      const size_t c = (i / cs) % mean.size();
      out[i] = opmath::NormalizeMath::apply(m, divisor, m.c(mean[c]), m.c(sd[c]), x[i]);
    }
  }

  void exec(const Op& op, Buf<T>& out) {
    if (op.kind == OpKind::Normalize && opmath::NormalizeMath::perChannel(op.attrs))
      return normalizeChannels(op, out);
    if (execMath(op, out)) return;
    const auto& o = op.operands;
    switch (op.kind) {
    case OpKind::MatMul: return matmul(op, out);
    case OpKind::Softmax: return softmax(o[0], out, false);
    case OpKind::LogSoftmax: return softmax(o[0], out, true);
    case OpKind::DropoutMask: return dropoutMask(op, out);
    case OpKind::NllLoss: return nllLoss(op, out);
    case OpKind::MseLoss: return realLoss(op, out, [](T p, T y) { T d = p - y; return d * d; });
    case OpKind::BceLoss:
      // PyTorch: (y - 1) * max(log1p(-p), -100) - y * max(log(p), -100).
      return realLoss(op, out, [](T p, T y) {
        return (y - T(1)) * std::max(T(std::log1p(-p)), T(-100)) - y * std::max(T(std::log(p)), T(-100));
      });
    case OpKind::BceWithLogits:
      if (op.attrs.has("pos_weight")) return posWeightBceLoss(op, out);
      // PyTorch's stable form: (1-y)*z + m + log(exp(-m) + exp(-z-m)), m = max(-z, 0).
      return realLoss(op, out, [](T z, T y) {
        T m = std::max(-z, T(0));
        return (T(1) - y) * z + m + std::log(std::exp(-m) + std::exp(-z - m));
      });
    case OpKind::CountCorrect: return countCorrect(op, out);
    case OpKind::SoftmaxGrad: return softmaxGrad(o[0], o[1], out, false);
    case OpKind::LogSoftmaxGrad: return softmaxGrad(o[0], o[1], out, true);
    case OpKind::SumRows: {
      const Buf<T>& x = get(o[0]);
      int64_t m = rows(o[0]), n = cols(o[0]);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) out[j] += x[i * n + j];
      return;
    }
    case OpKind::NllLossGrad: return classGrad(op, out, false);
    case OpKind::LogSoftmaxNllGrad: return classGrad(op, out, true);
    case OpKind::MseLossGrad: {
      // PyTorch: norm * (p - y) with norm = 2/numel (mean) or 2 (sum).
      T norm = T(2) / reductionDivisor<T>(op, o[0]->type.numel());
      return map2(o[0], o[1], out, [norm](T p, T y) { return norm * (p - y); });
    }
    case OpKind::BceLossGrad: {
      // PyTorch: (p - y) / max((1 - p) * p, 1e-12), then / numel for mean.
      T div = reductionDivisor<T>(op, o[0]->type.numel());
      return map2(o[0], o[1], out, [div](T p, T y) {
        return (p - y) / std::max((T(1) - p) * p, T(1e-12)) / div;
      });
    }
    case OpKind::BceWithLogitsGrad: {
      T div = reductionDivisor<T>(op, o[0]->type.numel());
      if (op.attrs.has("pos_weight")) {
        // torch 1.13's backward: ((p*y + 1 - y) * sigmoid(z) - p*y) / N.
        const Buf<T>&z = get(o[0]), &y = get(o[1]);
        for (size_t i = 0; i < z.size(); ++i) {
          T py = posWeight(op, i) * y[i];
          out[i] = ((py + T(1) - y[i]) * (T(1) / (T(1) + std::exp(-z[i]))) - py) / div;
        }
        return;
      }
      return map2(o[0], o[1], out, [div](T z, T y) { return (T(1) / (T(1) + std::exp(-z)) - y) / div; });
    }
    case OpKind::SigmoidBceGrad: {
      T div = reductionDivisor<T>(op, o[0]->type.numel());
      return map2(o[0], o[1], out, [div](T s, T y) { return (s - y) / div; });
    }
    case OpKind::GradNorm:
      return gradNorm(op, out);
    case OpKind::Flatten:
    case OpKind::ReshapeAs:
      // Views (flatten, reshape_as): the same elements in row-major order,
      // so the result is a copy of operand 0 whatever the two shapes are.
      out = get(o[0]);
      return;
    case OpKind::Conv2d:
      return conv2d(op, out);
    case OpKind::Conv2dInputGrad:
      return conv2dInputGrad(op, out);
    case OpKind::Conv2dWeightGrad:
      return conv2dWeightGrad(op, out);
    case OpKind::ChannelSum:
      return channelSum(op, out);
    case OpKind::MaxPool2d:
      return maxPool2d(op, out, nullptr);
    case OpKind::MaxPool2dGrad:
      return maxPool2d(op, out, &get(o[0]));
    case OpKind::AvgPool2d:
      return avgPool2d(op, out, nullptr);
    case OpKind::AvgPool2dGrad:
      return avgPool2d(op, out, &get(o[0]));
    case OpKind::AdaptiveAvgPool2d:
      return adaptiveAvgPool2d(op, out, nullptr);
    case OpKind::AdaptiveAvgPool2dGrad:
      return adaptiveAvgPool2d(op, out, &get(o[0]));
    case OpKind::BatchNormStats:
      return batchNormStats(op, out);
    case OpKind::BatchNormEvalStats:
      return batchNormEvalStats(op, out);
    case OpKind::BatchNorm:
      return batchNorm(op, out);
    case OpKind::BatchNormUpdateStats:
      return batchNormUpdateStats(op);
    case OpKind::BatchNormGrad:
    case OpKind::BatchNormWeightGrad:
    case OpKind::BatchNormBiasGrad:
      return batchNormGrad(op, out);
    case OpKind::BatchNormSyncStats:
    case OpKind::BatchNormSyncGrad: { // synchronized BatchNorm: sums over the ranks
      if (!in_.sum_ranks)
        throw std::invalid_argument("interpreter: batch_norm_sync needs a reducer");
      const bool stats = op.kind == OpKind::BatchNormSyncStats;
      const auto [B, C, S] = bnDims(o[stats ? 0 : 1]);
      if (stats)
        syncBatchNormStats<T>(get(o[0]).data(), B, C, S, op.attrs.getDouble("eps", 1e-5),
                              in_.sum_ranks, out.data());
      else
        syncBatchNormGrad<T>(get(o[0]).data(), get(o[1]).data(), get(o[2]).data(),
                             o.size() > 3 ? get(o[3]).data() : nullptr, B, C, S, in_.sum_ranks,
                             out.data());
      return;
    }
    case OpKind::SgdUpdate: return sgd(op);
    case OpKind::AdamUpdate: return adam(op);
    case OpKind::RmspropUpdate: return rmsprop(op);
    case OpKind::AdagradUpdate: return adagrad(op);
    case OpKind::AdadeltaUpdate: return adadelta(op);
    case OpKind::AllReduce: // data-parallel training: the runtime sums over the ranks
      if (!in_.reducer) throw std::invalid_argument("interpreter: allreduce needs a reducer");
      out.resize(get(o[0]).size());
      in_.reducer(get(o[0]).data(), out.data(), int64_t(out.size()));
      return;
    default: break;
    }
    assert(false && "an op with neither math nor a kernel in the interpreter");
  }

  // --- convolution and pooling: [B,C,H,W] row-major ---------------------------------------------

  /// The window geometry of one conv2d: x [B,C,H,W], w [O,C/g,kH,kW], y [B,O,Ho,Wo].
  struct ConvDims {
    Window2d w;
    int64_t B, C, H, W, O, Ho, Wo, cg, og; // cg, og: input and output channels per group
    size_t xi(int64_t n, int64_t c, int64_t h, int64_t x) const {
      return size_t(((n * C + c) * H + h) * W + x);
    }
    size_t yi(int64_t n, int64_t o, int64_t h, int64_t x) const {
      return size_t(((n * O + o) * Ho + h) * Wo + x);
    }
    size_t wi(int64_t o, int64_t c, int64_t i, int64_t j) const {
      return size_t(((o * cg + c) * w.kh + i) * w.kw + j);
    }
  };
  static ConvDims convDims(const Window2d& w, const Shape& x, const Shape& y) {
    ConvDims d{w, x[0], x[1], x[2], x[3], y[1], y[2], y[3], x[1] / w.groups, y[1] / w.groups};
    return d;
  }

  /// Calls f(iy, ix, ki, kj) for every kernel tap of output (oy, ox) that
  /// reads inside the input (taps in the zero padding contribute nothing).
  template <typename F> static void taps(const ConvDims& d, int64_t oy, int64_t ox, F f) {
    for (int64_t i = 0; i < d.w.kh; ++i) {
      const int64_t iy = oy * d.w.sh - d.w.pt + i * d.w.dh;
      if (iy < 0 || iy >= d.H) continue;
      for (int64_t j = 0; j < d.w.kw; ++j) {
        const int64_t ix = ox * d.w.sw - d.w.pl + j * d.w.dw;
        if (ix >= 0 && ix < d.W) f(iy, ix, i, j);
      }
    }
  }

  /// torch.nn.functional.conv2d: y[n,o,oy,ox] = b[o] + Σ_{c,i,j} x[n, g·cg + c,
  /// oy·sh - pt + i·dh, ox·sw - pl + j·dw] · w[o,c,i,j], g = o / og (the
  /// cross-correlation; out-of-range taps read the zero padding). The sum
  /// runs over c, i, j in order, the bias last.
  void conv2d(const Op& op, Buf<T>& out) {
    const Value *xv = op.operands[0], *wv = op.operands[1];
    const Buf<T>&x = get(xv), &wt = get(wv);
    const Buf<T>* b = op.operands.size() == 3 ? &get(op.operands[2]) : nullptr;
    const ConvDims d = convDims(convWindow(op.attrs, wv->type.shape[2], wv->type.shape[3]),
                                xv->type.shape, op.result->type.shape);
    for (int64_t n = 0; n < d.B; ++n)
      for (int64_t o = 0; o < d.O; ++o) {
        const int64_t c0 = (o / d.og) * d.cg;
        for (int64_t oy = 0; oy < d.Ho; ++oy)
          for (int64_t ox = 0; ox < d.Wo; ++ox) {
            T acc = T(0);
            for (int64_t c = 0; c < d.cg; ++c)
              taps(d, oy, ox, [&](int64_t iy, int64_t ix, int64_t i, int64_t j) {
                acc += x[d.xi(n, c0 + c, iy, ix)] * wt[d.wi(o, c, i, j)];
              });
            out[d.yi(n, o, oy, ox)] = b ? acc + (*b)[size_t(o)] : acc;
          }
      }
  }

  /// dx of conv2d (PyTorch's convolution_backward, grad_input): every
  /// output gradient flows back through each tap to the input element it read.
  void conv2dInputGrad(const Op& op, Buf<T>& out) {
    const Value *dyv = op.operands[0], *wv = op.operands[1];
    const Buf<T>&dy = get(dyv), &wt = get(wv);
    const ConvDims d = convDims(convWindow(op.attrs, wv->type.shape[2], wv->type.shape[3]),
                                op.result->type.shape, dyv->type.shape);
    for (int64_t n = 0; n < d.B; ++n)
      for (int64_t o = 0; o < d.O; ++o) {
        const int64_t c0 = (o / d.og) * d.cg;
        for (int64_t oy = 0; oy < d.Ho; ++oy)
          for (int64_t ox = 0; ox < d.Wo; ++ox) {
            const T g = dy[d.yi(n, o, oy, ox)];
            for (int64_t c = 0; c < d.cg; ++c)
              taps(d, oy, ox, [&](int64_t iy, int64_t ix, int64_t i, int64_t j) {
                out[d.xi(n, c0 + c, iy, ix)] += g * wt[d.wi(o, c, i, j)];
              });
          }
      }
  }

  /// dw of conv2d (grad_weight): dw[o,c,i,j] = Σ_{n,oy,ox} dy[n,o,oy,ox] ·
  /// x[n, g·cg + c, oy·sh - pt + i·dh, ox·sw - pl + j·dw].
  void conv2dWeightGrad(const Op& op, Buf<T>& out) {
    const Value *xv = op.operands[0], *dyv = op.operands[1];
    const Buf<T>&x = get(xv), &dy = get(dyv);
    const ConvDims d =
        convDims(convWindow(op.attrs, op.attrs.getInt("kernel_h"), op.attrs.getInt("kernel_w")),
                 xv->type.shape, dyv->type.shape);
    for (int64_t o = 0; o < d.O; ++o) {
      const int64_t c0 = (o / d.og) * d.cg;
      for (int64_t c = 0; c < d.cg; ++c)
        for (int64_t i = 0; i < d.w.kh; ++i)
          for (int64_t j = 0; j < d.w.kw; ++j) {
            T acc = T(0);
            for (int64_t n = 0; n < d.B; ++n)
              for (int64_t oy = 0; oy < d.Ho; ++oy) {
                const int64_t iy = oy * d.w.sh - d.w.pt + i * d.w.dh;
                if (iy < 0 || iy >= d.H) continue;
                for (int64_t ox = 0; ox < d.Wo; ++ox) {
                  const int64_t ix = ox * d.w.sw - d.w.pl + j * d.w.dw;
                  if (ix >= 0 && ix < d.W)
                    acc += dy[d.yi(n, o, oy, ox)] * x[d.xi(n, c0 + c, iy, ix)];
                }
              }
            out[d.wi(o, c, i, j)] = acc;
          }
    }
  }

  /// db of conv2d: the sum over the batch and the spatial positions of each channel.
  // db[c] = Σ_n Σ_s dy[n,c,s] (the conv bias gradient; ATen sums grad_output
  // over dims 0, 2, 3 in its own blocked order, so the PyTorch tests compare
  // with a tolerance). The order is the JIT's (emit_window.cpp), so the two
  // agree bit for bit: per sample, 16 partial sums (position s into partial
  // s mod 16, in s order), folded pairwise (partial l += partial l + h for
  // h = 8, 4, 2, 1), and the samples' sums added in batch order.
  void channelSum(const Op& op, Buf<T>& out) {
    const Value* v = op.operands[0];
    const Buf<T>& x = get(v);
    const int64_t B = v->type.shape[0], C = v->type.shape[1], S = v->type.numel() / (B * C);
    for (int64_t c = 0; c < C; ++c) {
      T acc = T(0);
      for (int64_t n = 0; n < B; ++n) {
        T part[16] = {};
        for (int64_t k = 0; k < S; ++k)
          part[k % 16] += x[size_t((n * C + c) * S + k)];
        for (int h = 8; h >= 1; h /= 2)
          for (int l = 0; l < h; ++l)
            part[l] += part[l + h];
        acc += part[0];
      }
      out[size_t(c)] = acc;
    }
  }

  // --- batch normalization over dim 1 of [B,C,...] ----------------------------------------------
  // ATen 1.13's CPU kernels (batch_norm_kernel.cpp, Normalization.cpp) in their
  // order of operations: sums over the batch in double (acc_type), per-channel
  // terms in T. The JIT's window kernels (emit_window.cpp) do the same.

  /// Sizes of x [B,C,...]: B, C and the elements per (sample, channel) S.
  static std::array<int64_t, 3> bnDims(const Value* x) {
    const int64_t B = x->type.shape[0], C = x->type.shape[1];
    return {B, C, x->type.numel() / (B * C)};
  }

  /// Rows [mean; invstd; unbiased var] of the batch: batch_norm_cpu_collect_stats
  /// (mean = T(Σx / N), var_sum = Σ (x-mean)²) and update_stats' transforms
  /// (invstd = 1/sqrt(var_sum/N + eps) in double, unbiased = var_sum/(N-1) in T).
  void batchNormStats(const Op& op, Buf<T>& out) {
    const Buf<T>& x = get(op.operands[0]);
    const auto [B, C, S] = bnDims(op.operands[0]);
    const int64_t N = B * S;
    const double eps = op.attrs.getDouble("eps", 1e-5);
    for (int64_t c = 0; c < C; ++c) {
      double sum = 0;
      for (int64_t n = 0; n < B; ++n)
        for (int64_t k = 0; k < S; ++k)
          sum += double(x[size_t((n * C + c) * S + k)]);
      const T mean = T(sum / double(N));
      double vs = 0;
      for (int64_t n = 0; n < B; ++n)
        for (int64_t k = 0; k < S; ++k) {
          const T d = x[size_t((n * C + c) * S + k)] - mean;
          vs += double(d * d);
        }
      const T var_sum = T(vs);
      const double var = double(var_sum / T(N));
      out[size_t(c)] = mean;
      out[size_t(C + c)] = (var != 0 || eps != 0) ? T(1.0 / std::sqrt(var + eps)) : T(0);
      out[size_t(2 * C + c)] = var_sum / T(N - 1);
    }
  }

  /// Rows [running_mean; 1/sqrt(running_var + eps) in T; running_var]
  /// (batch_norm_cpu_collect_linear_and_constant_terms in evaluation).
  void batchNormEvalStats(const Op& op, Buf<T>& out) {
    const Buf<T>&rm = get(op.operands[0]), &rv = get(op.operands[1]);
    const T eps = T(op.attrs.getDouble("eps", 1e-5));
    const size_t C = rm.size();
    for (size_t c = 0; c < C; ++c) {
      out[c] = rm[c];
      out[C + c] = T(1) / std::sqrt(rv[c] + eps);
      out[2 * C + c] = rv[c];
    }
  }

  /// y = x·alpha + beta, alpha = invstd·w, beta = b - mean·alpha (batch_norm_cpu_contiguous_impl).
  void batchNorm(const Op& op, Buf<T>& out) {
    const Buf<T>&x = get(op.operands[0]), &st = get(op.operands[1]);
    const bool affine = op.operands.size() == 4;
    const auto [B, C, S] = bnDims(op.operands[0]);
    for (int64_t c = 0; c < C; ++c) {
      const T w = affine ? get(op.operands[2])[size_t(c)] : T(1);
      const T b = affine ? get(op.operands[3])[size_t(c)] : T(0);
      const T alpha = st[size_t(C + c)] * w;
      const T beta = b - st[size_t(c)] * alpha;
      for (int64_t n = 0; n < B; ++n)
        for (int64_t k = 0; k < S; ++k) {
          const size_t i = size_t((n * C + c) * S + k);
          out[i] = x[i] * alpha + beta;
        }
    }
  }

  /// The running statistics (_BatchNorm.forward, then update_stats):
  /// num_batches_tracked += 1; factor = momentum, or 1/num_batches_tracked
  /// for momentum=None; running = factor·batch + (1 - factor)·running, the
  /// variance's first product in double as ATen's accscalar_t has it.
  void batchNormUpdateStats(const Op& op) {
    Buf<T>&rm = mut(op.operands[0]), &rv = mut(op.operands[1]), &count = mut(op.operands[2]);
    const Buf<T>& st = get(op.operands[3]);
    count[0] = count[0] + T(1);
    const T m =
        T(op.attrs.has("momentum") ? op.attrs.getDouble("momentum") : 1.0 / double(count[0]));
    const size_t C = rm.size();
    for (size_t c = 0; c < C; ++c) {
      rm[c] = m * st[c] + (T(1) - m) * rm[c];
      rv[c] = T(double(m) * double(st[2 * C + c]) + double((T(1) - m) * rv[c]));
    }
  }

  /// batch_norm_cpu_backward_contiguous_impl in training: per channel, sum =
  /// Σ dy and dotp = Σ (x - mean)·dy (each sample's plane summed in T, the
  /// planes in double); dx = (dy - sum/N - (x - mean)·k)·(invstd·w) with
  /// k = dotp·invstd²/N; dw = dotp·invstd (batch_norm_weight_grad), db = sum
  /// (batch_norm_bias_grad).
  void batchNormGrad(const Op& op, Buf<T>& out) {
    const Buf<T>&dy = get(op.operands[0]), &x = get(op.operands[1]), &st = get(op.operands[2]);
    const bool weight_grad = op.kind == OpKind::BatchNormWeightGrad;
    const bool bias_grad = op.kind == OpKind::BatchNormBiasGrad;
    const bool has_w = !weight_grad && op.operands.size() == 4;
    const auto [B, C, S] = bnDims(op.operands[1]);
    const int64_t N = B * S;
    for (int64_t c = 0; c < C; ++c) {
      const T mean = st[size_t(c)], invstd = st[size_t(C + c)];
      double sum = 0, dotp = 0;
      for (int64_t n = 0; n < B; ++n) {
        T s = T(0), d = T(0);
        for (int64_t k = 0; k < S; ++k) {
          const size_t i = size_t((n * C + c) * S + k);
          s += dy[i];
          d += (x[i] - mean) * dy[i];
        }
        sum += double(s);
        dotp += double(d);
      }
      if (weight_grad || bias_grad) {
        out[size_t(c)] = bias_grad ? T(sum) : T(dotp * double(invstd));
        continue;
      }
      const T w = has_w ? get(op.operands[3])[size_t(c)] : T(1);
      const T k = T(dotp) * invstd * invstd / T(N);
      const T grad_mean = T(sum / double(N));
      const T scale = invstd * w;
      for (int64_t n = 0; n < B; ++n)
        for (int64_t j = 0; j < S; ++j) {
          const size_t i = size_t((n * C + c) * S + j);
          out[i] = (dy[i] - grad_mean - (x[i] - mean) * k) * scale;
        }
    }
  }

  /// max_pool2d (ATen's MaxPoolKernel): each window's maximum over the taps
  /// inside the input, scanned row by row; `val > max || isnan(val)` picks
  /// the FIRST maximum (ties are common after ReLU) and propagates NaN. With
  /// `dy`, the gradient: all of dy goes to that one element.
  void maxPool2d(const Op& op, Buf<T>& out, const Buf<T>* dy) {
    const Value* xv = op.operands[dy ? 1 : 0];
    const Buf<T>& x = get(xv);
    const Shape& ys = dy ? op.operands[0]->type.shape : op.result->type.shape;
    const ConvDims d = convDims(poolWindow(op.attrs), xv->type.shape, ys);
    for (int64_t n = 0; n < d.B; ++n)
      for (int64_t c = 0; c < d.C; ++c)
        for (int64_t oy = 0; oy < d.Ho; ++oy)
          for (int64_t ox = 0; ox < d.Wo; ++ox) {
            size_t best = size_t(-1);
            T mx = -std::numeric_limits<T>::infinity();
            taps(d, oy, ox, [&](int64_t iy, int64_t ix, int64_t, int64_t) {
              const size_t k = d.xi(n, c, iy, ix);
              if (best == size_t(-1)) best = k; // ATen starts at the first tap inside
              if (x[k] > mx || std::isnan(x[k])) {
                mx = x[k];
                best = k;
              }
            });
            const size_t yk = size_t(((n * d.C + c) * d.Ho + oy) * d.Wo + ox);
            if (dy)
              out[best] += (*dy)[yk];
            else
              out[yk] = mx;
          }
  }

  /// avg_pool2d (ATen's AvgPoolKernel): the window clipped to the input plus
  /// padding gives the divisor with count_include_pad, the window clipped to
  /// the input without it; the sum runs over the taps inside the input.
  /// With `dy`, the gradient: dy / divisor to each of those taps.
  void avgPool2d(const Op& op, Buf<T>& out, const Buf<T>* dy) {
    const Value* xv = op.operands[dy ? 1 : 0];
    const Buf<T>& x = get(xv);
    const Shape& ys = dy ? op.operands[0]->type.shape : op.result->type.shape;
    const ConvDims d = convDims(poolWindow(op.attrs), xv->type.shape, ys);
    for (int64_t n = 0; n < d.B; ++n)
      for (int64_t c = 0; c < d.C; ++c)
        for (int64_t oy = 0; oy < d.Ho; ++oy)
          for (int64_t ox = 0; ox < d.Wo; ++ox) {
            int64_t h0 = oy * d.w.sh - d.w.pt, w0 = ox * d.w.sw - d.w.pl;
            int64_t h1 = std::min(h0 + d.w.kh, d.H + d.w.pb),
                    w1 = std::min(w0 + d.w.kw, d.W + d.w.pr);
            const int64_t pool = (h1 - h0) * (w1 - w0);
            h0 = std::max<int64_t>(h0, 0);
            w0 = std::max<int64_t>(w0, 0);
            h1 = std::min(h1, d.H);
            w1 = std::min(w1, d.W);
            const size_t yk = size_t(((n * d.C + c) * d.Ho + oy) * d.Wo + ox);
            if (h0 >= h1 || w0 >= w1) continue; // a window wholly in the padding: 0
            const T div = T(d.w.count_include_pad ? pool : (h1 - h0) * (w1 - w0));
            T sum = T(0);
            for (int64_t iy = h0; iy < h1; ++iy)
              for (int64_t ix = w0; ix < w1; ++ix) {
                if (dy)
                  out[d.xi(n, c, iy, ix)] += (*dy)[yk] / div;
                else
                  sum += x[d.xi(n, c, iy, ix)];
              }
            if (!dy) out[yk] = sum / div;
          }
  }

  /// adaptive_avg_pool2d: output (i, j) averages rows [floor(i·H/Ho),
  /// ceil((i+1)·H/Ho)) and the columns likewise; with `dy`, the gradient.
  void adaptiveAvgPool2d(const Op& op, Buf<T>& out, const Buf<T>* dy) {
    const Value* xv = op.operands[dy ? 1 : 0];
    const Buf<T>& x = get(xv);
    const Shape& s = xv->type.shape;
    const int64_t B = s[0], C = s[1], H = s[2], W = s[3];
    const int64_t Ho = op.attrs.getInt("output_h"), Wo = op.attrs.getInt("output_w");
    for (int64_t nc = 0; nc < B * C; ++nc)
      for (int64_t oy = 0; oy < Ho; ++oy)
        for (int64_t ox = 0; ox < Wo; ++ox) {
          const int64_t h0 = adaptiveStart(oy, H, Ho), h1 = adaptiveEnd(oy, H, Ho);
          const int64_t w0 = adaptiveStart(ox, W, Wo), w1 = adaptiveEnd(ox, W, Wo);
          const T div = T((h1 - h0) * (w1 - w0));
          const size_t yk = size_t((nc * Ho + oy) * Wo + ox);
          T sum = T(0);
          for (int64_t iy = h0; iy < h1; ++iy)
            for (int64_t ix = w0; ix < w1; ++ix) {
              const size_t k = size_t((nc * H + iy) * W + ix);
              if (dy)
                out[k] += (*dy)[yk] / div;
              else
                sum += x[k];
            }
          if (!dy) out[yk] = sum / div;
        }
  }

  template <typename F> void map2(const Value* a, const Value* b, Buf<T>& out, F f) {
    const Buf<T>&x = get(a), &y = get(b);
    for (size_t i = 0; i < x.size(); ++i) out[i] = f(x[i], y[i]);
  }

  void matmul(const Op& op, Buf<T>& out) {
    const Value *a = op.operands[0], *b = op.operands[1];
    bool ta = op.attrs.getBool("transpose_a"), tb = op.attrs.getBool("transpose_b");
    const Buf<T>&A = get(a), &B = get(b);
    int64_t ar = rows(a), ac = cols(a), br = rows(b), bc = cols(b);
    int64_t m = ta ? ac : ar, k = ta ? ar : ac, n = tb ? br : bc;
    // Shape legend: op(A)[m,k] · op(B)[k,n] = C[m,n]. Each C[i,j] sums its
    // k products in order p = 0..k-1 in both loop orders below (the same
    // bits); with B untransposed, p outside j walks B's rows contiguously.
    if (!tb) {
      for (int64_t i = 0; i < m; ++i) {
        T* c = &out[size_t(i * n)];
        std::fill(c, c + n, T(0));
        for (int64_t p = 0; p < k; ++p) {
          T av = ta ? A[p * ac + i] : A[i * ac + p];
          const T* brow = &B[size_t(p * bc)];
          for (int64_t j = 0; j < n; ++j) c[j] += av * brow[j];
        }
      }
      return;
    }
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        T acc = T(0);
        for (int64_t p = 0; p < k; ++p) {
          T av = ta ? A[p * ac + i] : A[i * ac + p];
          acc += av * B[j * bc + p];
        }
        out[i * n + j] = acc;
      }
  }

  void softmax(const Value* a, Buf<T>& out, bool log) {
    const Buf<T>& x = get(a);
    int64_t m = rows(a), n = cols(a);
    for (int64_t i = 0; i < m; ++i) {
      const T* r = &x[i * n];
      T mx = *std::max_element(r, r + n);
      T sum = T(0);
      for (int64_t j = 0; j < n; ++j) sum += std::exp(r[j] - mx);
      for (int64_t j = 0; j < n; ++j)
        out[i * n + j] = log ? (r[j] - mx) - std::log(sum) : std::exp(r[j] - mx) / sum;
    }
  }

  void softmaxGrad(const Value* dyv, const Value* yv, Buf<T>& out, bool log) {
    const Buf<T>&dy = get(dyv), &y = get(yv);
    int64_t m = rows(dyv), n = cols(dyv);
    for (int64_t i = 0; i < m; ++i) {
      T s = T(0);
      for (int64_t j = 0; j < n; ++j) s += log ? dy[i * n + j] : dy[i * n + j] * y[i * n + j];
      for (int64_t j = 0; j < n; ++j) {
        size_t k = size_t(i * n + j);
        // log_softmax: dy - exp(y)*sum(dy); softmax: y*(dy - sum(dy*y)).
        out[k] = log ? dy[k] - std::exp(y[k]) * s : y[k] * (dy[k] - s);
      }
    }
  }

  /// %step as an integer: exact from inputs.step when given.
  int64_t stepValue(const Value* v) { return in_.step ? in_.step : int64_t(get(v)[0]); }

  void dropoutMask(const Op& op, Buf<T>& out) {
    auto seed = int32_t(get(op.operands[0])[0]);
    int64_t step = stepValue(op.operands[1]);
    double p = op.attrs.getDouble("p", 0.5);
    int64_t salt = op.attrs.getInt("salt");
    T scale = T(1) / T(1 - p);
    // Keyed by the sample's row in the global batch (data-parallel training).
    const uint64_t first = uint64_t(in_.first_row * op.attrs.getInt("cols"));
    for (size_t i = 0; i < out.size(); ++i)
      out[i] = dropoutKeep(seed, step, salt, first + i, p) ? scale : T(0);
  }

  int64_t label(const Buf<T>& y, int64_t i, int64_t classes) {
    auto c = int64_t(y[size_t(i)]);
    if (c < 0 || c >= classes)
      throw std::invalid_argument(fmt::format("interpreter: label {} out of range [0, {})", c, classes));
    return c;
  }

  /// A sample's weight in CrossEntropyLoss/NLLLoss(weight=, ignore_index=),
  /// torch 1.13's nll_loss: 0 for the ignored label, else weight[label] (1
  /// without weights); its class in `c` (-1 when ignored).
  T sampleWeight(const Op& op, const Buf<T>& y, int64_t i, int64_t n, int64_t& c) {
    if (op.attrs.has("ignore_index") && int64_t(y[size_t(i)]) == op.attrs.getInt("ignore_index")) {
      c = -1;
      return T(0);
    }
    c = label(y, i, n);
    const Attr* w = op.attrs.find("weight");
    return w ? T(std::get<std::vector<double>>(*w)[size_t(c)]) : T(1);
  }

  /// nll_loss with weight= or ignore_index=: sum(w[y_i] * -logp[i, y_i]) over
  /// the samples not ignored, divided for "mean" by the sum of their weights
  /// (not by the batch size). label_smoothing as torch 1.13's cross_entropy:
  /// smooth = -sum_j w[j] * logp[i, j] over the same samples, reduced alike.
  void weightedNllLoss(const Op& op, Buf<T>& out) {
    const Buf<T>&lp = get(op.operands[0]), &y = get(op.operands[1]);
    int64_t m = rows(op.operands[0]), n = cols(op.operands[0]);
    const std::vector<double> w = op.attrs.getDoubles("weight");
    const double e = op.attrs.getDouble("label_smoothing", 0.0);
    T sum = T(0), wsum = T(0), smooth = T(0);
    for (int64_t i = 0; i < m; ++i) {
      int64_t c = 0;
      T r = sampleWeight(op, y, i, n, c);
      if (c < 0) continue;
      sum -= lp[size_t(i * n + c)] * r;
      wsum += r;
      if (e != 0)
        for (int64_t j = 0; j < n; ++j)
          smooth -= lp[size_t(i * n + j)] * (w.empty() ? T(1) : T(w[size_t(j)]));
    }
    const T div = op.attrs.getString("reduction", "mean") == "mean" ? wsum : T(1);
    out[0] = sum / div;
    if (e != 0) out[0] = T(1 - e) * out[0] + smooth / div * T(e / double(n));
  }

  void nllLoss(const Op& op, Buf<T>& out) {
    if (op.attrs.has("weight") || op.attrs.has("ignore_index")) return weightedNllLoss(op, out);
    const Buf<T>&lp = get(op.operands[0]), &y = get(op.operands[1]);
    int64_t m = rows(op.operands[0]), n = cols(op.operands[0]);
    T sum = T(0);
    for (int64_t i = 0; i < m; ++i) sum += -lp[size_t(i * n + label(y, i, n))];
    out[0] = sum / reductionDivisor<T>(op, m);
    // CrossEntropyLoss(label_smoothing=e), torch 1.13's cross_entropy:
    // (1 - e) * nll + smooth * (e / C), smooth = -sum(logp) reduced like nll.
    const double e = op.attrs.getDouble("label_smoothing", 0.0);
    if (e == 0) return;
    T smooth = T(0);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j)
        smooth += -lp[size_t(i * n + j)];
    smooth /= reductionDivisor<T>(op, m);
    out[0] = T(1 - e) * out[0] + smooth * T(e / double(n));
  }

  /// BCEWithLogitsLoss(pos_weight=): the weight of flat element i's output
  /// column (one weight broadcasts to every column).
  T posWeight(const Op& op, size_t i) {
    const auto& pw = std::get<std::vector<double>>(*op.attrs.find("pos_weight"));
    return T(pw.size() == 1 ? pw[0] : pw[i % pw.size()]);
  }

  /// BCEWithLogitsLoss(pos_weight=), torch 1.13's form: (1-y)*z + lw*(log(exp(-m)
  /// + exp(-z-m)) + m), lw = 1 + (p-1)*y, m = max(-z, 0).
  void posWeightBceLoss(const Op& op, Buf<T>& out) {
    const Buf<T>&z = get(op.operands[0]), &y = get(op.operands[1]);
    T sum = T(0);
    for (size_t i = 0; i < z.size(); ++i) {
      T m = std::max(-z[i], T(0));
      T lw = (posWeight(op, i) - T(1)) * y[i] + T(1);
      sum += (T(1) - y[i]) * z[i] + lw * (std::log(std::exp(-m) + std::exp(-z[i] - m)) + m);
    }
    out[0] = sum / reductionDivisor<T>(op, int64_t(z.size()));
  }

  template <typename F> void realLoss(const Op& op, Buf<T>& out, F f) {
    const Buf<T>&p = get(op.operands[0]), &y = get(op.operands[1]);
    T sum = T(0);
    for (size_t i = 0; i < p.size(); ++i) sum += f(p[i], y[i]);
    out[0] = sum / reductionDivisor<T>(op, int64_t(p.size()));
  }

  void countCorrect(const Op& op, Buf<T>& out) {
    const Buf<T>&s = get(op.operands[0]), &y = get(op.operands[1]);
    int64_t m = rows(op.operands[0]), n = cols(op.operands[0]);
    T count = T(0);
    for (int64_t i = 0; i < m; ++i) {
      const T* r = &s[size_t(i * n)];
      int64_t arg = std::max_element(r, r + n) - r; // the first maximum, like torch.argmax
      // A label outside [0, n) (an ignore_index) is never predicted: wrong.
      if (arg == int64_t(y[size_t(i)])) count += T(1);
    }
    out[0] = count;
  }

  /// nll_loss_grad: -onehot/B; log_softmax_nll_grad: (exp(logp) - onehot)/B.
  /// With label_smoothing e, the target distribution (1 - e)*onehot + e/C.
  void classGrad(const Op& op, Buf<T>& out, bool with_softmax) {
    if (op.attrs.has("weight") || op.attrs.has("ignore_index"))
      return weightedClassGrad(op, out, with_softmax);
    const Buf<T>&lp = get(op.operands[0]), &y = get(op.operands[1]);
    int64_t m = rows(op.operands[0]), n = cols(op.operands[0]);
    T div = reductionDivisor<T>(op, m);
    const double e = op.attrs.getDouble("label_smoothing", 0.0);
    for (int64_t i = 0; i < m; ++i) {
      int64_t c = label(y, i, n);
      for (int64_t j = 0; j < n; ++j) {
        size_t k = size_t(i * n + j);
        T onehot = j == c ? T(1) : T(0);
        if (e != 0) onehot = T(1 - e) * onehot + T(e / double(n));
        out[k] = ((with_softmax ? std::exp(lp[k]) : T(0)) - onehot) / div;
      }
    }
  }

  /// torch.nn.utils.clip_grad_norm_ (1.13, norm_type 2): total_norm =
  /// norm(stack([norm(g) for g in grads])), i.e. sqrt of the sum of every
  /// squared gradient element. PyTorch sums each gradient in float in its own
  /// vectorized order, so no order reproduces it bit for bit; the sum here is
  /// in double, in param then element order, rounded to float once (the
  /// correctly rounded norm in practice): over 300 random gradient sets of
  /// the notebook's shapes it was within 1.1e-6 relative of PyTorch's,
  /// closer than rounding each param's norm to float first (see docs/ir.md).
  void gradNorm(const Op& op, Buf<T>& out) {
    double sum = 0;
    for (const Value* gv : op.operands)
      for (T x : get(gv))
        sum += double(x) * double(x);
    out[0] = T(std::sqrt(sum));
  }

  /// clip_grad_value_ (torch.nn.utils 1.13): grad.clamp_(min=-v, max=v)
  /// before the optimizer reads it (NaN stays NaN, like torch.clamp).
  static T clipValue(const Op& op, T g) {
    if (!op.attrs.has("clip_value")) return g;
    T v = T(op.attrs.getDouble("clip_value"));
    if (g < -v) g = -v;
    if (g > v) g = v;
    return g;
  }

  /// classGrad with weight= or ignore_index=: the target row of sample i is
  /// t = (1 - e) * r_i * onehot + e/C * m_i * w (r_i its weight, m_i 0 when
  /// ignored), divided by D (the sum of r_i for "mean", else 1). Through the
  /// log_softmax, (exp(logp) * sum(t) - t) / D; an ignored row gets 0.
  void weightedClassGrad(const Op& op, Buf<T>& out, bool with_softmax) {
    const Buf<T>&lp = get(op.operands[0]), &y = get(op.operands[1]);
    int64_t m = rows(op.operands[0]), n = cols(op.operands[0]);
    const std::vector<double> w = op.attrs.getDoubles("weight");
    const double e = op.attrs.getDouble("label_smoothing", 0.0);
    double wtotal = 0;
    for (int64_t j = 0; j < n; ++j)
      wtotal += w.empty() ? 1.0 : w[size_t(j)];
    T div = T(1);
    if (op.attrs.getString("reduction", "mean") == "mean") {
      div = T(0);
      for (int64_t i = 0; i < m; ++i) {
        int64_t c = 0;
        div += sampleWeight(op, y, i, n, c);
      }
    }
    for (int64_t i = 0; i < m; ++i) {
      int64_t c = 0;
      const T r = sampleWeight(op, y, i, n, c);
      const T kept = c < 0 ? T(0) : T(1);
      const T total = T(1 - e) * r + T(e / double(n)) * kept * T(wtotal);
      for (int64_t j = 0; j < n; ++j) {
        size_t k = size_t(i * n + j);
        T t = j == c ? T(1 - e) * r : T(0);
        if (e != 0) t += T(e / double(n)) * kept * (w.empty() ? T(1) : T(w[size_t(j)]));
        out[k] = ((with_softmax ? std::exp(lp[k]) * total : T(0)) - t) / div;
      }
    }
  }

  /// torch.optim.SGD (1.13, _single_tensor_sgd), step by step.
  void sgd(const Op& op) {
    Buf<T>& w = mut(op.operands[0]);
    const Buf<T>& grad = get(op.operands[1]);
    int64_t step = stepValue(op.operands[2]);
    Buf<T>* buf = op.operands.size() > 3 ? &mut(op.operands[3]) : nullptr;
    double lr = in_.lr.value_or(op.attrs.getDouble("lr"));
    double momentum = in_.momentum.value_or(op.attrs.getDouble("momentum"));
    double dampening = op.attrs.getDouble("dampening"), wd = op.attrs.getDouble("weight_decay");
    bool nesterov = op.attrs.getBool("nesterov"), maximize = op.attrs.getBool("maximize");
    for (size_t i = 0; i < w.size(); ++i) {
      T g = clipValue(op, grad[i]);                    // clip_grad_value_ before step()
      g = maximize ? -g : g;                           // d_p = -d_p if maximize
      if (wd != 0) g = g + T(wd) * w[i];               // d_p.add(param, alpha=wd)
      if (buf) {
        T& b = (*buf)[i];
        if (step <= 1) b = g;                          // first step: buf = clone(d_p)
        else b = b * T(momentum) + T(1 - dampening) * g; // buf.mul_(m).add_(d_p, alpha=1-damp)
        g = nesterov ? g + T(momentum) * b : b;
      }
      w[i] = w[i] + T(-lr) * g;                        // param.add_(d_p, alpha=-lr)
    }
  }

  /// torch.optim.Adam / AdamW (1.13, _single_tensor_adam[w]), step by step.
  void adam(const Op& op) {
    Buf<T>& w = mut(op.operands[0]);
    const Buf<T>& grad = get(op.operands[1]);
    auto step = double(stepValue(op.operands[2]));
    Buf<T>&m = mut(op.operands[3]), &v = mut(op.operands[4]);
    double lr = in_.lr.value_or(op.attrs.getDouble("lr"));
    double b1 = in_.momentum.value_or(op.attrs.getDouble("beta1", 0.9));
    double b2 = op.attrs.getDouble("beta2", 0.999), eps = op.attrs.getDouble("eps", 1e-8);
    double wd = op.attrs.getDouble("weight_decay");
    bool decoupled = op.attrs.getBool("decoupled"); // AdamW (_single_tensor_adamw)
    bool maximize = op.attrs.getBool("maximize");
    Buf<T>* vmax = op.attrs.getBool("amsgrad") ? &mut(op.operands[5]) : nullptr;
    // Python floats: bias corrections and the step size are doubles.
    double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
    double step_size = lr / bc1, bc2_sqrt = std::sqrt(bc2);
    for (size_t i = 0; i < w.size(); ++i) {
      T g = clipValue(op, grad[i]);                     // clip_grad_value_ before step()
      g = maximize ? -g : g;                            // grad = -grad if maximize
      if (decoupled) w[i] = w[i] * T(1 - lr * wd);      // param.mul_(1 - lr * weight_decay)
      else if (wd != 0) g = std::fma(w[i], T(wd), g);   // grad.add(param, alpha=wd)
      m[i] = m[i] * T(b1);
      m[i] = std::fma(g, T(1 - b1), m[i]);              // exp_avg.mul_(b1).add_(g, alpha=1-b1)
      v[i] = v[i] * T(b2);
      v[i] = std::fma(T(1 - b2) * g, g, v[i]);          // exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2)
      T vd = v[i];
      if (vmax) { // torch.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq), NaN wins
        T& mx = (*vmax)[i];
        mx = std::isnan(mx) || std::isnan(v[i]) ? std::numeric_limits<T>::quiet_NaN()
                                                : std::max(mx, v[i]);
        vd = mx;
      }
      T denom = std::sqrt(vd) / T(bc2_sqrt) + T(eps);   // (v.sqrt() / bc2_sqrt).add_(eps)
      w[i] = w[i] + T(-step_size) * m[i] / denom;       // param.addcdiv_(m, denom, value=-step_size)
    }
  }

  /// torch.optim.RMSprop (1.13, _single_tensor_rmsprop), step by step.
  void rmsprop(const Op& op) {
    Buf<T>& w = mut(op.operands[0]);
    const Buf<T>& grad = get(op.operands[1]);
    Buf<T>& sq = mut(op.operands[3]);
    double lr = in_.lr.value_or(op.attrs.getDouble("lr"));
    double momentum = in_.momentum.value_or(op.attrs.getDouble("momentum"));
    double alpha = op.attrs.getDouble("alpha", 0.99), eps = op.attrs.getDouble("eps", 1e-8);
    double wd = op.attrs.getDouble("weight_decay");
    bool centered = op.attrs.getBool("centered"), maximize = op.attrs.getBool("maximize");
    bool has_buf = op.attrs.getDouble("momentum") > 0; // the graph's buffer operand
    Buf<T>* buf = has_buf ? &mut(op.operands[4]) : nullptr;
    Buf<T>* gavg = centered ? &mut(op.operands[has_buf ? 5 : 4]) : nullptr;
    for (size_t i = 0; i < w.size(); ++i) {
      T g = clipValue(op, grad[i]);                     // clip_grad_value_ before step()
      g = maximize ? -g : g;                            // grad = -grad if maximize
      if (wd != 0) g = std::fma(w[i], T(wd), g);        // grad.add(param, alpha=wd)
      sq[i] = sq[i] * T(alpha);
      sq[i] = std::fma(T(1 - alpha) * g, g, sq[i]);     // square_avg.mul_(a).addcmul_(g, g, value=1-a)
      T avg;
      if (gavg) {
        T& ga = (*gavg)[i];
        ga = ga * T(alpha);
        ga = std::fma(g, T(1 - alpha), ga);             // grad_avg.mul_(a).add_(g, alpha=1-a)
        avg = std::sqrt(std::fma(-ga, ga, sq[i]));      // square_avg.addcmul(ga, ga, value=-1).sqrt_()
      } else {
        avg = std::sqrt(sq[i]);
      }
      avg = avg + T(eps);                               // avg.add_(eps)
      if (buf) {
        T& b = (*buf)[i];
        b = b * T(momentum);
        b = b + g / avg;                                // buf.mul_(m).addcdiv_(g, avg)
        w[i] = std::fma(b, T(-lr), w[i]);               // param.add_(buf, alpha=-lr)
      } else {
        w[i] = w[i] + T(-lr) * g / avg;                 // param.addcdiv_(g, avg, value=-lr)
      }
    }
  }

  /// torch.optim.Adagrad (1.13, _single_tensor_adagrad), step by step.
  void adagrad(const Op& op) {
    Buf<T>& w = mut(op.operands[0]);
    const Buf<T>& grad = get(op.operands[1]);
    auto step = double(stepValue(op.operands[2]));
    Buf<T>& sum = mut(op.operands[3]);
    double lr = in_.lr.value_or(op.attrs.getDouble("lr"));
    double eps = op.attrs.getDouble("eps", 1e-10), wd = op.attrs.getDouble("weight_decay");
    double init = op.attrs.getDouble("initial_accumulator_value");
    bool maximize = op.attrs.getBool("maximize");
    double clr = lr / (1 + (step - 1) * op.attrs.getDouble("lr_decay")); // a Python float
    for (size_t i = 0; i < w.size(); ++i) {
      T g = clipValue(op, grad[i]);                     // clip_grad_value_ before step()
      g = maximize ? -g : g;                            // grad = -grad if maximize
      if (wd != 0) g = std::fma(w[i], T(wd), g);        // grad.add(param, alpha=wd)
      if (step <= 1) sum[i] = T(init);                  // torch.full_like(p, initial_accumulator_value)
      sum[i] = std::fma(g, g, sum[i]);                  // state_sum.addcmul_(g, g, value=1)
      T std = std::sqrt(sum[i]) + T(eps);               // state_sum.sqrt().add_(eps)
      w[i] = w[i] + T(-clr) * g / std;                  // param.addcdiv_(g, std, value=-clr)
    }
  }

  /// torch.optim.Adadelta (1.13, _single_tensor_adadelta), step by step.
  void adadelta(const Op& op) {
    Buf<T>& w = mut(op.operands[0]);
    const Buf<T>& grad = get(op.operands[1]);
    Buf<T>&sq = mut(op.operands[3]), &acc = mut(op.operands[4]);
    double lr = in_.lr.value_or(op.attrs.getDouble("lr"));
    double rho = op.attrs.getDouble("rho", 0.9), eps = op.attrs.getDouble("eps", 1e-6);
    double wd = op.attrs.getDouble("weight_decay");
    bool maximize = op.attrs.getBool("maximize");
    for (size_t i = 0; i < w.size(); ++i) {
      T g = clipValue(op, grad[i]);                     // clip_grad_value_ before step()
      g = maximize ? -g : g;                            // grad = -grad if maximize
      if (wd != 0) g = std::fma(w[i], T(wd), g);        // grad.add(param, alpha=wd)
      sq[i] = std::fma(T(1 - rho) * g, g, sq[i] * T(rho)); // square_avg.mul_(rho).addcmul_(g, g, value=1-rho)
      T std = std::sqrt(sq[i] + T(eps));                // square_avg.add(eps).sqrt_()
      T delta = std::sqrt(acc[i] + T(eps)) / std * g;   // acc_delta.add(eps).sqrt_().div_(std).mul_(g)
      acc[i] = std::fma(T(1 - rho) * delta, delta, acc[i] * T(rho)); // acc_delta: the same with delta
      w[i] = std::fma(delta, T(-lr), w[i]);             // param.add_(delta, alpha=-lr)
    }
  }

  const Graph& g_;
  const InterpInputs<T>& in_;
  InterpState<T>& st_;
  std::unordered_map<const Value*, Buf<T>*> env_;
  std::unordered_map<const Value*, Buf<T>> results_;
};

} // namespace

template <typename T> void initInterpState(const Graph& g, InterpState<T>& state) {
  if (state.params.size() != g.params().size())
    throw std::invalid_argument(fmt::format("interpreter: {} params given, graph has {}",
                                            state.params.size(), g.params().size()));
  for (size_t i = 0; i < g.params().size(); ++i)
    if (int64_t(state.params[i].size()) != g.params()[i]->type.numel())
      throw std::invalid_argument(fmt::format("interpreter: param %{} needs {} elements, got {}",
                                              g.params()[i]->name, g.params()[i]->type.numel(),
                                              state.params[i].size()));
  state.states.clear();
  for (const Value* s : g.states())
    state.states.emplace_back(size_t(s->type.numel()), T(stateStart(s->desc)));
}

template <typename T>
std::map<std::string, std::vector<T>> interpret(const Graph& g, const InterpInputs<T>& inputs,
                                                InterpState<T>& state,
                                                std::unordered_map<const Value*, std::vector<T>>* trace) {
  return Interp<T>(g, inputs, state).run(trace);
}

template void initInterpState<float>(const Graph&, InterpState<float>&);
template void initInterpState<double>(const Graph&, InterpState<double>&);
template std::map<std::string, std::vector<float>>
interpret<float>(const Graph&, const InterpInputs<float>&, InterpState<float>&,
                 std::unordered_map<const Value*, std::vector<float>>*);
template std::map<std::string, std::vector<double>>
interpret<double>(const Graph&, const InterpInputs<double>&, InterpState<double>&,
                  std::unordered_map<const Value*, std::vector<double>>*);

} // namespace descent
