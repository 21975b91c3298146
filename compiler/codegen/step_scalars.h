/* The per-step scalars of an optimizer update: the hyper-parameters a
 * schedule may change between steps (the learning rate, and the momentum or
 * Adam's beta1 that OneCycleLR cycles) and what torch.optim derives from them
 * and the step in Python doubles (Adam's bias corrections). The host computes
 * them in double before every step and rounds each to float once, exactly as
 * torch.optim's Python code and ATen's Scalar arguments do; the kernels load
 * them from the update op's slot in the arena (compiler/codegen, Emitter::update).
 * Changing the learning rate therefore never recompiles.
 *
 * One definition, in C99 that C++ also compiles: the executor
 * (runtime/executor.cpp) and the ahead-of-time runtime
 * (runtime/aot/descent_aot.c) both call descent_step_scalars. */
#ifndef DESCENT_STEP_SCALARS_H
#define DESCENT_STEP_SCALARS_H

#include <math.h>
#include <stdint.h>

/* Update kinds. */
enum {
  DESCENT_UPDATE_SGD = 0,
  DESCENT_UPDATE_ADAM = 1,
  DESCENT_UPDATE_ADAMW = 2,
  DESCENT_UPDATE_RMSPROP = 3,
  DESCENT_UPDATE_ADAGRAD = 4,
  DESCENT_UPDATE_ADADELTA = 5
};

/* A slot holds this many floats (32 bytes). */
enum { DESCENT_STEP_SCALARS = 8 };

/* Slot layout. SGD, RMSprop and Adadelta: {lr, momentum}. Adagrad: {clr = lr / (1 + (step - 1)
 * * lr_decay)}. Adam and AdamW: {lr / (1 - beta1^step),
 * sqrt(1 - beta2^step), 1 - lr * weight_decay (AdamW's decay), beta1, 1 - beta1}. */
enum {
  DESCENT_SGD_LR = 0,
  DESCENT_SGD_MOMENTUM = 1,
  DESCENT_ADAM_STEP_SIZE = 0,
  DESCENT_ADAM_BC2_SQRT = 1,
  DESCENT_ADAM_DECAY = 2,
  DESCENT_ADAM_BETA1 = 3,
  DESCENT_ADAM_ONE_MINUS_BETA1 = 4
};

/* Fills out[DESCENT_STEP_SCALARS] for step `step` (1-based) of an update of
 * `kind`. momentum is SGD's or RMSprop's momentum or Adam's beta1; beta2 is Adam's beta2
 * or Adagrad's lr_decay. */
static inline void descent_step_scalars(int kind, double lr, double momentum, double beta2,
                                        double weight_decay, int64_t step, float* out) {
  int i;
  for (i = 0; i < DESCENT_STEP_SCALARS; ++i)
    out[i] = 0.0f;
  if (kind == DESCENT_UPDATE_ADAGRAD) { /* _single_tensor_adagrad's clr, a Python float */
    out[DESCENT_SGD_LR] = (float)(lr / (1.0 + (double)(step - 1) * beta2));
    return;
  }
  if (kind == DESCENT_UPDATE_SGD || kind == DESCENT_UPDATE_RMSPROP ||
      kind == DESCENT_UPDATE_ADADELTA) {
    out[DESCENT_SGD_LR] = (float)lr;
    out[DESCENT_SGD_MOMENTUM] = (float)momentum;
    return;
  }
  /* torch.optim.Adam(W), _single_tensor_adam: bias_correction1 = 1 - beta1 ** step,
   * step_size = lr / bias_correction1, bias_correction2_sqrt = sqrt(1 - beta2 ** step). */
  out[DESCENT_ADAM_STEP_SIZE] = (float)(lr / (1.0 - pow(momentum, (double)step)));
  out[DESCENT_ADAM_BC2_SQRT] = (float)sqrt(1.0 - pow(beta2, (double)step));
  out[DESCENT_ADAM_DECAY] = (float)(1.0 - lr * weight_decay);  /* param.mul_(1 - lr * wd) */
  out[DESCENT_ADAM_BETA1] = (float)momentum;                   /* exp_avg.mul_(beta1) */
  out[DESCENT_ADAM_ONE_MINUS_BETA1] = (float)(1.0 - momentum); /* .add_(g, alpha=1 - beta1) */
}

#endif
