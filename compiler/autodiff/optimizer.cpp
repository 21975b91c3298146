// Optimizer pass (see optimizer.h): builds the update ops, then moves each one
// to the earliest legal position so that later fusion finds it next to the
// op producing its gradient (the dW GEMM).
#include "compiler/autodiff/optimizer.h"

#include <algorithm>
#include <stdexcept>
#include <unordered_map>

namespace descent {

namespace {

Attrs sgdAttrs(const OptimizerSpec& o) {
  Attrs a;
  a.set("lr", o.lr);
  if (o.momentum != 0) a.set("momentum", o.momentum);
  if (o.dampening != 0) a.set("dampening", o.dampening);
  if (o.weight_decay != 0) a.set("weight_decay", o.weight_decay);
  if (o.nesterov) a.set("nesterov", true);
  if (o.maximize) a.set("maximize", true);
  return a;
}

Attrs adamAttrs(const OptimizerSpec& o) {
  Attrs a;
  a.set("lr", o.lr);
  a.set("beta1", o.beta1);
  a.set("beta2", o.beta2);
  a.set("eps", o.eps);
  a.set("weight_decay", o.weight_decay);
  if (o.kind == OptimizerKind::AdamW) a.set("decoupled", true);
  if (o.amsgrad) a.set("amsgrad", true);
  if (o.maximize) a.set("maximize", true);
  return a;
}

Attrs rmspropAttrs(const OptimizerSpec& o) {
  Attrs a;
  a.set("lr", o.lr);
  a.set("alpha", o.alpha);
  a.set("eps", o.eps);
  if (o.weight_decay != 0) a.set("weight_decay", o.weight_decay);
  if (o.momentum != 0) a.set("momentum", o.momentum);
  if (o.centered) a.set("centered", true);
  if (o.maximize) a.set("maximize", true);
  return a;
}

Attrs adagradAttrs(const OptimizerSpec& o) {
  Attrs a;
  a.set("lr", o.lr);
  a.set("eps", o.eps);
  if (o.lr_decay != 0) a.set("lr_decay", o.lr_decay);
  if (o.weight_decay != 0) a.set("weight_decay", o.weight_decay);
  if (o.initial_accumulator_value != 0)
    a.set("initial_accumulator_value", o.initial_accumulator_value);
  if (o.maximize) a.set("maximize", true);
  return a;
}

Attrs adadeltaAttrs(const OptimizerSpec& o) {
  Attrs a;
  a.set("lr", o.lr);
  a.set("rho", o.rho);
  a.set("eps", o.eps);
  if (o.weight_decay != 0) a.set("weight_decay", o.weight_decay);
  if (o.maximize) a.set("maximize", true);
  return a;
}

/// Reorders g's ops so each update op comes right after the last op it must
/// follow: the definition of its gradient and every other read of its param
/// (and, with `after_all_gradients`, the definition of every gradient).
void placeUpdates(Graph& g, const std::vector<Value*>& gradients, bool after_all_gradients) {
  auto& ops = g.mutableOps();
  std::unordered_map<const Value*, size_t> last_read, def;
  std::vector<std::unique_ptr<Op>> rest, updates;
  for (auto& op : ops) {
    bool update = opInfo(op->kind).category == OpCategory::Update;
    (update ? updates : rest).push_back(std::move(op));
  }
  for (size_t i = 0; i < rest.size(); ++i) {
    for (const Value* v : rest[i]->operands) last_read[v] = i + 1;
    if (rest[i]->result) def[rest[i]->result] = i + 1;
  }
  // after[k]: the updates that go right after rest[k-1] (k = 0: at the start).
  std::vector<std::vector<std::unique_ptr<Op>>> after(rest.size() + 1);
  size_t all = 0; // after the last gradient
  if (after_all_gradients)
    for (const Value* v : gradients)
      if (auto it = def.find(v); it != def.end()) all = std::max(all, it->second);
  for (auto& u : updates) {
    size_t pos = all;
    for (const Value* v : u->operands) {
      if (auto it = def.find(v); it != def.end()) pos = std::max(pos, it->second);
      if (auto it = last_read.find(v); it != last_read.end()) pos = std::max(pos, it->second);
    }
    after[pos].push_back(std::move(u));
  }
  ops.clear();
  for (size_t k = 0; k <= rest.size(); ++k) {
    if (k > 0) ops.push_back(std::move(rest[k - 1]));
    for (auto& u : after[k]) ops.push_back(std::move(u));
  }
}

/// Optimizer state has its param's PyTorch shape and layout (torch.optim
/// keeps it like the param) and starts at zero (fan_in 0).
ParamDesc stateDesc(const Value* param) {
  ParamDesc d = param->desc;
  d.fan_in = 0;
  return d;
}

} // namespace

void addOptimizerUpdates(Graph& g, const OptimizerSpec& opt,
                         const std::vector<std::pair<Value*, Value*>>& grads,
                         const ClipSpec& clip) {
  Value* step = g.inputByRole(InputRole::Step);
  if (!step) throw std::logic_error("optimizer: the graph has no input with the role 'step'");
  std::vector<Value*> gradients;
  for (const auto& [w, dw] : grads)
    if (dw) gradients.push_back(dw);
  // clip_grad_norm_: the total 2-norm of every gradient (in param order, as
  // model.parameters() lists them) scales each gradient before its update, so
  // no update may run before the last gradient exists.
  std::unordered_map<const Value*, Value*> clipped;
  bool after_all_gradients = clip.norm.has_value();
  if (clip.norm && !gradients.empty()) {
    Value* norm = g.add(OpKind::GradNorm, gradients, {}, clip.norm_loc);
    Attrs a;
    a.set("max_norm", *clip.norm);
    Value* coef = g.add(OpKind::ClipCoef, {norm}, a, clip.norm_loc);
    for (const auto& [w, dw] : grads)
      if (dw) clipped[dw] = g.add(OpKind::Scale, {dw, coef}, {}, clip.norm_loc, w);
  }
  for (const auto& [w, pdw] : grads) {
    if (!pdw) continue;
    Value* dw = clipped.count(pdw) ? clipped.at(pdw) : pdw;
    std::string ext = w->external_name;
    // The update's loc is the layer's (its first reader), like the doc's example.
    SourceLoc loc = opt.loc;
    for (const auto& op : g.ops())
      if (std::find(op->operands.begin(), op->operands.end(), w) != op->operands.end()) {
        loc = op->loc;
        break;
      }
    // clip_grad_value_: a clamp of the gradient at the update's start (still fused).
    Attrs attrs = opt.kind == OptimizerKind::SGD        ? sgdAttrs(opt)
                  : opt.kind == OptimizerKind::RMSprop  ? rmspropAttrs(opt)
                  : opt.kind == OptimizerKind::Adagrad  ? adagradAttrs(opt)
                  : opt.kind == OptimizerKind::Adadelta ? adadeltaAttrs(opt)
                                                        : adamAttrs(opt);
    if (clip.value) attrs.set("clip_value", *clip.value);
    if (opt.kind == OptimizerKind::SGD) {
      std::vector<Value*> operands{w, dw, step};
      if (opt.momentum != 0)
        operands.push_back(
            g.addState(w->name + "_buf", w->type, ext + ".momentum_buffer", stateDesc(w)));
      g.add(OpKind::SgdUpdate, operands, attrs, loc, w);
    } else if (opt.kind == OptimizerKind::Adagrad) {
      // torch.optim.Adagrad's state: sum (initial_accumulator_value before step 1)
      g.add(OpKind::AdagradUpdate,
            {w, dw, step, g.addState(w->name + "_sum", w->type, ext + ".sum", stateDesc(w))}, attrs,
            loc, w);
    } else if (opt.kind == OptimizerKind::Adadelta) {
      // torch.optim.Adadelta's state: square_avg, acc_delta
      g.add(OpKind::AdadeltaUpdate,
            {w, dw, step,
             g.addState(w->name + "_square_avg", w->type, ext + ".square_avg", stateDesc(w)),
             g.addState(w->name + "_acc_delta", w->type, ext + ".acc_delta", stateDesc(w))},
            attrs, loc, w);
    } else if (opt.kind == OptimizerKind::RMSprop) {
      // torch.optim.RMSprop's state: square_avg, momentum_buffer (momentum > 0),
      // grad_avg (centered).
      std::vector<Value*> operands{
          w, dw, step,
          g.addState(w->name + "_square_avg", w->type, ext + ".square_avg", stateDesc(w))};
      if (opt.momentum > 0)
        operands.push_back(
            g.addState(w->name + "_buf", w->type, ext + ".momentum_buffer", stateDesc(w)));
      if (opt.centered)
        operands.push_back(
            g.addState(w->name + "_grad_avg", w->type, ext + ".grad_avg", stateDesc(w)));
      g.add(OpKind::RmspropUpdate, operands, attrs, loc, w);
    } else {
      Value* m = g.addState(w->name + "_exp_avg", w->type, ext + ".exp_avg", stateDesc(w));
      Value* v = g.addState(w->name + "_exp_avg_sq", w->type, ext + ".exp_avg_sq", stateDesc(w));
      std::vector<Value*> operands{w, dw, step, m, v};
      if (opt.amsgrad)
        operands.push_back(g.addState(w->name + "_max_exp_avg_sq", w->type, ext + ".max_exp_avg_sq",
                                      stateDesc(w)));
      g.add(OpKind::AdamUpdate, operands, attrs, loc, w);
    }
  }
  placeUpdates(g, gradients, after_all_gradients);
}

} // namespace descent
