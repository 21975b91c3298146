// The optimizer pass: appends one update op per param (torch.optim semantics).
#pragma once

#include "compiler/frontend/model_spec.h"
#include "compiler/ir/graph.h"

#include <utility>
#include <vector>

namespace descent {

/// For every (param, gradient) pair adds an `sgd_update` (w, g, %step
/// [, momentum buffer]) or `adam_update` (w, g, %step, exp_avg, exp_avg_sq),
/// creating the optimizer state values (%w0_buf "0.weight.momentum_buffer",
/// %w0_exp_avg "0.weight.exp_avg", %w0_exp_avg_sq "0.weight.exp_avg_sq").
/// Each update is placed right after the later of its gradient's definition
/// and the param's last read (write-after-read: a layer's dX reads W before
/// W is updated). Attributes: lr, momentum, dampening, weight_decay, nesterov
/// (SGD; zero/false ones omitted) or lr, beta1, beta2, eps, weight_decay (Adam;
/// AdamW adds decoupled=true: the param decays by (1 - lr*weight_decay) instead;
/// amsgrad=true adds a sixth operand, max_exp_avg_sq "0.weight.max_exp_avg_sq");
/// maximize=true (either) negates the gradient first. RMSprop adds an
/// `rmsprop_update` (w, g, %step, square_avg [, momentum_buffer] [, grad_avg])
/// with lr, alpha, eps [, weight_decay, momentum, centered].
/// %step (an input of the graph) is the 1-based step number. Semantics are
/// torch.optim 1.13's, documented in docs/ir.md and implemented by the
/// interpreter. Pairs with a null gradient are skipped.
///
/// Gradient clipping (torch.nn.utils 1.13): `clip.value` adds clip_value=V
/// to every update (the gradient is clamped to [-V, V] first, inside the
/// fused update). `clip.norm` adds `%n = grad_norm(every gradient)`,
/// `%c = clip_coef(%n) {max_norm}` and one `scale(g, %c)` per gradient, which
/// the update then reads; it also places every update after the last
/// gradient ("updates run after all gradients"), so the fuser stores the
/// gradients and runs each update in its own kernel after the norm.
void addOptimizerUpdates(Graph& g, const OptimizerSpec& opt,
                         const std::vector<std::pair<Value*, Value*>>& grads,
                         const ClipSpec& clip = {});

} // namespace descent
