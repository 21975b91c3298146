// Building Datasets: IDX pairs (images stay uint8, moved not copied out of the
// decompression buffer) and CSV tables (split into features and targets).
#include "runtime/dataset.h"

#include "runtime/csv.h"
#include "runtime/errors.h"
#include "runtime/idx.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fmt/format.h>
#include <future>

namespace descent {
namespace {

Dataset loadIdxPair(const std::string& images_path, const std::string& labels_path) {
  // Labels first: they are small, so a broken labels file is reported before
  // the large images file is decompressed.
  IdxArray labels = readIdx(labels_path, 1);
  IdxArray images = readIdx(images_path, 3);
  if (images.dims[0] != labels.dims[0])
    throw DataError(fmt::format("{} has {} images but {} has {} labels", images_path,
                                images.dims[0], labels_path, labels.dims[0]));
  Dataset d;
  d.source = images_path + " + " + labels_path;
  d.count = images.dims[0];
  d.image_rows = images.dims[1];
  d.image_cols = images.dims[2];
  d.features = d.image_rows * d.image_cols;
  d.is_u8 = true;
  d.u8 = std::move(images.data);
  d.class_labels = true;
  d.labels.assign(labels.data.begin(), labels.data.end());
  int32_t max_label = 0;
  for (int32_t l : d.labels) max_label = std::max(max_label, l);
  d.target_size = int64_t(max_label) + 1;
  return d;
}

/// A class label field's value when it is an integer, judged in double
/// precision. The field already parsed as a finite float32, so double cannot
/// overflow: out of range here means a nonzero value too small for double.
std::optional<double> integerLabel(std::string_view text) {
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  double v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || v != std::floor(v)) return std::nullopt;
  return v;
}

} // namespace

DataSplit loadIdxDir(const std::string& dir, IdxSets sets) {
  IdxFiles files = findIdxFiles(dir);
  DataSplit split;
  if (sets == IdxSets::EvalOnly) {
    // eval and predict never touch the training set when there is a test set.
    if (files.test_images.empty())
      split.train = loadIdxPair(files.train_images, files.train_labels);
    else
      split.test = loadIdxPair(files.test_images, files.test_labels);
    return split;
  }
  // The test pair inflates on a second thread while the (larger) train pair
  // inflates here: gunzip is most of the time `descent train` spends loading.
  std::future<Dataset> test;
  if (!files.test_images.empty())
    test = std::async(std::launch::async, [&] { return loadIdxPair(files.test_images, files.test_labels); });
  split.train = loadIdxPair(files.train_images, files.train_labels);
  if (test.valid()) {
    split.test = test.get();
    if (split.test->image_rows != split.train.image_rows ||
        split.test->image_cols != split.train.image_cols)
      throw DataError(fmt::format("{} has {}x{} images but {} has {}x{}", files.test_images,
                                  split.test->image_rows, split.test->image_cols,
                                  files.train_images, split.train.image_rows,
                                  split.train.image_cols));
    // Both sets must agree on the number of classes the labels imply.
    int64_t classes = std::max(split.train.target_size, split.test->target_size);
    split.train.target_size = classes;
    split.test->target_size = classes;
  }
  return split;
}

Dataset loadCsv(const std::string& path, int64_t features, int64_t targets_or_classes,
                bool class_labels, bool targets_optional, std::optional<int64_t> ignore_label) {
  const bool has_targets = !targets_optional || csvHeaderColumns(path) != features;
  const int64_t target_cols = !has_targets ? 0 : class_labels ? 1 : targets_or_classes;
  const std::string feats = fmt::format("{} feature{}", features, features == 1 ? "" : "s");
  std::string describe = !has_targets   ? feats
                         : class_labels ? feats + " + 1 label"
                                        : fmt::format("{} + {} target{}", feats, target_cols,
                                                      target_cols == 1 ? "" : "s");
  if (targets_optional && has_targets) describe += ", or " + feats + " without targets";
  const int64_t cols = features + target_cols;

  Dataset d;
  d.source = path;
  d.features = features;
  d.is_u8 = false;
  d.class_labels = class_labels;
  d.has_targets = has_targets;
  d.target_size = targets_or_classes;
  // Reserve from the line count so the arrays never regrow: a large CSV then
  // costs exactly its float32 arrays, with no doubling slack or final copy.
  // Only lines with the right number of commas count, so blank or short
  // lines cannot make a small file reserve gigabytes.
  const auto max_rows =
      static_cast<size_t>(std::max<int64_t>(countCsvRows(path, cols) - 1, 0));
  d.f32.reserve(max_rows * static_cast<size_t>(features));
  if (!has_targets) {
    // no target columns to reserve
  } else if (class_labels)
    d.labels.reserve(max_rows);
  else
    d.targets.reserve(max_rows * static_cast<size_t>(target_cols));

  d.count = forEachCsvRowFields(
      path, cols, describe,
      [&](std::span<const float> row, std::span<const std::string_view> fields, int64_t line,
          const std::vector<std::string>& header) {
        d.f32.insert(d.f32.end(), row.begin(), row.begin() + features);
        if (!has_targets) return;
        if (!class_labels) {
          d.targets.insert(d.targets.end(), row.begin() + features, row.end());
          return;
        }
        // The label is judged on its text in double precision, not on its
        // float32 rounding: 3.0000001 is not the integer 3, and a message
        // quotes the value as written (16777217, not 16777216).
        const std::string_view text = fields[static_cast<size_t>(features)];
        const std::optional<double> v = integerLabel(text);
        const std::string& name = header[static_cast<size_t>(features)];
        if (!v)
          throw DataError(fmt::format("{}:{}: column {} ('{}'): class label {} is not an integer",
                                      path, line, features + 1, name, text));
        const bool ignored = ignore_label && *v == static_cast<double>(*ignore_label);
        if (!ignored && (*v < 0 || *v >= static_cast<double>(targets_or_classes)))
          throw DataError(fmt::format(
              "{}:{}: column {} ('{}'): label {} is out of range [0, {}){}", path, line,
              features + 1, name, text, targets_or_classes,
              ignore_label ? fmt::format(" and is not ignore_index={}", *ignore_label) : ""));
        d.labels.push_back(static_cast<int32_t>(*v));
      });
  return d;
}

void checkLabels(const Dataset& data, int64_t classes, std::optional<int64_t> ignore_label) {
  if (!data.class_labels) return;
  for (size_t i = 0; i < data.labels.size(); ++i)
    if ((data.labels[i] < 0 || data.labels[i] >= classes) &&
        !(ignore_label && data.labels[i] == *ignore_label))
      throw DataError(fmt::format("{}: label {} of sample {} is out of range for {} classes",
                                  data.source, data.labels[i], i, classes));
}

std::string defaultDataDir() { return "/usr/share/datasets/fashion-mnist"; }

const std::vector<std::string>& fashionMnistClassNames() {
  // Immutable after first use (thread-safe static init): not mutable global state.
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                                 "Coat",        "Sandal",  "Shirt",    "Sneaker",
                                                 "Bag",         "Ankle boot"};
  return names;
}

} // namespace descent
