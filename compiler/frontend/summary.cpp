// The `descent check` summary (see summary.h).
//
// FLOP conventions, per sample:
//   forward   Linear: 2*in*out (one multiply and one add per weight) + out for
//             the bias; Flatten: 0 (a view); every other layer: 1 per element
//             it produces; the loss: 1 per output element.
//   backward  Linear: 2*in*out for dW, 2*in*out for dX except for the first
//             Linear (its dX would go to the input, which needs no gradient),
//             out for db; layers after the first Linear: 1 per element; layers
//             before it need no backward at all; the loss: 1 per output element.
//   update    per step, spread over the batch: SGD 2 per parameter (p -= lr*g),
//             +2 with weight decay, +2 with momentum (+2 more with dampening or
//             Nesterov); Adam 12 per parameter (moments, bias correction, sqrt,
//             division), +2 with weight decay.
// The matmul-only count is what design.md §8 quotes (454 kFLOP for the seed model).
#include "compiler/frontend/summary.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace descent {

namespace {

// 109386 -> "109,386"
std::string grouped(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

int64_t layerParams(const Layer& l) {
  if (l.kind == LayerKind::Conv2d)
    return l.out_channels * (l.in_channels / l.groups) * l.kernel[0] * l.kernel[1] +
           (l.bias ? l.out_channels : 0);
  if (l.kind != LayerKind::Linear) return 0;
  return l.in_features * l.out_features + (l.bias ? l.out_features : 0);
}

int64_t product(const std::vector<int64_t>& v) {
  int64_t n = 1;
  for (int64_t d : v)
    n *= d;
  return n;
}

/// The schedule with the arguments that shape it (defaults filled in).
std::string schedulerRepr(const SchedulerSpec& s) {
  using K = SchedulerKind;
  std::string args;
  switch (s.kind) {
  case K::StepLR: args = fmt::format("step_size={}, gamma={}", s.step_size, s.gamma); break;
  case K::MultiStepLR:
    args = fmt::format("milestones=[{}], gamma={}", fmt::join(s.milestones, ", "), s.gamma);
    break;
  case K::ExponentialLR: args = fmt::format("gamma={}", s.gamma); break;
  case K::CosineAnnealingLR: args = fmt::format("T_max={}, eta_min={}", s.T_max, s.eta_min); break;
  case K::LinearLR:
    args = fmt::format("start_factor={}, end_factor={}, total_iters={}", s.start_factor,
                       s.end_factor, s.total_iters);
    break;
  case K::OneCycleLR:
    args = fmt::format("max_lr={}", s.max_lr);
    if (s.total_steps) args += fmt::format(", total_steps={}", s.total_steps);
    if (s.epochs) args += fmt::format(", epochs={}", s.epochs);
    if (s.steps_per_epoch) args += fmt::format(", steps_per_epoch={}", s.steps_per_epoch);
    args += fmt::format(", pct_start={}, anneal_strategy='{}', cycle_momentum={}", s.pct_start,
                        s.anneal_cos ? "cos" : "linear", s.cycle_momentum ? "True" : "False");
    if (s.three_phase) args += ", three_phase=True";
    break;
  case K::ReduceLROnPlateau:
    args = fmt::format("mode='{}', factor={}, patience={}, threshold={}, threshold_mode='{}', "
                       "cooldown={}, min_lr={}",
                       s.mode_max ? "max" : "min", s.factor, s.patience, s.threshold,
                       s.threshold_abs ? "abs" : "rel", s.cooldown, s.min_lr);
    break;
  }
  return fmt::format("{}({})", schedulerName(s.kind), args);
}

std::string optimizerRepr(const OptimizerSpec& o) {
  const char* maximize = o.maximize ? ", maximize=True" : "";
  if (o.kind == OptimizerKind::SGD)
    return fmt::format("SGD(lr={}, momentum={}, dampening={}, weight_decay={}, nesterov={}{})",
                       o.lr, o.momentum, o.dampening, o.weight_decay, o.nesterov ? "True" : "False",
                       maximize);
  return fmt::format("{}(lr={}, betas=({}, {}), eps={}, weight_decay={}{})", optimizerName(o.kind),
                     o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, maximize);
}

} // namespace

std::string layerRepr(const Layer& l) {
  switch (l.kind) {
  case LayerKind::Linear:
    return l.bias ? fmt::format("Linear({}, {})", l.in_features, l.out_features)
                  : fmt::format("Linear({}, {}, bias=False)", l.in_features, l.out_features);
  case LayerKind::LeakyReLU: return fmt::format("LeakyReLU(negative_slope={})", l.negative_slope);
  case LayerKind::Softmax:
  case LayerKind::LogSoftmax: return fmt::format("{}(dim={})", layerName(l.kind), l.dim);
  case LayerKind::Dropout: return fmt::format("Dropout(p={})", l.p);
  case LayerKind::Flatten:
    return fmt::format("Flatten(start_dim={}, end_dim={})", l.start_dim, l.end_dim);
  case LayerKind::Activation:
  case LayerKind::Conv2d:
  case LayerKind::MaxPool2d:
  case LayerKind::AvgPool2d:
  case LayerKind::AdaptiveAvgPool2d:
    return l.repr;
  default: return fmt::format("{}()", layerName(l.kind));
  }
}

FlopCounts countFlops(const ModelSpec& spec) {
  FlopCounts f;
  int64_t width = spec.input_size;
  int64_t backward = 0;
  bool seenLinear = false;
  for (const Layer& l : spec.layers) {
    if (l.kind == LayerKind::Flatten) continue; // a view: no arithmetic
    if (l.kind == LayerKind::Conv2d) {
      // 2 per multiply-add of each output element, as for Linear: forward,
      // dW, and dX unless this is the first layer with parameters.
      const int64_t outs = product(l.out_shape);
      const int64_t mm = 2 * outs * (l.in_channels / l.groups) * l.kernel[0] * l.kernel[1];
      const int64_t bias = l.bias ? outs : 0;
      f.forward += mm + bias;
      f.matmul_train += mm + mm + (seenLinear ? mm : 0);
      backward += mm + (seenLinear ? mm : 0) + bias;
      seenLinear = true;
      width = outs;
    } else if (l.kind == LayerKind::MaxPool2d || l.kind == LayerKind::AvgPool2d ||
               l.kind == LayerKind::AdaptiveAvgPool2d) {
      // One comparison or addition per window element (approximately).
      const int64_t outs = product(l.out_shape);
      const int64_t per = l.kind == LayerKind::AdaptiveAvgPool2d ? (width + outs - 1) / outs
                                                                 : l.kernel[0] * l.kernel[1];
      f.forward += outs * per;
      if (seenLinear) backward += outs * per;
      width = outs;
    } else if (l.kind == LayerKind::Linear) {
      int64_t mm = 2 * l.in_features * l.out_features;
      int64_t bias = l.bias ? l.out_features : 0;
      f.forward += mm + bias;
      f.matmul_train += mm + mm + (seenLinear ? mm : 0);
      backward += mm + (seenLinear ? mm : 0) + bias;
      seenLinear = true;
      width = l.out_features;
    } else {
      f.forward += width;
      if (seenLinear) backward += width;
    }
  }
  int64_t out = spec.outputSize();
  f.forward += out;
  backward += out;
  int64_t params = spec.parameterCount();
  const OptimizerSpec& o = spec.optimizer;
  int64_t perParam;
  if (o.kind == OptimizerKind::SGD) {
    perParam = 2 + (o.weight_decay != 0 ? 2 : 0) + (o.momentum != 0 ? 2 : 0) +
               (o.momentum != 0 && (o.dampening != 0 || o.nesterov) ? 2 : 0);
  } else {
    perParam = 12 + (o.weight_decay != 0 ? 2 : 0);
  }
  int64_t batch = spec.batch > 0 ? spec.batch : 1;
  f.train_step = f.forward + backward + (perParam * params + batch - 1) / batch;
  return f;
}

std::string humanBytes(int64_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  if (u == 0) return fmt::format("{} B", bytes);
  return fmt::format("{:.1f} {}", v, units[u]);
}

std::string renderSummary(const ModelSpec& spec) {
  const int64_t B = spec.batch;
  // The layer column grows to the longest layer (a Conv2d's repr is long),
  // so the shapes and counts stay aligned; 34 otherwise.
  size_t lw = 34;
  for (const Layer& l : spec.layers)
    lw = std::max(lw, layerRepr(l).size());
  std::string rule(72 + lw - 34, '=');
  std::string thin(72 + lw - 34, '-');
  std::string out;
  out += fmt::format("Model: {} ({})\n", spec.name, spec.path);
  out += rule + "\n";
  out += fmt::format("{:<5} {:<{}} {:<18} {:>12}\n", "#", "Layer (type)", lw, "Output Shape",
                     "Param #");
  out += rule + "\n";
  out += fmt::format(
      "{:<5} {:<{}} {:<18} {:>12}\n", "-",
      fmt::format("Input {}: f32{}", spec.input_name, ModelSpec::shapeText(spec.inputShape())), lw,
      ModelSpec::shapeText(spec.inputShape(), B), 0);
  int64_t width = spec.input_size;
  int64_t activations = B * spec.input_size; // elements kept for the backward pass
  for (const Layer& l : spec.layers) {
    if (l.kind == LayerKind::Linear) width = l.out_features;
    else if (!l.out_shape.empty())
      width = product(l.out_shape);
    if (l.kind != LayerKind::Flatten) activations += B * width; // Flatten stores nothing
    std::vector<int64_t> shape = l.out_shape.empty() ? std::vector<int64_t>{width} : l.out_shape;
    out += fmt::format("{:<5} {:<{}} {:<18} {:>12}\n", l.index, layerRepr(l), lw,
                       ModelSpec::shapeText(shape, B), grouped(layerParams(l)));
  }
  out += rule + "\n";
  int64_t params = spec.parameterCount();
  FlopCounts f = countFlops(spec);
  out += fmt::format("Total params:              {}\n", grouped(params));
  out += fmt::format("Trainable params:          {}\n", grouped(params));
  out += fmt::format("Forward FLOPs/sample:      {}\n", grouped(f.forward));
  out += fmt::format("Train-step FLOPs/sample:   {} ({} in matmuls)\n", grouped(f.train_step),
                     grouped(f.matmul_train));
  out += fmt::format("Params size:               {} ({} B, fp32)\n", humanBytes(params * 4),
                     grouped(params * 4));
  out += fmt::format("Activations (batch {}):    {} ({} B, fp32)\n", B, humanBytes(activations * 4),
                     grouped(activations * 4));
  out += thin + "\n";
  out += fmt::format("Target:    {}: {}[{}]\n", spec.target_name,
                     spec.target_kind == TargetKind::Class ? "class" : "f32", spec.target_size);
  std::string loss_args;
  if (spec.loss.kind == LossKind::SmoothL1Loss)
    loss_args = fmt::format(", beta={}", spec.loss.beta);
  if (spec.loss.kind == LossKind::HuberLoss) loss_args = fmt::format(", delta={}", spec.loss.delta);
  if (spec.loss.label_smoothing > 0)
    loss_args = fmt::format(", label_smoothing={}", spec.loss.label_smoothing);
  if (!spec.loss.weight.empty())
    loss_args += fmt::format(", weight=[{}]", fmt::join(spec.loss.weight, ", "));
  if (spec.loss.ignore_index)
    loss_args += fmt::format(", ignore_index={}", *spec.loss.ignore_index);
  if (spec.loss.log_target) loss_args += ", log_target=True";
  if (!spec.loss.pos_weight.empty())
    loss_args += fmt::format(", pos_weight=[{}]", fmt::join(spec.loss.pos_weight, ", "));
  out += fmt::format("Loss:      {}(reduction='{}'{})\n", lossName(spec.loss.kind),
                     reductionName(spec.loss.reduction), loss_args);
  out += fmt::format("Optimizer: {}\n", optimizerRepr(spec.optimizer));
  if (spec.scheduler) out += fmt::format("Scheduler: {}\n", schedulerRepr(*spec.scheduler));
  if (spec.clip.value) out += fmt::format("Clipping:  clip_grad_value_({})\n", *spec.clip.value);
  if (spec.clip.norm)
    out += fmt::format("Clipping:  clip_grad_norm_(max_norm={}, norm_type=2)\n", *spec.clip.norm);
  if (spec.transform)
    out += fmt::format("Transform: Normalize({}, {})\n", spec.transform->mean, spec.transform->std);
  out += fmt::format("Batch:     {}\n", B);
  out += fmt::format("Epochs:    {}\n", spec.epochs);
  if (spec.seed) out += fmt::format("Seed:      {}\n", *spec.seed);
  return out;
}

} // namespace descent
