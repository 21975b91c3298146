// Learning-rate schedules: torch.optim.lr_scheduler's classes (1.13), stepped
// the way the usual training loop steps them (after every epoch; OneCycleLR
// after every batch; ReduceLROnPlateau with the epoch's loss). Each step
// follows torch's own recursive ("chainable") formula in double, so the
// learning rates are PyTorch's to the last bit; the trainer hands them to the
// engine as per-step scalars (Engine::setHyper), which never recompiles.
#pragma once

#include "compiler/frontend/model_spec.h"

#include <cstdint>
#include <optional>
#include <string>

namespace descent {

class LrScheduler {
public:
  /// The schedule of `spec` (which has a scheduler) over its optimizer, as
  /// constructed in PyTorch (the constructor's initial step included).
  /// OneCycleLR without total_steps runs epochs * steps_per_epoch steps,
  /// each taken from the file or else from the run (its epochs, the data's
  /// batches per epoch): PyTorch requires them, but a model file cannot say
  /// len(train_loader).
  LrScheduler(const ModelSpec& spec, int64_t run_epochs, int64_t steps_per_epoch);
  /// Throws std::invalid_argument ("path:line:col: ...") when OneCycleLR's
  /// total is smaller than the run's run_steps: PyTorch fails at that step,
  /// we fail before training.
  void checkSteps(int64_t run_steps, const std::string& path) const;

  double lr() const { return lr_; }
  /// SGD's momentum or Adam's beta1 (OneCycleLR cycles it).
  double momentum() const { return momentum_; }
  /// OneCycleLR is stepped after every batch, the others after every epoch.
  bool perBatch() const { return spec_.kind == SchedulerKind::OneCycleLR; }
  bool usesMetric() const { return spec_.kind == SchedulerKind::ReduceLROnPlateau; }

  /// scheduler.step() after a batch (OneCycleLR only).
  void stepBatch();
  /// scheduler.step() after an epoch, or scheduler.step(metric) for ReduceLROnPlateau.
  void stepEpoch(double metric);

  /// The state as one line of JSON (the optimizer file's "scheduler" metadata),
  /// and back. load throws std::invalid_argument with a phrase that follows
  /// "the checkpoint " ("has bad 'scheduler' metadata: ...").
  std::string state() const;
  void load(const std::string& json);

private:
  double annealLr(double step_num);

  SchedulerSpec spec_;
  double lr_ = 0, momentum_ = 0;
  double base_lr_ = 0;     ///< group['initial_lr']
  int64_t last_epoch_ = 0; ///< scheduler.last_epoch after the constructor's step
  int64_t total_steps_ = 0;
  bool use_beta1_ = false;
  // ReduceLROnPlateau
  double best_ = 0;
  int64_t num_bad_epochs_ = 0, cooldown_counter_ = 0;
};

} // namespace descent
