// PyTorch's default initialisation of nn.Linear parameters, in one place:
// the seeded draw every user of random parameters shares (runtime init,
// gradcheck, bench, tests), and each parameter's fan-in from its description.
#pragma once

#include "compiler/ir/graph.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace descent {

/// Draws parameters like nn.Linear.reset_parameters(): weight and bias
/// ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with a=sqrt(5)
/// reduces to that bound), from one seeded stream, tensor after tensor.
/// std::mt19937_64's output sequence is fixed by the standard and the
/// conversion to [0, 1) is ours, so the values do not depend on the library.
class ParamInit {
public:
  explicit ParamInit(uint64_t seed) : rng_(seed) {}

  /// Fills `n` values for a tensor whose layer has `fan_in` inputs.
  template <typename T> void fill(T* data, int64_t n, int64_t fan_in) {
    const double bound = 1.0 / std::sqrt(double(fan_in));
    for (int64_t i = 0; i < n; ++i) {
      double u = double(rng_() >> 11) * 0x1.0p-53; // [0, 1)
      data[i] = T(float(-bound + 2 * bound * u));
    }
  }

  /// Fills `n` values of a tensor described by `d`: from its `init`
  /// distribution (the model's init=), else as fill(fan_in) above, or zeros
  /// for a fan-in of 0 (optimizer state). Normal values come in Box-Muller
  /// pairs (the last of an odd count is dropped); a constant draws nothing.
  template <typename T> void fill(T* data, int64_t n, const ParamDesc& d) {
    const double a = d.init.a, b = d.init.b;
    switch (d.init.kind) {
    case InitDist::Kind::Default:
      if (d.fan_in > 0)
        fill(data, n, d.fan_in);
      else
        std::fill_n(data, n, T(0));
      return;
    case InitDist::Kind::Constant:
      std::fill_n(data, n, T(float(a)));
      return;
    case InitDist::Kind::Uniform:
      for (int64_t i = 0; i < n; ++i)
        data[i] = T(float(a + (b - a) * unit()));
      return;
    case InitDist::Kind::Normal:
      for (int64_t i = 0; i < n; i += 2) {
        const double r = std::sqrt(-2 * std::log(1 - unit())); // 1 - u in (0, 1]
        const double t = 2 * M_PI * unit();
        data[i] = T(float(a + b * r * std::cos(t)));
        if (i + 1 < n) data[i + 1] = T(float(a + b * r * std::sin(t)));
      }
      return;
    }
  }

private:
  double unit() { return double(rng_() >> 11) * 0x1.0p-53; } // [0, 1)

  std::mt19937_64 rng_;
};

/// The fan-in of each of `g.params()` (same order), as their descriptions
/// (Value::desc) declare it: never guessed from names, order or rank.
std::vector<int64_t> paramFanIns(const Graph& g);

} // namespace descent
