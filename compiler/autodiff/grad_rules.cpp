// The gradient rules (see grad_rules.h), named by the gradient column of
// compiler/ir/ops.def. Each rule is the textbook derivative expressed with the
// IR's grad ops; the numerics of those ops (PyTorch's backward formulas) are
// their math in compiler/ir/op_math.h or their dedicated kernels.
#include "compiler/autodiff/grad_rules.h"

#include <stdexcept>

namespace descent {

namespace {

using Grads = std::vector<Value*>;

Attrs copyAttr(const Op& op, const char* name, Attr fallback) {
  Attrs a;
  const Attr* v = op.attrs.find(name);
  a.set(name, v ? *v : fallback);
  return a;
}

Attrs mm(bool ta, bool tb) {
  Attrs a;
  if (ta) a.set("transpose_a", true);
  if (tb) a.set("transpose_b", true);
  return a;
}

/// Y = op(A)·op(B). Without transposes: dA = dY·Bᵀ, dB = Aᵀ·dY; the transposed
/// forms follow from (XY)ᵀ = YᵀXᵀ so that no explicit transpose op is needed.
Grads gradMatMul(GradContext& c) {
  Value *A = c.op.operands[0], *B = c.op.operands[1], *dY = c.dy;
  bool ta = c.op.attrs.getBool("transpose_a"), tb = c.op.attrs.getBool("transpose_b");
  Grads g(2, nullptr);
  if (c.needs[0]) {
    if (!ta) g[0] = tb ? c.out.emit(OpKind::MatMul, {dY, B}, mm(false, false))  // dY·B
                       : c.out.emit(OpKind::MatMul, {dY, B}, mm(false, true)); // dY·Bᵀ
    else g[0] = tb ? c.out.emit(OpKind::MatMul, {B, dY}, mm(true, true))        // Bᵀ·dYᵀ
                   : c.out.emit(OpKind::MatMul, {B, dY}, mm(false, true));      // B·dYᵀ
  }
  if (c.needs[1]) {
    if (!tb) g[1] = ta ? c.out.emit(OpKind::MatMul, {A, dY}, mm(false, false))  // A·dY
                       : c.out.emit(OpKind::MatMul, {A, dY}, mm(true, false));  // Aᵀ·dY
    else g[1] = ta ? c.out.emit(OpKind::MatMul, {dY, A}, mm(true, true))        // dYᵀ·Aᵀ
                   : c.out.emit(OpKind::MatMul, {dY, A}, mm(true, false));      // dYᵀ·A
  }
  return g;
}

Grads gradAddBias(GradContext& c) {
  return {c.needs[0] ? c.dy : nullptr, c.needs[1] ? c.out.emit(OpKind::SumRows, {c.dy}) : nullptr};
}

// Activations whose derivative is cheapest from the saved output (PyTorch saves
// the output for relu, sigmoid, tanh, softmax and log_softmax).
Grads gradRelu(GradContext& c) { return {c.out.emit(OpKind::ReluGrad, {c.dy, c.op.result})}; }
Grads gradSigmoid(GradContext& c) { return {c.out.emit(OpKind::SigmoidGrad, {c.dy, c.op.result})}; }
Grads gradTanh(GradContext& c) { return {c.out.emit(OpKind::TanhGrad, {c.dy, c.op.result})}; }
Grads gradSoftmax(GradContext& c) {
  return {c.out.emit(OpKind::SoftmaxGrad, {c.dy, c.op.result}, copyAttr(c.op, "dim", int64_t(1)))};
}
Grads gradLogSoftmax(GradContext& c) {
  return {c.out.emit(OpKind::LogSoftmaxGrad, {c.dy, c.op.result}, copyAttr(c.op, "dim", int64_t(1)))};
}
// LeakyReLU: PyTorch saves the input (the output's sign is the same, but the
// input is what leaky_relu_backward reads).
Grads gradLeakyRelu(GradContext& c) {
  return {c.out.emit(OpKind::LeakyReluGrad, {c.dy, c.op.operands[0]},
                     copyAttr(c.op, "negative_slope", 0.01))};
}

/// Activations whose backward reads the saved input (PyTorch's GELU, SiLU,
/// ELU and Softplus backward kernels): G(dy, x) with the forward op's attributes.
template <OpKind G> Grads fromInput(GradContext& c) {
  return {c.out.emit(G, {c.dy, c.op.operands[0]}, c.op.attrs)};
}

// Elementwise product (Dropout: x * mask): d a = dy * b, d b = dy * a.
Grads gradMul(GradContext& c) {
  Value *a = c.op.operands[0], *b = c.op.operands[1];
  return {c.needs[0] ? c.out.emit(OpKind::Mul, {c.dy, b}) : nullptr,
          c.needs[1] ? c.out.emit(OpKind::Mul, {c.dy, a}) : nullptr};
}

Grads gradAdd(GradContext& c) { return {c.needs[0] ? c.dy : nullptr, c.needs[1] ? c.dy : nullptr}; }

// Views: the gradient is the incoming one in the operand's shape (the inverse
// reshape; the elements do not move). reshape_as's second operand only gives a shape.
Grads gradFlatten(GradContext& c) {
  return {c.out.emit(OpKind::ReshapeAs, {c.dy, c.op.operands[0]})};
}
Grads gradReshapeAs(GradContext& c) {
  return {c.needs[0] ? c.out.emit(OpKind::ReshapeAs, {c.dy, c.op.operands[0]}) : nullptr, nullptr};
}

/// conv2d (x, w [, b]): dx = conv2d_input_grad(dy, w) (a transposed
/// convolution), dw = conv2d_weight_grad(x, dy) (the correlation of the input
/// with dy, summed over the batch), db = dy summed over all but the channels.
/// The gradients carry the forward window plus the shape they cannot infer.
Grads gradConv2d(GradContext& c) {
  Value *x = c.op.operands[0], *w = c.op.operands[1];
  Grads g(c.op.operands.size(), nullptr);
  if (c.needs[0]) {
    Attrs a = c.op.attrs;
    a.set("input_h", x->type.shape[2]);
    a.set("input_w", x->type.shape[3]);
    g[0] = c.out.emit(OpKind::Conv2dInputGrad, {c.dy, w}, std::move(a));
  }
  if (c.needs[1]) {
    Attrs a = c.op.attrs;
    a.set("kernel_h", w->type.shape[2]);
    a.set("kernel_w", w->type.shape[3]);
    g[1] = c.out.emit(OpKind::Conv2dWeightGrad, {x, c.dy}, std::move(a));
  }
  if (g.size() == 3 && c.needs[2]) g[2] = c.out.emit(OpKind::ChannelSum, {c.dy});
  return g;
}

/// Pooling: the backward reads the saved input (max pooling finds each
/// window's first maximum again, as PyTorch's saved indices record it).
template <OpKind G> Grads poolGrad(GradContext& c) {
  return {c.out.emit(G, {c.dy, c.op.operands[0]}, c.op.attrs)};
}
constexpr GradRule gradMaxPool2d = poolGrad<OpKind::MaxPool2dGrad>;
constexpr GradRule gradAvgPool2d = poolGrad<OpKind::AvgPool2dGrad>;
constexpr GradRule gradAdaptiveAvgPool2d = poolGrad<OpKind::AdaptiveAvgPool2dGrad>;

/// batch_norm (x, stats [, w, b]) in training mode, stats = the batch's
/// (PyTorch's native_batch_norm_backward): dx = batch_norm_grad(dy, x, stats,
/// w), which includes the statistics' dependence on x (so `stats` itself gets
/// no gradient), dw = Σ dy·(x - mean)·invstd, db = Σ dy over all but the
/// channels (batch_norm_bias_grad: summed as ATen does, each sample's plane
/// in f32 and the planes in double, rather than channel_sum's f32 total).
/// batch_norm_stats: its dependence on x is part of batch_norm_grad, so it
/// passes no gradient on (and batch_norm gives it none).
Grads gradBatchNormStats(GradContext&) {
  return {nullptr};
}

Grads gradBatchNorm(GradContext& c) {
  Value *x = c.op.operands[0], *stats = c.op.operands[1];
  Grads g(c.op.operands.size(), nullptr);
  if (c.needs[0]) {
    std::vector<Value*> in = {c.dy, x, stats};
    if (g.size() == 4) in.push_back(c.op.operands[2]);
    g[0] = c.out.emit(OpKind::BatchNormGrad, in);
  }
  if (g.size() == 4 && c.needs[2]) g[2] = c.out.emit(OpKind::BatchNormWeightGrad, {c.dy, x, stats});
  if (g.size() == 4 && c.needs[3]) g[3] = c.out.emit(OpKind::BatchNormBiasGrad, {c.dy, x, stats});
  return g;
}

/// Losses: the root of the backward pass (seed 1); the gradient op takes the
/// prediction and the target and carries the reduction. Targets are data.
template <OpKind GradKind> Grads gradLoss(GradContext& c) {
  if (c.dy) throw std::logic_error("autodiff: a loss is only differentiated as the root");
  if (c.needs[1]) throw std::logic_error("autodiff: no gradient with respect to a loss target");
  // The reduction and the loss's own arguments (beta, delta).
  Attrs a = c.op.attrs;
  if (!a.find("reduction")) a.set("reduction", std::string("mean"));
  return {c.out.emit(GradKind, {c.op.operands[0], c.op.operands[1]}, std::move(a)), nullptr};
}

/// Ops with no gradient rule: normalize and dropout_mask (only data flows
/// into them), count_correct (a metric), the grad and update ops themselves.
constexpr GradRule NoGrad = nullptr;

// The gradient-rule column of ops.def, indexed by OpKind.
constexpr GradRule kRules[] = {
#define OP(Enum, Name, Min, Max, Cat, Shape, Traits, Grad, Math) Grad,
#include "compiler/ir/ops.def"
#undef OP
};

} // namespace

GradRule gradRule(OpKind kind) { return kRules[size_t(kind)]; }

} // namespace descent
