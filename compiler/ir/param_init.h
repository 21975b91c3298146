// PyTorch's default initialisation of nn.Linear parameters, in one place:
// the seeded draw every user of random parameters shares (runtime init,
// gradcheck, bench, tests), and each parameter's fan-in from its description.
#pragma once

#include "compiler/ir/graph.h"

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

private:
  std::mt19937_64 rng_;
};

/// The fan-in of each of `g.params()` (same order), as their descriptions
/// (Value::desc) declare it: never guessed from names, order or rank.
std::vector<int64_t> paramFanIns(const Graph& g);

} // namespace descent
