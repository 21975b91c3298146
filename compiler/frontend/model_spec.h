// The checked meaning of a model file: what sema produces and the graph
// builder consumes. Every default is PyTorch's; every item keeps its location.
#pragma once

#include "compiler/frontend/init_dist.h"
#include "compiler/support/source_loc.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace descent {

/// Activation: a layer of sema's activation table (GELU, SiLU, ELU,
/// Softplus), described by `name`, `op` and `attrs` instead of its own kind.
enum class LayerKind {
  Linear,
  ReLU,
  Sigmoid,
  Tanh,
  LeakyReLU,
  Softmax,
  LogSoftmax,
  Dropout,
  Flatten,
  Conv2d,
  MaxPool2d,
  AvgPool2d,
  AdaptiveAvgPool2d,
  Activation
};
enum class LossKind {
  NLLLoss,
  CrossEntropyLoss,
  MSELoss,
  BCELoss,
  BCEWithLogitsLoss,
  L1Loss,
  SmoothL1Loss,
  HuberLoss,
  KLDivLoss,
};
/// BatchMean: KLDivLoss only (the sum divided by the batch size).
enum class Reduction { Mean, Sum, BatchMean };
enum class OptimizerKind { SGD, Adam, AdamW };
/// `target y: class[N]` (integer labels) or `target y: f32[N]` (real values).
enum class TargetKind { Class, Real };

const char* layerName(LayerKind k);
const char* lossName(LossKind k);
const char* reductionName(Reduction r);
const char* optimizerName(OptimizerKind k);

/// One entry of the Sequential, with its arguments resolved against PyTorch's defaults.
struct Layer {
  LayerKind kind;
  SourceLoc loc;
  int index = 0;               ///< position in the Sequential (PyTorch's state_dict prefix)
  int64_t in_features = 0;     ///< Linear
  int64_t out_features = 0;    ///< Linear
  bool bias = true;            ///< Linear
  InitDist weight_init{};      ///< Linear: `init=` resolved (Default: PyTorch's)
  InitDist bias_init{};        ///< Linear: `bias_init=` resolved
  double negative_slope = 0.01; ///< LeakyReLU
  int64_t dim = 1;             ///< Softmax, LogSoftmax (only 1 is accepted)
  double p = 0.5;              ///< Dropout
  int64_t start_dim = 1;       ///< Flatten, as written (may be negative)
  int64_t end_dim = -1;        ///< Flatten, as written (may be negative)
  int64_t in_channels = 0;     ///< Conv2d
  int64_t out_channels = 0;    ///< Conv2d
  int64_t groups = 1;          ///< Conv2d
  /// Conv2d and the pooling layers: (height, width) of the window; for
  /// AdaptiveAvgPool2d, `kernel` is the output size.
  std::array<int64_t, 2> kernel{1, 1}, stride{1, 1}, dilation{1, 1};
  /// Zero padding: top, bottom, left, right (Conv2d's padding="same" with an
  /// even dilated kernel pads one more at the bottom/right, as PyTorch does).
  std::array<int64_t, 4> padding{0, 0, 0, 0};
  bool ceil_mode = false;        ///< MaxPool2d, AvgPool2d
  bool count_include_pad = true; ///< AvgPool2d
  /// The layer's output shape per sample (without the batch), e.g. {784}
  /// after Flatten() on f32[1, 28, 28].
  std::vector<int64_t> out_shape{};
  std::string name{};          ///< Activation: PyTorch's layer name ("GELU")
  std::string op{};            ///< Activation: the graph IR op it becomes ("gelu")
  /// Activation: the op's attributes, every argument with its default filled in.
  std::vector<std::pair<std::string, std::variant<double, std::string>>> attrs{};
  std::string repr{}; ///< Activation, Conv2d, pooling: as printed, e.g. "GELU(approximate='tanh')"
};

struct LossSpec {
  LossKind kind = LossKind::NLLLoss;
  Reduction reduction = Reduction::Mean;
  double beta = 1.0;  ///< SmoothL1Loss
  double delta = 1.0; ///< HuberLoss
  bool log_target = false;      ///< KLDivLoss: targets are log-probabilities
  double label_smoothing = 0.0; ///< CrossEntropyLoss
  /// CrossEntropyLoss/NLLLoss: one weight per class (empty: none given).
  std::vector<double> weight{};
  SourceLoc weight_loc{};
  /// CrossEntropyLoss/NLLLoss: the label to ignore, when written. Absent,
  /// PyTorch's default -100 can match no label the data loader accepts.
  std::optional<int64_t> ignore_index{};
  /// BCEWithLogitsLoss: one weight per output, or one for all (empty: none).
  std::vector<double> pos_weight{};
  SourceLoc pos_weight_loc{};
  SourceLoc loc;
};

struct OptimizerSpec {
  OptimizerKind kind = OptimizerKind::SGD;
  SourceLoc loc;
  double lr = 0.001; ///< SGD has no default lr in PyTorch: the file must give it
  // SGD
  double momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
  bool maximize = false; ///< all three: ascend the loss (the gradient is negated first)
  // Adam, AdamW (whose weight_decay defaults to 0.01 and is decoupled)
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

/// `scheduler = ...`: torch.optim.lr_scheduler's classes, with their names,
/// arguments and defaults (runtime/scheduler.h steps them).
enum class SchedulerKind {
  StepLR,
  MultiStepLR,
  ExponentialLR,
  CosineAnnealingLR,
  LinearLR,
  OneCycleLR,
  ReduceLROnPlateau
};
const char* schedulerName(SchedulerKind k);

struct SchedulerSpec {
  SchedulerKind kind = SchedulerKind::StepLR;
  SourceLoc loc;
  double gamma = 0.1;              ///< StepLR, MultiStepLR, ExponentialLR
  int64_t step_size = 1;           ///< StepLR
  std::vector<int64_t> milestones; ///< MultiStepLR (sorted, as torch's Counter is read)
  int64_t T_max = 1;               ///< CosineAnnealingLR
  double eta_min = 0;              ///< CosineAnnealingLR
  double start_factor = 1.0 / 3, end_factor = 1.0; ///< LinearLR
  int64_t total_iters = 5;         ///< LinearLR
  // OneCycleLR: stepped after every batch. total_steps 0: epochs *
  // steps_per_epoch, or (neither given) the run's own epochs and batches.
  double max_lr = 0;
  int64_t total_steps = 0, epochs = 0, steps_per_epoch = 0;
  double pct_start = 0.3;
  bool anneal_cos = true; ///< anneal_strategy "cos" (else "linear")
  bool cycle_momentum = true;
  double base_momentum = 0.85, max_momentum = 0.95;
  double div_factor = 25.0, final_div_factor = 1e4;
  bool three_phase = false;
  // ReduceLROnPlateau: stepped with the epoch's test loss (train loss without test data).
  bool mode_max = false;      ///< mode "max"
  double factor = 0.1;
  int64_t patience = 10;
  double threshold = 1e-4;
  bool threshold_abs = false; ///< threshold_mode "abs"
  int64_t cooldown = 0;
  double min_lr = 0, eps = 1e-8;
};

/// Gradient clipping between backward and the optimizer step, as
/// torch.nn.utils 1.13 does it: `clip_grad_value = V` clamps every gradient
/// element to [-V, V] (clip_grad_value_); `clip_grad_norm = MAX` scales every
/// gradient by min(MAX / (total 2-norm + 1e-6), 1) (clip_grad_norm_). At most
/// one of them (a loop calling both could call them in either order).
struct ClipSpec {
  std::optional<double> value; ///< clip_grad_value
  std::optional<double> norm;  ///< clip_grad_norm (max_norm; norm_type 2)
  SourceLoc value_loc, norm_loc;
};

/// `transform = Normalize(mean, std)`: applied after scaling pixels to [0,1].
struct TransformSpec {
  double mean = 0.0, std = 1.0;
  SourceLoc loc;
};

struct ModelSpec {
  std::string name;        ///< file stem, e.g. "mnist_mlp"
  std::string path;        ///< as given on the command line
  std::string input_name = "x";
  int64_t input_size = 0; ///< elements per sample (the product of input_shape)
  /// The declared shape per sample, without the batch: {784} or {1, 28, 28}
  /// (PyTorch's C, H, W). Samples are contiguous row-major, so every shape
  /// with the same element count has the same bytes.
  std::vector<int64_t> input_shape{};
  SourceLoc input_loc;
  std::string target_name = "y";
  TargetKind target_kind = TargetKind::Class;
  int64_t target_size = 0; ///< classes for Class, values per sample for Real
  SourceLoc target_loc;
  std::vector<Layer> layers;
  LossSpec loss;
  OptimizerSpec optimizer;
  ClipSpec clip;
  std::optional<TransformSpec> transform;
  std::optional<SchedulerSpec> scheduler;
  int64_t batch = 64;
  int64_t epochs = 1;
  /// `seed = N` (torch.manual_seed's range, negative ones taken modulo 2^64);
  /// the CLI's --seed overrides it.
  std::optional<uint64_t> seed;

  /// Elements per sample of the last layer's output (= input_size when no layer changes it).
  int64_t outputSize() const;
  /// Number of trainable scalars (weights and biases).
  int64_t parameterCount() const;
  /// input_shape, or {input_size} for a spec built without one (tests).
  std::vector<int64_t> inputShape() const {
    return input_shape.empty() ? std::vector<int64_t>{input_size} : input_shape;
  }
  /// "[784]" or "[1, 28, 28]"; with `batch` > 0, the batch first: "[64, 1, 28, 28]".
  static std::string shapeText(const std::vector<int64_t>& shape, int64_t batch = 0);
  /// The one place of the rule "784 elements and 10 classes": the model fits
  /// the default dataset (Fashion-MNIST, 28x28 images in 10 classes), whose
  /// samples arrive as uint8 pixels (the graph's input is then u8). It counts
  /// elements, so f32[784] and f32[1, 28, 28] both fit.
  bool fitsDefaultData() const;
};

} // namespace descent
