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

TensorInfo tensorInfo(const Value& v) {
  TensorInfo t;
  t.name = v.external_name;
  t.shape = v.type.shape;
  t.desc = v.desc;
  return t;
}

void initParams(Engine& engine, uint64_t seed) {
  ParamInit init(seed);
  // Each param's distribution and fan-in are in its description (a bias
  // has its weight's fan-in).
  for (const TensorInfo& p : engine.params())
    init.fill(engine.param(p.name), p.numel(), p.desc);
  for (const TensorInfo& s : engine.states())
    std::fill_n(engine.state(s.name), s.numel(), float(stateStart(s.desc)));
}

} // namespace descent
