// ModelSpec -> forward graph IR (see model_builder.h).
#include "compiler/ir/model_builder.h"

#include <array>
#include <fmt/format.h>
#include <stdexcept>
#include <variant>

namespace descent {

std::unique_ptr<Graph> buildForwardGraph(const ModelSpec& spec, const BuildOptions& opts) {
  auto g = std::make_unique<Graph>(spec.name.empty() ? "model" : spec.name);
  g->setFile(spec.path);
  const int64_t B = opts.batch;
  bool has_dropout = false;
  for (const Layer& l : spec.layers) has_dropout |= l.kind == LayerKind::Dropout;

  // The user's names come first; internal values named like one of them get a
  // suffix (Graph::uniqueName), and later stages find inputs by role.
  // The input keeps its declared shape after the batch: f32[1, 28, 28] is
  // [B,1,28,28] (PyTorch's N, C, H, W), f32[784] is [B,784].
  Shape xshape = {B};
  for (int64_t d : spec.inputShape())
    xshape.push_back(d);
  Value* x = g->addInput(spec.input_name,
                         TensorType{opts.input_u8 ? DType::U8 : DType::F32, std::move(xshape)},
                         InputRole::Input);
  Value* y = spec.target_kind == TargetKind::Class
                 ? g->addInput(spec.target_name, i32({B}), InputRole::Target)
                 : g->addInput(spec.target_name, f32({B, spec.target_size}), InputRole::Target);
  Value* step = g->addInput("step", i32({}), InputRole::Step);
  Value* seed =
      (has_dropout && opts.training) ? g->addInput("seed", i32({}), InputRole::Seed) : nullptr;
  (void)step;

  // Params first, in state_dict order, so the printed header lists them all.
  std::vector<std::pair<Value*, Value*>> wb(spec.layers.size(), {nullptr, nullptr});
  // BatchNorm's buffers: running_mean, running_var, num_batches_tracked.
  std::vector<std::array<Value*, 3>> bufs(spec.layers.size(), {nullptr, nullptr, nullptr});
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const Layer& l = spec.layers[i];
    if (l.kind == LayerKind::BatchNorm1d || l.kind == LayerKind::BatchNorm2d) {
      // nn.BatchNorm's affine weight starts at ones, its bias at zeros
      // (reset_parameters); the buffers at zeros, running_var at ones.
      const int64_t c = l.in_channels;
      auto constant = [](double v) { return InitDist{InitDist::Kind::Constant, v, 0}; };
      if (l.affine) {
        ParamDesc wd = identityDesc({c});
        wd.init = constant(1);
        ParamDesc bd = identityDesc({c});
        bd.init = constant(0);
        wb[i].first = g->addParam(fmt::format("w{}", l.index), f32({c}),
                                  fmt::format("{}.weight", l.index), wd);
        wb[i].second =
            g->addParam(fmt::format("b{}", l.index), f32({c}), fmt::format("{}.bias", l.index), bd);
      }
      if (l.track_running_stats) {
        ParamDesc md = identityDesc({c}), vd = identityDesc({c}), nd = identityDesc({});
        md.buffer = vd.buffer = BufferKind::Float;
        nd.buffer = BufferKind::Count;
        vd.init = constant(1);
        bufs[i] = {g->addState(fmt::format("bn{}_mean", l.index), f32({c}),
                               fmt::format("{}.running_mean", l.index), md),
                   g->addState(fmt::format("bn{}_var", l.index), f32({c}),
                               fmt::format("{}.running_var", l.index), vd),
                   g->addState(fmt::format("bn{}_count", l.index), f32({}),
                               fmt::format("{}.num_batches_tracked", l.index), nd)};
      }
      continue;
    }
    if (l.kind == LayerKind::Conv2d) {
      // nn.Conv2d's weight [out, in/groups, kH, kW], kept in PyTorch's layout;
      // fan-in in/groups·kH·kW for both weight and bias (PyTorch's default init).
      ParamDesc wd =
          identityDesc({l.out_channels, l.in_channels / l.groups, l.kernel[0], l.kernel[1]});
      wd.fan_in = torchFanIn(wd.torch_shape);
      wb[i].first = g->addParam(fmt::format("w{}", l.index), f32(wd.irShape()),
                                fmt::format("{}.weight", l.index), wd);
      if (l.bias)
        wb[i].second =
            g->addParam(fmt::format("b{}", l.index), f32({l.out_channels}),
                        fmt::format("{}.bias", l.index), identityDesc({l.out_channels}, wd.fan_in));
      continue;
    }
    if (l.kind != LayerKind::Linear) continue;
    // nn.Linear's weight is [out, in] in PyTorch; the IR stores it [in, out]
    // (docs/ir.md). Both weight and bias draw with the weight's fan-in.
    ParamDesc wd = permutedDesc({l.out_features, l.in_features}, {1, 0});
    wd.fan_in = torchFanIn(wd.torch_shape);
    wd.init = l.weight_init;
    wb[i].first = g->addParam(fmt::format("w{}", l.index), f32(wd.irShape()),
                              fmt::format("{}.weight", l.index), wd);
    if (l.bias) {
      ParamDesc bd = identityDesc({l.out_features}, wd.fan_in);
      bd.init = l.bias_init;
      wb[i].second = g->addParam(fmt::format("b{}", l.index), f32({l.out_features}),
                                 fmt::format("{}.bias", l.index), bd);
    }
  }

  Value* h = x;
  if (opts.input_u8 || spec.transform) {
    Attrs a;
    a.set("divisor", opts.input_u8 ? 255.0 : 1.0);
    if (spec.transform && spec.transform->perChannel()) {
      // [C, H, W]: one (mean, std) per channel of H*W elements.
      a.set("mean", spec.transform->mean);
      a.set("std", spec.transform->std);
      a.set("channel_size", spec.input_size / int64_t(spec.transform->mean.size()));
    } else {
      a.set("mean", spec.transform ? spec.transform->mean[0] : 0.0);
      a.set("std", spec.transform ? spec.transform->std[0] : 1.0);
    }
    h = g->add(OpKind::Normalize, {h}, a, spec.transform ? spec.transform->loc : spec.input_loc);
  }
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const Layer& l = spec.layers[i];
    Attrs a;
    switch (l.kind) {
    case LayerKind::Linear:
      h = g->add(OpKind::MatMul, {h, wb[i].first}, {}, l.loc);
      if (wb[i].second) h = g->add(OpKind::AddBias, {h, wb[i].second}, {}, l.loc);
      break;
    case LayerKind::Conv2d: {
      a.set("dilation_h", l.dilation[0]);
      a.set("dilation_w", l.dilation[1]);
      a.set("groups", l.groups);
      a.set("pad_bottom", l.padding[1]);
      a.set("pad_left", l.padding[2]);
      a.set("pad_right", l.padding[3]);
      a.set("pad_top", l.padding[0]);
      a.set("stride_h", l.stride[0]);
      a.set("stride_w", l.stride[1]);
      std::vector<Value*> operands = {h, wb[i].first};
      if (wb[i].second) operands.push_back(wb[i].second);
      h = g->add(OpKind::Conv2d, operands, a, l.loc);
      break;
    }
    case LayerKind::MaxPool2d:
    case LayerKind::AvgPool2d:
      if (l.kind == LayerKind::MaxPool2d) {
        a.set("dilation_h", l.dilation[0]);
        a.set("dilation_w", l.dilation[1]);
      } else {
        a.set("count_include_pad", l.count_include_pad);
      }
      a.set("ceil_mode", l.ceil_mode);
      a.set("kernel_h", l.kernel[0]);
      a.set("kernel_w", l.kernel[1]);
      a.set("padding_h", l.padding[0]);
      a.set("padding_w", l.padding[2]);
      a.set("stride_h", l.stride[0]);
      a.set("stride_w", l.stride[1]);
      h = g->add(l.kind == LayerKind::MaxPool2d ? OpKind::MaxPool2d : OpKind::AvgPool2d, {h}, a,
                 l.loc);
      break;
    case LayerKind::BatchNorm1d:
    case LayerKind::BatchNorm2d: {
      // Training (or no running statistics: F.batch_norm's bn_training):
      // the batch's statistics, and the running ones updated by the forward
      // pass; evaluation: the running statistics.
      a.set("eps", l.eps);
      Value* stats = nullptr;
      if (opts.training || !l.track_running_stats) {
        stats = g->add(OpKind::BatchNormStats, {h}, a, l.loc);
        if (opts.training && l.track_running_stats) {
          Attrs m;
          if (l.momentum) m.set("momentum", *l.momentum); // absent: momentum=None
          g->add(OpKind::BatchNormUpdateStats, {bufs[i][0], bufs[i][1], bufs[i][2], stats}, m,
                 l.loc);
        }
      } else {
        stats = g->add(OpKind::BatchNormEvalStats, {bufs[i][0], bufs[i][1]}, a, l.loc);
      }
      std::vector<Value*> operands = {h, stats};
      if (wb[i].first) operands.insert(operands.end(), {wb[i].first, wb[i].second});
      h = g->add(OpKind::BatchNorm, operands, {}, l.loc);
      break;
    }
    case LayerKind::AdaptiveAvgPool2d:
      a.set("output_h", l.kernel[0]);
      a.set("output_w", l.kernel[1]);
      h = g->add(OpKind::AdaptiveAvgPool2d, {h}, a, l.loc);
      break;
    case LayerKind::ReLU: h = g->add(OpKind::Relu, {h}, {}, l.loc); break;
    case LayerKind::Sigmoid: h = g->add(OpKind::Sigmoid, {h}, {}, l.loc); break;
    case LayerKind::Tanh: h = g->add(OpKind::Tanh, {h}, {}, l.loc); break;
    case LayerKind::LeakyReLU:
      a.set("negative_slope", l.negative_slope);
      h = g->add(OpKind::LeakyRelu, {h}, a, l.loc);
      break;
    case LayerKind::Softmax:
      a.set("dim", int64_t(1));
      h = g->add(OpKind::Softmax, {h}, a, l.loc);
      break;
    case LayerKind::LogSoftmax:
      a.set("dim", int64_t(1));
      h = g->add(OpKind::LogSoftmax, {h}, a, l.loc);
      break;
    case LayerKind::Activation: {
      // A layer of sema's activation table: its op and attributes as recorded.
      const OpInfo* info = findOp(l.op);
      if (!info) throw std::logic_error("model builder: unknown op " + l.op);
      for (const auto& [name, value] : l.attrs)
        std::visit([&, &name = name](const auto& v) { a.set(name, v); }, value);
      h = g->add(info->kind, {h}, a, l.loc);
      break;
    }
    case LayerKind::Flatten: {
      // torch.flatten with the dims as written (sema checked them against
      // the shape with the batch). A flatten that changes no shape
      // (Flatten() on [B, F]) is PyTorch's identity and adds no op.
      a.set("end_dim", l.end_dim);
      a.set("start_dim", l.start_dim);
      Op probe{OpKind::Flatten, {h}, nullptr, a, l.loc, nullptr};
      TensorType t;
      if (std::string e = inferType(probe, t); !e.empty())
        throw std::logic_error("model builder: " + e);
      if (t != h->type) h = g->add(OpKind::Flatten, {h}, a, l.loc);
      break;
    }
    case LayerKind::Dropout: {
      if (!opts.training || l.p == 0) break; // model.eval(): identity
      // The mask is [B, elements per sample] (its bits are a function of the
      // flat element index); an N-D activation is flattened to meet it and
      // the product viewed back in its shape (both views: no copy).
      auto [rows, cols] = std::pair{h->type.shape[0], h->type.numel() / h->type.shape[0]};
      a.set("p", l.p);
      a.set("salt", int64_t(l.index));
      a.set("rows", rows);
      a.set("cols", cols);
      Value* mask = g->add(OpKind::DropoutMask, {seed, step}, a, l.loc);
      if (h->type.rank() == 2) {
        h = g->add(OpKind::Mul, {h, mask}, {}, l.loc);
        break;
      }
      Attrs f;
      f.set("end_dim", int64_t(-1));
      f.set("start_dim", int64_t(1));
      Value* flat = g->add(OpKind::Flatten, {h}, f, l.loc);
      h = g->add(OpKind::ReshapeAs, {g->add(OpKind::Mul, {flat, mask}, {}, l.loc), h}, {}, l.loc);
      break;
    }
    }
  }
  Value* output = h;

  Attrs red;
  red.set("reduction", std::string(reductionName(spec.loss.reduction)));
  SourceLoc lloc = spec.loss.loc;
  Value* loss = nullptr;
  // CrossEntropyLoss/NLLLoss: weight and ignore_index only when written, so
  // a loss without them keeps its plain code.
  Attrs cls = red;
  if (!spec.loss.weight.empty()) cls.set("weight", spec.loss.weight);
  if (spec.loss.ignore_index) cls.set("ignore_index", *spec.loss.ignore_index);
  switch (spec.loss.kind) {
  case LossKind::NLLLoss:
    loss = g->add(OpKind::NllLoss, {h, y}, cls, lloc, nullptr, g->uniqueName("loss"));
    break;
  case LossKind::CrossEntropyLoss: {
    // CrossEntropyLoss is log_softmax followed by nll_loss, exactly as PyTorch defines it.
    Attrs d;
    d.set("dim", int64_t(1));
    Value* lp = g->add(OpKind::LogSoftmax, {h}, d, lloc);
    Attrs a = cls;
    if (spec.loss.label_smoothing > 0) a.set("label_smoothing", spec.loss.label_smoothing);
    loss = g->add(OpKind::NllLoss, {lp, y}, a, lloc, nullptr, g->uniqueName("loss"));
    break;
  }
  case LossKind::MSELoss: loss = g->add(OpKind::MseLoss, {h, y}, red, lloc, nullptr, g->uniqueName("loss")); break;
  case LossKind::BCELoss: loss = g->add(OpKind::BceLoss, {h, y}, red, lloc, nullptr, g->uniqueName("loss")); break;
  case LossKind::L1Loss:
    loss = g->add(OpKind::L1Loss, {h, y}, red, lloc, nullptr, g->uniqueName("loss"));
    break;
  case LossKind::SmoothL1Loss: {
    // PyTorch: beta == 0 is exactly l1_loss (forward and backward).
    Attrs a = red;
    if (spec.loss.beta > 0) a.set("beta", spec.loss.beta);
    loss = g->add(spec.loss.beta > 0 ? OpKind::SmoothL1Loss : OpKind::L1Loss, {h, y}, a, lloc,
                  nullptr, g->uniqueName("loss"));
    break;
  }
  case LossKind::HuberLoss: {
    Attrs a = red;
    a.set("delta", spec.loss.delta);
    loss = g->add(OpKind::HuberLoss, {h, y}, a, lloc, nullptr, g->uniqueName("loss"));
    break;
  }
  case LossKind::KLDivLoss: {
    // The input is log-probabilities (the model ends with LogSoftmax).
    Attrs a = red;
    if (spec.loss.log_target) a.set("log_target", true);
    loss = g->add(OpKind::KlDivLoss, {h, y}, a, lloc, nullptr, g->uniqueName("loss"));
    break;
  }
  case LossKind::BCEWithLogitsLoss: {
    Attrs a = red;
    if (!spec.loss.pos_weight.empty()) a.set("pos_weight", spec.loss.pos_weight);
    loss = g->add(OpKind::BceWithLogits, {h, y}, a, lloc, nullptr, g->uniqueName("loss"));
    break;
  }
  }
  g->setOutput("loss", loss);
  if (opts.eval_outputs) {
    g->setOutput("output", output);
    if (spec.target_kind == TargetKind::Class)
      g->setOutput("correct", g->add(OpKind::CountCorrect, {output, y}, {}, lloc, nullptr, g->uniqueName("correct")));
  }
  return g;
}

} // namespace descent
