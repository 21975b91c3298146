// The committed PyTorch reference fixtures (tests/reference/fixtures) parse with
// the runtime loaders, are consistent with each other, and their recorded
// output and loss are reproduced by a tiny fp64 forward pass written here.
#include "compiler/frontend/frontend.h"
#include "runtime/atomic_file.h"
#include "runtime/dataset.h"
#include "runtime/safetensors.h"
#include "runtime_test_util.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>

using namespace descent;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::vector<fs::path> fixtureDirs() {
  std::vector<fs::path> dirs;
  fs::path root = fs::path(DESCENT_SOURCE_DIR) / "tests/reference/fixtures";
  if (fs::is_directory(root))
    for (const auto& e : fs::directory_iterator(root))
      if (e.is_directory()) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

/// One layer of the Sequential as written in model.nn (enough for the fixtures).
struct RefLayer {
  std::string kind;
  int64_t in = 0, out = 0;
  bool bias = true;
  double slope = 0.01;
  bool gelu_tanh = false;                 ///< GELU(approximate="tanh")
  double alpha = 1.0;                     ///< ELU
  double beta = 1.0, threshold = 20.0;    ///< Softplus
};

/// The number after `name=` in a layer's arguments, or `fallback`.
double numberArg(const std::string& args, const std::string& name, double fallback) {
  std::smatch m;
  if (!std::regex_search(args, m, std::regex(name + R"(=([0-9.e+-]+))"))) return fallback;
  return std::stod(m[1]);
}

std::vector<RefLayer> parseLayers(const std::string& text) {
  auto open = text.find("Sequential(");
  REQUIRE(open != std::string::npos);
  auto close = text.find("\n)", open);
  std::string body = text.substr(open + 11, close - open - 11);
  static const std::regex layer(R"((\w+)\(([^)]*)\))");
  std::vector<RefLayer> layers;
  for (std::sregex_iterator it(body.begin(), body.end(), layer), end; it != end; ++it) {
    RefLayer l;
    l.kind = (*it)[1];
    std::string args = (*it)[2];
    if (l.kind == "Linear") {
      std::smatch m;
      REQUIRE(std::regex_search(args, m, std::regex(R"((\d+),\s*(\d+))")));
      l.in = std::stoll(m[1]);
      l.out = std::stoll(m[2]);
      l.bias = args.find("bias=False") == std::string::npos;
    } else if (l.kind == "LeakyReLU") {
      std::smatch m;
      REQUIRE(std::regex_search(args, m, std::regex(R"(negative_slope=([0-9.e-]+))")));
      l.slope = std::stod(m[1]);
    } else if (l.kind == "GELU") {
      l.gelu_tanh = args.find("tanh") != std::string::npos;
    } else if (l.kind == "ELU") {
      l.alpha = numberArg(args, "alpha", 1.0);
    } else if (l.kind == "Softplus") {
      l.beta = numberArg(args, "beta", 1.0);
      l.threshold = numberArg(args, "threshold", 20.0);
    }
    layers.push_back(l);
  }
  return layers;
}

using Matrix = std::vector<std::vector<double>>;

/// Conv2d and the pooling layers on one sample [C, H, W] (row-major), in
/// fp64, written against the zero- (or -inf-) padded image: a different
/// route from the interpreter's, which skips the taps in the padding. The
/// layer's arguments (kernel, stride, padding...) come from the frontend.
std::vector<double> windowLayer(const Layer& l, const std::vector<int64_t>& in,
                                const std::vector<double>& x, const SafeTensors& st,
                                const std::string& path) {
  const int64_t C = in[0], H = in[1], W = in[2];
  const int64_t O = l.out_shape[0], Ho = l.out_shape[1], Wo = l.out_shape[2];
  const auto& k = l.kernel;
  const auto& s = l.stride;
  const auto& d = l.dilation;
  const int64_t pt = l.padding[0], pl = l.padding[2];
  const int64_t Hp = H + l.padding[0] + l.padding[1], Wp = W + l.padding[2] + l.padding[3];
  const bool isMax = l.kind == LayerKind::MaxPool2d;
  std::vector<double> padded(size_t(C * Hp * Wp),
                             isMax ? -std::numeric_limits<double>::infinity() : 0.0);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < H; ++i)
      for (int64_t j = 0; j < W; ++j)
        padded[size_t((c * Hp + i + pt) * Wp + j + pl)] = x[size_t((c * H + i) * W + j)];
  auto at = [&](int64_t c, int64_t i, int64_t j) { return padded[size_t((c * Hp + i) * Wp + j)]; };
  std::vector<double> y(size_t(O * Ho * Wo));
  const std::string p = std::to_string(l.index);
  std::vector<float> w, b;
  if (l.kind == LayerKind::Conv2d) {
    w = requireFloats(st, p + ".weight", {O, C / l.groups, k[0], k[1]}, path);
    b = l.bias ? requireFloats(st, p + ".bias", {O}, path) : std::vector<float>(size_t(O), 0.0f);
  }
  for (int64_t o = 0; o < O; ++o)
    for (int64_t i = 0; i < Ho; ++i)
      for (int64_t j = 0; j < Wo; ++j) {
        double acc = 0;
        if (l.kind == LayerKind::Conv2d) {
          const int64_t cg = C / l.groups, g = o / (O / l.groups);
          acc = b[size_t(o)];
          for (int64_t c = 0; c < cg; ++c)
            for (int64_t u = 0; u < k[0]; ++u)
              for (int64_t v = 0; v < k[1]; ++v)
                acc += double(w[size_t(((o * cg + c) * k[0] + u) * k[1] + v)]) *
                       at(g * cg + c, i * s[0] + u * d[0], j * s[1] + v * d[1]);
        } else if (isMax) {
          acc = -std::numeric_limits<double>::infinity();
          for (int64_t u = 0; u < k[0]; ++u)
            for (int64_t v = 0; v < k[1]; ++v) {
              const int64_t r = i * s[0] + u * d[0], q = j * s[1] + v * d[1];
              if (r < Hp && q < Wp) acc = std::max(acc, at(o, r, q)); // ceil_mode's last window
            }
        } else if (l.kind == LayerKind::AvgPool2d) {
          // Window cells inside the padded image count with count_include_pad,
          // only those inside the input without it.
          int64_t cells = 0, inside = 0;
          for (int64_t u = 0; u < k[0]; ++u)
            for (int64_t v = 0; v < k[1]; ++v) {
              const int64_t r = i * s[0] + u, q = j * s[1] + v;
              if (r >= Hp || q >= Wp) continue;
              ++cells;
              if (r >= pt && r < pt + H && q >= pl && q < pl + W) ++inside;
              acc += at(o, r, q);
            }
          acc /= double(l.count_include_pad ? cells : inside);
        } else {
          REQUIRE(l.kind == LayerKind::AdaptiveAvgPool2d);
          const int64_t r0 = i * H / Ho, r1 = ((i + 1) * H + Ho - 1) / Ho;
          const int64_t q0 = j * W / Wo, q1 = ((j + 1) * W + Wo - 1) / Wo;
          for (int64_t r = r0; r < r1; ++r)
            for (int64_t q = q0; q < q1; ++q)
              acc += at(o, r, q);
          acc /= double((r1 - r0) * (q1 - q0));
        }
        y[size_t((o * Ho + i) * Wo + j)] = acc;
      }
  return y;
}

/// fp64 forward pass with PyTorch's layouts (weight [out, in]); Dropout is the
/// identity (eval mode, or p = 0).
Matrix forward(const std::vector<RefLayer>& layers, const ModelSpec& spec, const SafeTensors& st,
               const std::string& path, Matrix x) {
  REQUIRE(layers.size() == spec.layers.size());
  std::vector<int64_t> shape = spec.inputShape(); // per sample, before layer i
  for (size_t i = 0; i < layers.size(); ++i) {
    const RefLayer& l = layers[i];
    const std::string p = std::to_string(i);
    const std::vector<int64_t> in = shape;
    shape = spec.layers[i].out_shape;
    if (l.kind == "Conv2d" || l.kind.find("Pool2d") != std::string::npos) {
      for (auto& row : x)
        row = windowLayer(spec.layers[i], in, row, st, path);
      continue;
    }
    if (l.kind == "BatchNorm1d" || l.kind == "BatchNorm2d") {
      // Training mode (the fixtures' output): the batch's mean and biased
      // variance per channel (dim 1), then the affine weight and bias.
      const Layer& L = spec.layers[i];
      const int64_t C = in[0];
      const size_t S = x.at(0).size() / size_t(C);
      std::vector<float> w(size_t(C), 1.0f), b(size_t(C), 0.0f);
      if (L.affine) {
        w = requireFloats(st, p + ".weight", {C}, path);
        b = requireFloats(st, p + ".bias", {C}, path);
      }
      for (size_t c = 0; c < size_t(C); ++c) {
        double mean = 0, var = 0;
        for (const auto& row : x)
          for (size_t k = 0; k < S; ++k)
            mean += row[c * S + k];
        mean /= double(x.size() * S);
        for (const auto& row : x)
          for (size_t k = 0; k < S; ++k)
            var += (row[c * S + k] - mean) * (row[c * S + k] - mean);
        var /= double(x.size() * S);
        for (auto& row : x)
          for (size_t k = 0; k < S; ++k)
            row[c * S + k] = (row[c * S + k] - mean) / std::sqrt(var + L.eps) * w[c] + b[c];
      }
      continue;
    }
    if (l.kind == "Linear") {
      auto w = requireFloats(st, p + ".weight", {l.out, l.in}, path);
      std::vector<float> b(l.out, 0.0f);
      if (l.bias) b = requireFloats(st, p + ".bias", {l.out}, path);
      for (auto& row : x) {
        REQUIRE(row.size() == size_t(l.in));
        std::vector<double> y(l.out);
        for (int64_t o = 0; o < l.out; ++o) {
          double s = b[o];
          for (int64_t k = 0; k < l.in; ++k) s += double(w[o * l.in + k]) * row[k];
          y[o] = s;
        }
        row = y;
      }
      continue;
    }
    for (auto& row : x) {
      if (l.kind == "ReLU") {
        for (double& v : row) v = std::max(v, 0.0);
      } else if (l.kind == "Sigmoid") {
        for (double& v : row) v = 1 / (1 + std::exp(-v));
      } else if (l.kind == "Tanh") {
        for (double& v : row) v = std::tanh(v);
      } else if (l.kind == "LeakyReLU") {
        for (double& v : row) v = v >= 0 ? v : l.slope * v;
      } else if (l.kind == "GELU") {
        for (double& v : row)
          v = l.gelu_tanh ? 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)))
                          : 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
      } else if (l.kind == "SiLU") {
        for (double& v : row) v = v / (1 + std::exp(-v));
      } else if (l.kind == "ELU") {
        for (double& v : row) v = v > 0 ? v : l.alpha * std::expm1(v);
      } else if (l.kind == "Softplus") {
        for (double& v : row) v = v * l.beta > l.threshold ? v : std::log1p(std::exp(v * l.beta)) / l.beta;
      } else if (l.kind == "Softmax" || l.kind == "LogSoftmax") {
        double m = *std::max_element(row.begin(), row.end()), s = 0;
        for (double v : row) s += std::exp(v - m);
        for (double& v : row) v = l.kind == "Softmax" ? std::exp(v - m) / s : v - m - std::log(s);
      } else if (l.kind == "Flatten") {
        // Rows are whole samples, row-major: flattening moves nothing.
      } else {
        REQUIRE(l.kind == "Dropout");
      }
    }
  }
  return x;
}

/// The loss's ignore_index when the fixture's model writes one.
std::optional<int64_t> ignoreIndex(const json& e) {
  if (!e.contains("ignore_index")) return std::nullopt;
  return e.at("ignore_index").get<int64_t>();
}

/// The fixture's loss in double precision; `e` gives its name, reduction and
/// SmoothL1Loss's beta or HuberLoss's delta.
double lossOf(const json& e, const Matrix& out, const Dataset& d) {
  const std::string name = e.at("loss_name"), reduction = e.at("reduction");
  const double beta = e.value("beta", 1.0), delta = e.value("delta", 1.0);
  const double smoothing = e.value("label_smoothing", 0.0);
  const auto weight = e.value("weight", std::vector<double>{});
  const auto pos_weight = e.value("pos_weight", std::vector<double>{});
  const auto ignore = ignoreIndex(e);
  double total = 0, smooth = 0, n = 0;
  for (size_t r = 0; r < out.size(); ++r) {
    const auto& o = out[r];
    if (name == "NLLLoss" || name == "CrossEntropyLoss") {
      // torch 1.13: an ignored sample counts nowhere; the others weigh
      // w[y], also in "mean"'s divisor. label_smoothing e:
      // (1 - e) * nll + e/C * smooth, smooth = sum_c w[c] * -logp[c], reduced alike.
      const int64_t y = d.labels[r];
      if (ignore && y == *ignore) continue;
      std::vector<double> lp(o.begin(), o.end());
      if (name == "CrossEntropyLoss") {
        double m = *std::max_element(o.begin(), o.end()), s = 0;
        for (double z : o) s += std::exp(z - m);
        for (double& z : lp)
          z = z - m - std::log(s);
      }
      const double w = weight.empty() ? 1.0 : weight[size_t(y)];
      total -= w * lp[size_t(y)];
      for (size_t c = 0; c < lp.size(); ++c)
        smooth -= (weight.empty() ? 1.0 : weight[c]) * lp[c] * smoothing / double(lp.size());
      n += w;
      continue;
    }
    for (size_t j = 0; j < o.size(); ++j, ++n) {
      double t = d.targets[r * o.size() + j], z = o[j];
      if (name == "MSELoss") total += (z - t) * (z - t);
      else if (name == "BCELoss")
        total -= t * std::max(std::log(z), -100.0) + (1 - t) * std::max(std::log1p(-z), -100.0);
      else if (name == "BCEWithLogitsLoss" && !pos_weight.empty()) {
        // torch 1.13: (1 - t)*z + (1 + (p - 1)*t) * log(1 + exp(-z))
        const double pw = pos_weight.size() == 1 ? pos_weight[0] : pos_weight[j];
        total += (1 - t) * z +
                 (1 + (pw - 1) * t) * (std::max(-z, 0.0) + std::log1p(std::exp(-std::abs(z))));
      } else if (name == "BCEWithLogitsLoss")
        total += std::max(z, 0.0) - z * t + std::log1p(std::exp(-std::abs(z)));
      else if (name == "KLDivLoss")
        // torch 1.13: log_target ? exp(t)*(t - z) : xlogy(t, t) - t*z
        total += e.value("log_target", false) ? std::exp(t) * (t - z)
                                              : (t > 0 ? t * std::log(t) : 0.0) - t * z;
      else if (name == "L1Loss")
        total += std::abs(z - t);
      else if (name == "SmoothL1Loss")
        total += std::abs(z - t) < beta ? 0.5 * (z - t) * (z - t) / beta : std::abs(z - t) - 0.5 * beta;
      else if (name == "HuberLoss")
        total += std::abs(z - t) < delta ? 0.5 * (z - t) * (z - t) : delta * (std::abs(z - t) - 0.5 * delta);
      else
        FAIL("unknown loss " << name);
    }
  }
  if (name == "NLLLoss" || name == "CrossEntropyLoss") total = (1 - smoothing) * total + smooth;
  if (reduction == "batchmean") return total / double(out.size());
  return reduction == "mean" ? total / n : total;
}

double maxAbs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

} // namespace

TEST_CASE("reference fixtures are complete and parse", "[fixtures]") {
  const auto dirs = fixtureDirs();
  REQUIRE(dirs.size() >= 12);
  for (const auto& dir : dirs) {
    INFO("fixture " << dir.string());
    for (const char* f : {"model.nn", "init.safetensors", "data.csv", "expected.json"})
      REQUIRE(fs::is_regular_file(dir / f));
    const json e = json::parse(readFile(dir / "expected.json"));
    const int64_t features = e.at("features"), tsize = e.at("target_size"), batch = e.at("batch");
    const bool cls = e.at("target_kind") == "class";

    // model.nn declares what expected.json describes.
    const std::string model = readFile(dir / "model.nn");
    // (An N-D input declares its shape per sample; features is its element count.)
    std::string shape = std::to_string(features);
    if (e.contains("input_shape")) {
      shape.clear();
      int64_t n = 1;
      for (int64_t dim : e.at("input_shape").get<std::vector<int64_t>>()) {
        shape += (shape.empty() ? "" : ", ") + std::to_string(dim);
        n *= dim;
      }
      CHECK(n == features);
    }
    CHECK(model.find("input  x: f32[" + shape + "]") != std::string::npos);
    CHECK(model.find(std::string("target y: ") + (cls ? "class[" : "f32[") + std::to_string(tsize) +
                     "]") != std::string::npos);
    CHECK(model.find("batch     = " + std::to_string(batch)) != std::string::npos);
    CHECK(model.find("epochs    = 20") != std::string::npos);
    CHECK(model.find(std::string(e.at("loss_name")) + "(reduction=\"" +
                     std::string(e.at("reduction")) + "\"") != std::string::npos);

    // init.safetensors: F32 tensors with the PyTorch shapes expected.json lists.
    const SafeTensors st = readSafetensors(dir / "init.safetensors");
    REQUIRE(st.tensors.size() == e.at("param_shapes").size());
    const std::vector<std::string> buffers =
        e.value("buffers", std::vector<std::string>{}); // BatchNorm's running statistics
    auto isBuffer = [&](const std::string& name) {
      return std::find(buffers.begin(), buffers.end(), name) != buffers.end();
    };
    for (const auto& [name, shape] : e.at("param_shapes").items()) {
      REQUIRE(st.tensors.count(name));
      CHECK(st.tensors.at(name).dtype ==
            (isBuffer(name) && name.ends_with(".num_batches_tracked") ? "I64" : "F32"));
      CHECK(st.tensors.at(name).shape == shape.get<std::vector<int64_t>>());
    }

    // data.csv: exactly one batch with the right columns.
    const Dataset d = loadCsv(dir / "data.csv", features, tsize, cls, false, ignoreIndex(e));
    CHECK(d.count == batch);

    if (e.at("train_mode")) {
      REQUIRE(e.at("trajectory").size() == 20);
      CHECK(e.at("trajectory")[0] == e.at("loss"));
      for (const char* key : {"grads", "after_one_step", "final"})
        for (const auto& [name, shape] : e.at("param_shapes").items())
          if (std::string(key) != "grads" || !isBuffer(name))
            CHECK(e.at(key).at(name).size() == size_t(numel(shape.get<std::vector<int64_t>>())));
    } else {
      CHECK_FALSE(e.contains("trajectory"));
      CHECK_FALSE(e.contains("grads"));
    }
  }
}

TEST_CASE("reference fixtures' output and loss match an fp64 forward pass", "[fixtures]") {
  for (const auto& dir : fixtureDirs()) {
    INFO("fixture " << dir.string());
    const json e = json::parse(readFile(dir / "expected.json"));
    const int64_t features = e.at("features"), tsize = e.at("target_size");
    const Dataset d = loadCsv(dir / "data.csv", features, tsize, e.at("target_kind") == "class",
                              false, ignoreIndex(e));
    const SafeTensors st = readSafetensors(dir / "init.safetensors");
    const std::string text = readFile(dir / "model.nn");
    const auto layers = parseLayers(text);
    Diagnostics diags((dir / "model.nn").string(), text);
    const auto spec = analyzeSource((dir / "model.nn").string(), text, diags);
    INFO(diags.render());
    REQUIRE(spec);

    Matrix x(d.count, std::vector<double>(features));
    for (int64_t r = 0; r < d.count; ++r)
      for (int64_t c = 0; c < features; ++c) x[r][c] = d.f32[r * features + c];
    if (spec->transform) { // Normalize: (x - mean[ch]) / std[ch] over [C, H, W]
      const auto& t = *spec->transform;
      const auto per_channel = features / int64_t(t.mean.size());
      for (auto& row : x)
        for (int64_t c = 0; c < features; ++c)
          row[c] = (row[c] - t.mean[c / per_channel]) / t.std[c / per_channel];
    }
    const Matrix out = forward(layers, *spec, st, dir / "init.safetensors", x);

    std::vector<double> got;
    for (const auto& row : out) got.insert(got.end(), row.begin(), row.end());
    const auto want = e.at("output").get<std::vector<double>>();
    REQUIRE(got.size() == want.size());
    // PyTorch ran in float32: allow the tolerance README.md recommends.
    const double scale = std::max(maxAbs(want), 1e-30);
    for (size_t i = 0; i < got.size(); ++i) REQUIRE(std::abs(got[i] - want[i]) <= 1e-5 * scale);
    const double loss = lossOf(e, out, d);
    CHECK(loss == Approx(e.at("loss").get<double>()).epsilon(1e-5));
  }
}
