// Seeded parameter initialisation: PyTorch's nn.Linear default, or the
// model's init= / bias_init=.
#pragma once

#include "runtime/engine.h"

#include <cstdint>

namespace descent {

/// Fills every param from its description's distribution (the model's
/// init= / bias_init=), by default like nn.Linear.reset_parameters(): weight
/// and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with
/// a=sqrt(5) reduces to that bound), drawn by ParamInit
/// (compiler/ir/param_init.h); a param described with fan-in 0 is zeroed. Deterministic for a seed,
/// independent of the engine. Optimizer state is zeroed.
void initParams(Engine& engine, uint64_t seed);

} // namespace descent
