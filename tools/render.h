// Terminal renderings for `descent eval` (accuracy, confusion matrix) and
// `descent predict` (the notebook's view_classify: image beside class bars).
#pragma once

#include "compiler/frontend/model_spec.h"
#include "runtime/dataset.h"
#include "runtime/trainer.h"

#include <string>
#include <vector>

namespace descent {

/// Loss, accuracy, per-class accuracy and the confusion matrix.
std::string renderEval(const EvalStats& s, const std::string& source,
                       const std::vector<std::string>& class_names);

/// Class probabilities from the model's output row: exp of LogSoftmax, Softmax
/// as is, a softmax of logits otherwise.
std::vector<double> outputProbabilities(const ModelSpec& spec, const std::vector<float>& output);

/// The sample drawn with Unicode shades (images) beside a bar per class.
std::string renderPrediction(const ModelSpec& spec, const Dataset& d, int64_t index,
                             const std::vector<float>& output,
                             const std::vector<std::string>& class_names);

} // namespace descent
