// Text renderings for eval and predict (see render.h).
#include "tools/render.h"

#include "tools/commands.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

namespace descent {

std::string renderEval(const EvalStats& s, const std::string& source,
                       const std::vector<std::string>& names) {
  std::string out =
      fmt::format("{}: {}\nloss      {:.6f}\n", source, plural(s.count, "sample"), s.loss);
  if (s.task == Task::Regression)
    return out + fmt::format("R²        {:.6f}\nMAE       {:.6f}\n", s.r2, s.mae);
  if (s.task == Task::Binary) return out + fmt::format("accuracy  {:.2f}%\n", 100 * s.accuracy);
  out += fmt::format("accuracy  {:.2f}%\n\nper class:\n", 100 * s.accuracy);
  const int64_t C = s.classes;
  size_t w = 5;
  for (const auto& n : names) w = std::max(w, n.size());
  for (int64_t t = 0; t < C; ++t) {
    int64_t total = 0;
    for (int64_t p = 0; p < C; ++p) total += s.confusion[size_t(t * C + p)];
    double acc = total ? double(s.confusion[size_t(t * C + t)]) / double(total) : 0;
    out += fmt::format("  {:<{}}  {:6.2f}%  ({})\n", names[size_t(t)], w, 100 * acc,
                       plural(total, "sample"));
  }
  out += "\nconfusion matrix (rows: true class, columns: predicted):\n";
  const size_t lw = w + 3; // "9 " before the name
  out += fmt::format("  {:<{}}", "", lw);
  for (int64_t p = 0; p < C; ++p) out += fmt::format(" {:>5}", p);
  out += "\n";
  for (int64_t t = 0; t < C; ++t) {
    out += fmt::format("  {:<{}}", fmt::format("{} {}", t, names[size_t(t)]), lw);
    for (int64_t p = 0; p < C; ++p) out += fmt::format(" {:>5}", s.confusion[size_t(t * C + p)]);
    out += "\n";
  }
  return out;
}

std::vector<double> outputProbabilities(const ModelSpec& spec, const std::vector<float>& output) {
  LayerKind last = spec.layers.empty() ? LayerKind::Linear : spec.layers.back().kind;
  std::vector<double> p(output.begin(), output.end());
  if (last == LayerKind::LogSoftmax) {
    for (double& v : p) v = std::exp(v);
  } else if (last == LayerKind::Softmax || last == LayerKind::Sigmoid) {
    // already probabilities
  } else if (spec.loss.kind == LossKind::BCEWithLogitsLoss) {
    for (double& v : p) v = 1 / (1 + std::exp(-v));
  } else {
    double m = *std::max_element(p.begin(), p.end()), sum = 0;
    for (double& v : p) sum += (v = std::exp(v - m));
    for (double& v : p) v /= sum;
  }
  return p;
}

std::string renderPrediction(const ModelSpec& spec, const Dataset& d, int64_t index,
                             const std::vector<float>& output,
                             const std::vector<std::string>& names) {
  std::string out;
  std::string truth;
  if (d.class_labels && d.has_targets) {
    // A label outside the classes is a loss's ignore_index: shown as its number.
    const int32_t label = d.labels[size_t(index)];
    truth = label >= 0 && size_t(label) < names.size() ? names[size_t(label)]
                                                       : fmt::format("{} (ignored)", label);
  }
  if (spec.target_kind != TargetKind::Class) {
    out += fmt::format("sample {} of {}\n  prediction:", index, d.source);
    for (float v : output) out += fmt::format(" {:.6g}", v);
    if (!d.has_targets) return out + "\n";
    out += "\n  target:    ";
    for (int64_t j = 0; j < d.target_size; ++j)
      out += fmt::format(" {:.6g}", d.targets[size_t(index * d.target_size + j)]);
    return out + "\n";
  }
  std::vector<double> p = outputProbabilities(spec, output);
  int64_t best = std::max_element(p.begin(), p.end()) - p.begin();
  // Image rows (two characters per pixel keep the aspect ratio in a terminal).
  std::vector<std::string> left;
  if (d.is_u8 && d.image_rows > 0) {
    static const char* shades[] = {" ", "░", "▒", "▓", "█"};
    const uint8_t* px = &d.u8[size_t(index * d.features)];
    for (int64_t r = 0; r < d.image_rows; ++r) {
      std::string line;
      for (int64_t c = 0; c < d.image_cols; ++c) {
        int s = std::min(4, int(px[r * d.image_cols + c]) * 5 / 256);
        line += shades[s];
        line += shades[s];
      }
      left.push_back(line);
    }
  }
  size_t w = 0;
  for (const auto& n : names) w = std::max(w, n.size());
  std::vector<std::string> right{"Class Probability", ""};
  for (size_t c = 0; c < p.size(); ++c) {
    int len = int(std::lround(p[c] * 30));
    std::string bar;
    for (int i = 0; i < len; ++i) bar += "█";
    right.push_back(fmt::format("{:>{}} {:<30} {:5.1f}%{}", names[c], w, bar, 100 * p[c],
                                int64_t(c) == best ? "  <" : ""));
  }
  size_t rows = std::max(left.size(), right.size() + 4);
  size_t img_w = d.image_cols * 2;
  for (size_t r = 0; r < rows; ++r) {
    std::string l = r < left.size() ? left[r] : std::string(img_w, ' ');
    size_t ri = r >= 4 ? r - 4 : right.size();
    out += l + (img_w ? "   " : "") + (ri < right.size() ? right[ri] : "") + "\n";
  }
  out += fmt::format("\nsample {} of {}: predicted {} ({:.1f}%){}\n", index, d.source,
                     names[size_t(best)], 100 * p[size_t(best)],
                     truth.empty() ? "" : ", true class " + truth);
  return out;
}

} // namespace descent
