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
  // Only Linear changes the width; every other layer is elementwise or row-wise.
  int64_t n = input_size;
  for (const Layer& l : layers)
    if (l.kind == LayerKind::Linear) n = l.out_features;
  return n;
}

int64_t ModelSpec::parameterCount() const {
  int64_t total = 0;
  for (const Layer& l : layers)
    if (l.kind == LayerKind::Linear) total += l.in_features * l.out_features + (l.bias ? l.out_features : 0);
  return total;
}

std::string ModelSpec::shapeText(const std::vector<int64_t>& shape, int64_t batch) {
  if (batch > 0)
    return fmt::format("[{}{}{}]", batch, shape.empty() ? "" : ", ", fmt::join(shape, ", "));
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

bool ModelSpec::fitsDefaultData() const {
  return input_size == 784 && target_kind == TargetKind::Class && target_size == 10;
}

} // namespace descent
