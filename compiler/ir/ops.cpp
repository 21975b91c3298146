// The op table (generated from ops.def) and each op's shape rule.
#include "compiler/ir/graph.h"
#include "compiler/ir/op_defs.h"
#include "compiler/ir/op_math.h"
#include "compiler/ir/window_attrs.h"
#include "compiler/support/window2d.h"

#include <algorithm>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace descent {

namespace {

using Rule = std::string (*)(const Op&, TensorType&);

std::string expectF32(const Value* v, const char* what) {
  if (v->type.dtype != DType::F32)
    return fmt::format("{} %{} must be f32, got {}", what, v->name, v->type.str());
  return {};
}

std::string needRank(const Value* v, int rank, const char* what) {
  if (v->type.rank() != rank)
    return fmt::format("{} %{} must have rank {}, got {}", what, v->name, rank, v->type.str());
  return {};
}

#define TRY(expr)                                                                                  \
  do {                                                                                             \
    std::string e_ = (expr);                                                                       \
    if (!e_.empty()) return e_;                                                                    \
  } while (0)

std::string inferNormalize(const Op& op, TensorType& out) {
  const Value* x = op.operands[0];
  if (x->type.dtype == DType::I32) return "normalize input must be u8 or f32";
  if (op.attrs.getDouble("std", 1.0) == 0) return "normalize std must not be 0";
  if (op.attrs.has("channel_size")) {
    // One value per channel: mean and std lists of C values over
    // [batch, C, channel_size elements].
    auto mean = op.attrs.getDoubles("mean"), sd = op.attrs.getDoubles("std");
    const int64_t cs = op.attrs.getInt("channel_size");
    if (mean.empty() || mean.size() != sd.size())
      return fmt::format("normalize has {} means and {} stds", mean.size(), sd.size());
    for (double v : sd)
      if (v == 0) return "normalize std must not be 0";
    const int64_t per_sample = x->type.rank() ? x->type.numel() / x->type.shape[0] : 0;
    if (cs < 1 || per_sample != int64_t(mean.size()) * cs)
      return fmt::format("normalize has {} channels of {} elements but a sample of {} has {}",
                         mean.size(), cs, x->type.str(), per_sample);
  }
  out = f32(x->type.shape);
  return {};
}

std::string inferMatMul(const Op& op, TensorType& out) {
  const Value* a = op.operands[0];
  const Value* b = op.operands[1];
  TRY(expectF32(a, "matmul lhs"));
  TRY(expectF32(b, "matmul rhs"));
  TRY(needRank(a, 2, "matmul lhs"));
  TRY(needRank(b, 2, "matmul rhs"));
  bool ta = op.attrs.getBool("transpose_a"), tb = op.attrs.getBool("transpose_b");
  int64_t m = ta ? a->type.shape[1] : a->type.shape[0];
  int64_t k = ta ? a->type.shape[0] : a->type.shape[1];
  int64_t k2 = tb ? b->type.shape[1] : b->type.shape[0];
  int64_t n = tb ? b->type.shape[0] : b->type.shape[1];
  if (k != k2)
    return fmt::format("matmul inner dimensions differ: {} vs {} ({} x {})", k, k2, a->type.str(),
                       b->type.str());
  out = f32({m, n});
  return {};
}

std::string inferAddBias(const Op& op, TensorType& out) {
  const Value* x = op.operands[0];
  const Value* b = op.operands[1];
  TRY(expectF32(x, "add_bias input"));
  TRY(expectF32(b, "add_bias bias"));
  TRY(needRank(x, 2, "add_bias input"));
  TRY(needRank(b, 1, "add_bias bias"));
  if (x->type.shape[1] != b->type.shape[0])
    return fmt::format("add_bias: bias {} does not match columns of {}", b->type.str(),
                       x->type.str());
  out = x->type;
  return {};
}

std::string inferSameF32(const Op& op, TensorType& out) {
  TRY(expectF32(op.operands[0], "operand"));
  out = op.operands[0]->type;
  return {};
}

std::string inferRowOp(const Op& op, TensorType& out) {
  TRY(expectF32(op.operands[0], "operand"));
  TRY(needRank(op.operands[0], 2, "operand"));
  if (op.attrs.getInt("dim", 1) != 1) return "only dim=1 (over the features of a sample) is supported";
  out = op.operands[0]->type;
  return {};
}

/// torch.flatten(x, start_dim, end_dim): dims wrap like Python indices (a
/// scalar counts as rank 1 and flattens to [1]); dims start..end merge into one.
std::string inferFlatten(const Op& op, TensorType& out) {
  const Value* x = op.operands[0];
  const int64_t rank = std::max(x->type.rank(), 1);
  int64_t dims[2] = {op.attrs.getInt("start_dim", 0), op.attrs.getInt("end_dim", -1)};
  for (int64_t& d : dims) {
    if (d < -rank || d >= rank)
      return fmt::format("flatten of %{} ({}): Dimension out of range (expected to be in range of "
                         "[{}, {}], but got {})",
                         x->name, x->type.str(), -rank, rank - 1, d);
    if (d < 0) d += rank;
  }
  if (dims[0] > dims[1])
    return fmt::format("flatten of %{} ({}): flatten() has invalid args: start_dim cannot come "
                       "after end_dim",
                       x->name, x->type.str());
  if (x->type.rank() == 0) {
    out = TensorType{x->type.dtype, {1}};
    return {};
  }
  const Shape& in = x->type.shape;
  Shape shape(in.begin(), in.begin() + dims[0]);
  int64_t merged = 1;
  for (int64_t i = dims[0]; i <= dims[1]; ++i)
    merged *= in[size_t(i)];
  shape.push_back(merged);
  shape.insert(shape.end(), in.begin() + dims[1] + 1, in.end());
  out = TensorType{x->type.dtype, std::move(shape)};
  return {};
}

/// x.reshape_as(like): x's elements, row-major, in like's shape (x's dtype).
std::string inferReshapeAs(const Op& op, TensorType& out) {
  const Value* x = op.operands[0];
  const Value* like = op.operands[1];
  if (x->type.numel() != like->type.numel())
    return fmt::format("reshape_as: shape '[{}]' of %{} is invalid for input %{} of size {} ({})",
                       fmt::join(like->type.shape, ", "), like->name, x->name, x->type.numel(),
                       x->type.str());
  out = TensorType{x->type.dtype, like->type.shape};
  return {};
}

// --- convolution and pooling over [B,C,H,W] ---

std::string checkWindow(const Window2d& w, const char* op) {
  if (w.kh < 1 || w.kw < 1 || w.sh < 1 || w.sw < 1 || w.dh < 1 || w.dw < 1)
    return fmt::format("{}: kernel, stride and dilation must be positive", op);
  if (w.pt < 0 || w.pb < 0 || w.pl < 0 || w.pr < 0)
    return fmt::format("{}: negative padding is not supported", op);
  return {};
}

/// conv2d's output [B, O, Ho, Wo] for input x and weight shape [O, C/g, kH, kW].
std::string convOutput(const Value* x, const Shape& wshape, const Window2d& w, Shape& out) {
  TRY(expectF32(x, "conv2d input"));
  TRY(needRank(x, 4, "conv2d input"));
  TRY(checkWindow(w, "conv2d"));
  if (w.groups < 1) return "conv2d: groups must be positive";
  const Shape& s = x->type.shape;
  if (wshape[0] % w.groups != 0)
    return fmt::format("conv2d: {} output channels are not divisible by groups={}", wshape[0],
                       w.groups);
  if (s[1] != wshape[1] * w.groups)
    return fmt::format("conv2d: weight [{}] with groups={} expects {} input channels, input %{} "
                       "is {}",
                       fmt::join(wshape, ","), w.groups, wshape[1] * w.groups, x->name,
                       x->type.str());
  int64_t ho = convOutSize(s[2], w.kh, w.sh, w.pt, w.pb, w.dh);
  int64_t wo = convOutSize(s[3], w.kw, w.sw, w.pl, w.pr, w.dw);
  if (ho < 1 || wo < 1)
    return fmt::format("conv2d: padded input {}x{} is smaller than the dilated kernel {}x{}",
                       s[2] + w.pt + w.pb, s[3] + w.pl + w.pr, w.dh * (w.kh - 1) + 1,
                       w.dw * (w.kw - 1) + 1);
  out = {s[0], wshape[0], ho, wo};
  return {};
}

std::string inferConv2d(const Op& op, TensorType& out) {
  const Value* wt = op.operands[1];
  TRY(expectF32(wt, "conv2d weight"));
  TRY(needRank(wt, 4, "conv2d weight"));
  Shape shape;
  TRY(convOutput(op.operands[0], wt->type.shape,
                 convWindow(op.attrs, wt->type.shape[2], wt->type.shape[3]), shape));
  if (op.operands.size() == 3) {
    const Value* b = op.operands[2];
    TRY(expectF32(b, "conv2d bias"));
    if (b->type.shape != Shape{shape[1]})
      return fmt::format("conv2d: bias %{} must be f32[{}], got {}", b->name, shape[1],
                         b->type.str());
  }
  out = f32(shape);
  return {};
}

/// conv2d_input_grad (dy, w) {input_h, input_w}: dx of the conv2d whose
/// output gradient is dy; the input's height and width are attributes (the
/// output size rounds down, so dy does not determine them).
std::string inferConv2dInputGrad(const Op& op, TensorType& out) {
  const Value *dy = op.operands[0], *wt = op.operands[1];
  TRY(expectF32(dy, "conv2d_input_grad dy"));
  TRY(needRank(dy, 4, "conv2d_input_grad dy"));
  TRY(needRank(wt, 4, "conv2d_input_grad weight"));
  const Window2d w = convWindow(op.attrs, wt->type.shape[2], wt->type.shape[3]);
  if (w.groups < 1) return "conv2d_input_grad: groups must be positive";
  Value x;
  x.name = "input";
  x.type = f32({dy->type.shape[0], wt->type.shape[1] * w.groups, op.attrs.getInt("input_h"),
                op.attrs.getInt("input_w")});
  Shape y;
  TRY(convOutput(&x, wt->type.shape, w, y));
  if (y != dy->type.shape)
    return fmt::format("conv2d_input_grad: dy %{} is {} but the conv2d of {} gives f32[{}]",
                       dy->name, dy->type.str(), x.type.str(), fmt::join(y, ","));
  out = x.type;
  return {};
}

/// conv2d_weight_grad (x, dy) {kernel_h, kernel_w}: dw [O, C/groups, kH, kW].
std::string inferConv2dWeightGrad(const Op& op, TensorType& out) {
  const Value *x = op.operands[0], *dy = op.operands[1];
  TRY(expectF32(dy, "conv2d_weight_grad dy"));
  TRY(needRank(dy, 4, "conv2d_weight_grad dy"));
  TRY(needRank(x, 4, "conv2d_weight_grad input"));
  const Window2d w = convWindow(op.attrs, op.attrs.getInt("kernel_h"), op.attrs.getInt("kernel_w"));
  if (w.groups < 1 || x->type.shape[1] % w.groups != 0)
    return fmt::format("conv2d_weight_grad: input channels of {} are not divisible by groups={}",
                       x->type.str(), w.groups);
  Shape wshape = {dy->type.shape[1], x->type.shape[1] / w.groups, w.kh, w.kw};
  Shape y;
  TRY(convOutput(x, wshape, w, y));
  if (y != dy->type.shape)
    return fmt::format("conv2d_weight_grad: dy %{} is {} but the conv2d of %{} gives f32[{}]",
                       dy->name, dy->type.str(), x->name, fmt::join(y, ","));
  out = f32(wshape);
  return {};
}

std::string inferChannelSum(const Op& op, TensorType& out) {
  TRY(expectF32(op.operands[0], "channel_sum operand"));
  if (op.operands[0]->type.rank() < 2)
    return fmt::format("channel_sum operand %{} must have rank >= 2, got {}", op.operands[0]->name,
                       op.operands[0]->type.str());
  out = f32({op.operands[0]->type.shape[1]});
  return {};
}

/// BatchNorm: x is [B,C,...] (rank >= 2, channels in dim 1); its statistics
/// are f32[3,C] (mean; invstd; unbiased variance), per-channel tensors f32[C].
std::string checkBatchNormInput(const Value* x, const char* what) {
  TRY(expectF32(x, what));
  if (x->type.rank() < 2)
    return fmt::format("{} %{} must have rank >= 2, got {}", what, x->name, x->type.str());
  return {};
}

std::string checkChannels(const Value* v, int64_t c, int64_t rows, const char* what) {
  TRY(expectF32(v, what));
  Shape want = rows ? Shape{rows, c} : Shape{c};
  if (v->type.shape != want)
    return fmt::format("{} %{} must be {}, got {}", what, v->name, f32(want).str(), v->type.str());
  return {};
}

std::string inferBatchNormStats(const Op& op, TensorType& out) {
  TRY(checkBatchNormInput(op.operands[0], "batch_norm_stats input"));
  if (!(op.attrs.getDouble("eps", 1e-5) >= 0)) return "batch_norm_stats: eps must be >= 0";
  out = f32({3, op.operands[0]->type.shape[1]});
  return {};
}

std::string inferBatchNormEvalStats(const Op& op, TensorType& out) {
  const int64_t c = op.operands[0]->type.rank() == 1 ? op.operands[0]->type.shape[0] : -1;
  TRY(checkChannels(op.operands[0], c, 0, "running_mean"));
  TRY(checkChannels(op.operands[1], c, 0, "running_var"));
  if (!(op.attrs.getDouble("eps", 1e-5) >= 0)) return "batch_norm_eval_stats: eps must be >= 0";
  out = f32({3, c});
  return {};
}

std::string inferBatchNorm(const Op& op, TensorType& out) {
  const Value* x = op.operands[0];
  TRY(checkBatchNormInput(x, "batch_norm input"));
  const int64_t c = x->type.shape[1];
  TRY(checkChannels(op.operands[1], c, 3, "batch_norm statistics"));
  if (op.operands.size() == 3) return "batch_norm takes a weight and a bias, or neither";
  for (size_t i = 2; i < op.operands.size(); ++i)
    TRY(checkChannels(op.operands[i], c, 0, i == 2 ? "batch_norm weight" : "batch_norm bias"));
  out = x->type;
  return {};
}

std::string inferBatchNormUpdateStats(const Op& op, TensorType&) {
  const Value* stats = op.operands[3];
  const int64_t c = stats->type.rank() == 2 ? stats->type.shape[1] : -1;
  TRY(checkChannels(stats, c, 3, "batch_norm_update_stats statistics"));
  const char* names[3] = {"running_mean", "running_var", "num_batches_tracked"};
  for (int i = 0; i < 3; ++i) {
    const Value* v = op.operands[size_t(i)];
    if (v->kind != ValueKind::State || v->desc.buffer == BufferKind::None)
      return fmt::format("%{} ({}) is not a buffer", v->name, names[i]);
    if (i < 2)
      TRY(checkChannels(v, c, 0, names[i]));
    else if (v->type != f32({}))
      return fmt::format("num_batches_tracked %{} must be f32[]", v->name);
  }
  if (op.attrs.has("momentum") && !(op.attrs.getDouble("momentum") >= 0))
    return "batch_norm_update_stats: momentum must be >= 0";
  return {};
}

std::string inferBatchNormGrad(const Op& op, TensorType& out) {
  const Value* x = op.operands[1];
  TRY(checkBatchNormInput(x, "batch_norm_grad input"));
  if (op.operands[0]->type != x->type)
    return fmt::format("batch_norm_grad: dy {} does not match x {}", op.operands[0]->type.str(),
                       x->type.str());
  TRY(checkChannels(op.operands[2], x->type.shape[1], 3, "batch_norm_grad statistics"));
  if (op.operands.size() == 4)
    TRY(checkChannels(op.operands[3], x->type.shape[1], 0, "batch_norm_grad weight"));
  out = x->type;
  return {};
}

std::string inferBatchNormWeightGrad(const Op& op, TensorType& out) {
  TRY(inferBatchNormGrad(op, out));
  out = f32({out.shape[1]});
  return {};
}

/// max_pool2d / avg_pool2d: PyTorch's pool2d_shape_check.
std::string poolOutput(const Op& op, const Value* x, Shape& out) {
  const char* name = opName(op.kind);
  TRY(expectF32(x, "pooling input"));
  TRY(needRank(x, 4, "pooling input"));
  const Window2d w = poolWindow(op.attrs);
  TRY(checkWindow(w, name));
  if (w.kw / 2 < w.pl || w.kh / 2 < w.pt)
    return fmt::format("{}: pad should be smaller than or equal to half of kernel size, but got "
                       "padW = {}, padH = {}, kW = {}, kH = {}",
                       name, w.pl, w.pt, w.kw, w.kh);
  const Shape& s = x->type.shape;
  int64_t ho = poolOutSize(s[2], w.kh, w.sh, w.pt, w.dh, w.ceil_mode);
  int64_t wo = poolOutSize(s[3], w.kw, w.sw, w.pl, w.dw, w.ceil_mode);
  if (ho < 1 || wo < 1)
    return fmt::format("{}: Given input size: ({}x{}x{}). Calculated output size: ({}x{}x{}). "
                       "Output size is too small",
                       name, s[1], s[2], s[3], s[1], ho, wo);
  out = {s[0], s[1], ho, wo};
  return {};
}

std::string inferPool2d(const Op& op, TensorType& out) {
  Shape shape;
  TRY(poolOutput(op, op.operands[0], shape));
  out = f32(shape);
  return {};
}

std::string inferAdaptivePool2d(const Op& op, TensorType& out) {
  const Value* x = op.operands[0];
  TRY(expectF32(x, "adaptive_avg_pool2d input"));
  TRY(needRank(x, 4, "adaptive_avg_pool2d input"));
  int64_t oh = op.attrs.getInt("output_h"), ow = op.attrs.getInt("output_w");
  if (oh < 1 || ow < 1) return "adaptive_avg_pool2d: output_h and output_w must be positive";
  out = f32({x->type.shape[0], x->type.shape[1], oh, ow});
  return {};
}

/// A pooling gradient (dy, x): dx like x; dy must be the pooling's output.
std::string inferPoolGrad(const Op& op, TensorType& out) {
  const Value *dy = op.operands[0], *x = op.operands[1];
  TRY(expectF32(dy, "pooling gradient dy"));
  Shape y;
  if (op.kind == OpKind::AdaptiveAvgPool2dGrad) {
    TRY(needRank(x, 4, "adaptive_avg_pool2d_grad input"));
    y = {x->type.shape[0], x->type.shape[1], op.attrs.getInt("output_h"),
         op.attrs.getInt("output_w")};
  } else {
    TRY(poolOutput(op, x, y));
  }
  if (dy->type.shape != y)
    return fmt::format("{}: dy %{} is {} but pooling %{} gives f32[{}]", opName(op.kind), dy->name,
                       dy->type.str(), x->name, fmt::join(y, ","));
  out = x->type;
  return {};
}

std::string inferDropoutMask(const Op& op, TensorType& out) {
  for (const Value* v : op.operands)
    if (v->type != i32({})) return fmt::format("dropout_mask operands must be i32[], got %{}", v->name);
  double p = op.attrs.getDouble("p", 0.5);
  if (!(p >= 0 && p < 1)) return "dropout_mask p must be in [0, 1)";
  int64_t rows = op.attrs.getInt("rows"), cols = op.attrs.getInt("cols");
  if (rows < 1 || cols < 1) return "dropout_mask needs rows and cols attributes";
  out = f32({rows, cols});
  return {};
}

std::string inferBinarySame(const Op& op, TensorType& out) {
  TRY(expectF32(op.operands[0], "lhs"));
  if (op.operands[0]->type != op.operands[1]->type)
    return fmt::format("operand types differ: {} vs {}", op.operands[0]->type.str(),
                       op.operands[1]->type.str());
  out = op.operands[0]->type;
  return {};
}

std::string checkReduction(const Op& op) {
  std::string r = op.attrs.getString("reduction", "mean");
  if (r == "batchmean" && (op.kind == OpKind::KlDivLoss || op.kind == OpKind::KlDivLossGrad))
    return {};
  if (r != "mean" && r != "sum") return fmt::format("reduction must be mean or sum, got '{}'", r);
  return {};
}

/// A loss's per-class or per-output weights (weight=, pos_weight=) must fit
/// the scores' columns: weight one per class, pos_weight one per output or a
/// single one (broadcast, as PyTorch allows).
std::string checkLossWeights(const Op& op) {
  const int64_t cols = op.operands[0]->type.rank() == 2 ? op.operands[0]->type.shape[1] : 1;
  if (op.attrs.has("weight")) {
    auto w = op.attrs.getDoubles("weight");
    if (int64_t(w.size()) != cols)
      return fmt::format("weight has {} values for {} classes", w.size(), cols);
  }
  if (op.attrs.has("pos_weight")) {
    auto p = op.attrs.getDoubles("pos_weight");
    if (int64_t(p.size()) != cols && p.size() != 1)
      return fmt::format("pos_weight has {} values for {} outputs", p.size(), cols);
  }
  return {};
}

std::string checkClassPair(const Op& op) {
  const Value* s = op.operands[0];
  const Value* y = op.operands[1];
  TRY(expectF32(s, "scores"));
  TRY(needRank(s, 2, "scores"));
  if (y->type != i32({s->type.shape[0]}))
    return fmt::format("labels must be i32[{}], got {}", s->type.shape[0], y->type.str());
  return {};
}

std::string checkRealPair(const Op& op) {
  TRY(expectF32(op.operands[0], "prediction"));
  TRY(needRank(op.operands[0], 2, "prediction"));
  if (op.operands[0]->type != op.operands[1]->type)
    return fmt::format("target {} does not match prediction {}", op.operands[1]->type.str(),
                       op.operands[0]->type.str());
  return {};
}

bool isClassLossGrad(OpKind k) { return k == OpKind::NllLossGrad || k == OpKind::LogSoftmaxNllGrad; }

std::string inferClassLoss(const Op& op, TensorType& out) {
  TRY(checkClassPair(op));
  TRY(checkReduction(op));
  TRY(checkLossWeights(op));
  out = f32({});
  return {};
}

std::string inferRealLoss(const Op& op, TensorType& out) {
  TRY(checkRealPair(op));
  TRY(checkReduction(op));
  TRY(checkLossWeights(op));
  out = f32({});
  return {};
}

std::string inferCountCorrect(const Op& op, TensorType& out) {
  TRY(checkClassPair(op));
  out = f32({});
  return {};
}

std::string inferLossGrad(const Op& op, TensorType& out) {
  TRY(isClassLossGrad(op.kind) ? checkClassPair(op) : checkRealPair(op));
  TRY(checkReduction(op));
  TRY(checkLossWeights(op));
  out = op.operands[0]->type;
  return {};
}

std::string inferGradLike(const Op& op, TensorType& out) { return inferBinarySame(op, out); }

std::string inferSumRows(const Op& op, TensorType& out) {
  TRY(expectF32(op.operands[0], "operand"));
  TRY(needRank(op.operands[0], 2, "operand"));
  out = f32({op.operands[0]->type.shape[1]});
  return {};
}

std::string inferGradNorm(const Op& op, TensorType& out) {
  for (const Value* g : op.operands)
    TRY(expectF32(g, "grad_norm operand"));
  if (op.attrs.getDouble("norm_type", 2.0) != 2.0) return "grad_norm supports only norm_type=2";
  out = f32({});
  return {};
}

std::string inferClipCoef(const Op& op, TensorType& out) {
  TRY(expectF32(op.operands[0], "clip_coef operand"));
  TRY(needRank(op.operands[0], 0, "clip_coef operand"));
  out = f32({});
  return {};
}

std::string inferScale(const Op& op, TensorType& out) {
  TRY(expectF32(op.operands[0], "scale operand"));
  TRY(expectF32(op.operands[1], "scale factor"));
  TRY(needRank(op.operands[1], 0, "scale factor"));
  out = op.operands[0]->type;
  return {};
}

std::string checkUpdateCommon(const Op& op) {
  const Value* w = op.operands[0];
  if (w->kind != ValueKind::Param) return fmt::format("%{} is not a parameter", w->name);
  if (op.operands[1]->type != w->type)
    return fmt::format("gradient {} does not match parameter {}", op.operands[1]->type.str(),
                       w->type.str());
  if (op.operands[2]->type != i32({})) return "step operand must be i32[]";
  for (size_t i = 3; i < op.operands.size(); ++i) {
    if (op.operands[i]->kind != ValueKind::State)
      return fmt::format("%{} is not optimizer state", op.operands[i]->name);
    if (op.operands[i]->type != w->type) return "optimizer state must match the parameter";
  }
  if (!(op.attrs.getDouble("lr", 0) > 0)) return "lr must be > 0";
  if (op.attrs.has("clip_value") && !(op.attrs.getDouble("clip_value") >= 0))
    return "clip_value must be >= 0";
  return {};
}

std::string inferSgdUpdate(const Op& op, TensorType&) {
  TRY(checkUpdateCommon(op));
  bool has_buf = op.operands.size() == 4;
  if (has_buf != (op.attrs.getDouble("momentum", 0) != 0))
    return "sgd_update takes a momentum buffer exactly when momentum != 0";
  return {};
}

std::string inferAdamUpdate(const Op& op, TensorType&) {
  TRY(checkUpdateCommon(op));
  if ((op.operands.size() == 6) != op.attrs.getBool("amsgrad"))
    return "adam_update takes a max_exp_avg_sq exactly when amsgrad";
  return {};
}

std::string inferUpdate(const Op& op, TensorType&) { return checkUpdateCommon(op); }

std::string inferRmspropUpdate(const Op& op, TensorType&) {
  TRY(checkUpdateCommon(op));
  size_t want =
      4 + (op.attrs.getDouble("momentum", 0) > 0 ? 1 : 0) + (op.attrs.getBool("centered") ? 1 : 0);
  if (op.operands.size() != want)
    return "rmsprop_update takes a momentum buffer exactly when momentum > 0 and a grad_avg "
           "exactly when centered";
  return {};
}

using AttrCheck = std::string (*)(const Attrs&);

/// The attribute check of an op's math struct (op_math.h), when it has one.
template <class Math> std::string checkMathAttrs(const Attrs& a) {
  if constexpr (requires { Math::check(a); }) return Math::check(a);
  else return {};
}

struct Entry {
  OpInfo info;
  Rule rule;
  unsigned traits;
  AttrCheck attr_check;
};

using namespace optrait;
const Entry kOps[] = {
#define OP(Enum, Name, Min, Max, Cat, RuleFn, Traits, Grad, Math)                                  \
  {{OpKind::Enum, Name, Min, Max, OpCategory::Cat}, RuleFn, Traits, checkMathAttrs<opmath::Math>},
#include "compiler/ir/ops.def"
#undef OP
};

} // namespace

const OpInfo& opInfo(OpKind kind) { return kOps[size_t(kind)].info; }
const char* opName(OpKind kind) { return opInfo(kind).name; }
unsigned opTraits(OpKind kind) { return kOps[size_t(kind)].traits; }

const OpInfo* findOp(const std::string& name) {
  for (const Entry& e : kOps)
    if (name == e.info.name) return &e.info;
  return nullptr;
}

std::string inferType(const Op& op, TensorType& out) {
  const Entry& e = kOps[size_t(op.kind)];
  int n = int(op.operands.size());
  if (n < e.info.min_operands || n > e.info.max_operands) {
    if (e.info.min_operands == e.info.max_operands)
      return fmt::format("{} takes {} operands, got {}", e.info.name, e.info.min_operands, n);
    return fmt::format("{} takes {} to {} operands, got {}", e.info.name, e.info.min_operands,
                       e.info.max_operands, n);
  }
  std::string error = e.attr_check(op.attrs);
  return error.empty() ? e.rule(op, out) : error;
}

} // namespace descent
