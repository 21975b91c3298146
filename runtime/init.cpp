// Seeded PyTorch-style initialisation (see init.h).
#include "runtime/init.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace descent {

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

void initParams(Engine& engine, uint64_t seed) {
  // std::mt19937_64's output sequence is fixed by the standard, and the
  // float conversion below is ours, so weights do not depend on the library.
  std::mt19937_64 rng(seed);
  int64_t fan_in = 0;
  for (const TensorInfo& p : engine.params()) {
    // Weights come before their bias; both use the layer's fan_in (inputs).
    if (p.transposed) fan_in = p.shape[0];
    const double bound = 1.0 / std::sqrt(double(fan_in));
    float* data = engine.param(p.name);
    for (int64_t i = 0; i < p.numel(); ++i) {
      double u = double(rng() >> 11) * 0x1.0p-53; // [0, 1)
      data[i] = float(-bound + 2 * bound * u);
    }
  }
  for (const TensorInfo& s : engine.states()) std::fill_n(engine.state(s.name), s.numel(), 0.0f);
}

} // namespace descent
