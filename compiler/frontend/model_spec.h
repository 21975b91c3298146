// The checked meaning of a model file: what sema produces and the graph
// builder consumes. Every default is PyTorch's; every item keeps its location.
#pragma once

#include "compiler/frontend/init_dist.h"
#include "compiler/support/source_loc.h"

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
  /// The layer's output shape per sample (without the batch), e.g. {784}
  /// after Flatten() on f32[1, 28, 28].
  std::vector<int64_t> out_shape{};
  std::string name{};          ///< Activation: PyTorch's layer name ("GELU")
  std::string op{};            ///< Activation: the graph IR op it becomes ("gelu")
  /// Activation: the op's attributes, every argument with its default filled in.
  std::vector<std::pair<std::string, std::variant<double, std::string>>> attrs{};
  std::string repr{};          ///< Activation: as printed, e.g. "GELU(approximate='tanh')"
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
  std::optional<TransformSpec> transform;
  int64_t batch = 64;
  int64_t epochs = 1;
  /// `seed = N` (torch.manual_seed's range, negative ones taken modulo 2^64);
  /// the CLI's --seed overrides it.
  std::optional<uint64_t> seed;

  /// Output features of the last layer (= input_size when there is no Linear).
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
