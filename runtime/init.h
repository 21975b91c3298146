// PyTorch's default parameter initialisation for nn.Linear, seeded.
#pragma once

#include "runtime/engine.h"

#include <cstdint>

namespace descent {

/// Fills every param like nn.Linear.reset_parameters(): weight and bias
/// ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with a=sqrt(5)
/// reduces to that bound), fan_in from the param's description, drawn by
/// ParamInit (compiler/ir/param_init.h); a param described with fan-in 0 is
/// zeroed. Deterministic for a seed, independent of the engine. Optimizer
/// state is zeroed.
void initParams(Engine& engine, uint64_t seed);

} // namespace descent
