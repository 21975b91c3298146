// Out-of-line parts of ModelSpec (see model_spec.h): names and size queries.
#include "compiler/frontend/model_spec.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace descent {

const char* layerName(LayerKind k) {
  switch (k) {
  case LayerKind::Linear: return "Linear";
  case LayerKind::ReLU: return "ReLU";
  case LayerKind::Sigmoid: return "Sigmoid";
  case LayerKind::Tanh: return "Tanh";
  case LayerKind::LeakyReLU: return "LeakyReLU";
  case LayerKind::Softmax: return "Softmax";
  case LayerKind::LogSoftmax: return "LogSoftmax";
  case LayerKind::Dropout: return "Dropout";
  case LayerKind::Flatten:
    return "Flatten";
  case LayerKind::Conv2d:
    return "Conv2d";
  case LayerKind::MaxPool2d:
    return "MaxPool2d";
  case LayerKind::AvgPool2d:
    return "AvgPool2d";
  case LayerKind::AdaptiveAvgPool2d:
    return "AdaptiveAvgPool2d";
  case LayerKind::BatchNorm1d:
    return "BatchNorm1d";
  case LayerKind::BatchNorm2d:
    return "BatchNorm2d";
  case LayerKind::Activation: return "Activation";
  }
  return "?";
}

const char* lossName(LossKind k) {
  switch (k) {
  case LossKind::NLLLoss: return "NLLLoss";
  case LossKind::CrossEntropyLoss: return "CrossEntropyLoss";
  case LossKind::MSELoss: return "MSELoss";
  case LossKind::BCELoss: return "BCELoss";
  case LossKind::BCEWithLogitsLoss: return "BCEWithLogitsLoss";
  case LossKind::L1Loss: return "L1Loss";
  case LossKind::SmoothL1Loss: return "SmoothL1Loss";
  case LossKind::HuberLoss: return "HuberLoss";
  case LossKind::KLDivLoss:
    return "KLDivLoss";
  }
  return "?";
}

const char* reductionName(Reduction r) {
  return r == Reduction::Mean ? "mean" : r == Reduction::Sum ? "sum" : "batchmean";
}

const char* optimizerName(OptimizerKind k) {
  switch (k) {
  case OptimizerKind::SGD: return "SGD";
  case OptimizerKind::Adam: return "Adam";
  case OptimizerKind::AdamW: return "AdamW";
  case OptimizerKind::RMSprop: return "RMSprop";
  case OptimizerKind::Adagrad: return "Adagrad";
  case OptimizerKind::Adadelta: return "Adadelta";
  }
  return "?";
}

const char* schedulerName(SchedulerKind k) {
  switch (k) {
  case SchedulerKind::StepLR: return "StepLR";
  case SchedulerKind::MultiStepLR: return "MultiStepLR";
  case SchedulerKind::ExponentialLR: return "ExponentialLR";
  case SchedulerKind::CosineAnnealingLR: return "CosineAnnealingLR";
  case SchedulerKind::LinearLR: return "LinearLR";
  case SchedulerKind::OneCycleLR: return "OneCycleLR";
  case SchedulerKind::ReduceLROnPlateau: return "ReduceLROnPlateau";
  }
  return "?";
}

int64_t ModelSpec::outputSize() const {
  // The last layer's shape per sample (sema records it); a spec built
  // without shapes (tests) has only Linears changing the width.
  int64_t n = input_size;
  for (const Layer& l : layers) {
    if (l.kind == LayerKind::Linear) n = l.out_features;
    else if (!l.out_shape.empty()) {
      n = 1;
      for (int64_t d : l.out_shape)
        n *= d;
    }
  }
  return n;
}

int64_t ModelSpec::parameterCount() const {
  int64_t total = 0;
  for (const Layer& l : layers) {
    if (l.kind == LayerKind::Linear) total += l.in_features * l.out_features + (l.bias ? l.out_features : 0);
    if (l.kind == LayerKind::Conv2d)
      total += l.out_channels * (l.in_channels / l.groups) * l.kernel[0] * l.kernel[1] +
               (l.bias ? l.out_channels : 0);
    if ((l.kind == LayerKind::BatchNorm1d || l.kind == LayerKind::BatchNorm2d) && l.affine)
      total += 2 * l.in_channels; // weight and bias (the running statistics are buffers)
  }
  return total;
}

std::string ModelSpec::shapeText(const std::vector<int64_t>& shape, int64_t batch) {
  if (batch > 0)
    return fmt::format("[{}{}{}]", batch, shape.empty() ? "" : ", ", fmt::join(shape, ", "));
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

std::string ModelSpec::batchNormBatchError(int64_t samples, int64_t batch) const {
  for (const Layer& l : layers) {
    if (l.kind != LayerKind::BatchNorm1d && l.kind != LayerKind::BatchNorm2d) continue;
    int64_t spatial = 1; // values per channel of one sample
    for (size_t d = 1; d < l.out_shape.size(); ++d)
      spatial *= l.out_shape[d];
    if (spatial != 1) continue;
    const int64_t last = samples % batch;
    int64_t rows = 0;
    std::string which;
    if (samples >= batch && batch == 1) {
      rows = 1;
      which = "every batch has 1 sample (batch = 1)";
    } else if (samples < batch && samples == 1) {
      rows = 1;
      which = "the only batch has 1 sample (1 training sample)";
    } else if (samples > batch && last == 1) {
      rows = 1;
      which = fmt::format("the last batch of an epoch has 1 sample ({} samples in batches of {}); "
                          "use another batch size",
                          samples, batch);
    }
    if (rows != 1) continue;
    std::vector<int64_t> shape = {1};
    shape.insert(shape.end(), l.out_shape.begin(), l.out_shape.end());
    return fmt::format("{}:{}: {}({}): Expected more than 1 value per channel when training, got "
                       "input size torch.Size([{}]): {}",
                       l.loc.line, l.loc.col, layerName(l.kind), l.in_channels,
                       fmt::join(shape, ", "), which);
  }
  return {};
}

bool ModelSpec::fitsDefaultData() const {
  return input_size == 784 && target_kind == TargetKind::Class && target_size == 10;
}

} // namespace descent
