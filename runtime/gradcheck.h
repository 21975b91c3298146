// Gradient checking: the analytic gradients of the grad graph (autodiff +
// simplification, run by the fp64 interpreter) against central differences of
// the loss. Used by `descent gradcheck model.nn` and the autodiff tests.
// It sits in runtime/, above both the passes that build the grad graph and
// the interpreter that runs it (docs/architecture.md).
#pragma once

#include "compiler/frontend/model_spec.h"
#include "compiler/interp/interpreter.h"
#include "compiler/ir/graph.h"

#include <cstdint>
#include <string>
#include <vector>

namespace descent {

struct GradcheckOptions {
  uint64_t seed = 1;      ///< init, batch and directions
  int64_t batch = 4;      ///< rows of the random batch (capped at spec.batch)
  int directions = 3;     ///< random unit directions per param
  /// Finite-difference step along a unit direction. Central differences have
  /// truncation error ~h^2 |L'''| and roundoff ~1e-16 |L| / h: with losses ~1
  /// and directional derivatives ~1e-3 the roundoff term dominates (3e-8
  /// relative at h = 1e-5, 3e-7 at 1e-6), so 1e-5 is the sweet spot. ReLU
  /// kinks: the central difference is only valid if no pre-activation (or
  /// max-pool tie) crosses within +-h. A direction that fails is retried with
  /// h/10 and h/100: a wrong gradient stays wrong at every step, a crossed
  /// kink is no longer crossed (the report names the step that was used).
  double step = 1e-5;
  double tolerance = 1e-6; ///< max relative error accepted (fp64)
  bool simplify = true;    ///< check the simplified (fused) loss gradients
};

struct GradcheckParam {
  std::string name;       ///< external name ("0.weight")
  double max_rel_error = 0;
  double analytic = 0;    ///< directional derivative of the worst direction
  double numeric = 0;
  double step = 0;      ///< the finite-difference step of that direction
  double kink_step = 0; ///< > 0: a direction failed at this step and a smaller one was used
};

struct GradcheckReport {
  std::vector<GradcheckParam> params;
  double max_rel_error = 0;
  bool passed = false;
  /// One line per param, then "max relative error: X".
  std::string text;
};

/// Checks a forward graph (with a "loss" output) at the given inputs and
/// params (graph.params() order, IR layout). Relative error per direction d:
/// |a - n| / max(|a|, |n|, 1e-8) with a = <grad, d>, n = (L(p+hd) - L(p-hd))/2h
/// (h retried smaller when a kink is crossed, see GradcheckOptions::step).
GradcheckReport gradcheckGraph(const Graph& forward, const InterpInputs<double>& inputs,
                               const std::vector<std::vector<double>>& params,
                               const GradcheckOptions& opts = {});

/// Checks a model: random init U(-1/sqrt(in), 1/sqrt(in)) for weights and
/// biases, a random batch (features in [0, 1), labels in [0, C), real targets
/// in [0.05, 0.95]), %step = 1, %seed = opts.seed.
GradcheckReport gradcheck(const ModelSpec& spec, const GradcheckOptions& opts = {});

} // namespace descent
