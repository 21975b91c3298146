// Shared helpers of the codegen tests: loading models, random params and
// batches, running the JIT Program and the reference interpreter side by side.
#pragma once

#include "runtime/executor.h"
#include "compiler/frontend/frontend.h"
#include "compiler/interp/interpreter.h"
#include "compiler/ir/param_init.h"
#include "compiler/passes/train_graph.h"
#include "tests/common/test_support.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace descent::cgtest {

using namespace descent::testsupport;

/// A model from its text (tests that vary a model write it inline).
inline ModelSpec specFromText(const std::string& path, const std::string& src) {
  Diagnostics diags(path, src);
  auto spec = analyzeSource(path, src, diags);
  INFO(diags.render());
  REQUIRE(spec);
  return *spec;
}

/// A batch of `rows` samples for `spec`: pixels (u8) or floats, labels or targets.
struct Batch {
  std::vector<uint8_t> x_u8;
  std::vector<float> x_f32;
  std::vector<int32_t> y_class;
  std::vector<float> y_real;
  const void* x(bool u8) const { return u8 ? (const void*)x_u8.data() : (const void*)x_f32.data(); }
  const void* y() const { return y_class.empty() ? (const void*)y_real.data() : (const void*)y_class.data(); }
};

inline Batch makeBatch(const ModelSpec& spec, int64_t rows, uint32_t seed) {
  std::mt19937 rng(seed);
  Batch b;
  std::uniform_int_distribution<int> px(0, 255);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (int64_t i = 0; i < rows * spec.input_size; ++i) {
    b.x_u8.push_back(uint8_t(px(rng)));
    b.x_f32.push_back(nd(rng));
  }
  if (spec.target_kind == TargetKind::Class) {
    std::uniform_int_distribution<int> lab(0, int(spec.target_size) - 1);
    for (int64_t i = 0; i < rows; ++i) b.y_class.push_back(lab(rng));
  } else {
    std::uniform_real_distribution<float> u(0.f, 1.f);
    bool binary = spec.loss.kind == LossKind::BCELoss || spec.loss.kind == LossKind::BCEWithLogitsLoss;
    for (int64_t i = 0; i < rows * spec.target_size; ++i) b.y_real.push_back(binary ? float(u(rng) < 0.5f) : nd(rng));
  }
  return b;
}

/// PyTorch's init (ParamInit): U(-1/sqrt(in), 1/sqrt(in)) for every param, in graph order.
inline std::vector<std::vector<float>> randomParams(const Graph& g, uint32_t seed) {
  ParamInit init(seed);
  std::vector<int64_t> fan_ins = paramFanIns(g);
  std::vector<std::vector<float>> out;
  for (size_t k = 0; k < g.params().size(); ++k) {
    std::vector<float> v(size_t(g.params()[k]->type.numel()));
    // No fan-in (BatchNorm's weight and bias): U(-1, 1), random like the rest.
    init.fill(v.data(), int64_t(v.size()), fan_ins[k] > 0 ? fan_ins[k] : 1);
    out.push_back(std::move(v));
  }
  return out;
}

inline InterpInputs<float> interpInputs(const Graph& g, const Batch& b, int64_t n, bool u8, int32_t step,
                                        int32_t seed) {
  InterpInputs<float> in;
  const Value* x = g.inputByRole(InputRole::Input);
  int64_t feat = x->type.numel() / x->type.shape[0]; // elements per sample, any rank
  auto& xv = in.values[x->name];
  for (int64_t i = 0; i < n * feat; ++i) xv.push_back(u8 ? float(b.x_u8[size_t(i)]) : b.x_f32[size_t(i)]);
  const Value* y = g.inputByRole(InputRole::Target);
  auto& yv = in.values[y->name];
  int64_t per = y->type.rank() == 2 ? y->type.shape[1] : 1;
  for (int64_t i = 0; i < n * per; ++i)
    yv.push_back(b.y_class.empty() ? b.y_real[size_t(i)] : float(b.y_class[size_t(i)]));
  in.values[g.inputByRole(InputRole::Step)->name] = {float(step)};
  if (const Value* s = g.inputByRole(InputRole::Seed)) in.values[s->name] = {float(seed)};
  return in;
}

/// |a - b| <= tol * (scale + |b|) + atol: `scale` is the largest magnitude of the
/// reference tensor, so tiny entries are judged against the tensor's size.
inline void requireClose(const float* a, const std::vector<float>& b, double tol, const std::string& what,
                         double atol = 0) {
  double scale = 0;
  for (float v : b) scale = std::max(scale, double(std::fabs(v)));
  size_t bad = 0, first = 0;
  double worst = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    // NaN on both sides agrees: BatchNorm's running variance after a batch of
    // one value per channel (0/0, as in ATen; PyTorch's Python layer refuses it).
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    double d = std::fabs(double(a[i]) - double(b[i]));
    double lim = tol * (scale + std::fabs(b[i])) + atol + 1e-30;
    if (!(d <= lim)) {
      if (!bad) first = i;
      ++bad;
    }
    worst = std::max(worst, d / (scale + 1e-30));
  }
  INFO(what << ": " << bad << " of " << b.size() << " elements differ; first at " << first << " jit="
            << (b.empty() ? 0.f : a[first]) << " interp=" << (b.empty() ? 0.f : b[first])
            << " worst rel-to-max=" << worst);
  REQUIRE(bad == 0);
}

} // namespace descent::cgtest
