// The simplify pass: algebraic rewrites of backward ops into cheaper, better
// fusable forms (a loss gradient followed by its activation's gradient).
#pragma once

#include "compiler/ir/graph.h"

namespace descent {

/// Rewrites, in place (the replaced ops become dead: run DCE after):
///   log_softmax_grad(nll_loss_grad(logp, y), logp) -> log_softmax_nll_grad(logp, y)
///     = (exp(logp) - onehot(y)) / B   (reduction sum: no / B)
///   sigmoid_grad(bce_loss_grad(s, t), s)           -> sigmoid_bce_grad(s, t)
///     = (s - t) / N                    (reduction sum: no / N)
/// The new op records the rewrite in its `fused` attribute and keeps the loc
/// and `from` of the replaced activation gradient. Returns the number of rewrites.
///
/// Validity against PyTorch: the first form is exact algebra (PyTorch computes
/// -onehot/B + exp(logp)/B in a different order: same value within fp32
/// rounding). The second drops PyTorch's clamp: BCELoss's gradient is
/// (s - t) / max((1 - s) * s, 1e-12), so the forms agree (within rounding)
/// only while s * (1 - s) > 1e-12, i.e. away from saturation (|logit| < ~27);
/// past it PyTorch's gradient is distorted by the clamp and the fused form is
/// the mathematically exact one.
int simplify(Graph& g);

} // namespace descent
