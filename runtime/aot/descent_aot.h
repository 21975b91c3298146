/* The ahead-of-time runtime's interface (descent compile): the schedule
 * table a generated model header defines (kernels, arena layout, per-step
 * scalars) and the generic driver in descent_aot.c that runs it exactly as
 * runtime/executor.cpp runs the JIT's kernels. C99, no allocation after
 * create. The generated M.h embeds this text and wraps it in M_-prefixed
 * functions; see docs/aot.md. */
#ifndef DESCENT_AOT_H
#define DESCENT_AOT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes (0 = success). */
#define DESCENT_AOT_OK 0
#define DESCENT_AOT_ENULL 1        /* a required pointer is NULL */
#define DESCENT_AOT_EARG 2         /* an argument is out of range (n above the batch, ...) */
#define DESCENT_AOT_ENOMEM 3       /* the arena or the threads could not be allocated */
#define DESCENT_AOT_EIO 4          /* a file could not be opened, read or written */
#define DESCENT_AOT_EFORMAT 5      /* a file is not a valid safetensors file */
#define DESCENT_AOT_EMISMATCH 6    /* a checkpoint holds another model's tensors */
#define DESCENT_AOT_EUNSUPPORTED 7 /* not available for this model (no eval step, ...) */

/* Every kernel has this signature (compiler/codegen/backend.h, KernelFn). */
typedef void (*descent_aot_fn)(void* arena, const void* x, const void* y, int64_t n, int64_t step,
                               int32_t seed, int32_t task, int32_t ntasks);

struct descent_aot_kernel {
  descent_aot_fn fn;
  int pieces_per_thread; /* 0: one piece on the caller; k: threads*k pieces when threads > 1 */
};

/* A parameter or optimizer state tensor: arena offset, and its PyTorch
 * shape and the permutation from PyTorch's layout to the arena's (IR) one. */
struct descent_aot_tensor {
  const char* name; /* state_dict name, e.g. "0.weight" or "0.weight.exp_avg" */
  int64_t offset, numel;
  int param; /* 1: in the model file (a parameter, or a module buffer such as
              * BatchNorm's running statistics), 0: optimizer state */
  int ndim;
  int64_t shape[4]; /* PyTorch's shape */
  int perm[4];      /* IR dim i is PyTorch dim perm[i] */
  int count;        /* 1: an integer count (BatchNorm's num_batches_tracked): a float
                     * in the arena, an I64 scalar in checkpoint files as in PyTorch */
};

/* An optimizer update's slot of per-step scalars, written before every step
 * from the instance's learning rate and momentum (beta1 for Adam). */
struct descent_aot_update {
  int64_t offset;
  int kind; /* 0 SGD, 1 Adam, 2 AdamW, 3 RMSprop, 4 Adagrad, 5 Adadelta */
  double beta2, weight_decay; /* beta2: Adagrad's lr_decay */
};

/* The u8 normalize table (256 floats: (v / divisor - mean) / std in fp32). */
struct descent_aot_lut {
  int64_t offset;
  float divisor, mean, std;
};

struct descent_aot_entry {
  const struct descent_aot_kernel* kernels;
  int nkernels;
  const struct descent_aot_update* updates;
  int nupdates;
  int64_t loss_offset, correct_offset, output_offset; /* -1 when absent */
};

struct descent_aot_model {
  const char* name;
  int64_t arena_bytes, persistent_bytes;
  int64_t batch, features, outputs;
  int x_u8;     /* 1: x is uint8, 0: float */
  int y_labels; /* 1: y is int32 labels [n]; 0: float targets [n, outputs] */
  const struct descent_aot_tensor* tensors;
  int ntensors;
  const struct descent_aot_lut* luts;
  int nluts;
  struct descent_aot_entry train, eval; /* nkernels 0: not compiled */
  double lr;       /* the model file's learning rate */
  double momentum; /* its momentum (SGD) or beta1 (Adam, AdamW) */
  const char* optimizer; /* "SGD", "Adam": the optimizer file must name it */
};

struct descent_aot;

int descent_aot_create(const struct descent_aot_model* model, struct descent_aot** out);
void descent_aot_destroy(struct descent_aot* inst);
int descent_aot_set_threads(struct descent_aot* inst, int threads);
int descent_aot_set_seed(struct descent_aot* inst, int32_t seed);
int descent_aot_get_step(const struct descent_aot* inst, int64_t* step);
int descent_aot_set_step(struct descent_aot* inst, int64_t step);
int descent_aot_get_lr(const struct descent_aot* inst, double* lr);
int descent_aot_set_lr(struct descent_aot* inst, double lr);
int descent_aot_tensor(struct descent_aot* inst, const char* name, float** data, int64_t* numel);
int descent_aot_train_step(struct descent_aot* inst, const void* x, const void* y, int n, float* loss);
int descent_aot_eval(struct descent_aot* inst, const void* x, const void* y, int n, float* loss,
                     int* correct);
int descent_aot_predict(struct descent_aot* inst, const void* x, int n, float* out);
const char* descent_aot_strerror(int code);
/* Checkpoints: the files `descent train --save` writes (docs/aot.md). */
int descent_aot_load(struct descent_aot* inst, const char* path);
int descent_aot_save(struct descent_aot* inst, const char* path);

#ifdef __cplusplus
}
#endif

#endif
