/* The ahead-of-time runtime (descent compile): creates an instance (arena,
 * normalize tables, threads) for a generated model table and runs its
 * kernels in the executor's order and partition (runtime/executor.cpp):
 * kernel k is cut into 1 piece, or threads * pieces_per_thread pieces on
 * more than one thread, each piece (task, ntasks) run exactly once; results
 * do not depend on which thread runs a piece, so they are bitwise the JIT's.
 * C99 + pthreads + libm; compiled by CMake and copied into every libM.a. */
#define _POSIX_C_SOURCE 200112L
#include "descent_aot.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 64

struct descent_aot {
  const struct descent_aot_model* model;
  char* arena;
  void* zeros; /* predict's dummy targets: batch * outputs zero floats */
  int64_t step;
  int32_t seed;
  double lr;
  /* The pool: threads - 1 workers wait for `generation` to change. */
  int threads;
  pthread_t workers[MAX_THREADS];
  pthread_mutex_t mu;
  pthread_cond_t cv, done_cv;
  int generation, finished, stop;
  /* The current step (read by the workers after `generation` changes). */
  const struct descent_aot_entry* entry;
  const void *x, *y;
  int64_t n, run_step;
  int32_t run_seed;
  int nkmax;
  volatile int* next; /* per kernel: the next unclaimed piece (atomic builtins) */
  volatile int* done; /* per kernel: pieces finished */
};

static int pieces(const struct descent_aot* s, const struct descent_aot_kernel* k) {
  return (s->threads > 1 && k->pieces_per_thread > 0) ? s->threads * k->pieces_per_thread : 1;
}

/* One thread's walk over the kernels of the current step (self 0: the caller). */
static void walk(struct descent_aot* s, int self) {
  const struct descent_aot_entry* e = s->entry;
  for (int k = 0; k < e->nkernels; ++k) {
    const struct descent_aot_kernel* ker = &e->kernels[k];
    int ck = pieces(s, ker);
    if (ck == 1) {
      if (self == 0) {
        ker->fn(s->arena, s->x, s->y, s->n, s->run_step, s->run_seed, 0, 1);
        __atomic_store_n(&s->done[k], 1, __ATOMIC_RELEASE);
      }
      continue;
    }
    if (self != 0 && k > 0) { /* every kernel before k complete (the caller completes them in order) */
      int want = pieces(s, &e->kernels[k - 1]);
      while (__atomic_load_n(&s->done[k - 1], __ATOMIC_ACQUIRE) != want) sched_yield();
    }
    for (;;) {
      int c = __atomic_fetch_add(&s->next[k], 1, __ATOMIC_ACQ_REL);
      if (c >= ck) break;
      ker->fn(s->arena, s->x, s->y, s->n, s->run_step, s->run_seed, c, ck);
      __atomic_fetch_add(&s->done[k], 1, __ATOMIC_ACQ_REL);
    }
    if (self == 0)
      while (__atomic_load_n(&s->done[k], __ATOMIC_ACQUIRE) != ck) sched_yield();
  }
}

struct worker_arg {
  struct descent_aot* s;
  int self;
};

static void* worker(void* p) {
  struct descent_aot* s = ((struct worker_arg*)p)->s;
  int self = ((struct worker_arg*)p)->self;
  free(p);
  int seen = 0;
  for (;;) {
    pthread_mutex_lock(&s->mu);
    while (s->generation == seen && !s->stop) pthread_cond_wait(&s->cv, &s->mu);
    if (s->stop) {
      pthread_mutex_unlock(&s->mu);
      return NULL;
    }
    seen = s->generation;
    pthread_mutex_unlock(&s->mu);
    walk(s, self);
    pthread_mutex_lock(&s->mu);
    if (++s->finished == s->threads - 1) pthread_cond_signal(&s->done_cv);
    pthread_mutex_unlock(&s->mu);
  }
}

static void stop_workers(struct descent_aot* s) {
  pthread_mutex_lock(&s->mu);
  s->stop = 1;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  for (int t = 1; t < s->threads; ++t) pthread_join(s->workers[t], NULL);
  s->stop = 0;
  s->threads = 1;
}

static void run(struct descent_aot* s, const struct descent_aot_entry* e, const void* x, const void* y,
                int64_t n, int64_t step, int32_t seed) {
  s->entry = e;
  s->x = x;
  s->y = y;
  s->n = n;
  s->run_step = step;
  s->run_seed = seed;
  for (int k = 0; k < e->nkernels; ++k) {
    s->next[k] = 0;
    s->done[k] = 0;
  }
  if (s->threads > 1) {
    pthread_mutex_lock(&s->mu);
    s->finished = 0;
    ++s->generation;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
  }
  walk(s, 0);
  if (s->threads > 1) {
    pthread_mutex_lock(&s->mu);
    while (s->finished != s->threads - 1) pthread_cond_wait(&s->done_cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
  }
}

int descent_aot_create(const struct descent_aot_model* model, struct descent_aot** out) {
  if (!model || !out) return DESCENT_AOT_ENULL;
  *out = NULL;
  struct descent_aot* s = (struct descent_aot*)calloc(1, sizeof *s);
  if (!s) return DESCENT_AOT_ENOMEM;
  s->model = model;
  s->threads = 1;
  s->lr = model->lr;
  s->nkmax = model->train.nkernels > model->eval.nkernels ? model->train.nkernels : model->eval.nkernels;
  void* arena = NULL;
  if (posix_memalign(&arena, 64, (size_t)model->arena_bytes) != 0) arena = NULL;
  s->arena = (char*)arena;
  s->zeros = calloc((size_t)(model->batch * (model->outputs > 0 ? model->outputs : 1)), sizeof(float));
  s->next = (volatile int*)calloc((size_t)s->nkmax + 1, sizeof(int));
  s->done = (volatile int*)calloc((size_t)s->nkmax + 1, sizeof(int));
  if (!s->arena || !s->zeros || !s->next || !s->done) {
    free(s->arena);
    free(s->zeros);
    free((void*)s->next);
    free((void*)s->done);
    free(s);
    return DESCENT_AOT_ENOMEM;
  }
  memset(s->arena, 0, (size_t)model->arena_bytes);
  for (int i = 0; i < model->nluts; ++i) {
    const struct descent_aot_lut* l = &model->luts[i];
    float* lut = (float*)(s->arena + l->offset);
    for (int v = 0; v < 256; ++v) lut[v] = ((float)v / l->divisor - l->mean) / l->std;
  }
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  pthread_cond_init(&s->done_cv, NULL);
  *out = s;
  return DESCENT_AOT_OK;
}

void descent_aot_destroy(struct descent_aot* s) {
  if (!s) return;
  stop_workers(s);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  pthread_cond_destroy(&s->done_cv);
  free(s->arena);
  free(s->zeros);
  free((void*)s->next);
  free((void*)s->done);
  free(s);
}

int descent_aot_set_threads(struct descent_aot* s, int threads) {
  if (!s) return DESCENT_AOT_ENULL;
  if (threads < 1 || threads > MAX_THREADS) return DESCENT_AOT_EARG;
  stop_workers(s);
  for (int t = 1; t < threads; ++t) {
    struct worker_arg* a = (struct worker_arg*)malloc(sizeof *a);
    if (a) {
      a->s = s;
      a->self = t;
    }
    if (!a || pthread_create(&s->workers[t], NULL, worker, a) != 0) {
      free(a);
      stop_workers(s); /* joins the t - 1 started */
      return DESCENT_AOT_ENOMEM;
    }
    s->threads = t + 1;
  }
  return DESCENT_AOT_OK;
}

int descent_aot_set_seed(struct descent_aot* s, int32_t seed) {
  if (!s) return DESCENT_AOT_ENULL;
  s->seed = seed;
  return DESCENT_AOT_OK;
}

int descent_aot_get_step(const struct descent_aot* s, int64_t* step) {
  if (!s || !step) return DESCENT_AOT_ENULL;
  *step = s->step;
  return DESCENT_AOT_OK;
}

int descent_aot_set_step(struct descent_aot* s, int64_t step) {
  if (!s) return DESCENT_AOT_ENULL;
  if (step < 0 || step >= ((int64_t)1 << 53)) return DESCENT_AOT_EARG;
  s->step = step;
  return DESCENT_AOT_OK;
}

int descent_aot_get_lr(const struct descent_aot* s, double* lr) {
  if (!s || !lr) return DESCENT_AOT_ENULL;
  *lr = s->lr;
  return DESCENT_AOT_OK;
}

int descent_aot_set_lr(struct descent_aot* s, double lr) {
  if (!s) return DESCENT_AOT_ENULL;
  if (!(lr >= 0) || isinf(lr)) return DESCENT_AOT_EARG;
  if (!s->model->lr_settable && lr != s->model->lr) return DESCENT_AOT_EUNSUPPORTED;
  s->lr = lr;
  return DESCENT_AOT_OK;
}

int descent_aot_tensor(struct descent_aot* s, const char* name, float** data, int64_t* numel) {
  if (!s || !name || !data) return DESCENT_AOT_ENULL;
  for (int i = 0; i < s->model->ntensors; ++i)
    if (strcmp(s->model->tensors[i].name, name) == 0) {
      *data = (float*)(s->arena + s->model->tensors[i].offset);
      if (numel) *numel = s->model->tensors[i].numel;
      return DESCENT_AOT_OK;
    }
  return DESCENT_AOT_EARG;
}

int descent_aot_train_step(struct descent_aot* s, const void* x, const void* y, int n, float* loss) {
  if (!s || !x || !y) return DESCENT_AOT_ENULL;
  const struct descent_aot_entry* e = &s->model->train;
  if (e->nkernels == 0) return DESCENT_AOT_EUNSUPPORTED;
  if (n < 1 || n > s->model->batch) return DESCENT_AOT_EARG;
  int64_t step = s->step + 1;
  /* Adam's bias corrections in double, as torch.optim.Adam and the executor
   * compute them, rounded to float once. */
  for (int i = 0; i < e->nadam; ++i) {
    float* sc = (float*)(s->arena + e->adam[i].offset);
    sc[0] = (float)(s->lr / (1.0 - pow(e->adam[i].beta1, (double)step)));
    sc[1] = (float)sqrt(1.0 - pow(e->adam[i].beta2, (double)step));
  }
  run(s, e, x, y, n, step, s->seed);
  s->step = step;
  if (loss) *loss = *(const float*)(s->arena + e->loss_offset);
  return DESCENT_AOT_OK;
}

int descent_aot_eval(struct descent_aot* s, const void* x, const void* y, int n, float* loss, int* correct) {
  if (!s || !x || !y) return DESCENT_AOT_ENULL;
  const struct descent_aot_entry* e = &s->model->eval;
  if (e->nkernels == 0) return DESCENT_AOT_EUNSUPPORTED;
  if (n < 1 || n > s->model->batch) return DESCENT_AOT_EARG;
  run(s, e, x, y, n, 1, 0);
  if (loss) *loss = e->loss_offset >= 0 ? *(const float*)(s->arena + e->loss_offset) : NAN;
  if (correct) *correct = e->correct_offset >= 0 ? (int)*(const float*)(s->arena + e->correct_offset) : -1;
  return DESCENT_AOT_OK;
}

int descent_aot_predict(struct descent_aot* s, const void* x, int n, float* out) {
  if (!s || !x || !out) return DESCENT_AOT_ENULL;
  const struct descent_aot_entry* e = &s->model->eval;
  if (e->nkernels == 0 || e->output_offset < 0) return DESCENT_AOT_EUNSUPPORTED;
  if (n < 1 || n > s->model->batch) return DESCENT_AOT_EARG;
  run(s, e, x, s->zeros, n, 1, 0);
  memcpy(out, s->arena + e->output_offset, (size_t)n * (size_t)s->model->outputs * sizeof(float));
  return DESCENT_AOT_OK;
}

const char* descent_aot_strerror(int code) {
  switch (code) {
  case DESCENT_AOT_OK: return "success";
  case DESCENT_AOT_ENULL: return "a required pointer is NULL";
  case DESCENT_AOT_EARG: return "an argument is out of range";
  case DESCENT_AOT_ENOMEM: return "out of memory";
  case DESCENT_AOT_EIO: return "cannot read or write the file";
  case DESCENT_AOT_EFORMAT: return "not a valid safetensors file";
  case DESCENT_AOT_EMISMATCH: return "the checkpoint holds another model's tensors";
  case DESCENT_AOT_EUNSUPPORTED: return "not supported by this model";
  default: return "unknown error";
  }
}
