// The in-memory data set the trainer iterates over, and the loaders that build
// it from an MNIST-style IDX directory or a CSV file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace descent {

/// Samples in memory. Images stay uint8 (scaling and Normalize are fused into
/// the first layer's loads); CSV features are float32.
struct Dataset {
  std::string source;            ///< file(s) it came from, for messages
  int64_t count = 0;             ///< samples
  int64_t features = 0;          ///< per sample (784 for MNIST)
  bool is_u8 = false;            ///< images: stay uint8 in memory
  std::vector<uint8_t> u8;       ///< count*features when is_u8
  std::vector<float> f32;        ///< count*features otherwise
  int64_t target_size = 0;       ///< classes (labels) or values per sample (real targets)
  bool class_labels = true;
  bool has_targets = true;       ///< false: a CSV of features only (predict --out)
  std::vector<int32_t> labels;   ///< count, when class_labels
  std::vector<float> targets;    ///< count*target_size otherwise
  int64_t image_rows = 0, image_cols = 0; ///< for drawing (28x28), 0 for CSV
};

/// A training set and, when the source has one, a test set.
struct DataSplit {
  Dataset train;
  std::optional<Dataset> test;
};

/// Which IDX pairs loadIdxDir reads.
enum class IdxSets {
  All,      ///< the training pair and, when present, the test pair
  EvalOnly, ///< what eval and predict use: only the test pair when present
            ///< (into `test`, leaving `train` empty), else the training pair
};

/// Loads train (required) and t10k (optional) IDX pairs found by findIdxFiles.
/// For IDX data `target_size` is max(label)+1 over the sets loaded (10 for
/// (Fashion-)MNIST); use checkLabels to validate against the model's classes.
/// Throws DataError (missing files, malformed files, image/label count mismatch
/// naming both files, train/test image shape mismatch).
DataSplit loadIdxDir(const std::string& dir, IdxSets sets = IdxSets::All);

/// Loads a CSV file: a header row, then rows whose first `features` columns are
/// features and whose remaining columns are targets: one integer label column
/// in [0, targets_or_classes) when `class_labels`, else `targets_or_classes`
/// real columns. Features are used as written: unlike IDX pixels they are not
/// divided by 255 before a model's Normalize. Throws DataError with `file:ROW:`
/// locations (rows are 1-based, the header is row 1), also for a missing
/// header row (a first row of numbers, see forEachCsvRow).
/// With `targets_optional` (prediction), a file whose header has exactly
/// `features` columns loads as features only (`has_targets` false).
/// `ignore_label` (a loss's ignore_index) is accepted as a label too.
Dataset loadCsv(const std::string& path, int64_t features, int64_t targets_or_classes,
                bool class_labels, bool targets_optional = false,
                std::optional<int64_t> ignore_label = std::nullopt);

/// Throws DataError("<source>: label L of sample I is out of range for C classes")
/// when a class label is outside [0, classes) and is not `ignore_label`.
/// No-op for real targets.
void checkLabels(const Dataset& data, int64_t classes,
                 std::optional<int64_t> ignore_label = std::nullopt);

/// Debian's dataset-fashion-mnist location: "/usr/share/datasets/fashion-mnist".
std::string defaultDataDir();

/// The ten Fashion-MNIST class names, index = label ("T-shirt/top", ..., "Ankle boot").
const std::vector<std::string>& fashionMnistClassNames();

} // namespace descent
