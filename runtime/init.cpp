// Seeded PyTorch-style initialisation (see init.h).
#include "runtime/init.h"

#include "compiler/ir/param_init.h"

#include <algorithm>

namespace descent {

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

void initParams(Engine& engine, uint64_t seed) {
  ParamInit init(seed);
  int64_t fan_in = 0;
  for (const TensorInfo& p : engine.params()) {
    // Weights come before their bias; both use the layer's fan_in (inputs).
    if (p.transposed) fan_in = p.shape[0];
    init.fill(engine.param(p.name), p.numel(), fan_in);
  }
  for (const TensorInfo& s : engine.states()) std::fill_n(engine.state(s.name), s.numel(), 0.0f);
}

} // namespace descent
