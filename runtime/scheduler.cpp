// Learning-rate schedules (see scheduler.h): each branch is torch 1.13's
// torch/optim/lr_scheduler.py, formula for formula, in Python's double
// arithmetic (math.cos is the C library's cos, ** is pow).
#include "runtime/scheduler.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace descent {

namespace {

constexpr double kPi = 3.141592653589793; // math.pi

/// Python's % on ints: the result has the divisor's sign.
int64_t pyMod(int64_t a, int64_t b) {
  int64_t r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}

} // namespace

LrScheduler::LrScheduler(const ModelSpec& spec, int64_t run_epochs, int64_t steps_per_epoch)
    : spec_(*spec.scheduler) {
  const OptimizerSpec& o = spec.optimizer;
  use_beta1_ = o.kind == OptimizerKind::Adam || o.kind == OptimizerKind::AdamW;
  lr_ = o.lr;
  momentum_ = use_beta1_ ? o.beta1 : o.momentum;
  base_lr_ = o.lr;
  const SchedulerSpec& s = spec_;
  switch (s.kind) {
  case SchedulerKind::StepLR:
  case SchedulerKind::MultiStepLR:
  case SchedulerKind::ExponentialLR:
  case SchedulerKind::CosineAnnealingLR:
    break; // get_lr() at last_epoch 0 keeps group['lr']
  case SchedulerKind::LinearLR:
    lr_ = lr_ * s.start_factor; // last_epoch 0: group['lr'] * start_factor
    break;
  case SchedulerKind::OneCycleLR: {
    total_steps_ = s.total_steps ? s.total_steps
                                 : (s.epochs ? s.epochs : run_epochs) *
                                       (s.steps_per_epoch ? s.steps_per_epoch : steps_per_epoch);
    base_lr_ = s.max_lr / s.div_factor;               // group['initial_lr']
    if (s.cycle_momentum) momentum_ = s.max_momentum; // group['momentum'] or betas[0]
    last_epoch_ = 0;
    lr_ = annealLr(0); // the constructor's step
    break;
  }
  case SchedulerKind::ReduceLROnPlateau:
    best_ = s.mode_max ? -std::numeric_limits<double>::infinity()
                       : std::numeric_limits<double>::infinity();
    break;
  }
}

void LrScheduler::checkSteps(int64_t run_steps, const std::string& path) const {
  if (spec_.kind != SchedulerKind::OneCycleLR || run_steps <= total_steps_) return;
  throw std::invalid_argument(fmt::format(
      "{}:{}:{}: OneCycleLR(): total_steps is {} but this run takes {} steps (PyTorch fails with "
      "'Tried to step {} times' there); give total_steps={} or leave it out to use the run's",
      path, spec_.loc.line, spec_.loc.col, total_steps_, run_steps, total_steps_ + 1, run_steps));
}

/// OneCycleLR.get_lr() at step_num; sets the cycled momentum.
double LrScheduler::annealLr(double step_num) {
  const SchedulerSpec& s = spec_;
  const double initial = s.max_lr / s.div_factor, max_lr = s.max_lr;
  const double min_lr = initial / s.final_div_factor;
  const double T = double(total_steps_);
  struct Phase {
    double end_step, start_lr, end_lr, start_m, end_m;
  };
  std::vector<Phase> phases;
  if (s.three_phase)
    phases = {{s.pct_start * T - 1, initial, max_lr, s.max_momentum, s.base_momentum},
              {2 * s.pct_start * T - 2, max_lr, initial, s.base_momentum, s.max_momentum},
              {T - 1, initial, min_lr, s.max_momentum, s.max_momentum}};
  else
    phases = {{s.pct_start * T - 1, initial, max_lr, s.max_momentum, s.base_momentum},
              {T - 1, max_lr, min_lr, s.base_momentum, s.max_momentum}};
  auto anneal = [&](double start, double end, double pct) {
    if (s.anneal_cos) {
      double cos_out = std::cos(kPi * pct) + 1; // _annealing_cos
      return end + (start - end) / 2.0 * cos_out;
    }
    return (end - start) * pct + start; // _annealing_linear
  };
  double start_step = 0;
  for (size_t i = 0; i < phases.size(); ++i) {
    const Phase& p = phases[i];
    if (step_num <= p.end_step || i + 1 == phases.size()) {
      double pct = (step_num - start_step) / (p.end_step - start_step);
      if (s.cycle_momentum) momentum_ = anneal(p.start_m, p.end_m, pct);
      return anneal(p.start_lr, p.end_lr, pct);
    }
    start_step = p.end_step;
  }
  return lr_;
}

void LrScheduler::stepBatch() {
  if (!perBatch()) return;
  ++last_epoch_;
  lr_ = annealLr(double(last_epoch_));
}

void LrScheduler::stepEpoch(double metric) {
  const SchedulerSpec& s = spec_;
  if (perBatch()) return;
  ++last_epoch_;
  const int64_t e = last_epoch_;
  switch (s.kind) {
  case SchedulerKind::StepLR:
    if (e % s.step_size == 0) lr_ = lr_ * s.gamma;
    break;
  case SchedulerKind::MultiStepLR: {
    auto n = std::count(s.milestones.begin(), s.milestones.end(), e);
    if (n) lr_ = lr_ * std::pow(s.gamma, double(n));
    break;
  }
  case SchedulerKind::ExponentialLR:
    lr_ = lr_ * s.gamma;
    break;
  case SchedulerKind::CosineAnnealingLR: {
    const double T = double(s.T_max);
    if (pyMod(e - 1 - s.T_max, 2 * s.T_max) == 0)
      lr_ = lr_ + (base_lr_ - s.eta_min) * (1 - std::cos(kPi / T)) / 2;
    else
      lr_ = (1 + std::cos(kPi * double(e) / T)) / (1 + std::cos(kPi * double(e - 1) / T)) *
                (lr_ - s.eta_min) +
            s.eta_min;
    break;
  }
  case SchedulerKind::LinearLR:
    if (e <= s.total_iters)
      lr_ = lr_ * (1. + (s.end_factor - s.start_factor) /
                            (double(s.total_iters) * s.start_factor +
                             double(e - 1) * (s.end_factor - s.start_factor)));
    break;
  case SchedulerKind::ReduceLROnPlateau: {
    bool better;
    if (!s.mode_max && !s.threshold_abs)
      better = metric < best_ * (1. - s.threshold);
    else if (!s.mode_max)
      better = metric < best_ - s.threshold;
    else if (!s.threshold_abs)
      better = metric > best_ * (s.threshold + 1.);
    else
      better = metric > best_ + s.threshold;
    if (better) {
      best_ = metric;
      num_bad_epochs_ = 0;
    } else {
      ++num_bad_epochs_;
    }
    if (cooldown_counter_ > 0) {
      --cooldown_counter_;
      num_bad_epochs_ = 0; // ignore any bad epochs in cooldown
    }
    if (num_bad_epochs_ > s.patience) {
      double new_lr = std::max(lr_ * s.factor, s.min_lr);
      if (lr_ - new_lr > s.eps) lr_ = new_lr;
      cooldown_counter_ = s.cooldown;
      num_bad_epochs_ = 0;
    }
    break;
  }
  case SchedulerKind::OneCycleLR:
    break;
  }
}

std::string LrScheduler::state() const {
  nlohmann::json j;
  j["kind"] = schedulerName(spec_.kind);
  j["last_epoch"] = last_epoch_;
  j["lr"] = lr_;
  j["momentum"] = momentum_;
  if (spec_.kind == SchedulerKind::OneCycleLR) j["total_steps"] = total_steps_;
  if (spec_.kind == SchedulerKind::ReduceLROnPlateau) {
    if (std::isfinite(best_)) j["best"] = best_; // absent: no epoch yet (inf)
    j["num_bad_epochs"] = num_bad_epochs_;
    j["cooldown_counter"] = cooldown_counter_;
  }
  return j.dump();
}

void LrScheduler::load(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  auto bad = [&](const std::string& what) {
    throw std::invalid_argument(fmt::format("has bad 'scheduler' metadata: {}", what));
  };
  if (!j.is_object()) bad("not a JSON object");
  if (!j.contains("kind") || !j["kind"].is_string()) bad("no 'kind'");
  if (j["kind"].get<std::string>() != schedulerName(spec_.kind))
    throw std::invalid_argument(
        fmt::format("was saved with scheduler {}, but the model file's is {}",
                    j["kind"].get<std::string>().substr(0, 40), schedulerName(spec_.kind)));
  auto num = [&](const char* key) {
    if (!j.contains(key) || !j[key].is_number()) bad(fmt::format("no number '{}'", key));
    double v = j[key].get<double>();
    if (!std::isfinite(v)) bad(fmt::format("'{}' is not finite", key));
    return v;
  };
  auto count = [&](const char* key) {
    if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<int64_t>() < 0)
      bad(fmt::format("no count '{}'", key));
    return j[key].get<int64_t>();
  };
  last_epoch_ = count("last_epoch");
  lr_ = num("lr");
  momentum_ = num("momentum");
  if (!(lr_ >= 0)) bad("'lr' is negative");
  if (spec_.kind == SchedulerKind::OneCycleLR) {
    total_steps_ = count("total_steps");
    if (total_steps_ < 1) bad("'total_steps' is 0");
  }
  if (spec_.kind == SchedulerKind::ReduceLROnPlateau) {
    if (j.contains("best")) best_ = num("best");
    num_bad_epochs_ = count("num_bad_epochs");
    cooldown_counter_ = count("cooldown_counter");
  }
}

} // namespace descent
