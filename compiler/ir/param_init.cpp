// Fan-in of the graph's parameters (see param_init.h).
#include "compiler/ir/param_init.h"

namespace descent {

std::vector<int64_t> paramFanIns(const Graph& g) {
  std::vector<int64_t> out;
  for (const Value* p : g.params())
    out.push_back(p->desc.fan_in);
  return out;
}

} // namespace descent
