/* The ahead-of-time runtime (descent compile): creates an instance (arena,
 * normalize tables, threads) for a generated model table and runs its
 * kernels in the executor's order and partition (runtime/executor.cpp):
 * kernel k is cut into 1 piece, or threads * pieces_per_thread pieces on
 * more than one thread, each piece (task, ntasks) run exactly once; results
 * do not depend on which thread runs a piece, so they are bitwise the JIT's.
 * C99 + pthreads + libm; compiled by CMake and copied into every libM.a. */
#define _POSIX_C_SOURCE 200112L
#include "descent_aot.h"
#include "compiler/codegen/step_scalars.h"

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
  /* The per-step scalars, computed as the executor computes them (one
   * definition: compiler/codegen/step_scalars.h). */
  for (int i = 0; i < e->nupdates; ++i) {
    const struct descent_aot_update* u = &e->updates[i];
    descent_step_scalars(u->kind, s->lr, s->model->momentum, u->beta2, u->weight_decay, step,
                         (float*)(s->arena + u->offset));
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

/* ---- Checkpoints: safetensors files as runtime/checkpoint.cpp writes them:
 * PATH holds the parameters in PyTorch's layout, PATH's ".optim" sibling
 * ("run.safetensors" -> "run.optim.safetensors") the optimizer state and the
 * step. Only the tensors of this model, F32, with their exact shapes. */

#include <stdio.h>

/* The JSON of a safetensors header, read just enough: an object of objects. */
struct json {
  const char *p, *end;
};

static void ws(struct json* j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r')) ++j->p;
}

static int lit(struct json* j, char c) {
  ws(j);
  if (j->p < j->end && *j->p == c) {
    ++j->p;
    return 1;
  }
  return 0;
}

/* A string without escapes other than \" and \\ (names and metadata descent writes). */
static int str(struct json* j, char* out, size_t cap) {
  if (!lit(j, '"')) return 0;
  size_t n = 0;
  while (j->p < j->end && *j->p != '"') {
    char c = *j->p++;
    if (c == '\\') {
      if (j->p >= j->end) return 0;
      c = *j->p++;
      if (c != '"' && c != '\\' && c != '/') return 0;
    }
    if (n + 1 >= cap) return 0;
    out[n++] = c;
  }
  if (j->p >= j->end) return 0;
  ++j->p;
  out[n] = 0;
  return 1;
}

static int integer(struct json* j, int64_t* v) {
  ws(j);
  int64_t x = 0;
  const char* start = j->p;
  while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
    if (x > (INT64_MAX - 9) / 10) return 0;
    x = x * 10 + (*j->p++ - '0');
  }
  *v = x;
  return j->p != start;
}

static int int_list(struct json* j, int64_t* v, int cap, int* n) {
  *n = 0;
  if (!lit(j, '[')) return 0;
  if (lit(j, ']')) return 1;
  do {
    if (*n >= cap || !integer(j, &v[*n])) return 0;
    ++*n;
  } while (lit(j, ','));
  return lit(j, ']');
}

struct st_entry {
  char name[256];
  char dtype[16];
  int64_t shape[8], off[2];
  int ndim, noff;
};

#define MAX_META 16
struct st_file {
  unsigned char* bytes;
  int64_t size, data;  /* data: where the tensor bytes start */
  struct st_entry* e;
  int n;
  char meta_key[MAX_META][64], meta_val[MAX_META][256];
  int nmeta;
};

static void st_free(struct st_file* f) {
  free(f->bytes);
  free(f->e);
}

/* Reads and parses a safetensors file. 0 or an error code. */
static int st_read(const char* path, struct st_file* f, int max_entries) {
  memset(f, 0, sizeof *f);
  FILE* fp = fopen(path, "rb");
  if (!fp) return DESCENT_AOT_EIO;
  int rc = DESCENT_AOT_EIO;
  if (fseek(fp, 0, SEEK_END) == 0) {
    long size = ftell(fp);
    if (size >= 8 && fseek(fp, 0, SEEK_SET) == 0) {
      f->bytes = (unsigned char*)malloc((size_t)size);
      if (!f->bytes)
        rc = DESCENT_AOT_ENOMEM;
      else if (fread(f->bytes, 1, (size_t)size, fp) == (size_t)size) {
        f->size = size;
        rc = 0;
      }
    } else if (size >= 0 && size < 8) {
      rc = DESCENT_AOT_EFORMAT;
    }
  }
  fclose(fp);
  if (rc) return rc;
  uint64_t hl = 0;
  for (int i = 7; i >= 0; --i) hl = hl << 8 | f->bytes[i];
  if (hl > (uint64_t)(f->size - 8)) return DESCENT_AOT_EFORMAT;
  f->data = 8 + (int64_t)hl;
  f->e = (struct st_entry*)calloc((size_t)max_entries + 1, sizeof *f->e);
  if (!f->e) return DESCENT_AOT_ENOMEM;
  struct json j = {(const char*)f->bytes + 8, (const char*)f->bytes + f->data};
  char key[256];
  if (!lit(&j, '{')) return DESCENT_AOT_EFORMAT;
  if (lit(&j, '}')) return 0;
  do {
    if (!str(&j, key, sizeof key) || !lit(&j, ':') || !lit(&j, '{')) return DESCENT_AOT_EFORMAT;
    if (strcmp(key, "__metadata__") == 0) {
      if (lit(&j, '}')) continue;
      do {
        if (f->nmeta >= MAX_META) return DESCENT_AOT_EFORMAT;
        if (!str(&j, f->meta_key[f->nmeta], 64) || !lit(&j, ':') ||
            !str(&j, f->meta_val[f->nmeta], 256))
          return DESCENT_AOT_EFORMAT;
        ++f->nmeta;
      } while (lit(&j, ','));
      if (!lit(&j, '}')) return DESCENT_AOT_EFORMAT;
      continue;
    }
    if (f->n >= max_entries) return DESCENT_AOT_EMISMATCH; /* more tensors than the model has */
    struct st_entry* e = &f->e[f->n++];
    strcpy(e->name, key);
    e->ndim = -1;
    do {
      char field[32];
      if (!str(&j, field, sizeof field) || !lit(&j, ':')) return DESCENT_AOT_EFORMAT;
      if (strcmp(field, "dtype") == 0) {
        if (!str(&j, e->dtype, sizeof e->dtype)) return DESCENT_AOT_EFORMAT;
      } else if (strcmp(field, "shape") == 0) {
        if (!int_list(&j, e->shape, 8, &e->ndim)) return DESCENT_AOT_EFORMAT;
      } else if (strcmp(field, "data_offsets") == 0) {
        if (!int_list(&j, e->off, 2, &e->noff) || e->noff != 2) return DESCENT_AOT_EFORMAT;
      } else {
        return DESCENT_AOT_EFORMAT;
      }
    } while (lit(&j, ','));
    if (!lit(&j, '}') || e->ndim < 0 || e->noff != 2 || e->off[0] > e->off[1] ||
        e->off[1] > f->size - f->data)
      return DESCENT_AOT_EFORMAT;
  } while (lit(&j, ','));
  return lit(&j, '}') ? 0 : DESCENT_AOT_EFORMAT;
}

static const char* st_meta(const struct st_file* f, const char* key) {
  for (int i = 0; i < f->nmeta; ++i)
    if (strcmp(f->meta_key[i], key) == 0) return f->meta_val[i];
  return NULL;
}

/* Strides of the IR layout: IR dim i has PyTorch extent shape[perm[i]]. */
static void copy_permuted(const struct descent_aot_tensor* t, const float* torch, float* ir, int to_ir) {
  int64_t irshape[4] = {1, 1, 1, 1}, tstride[4] = {0, 0, 0, 0}, s = 1;
  int nd = t->ndim < 1 ? 1 : t->ndim;
  for (int d = t->ndim - 1; d >= 0; --d) {
    tstride[d] = s;
    s *= t->shape[d];
  }
  if (t->ndim == 0) tstride[0] = 1;
  for (int i = 0; i < t->ndim; ++i) irshape[i] = t->shape[t->perm[i]];
  int64_t idx[4] = {0, 0, 0, 0};
  for (int64_t flat = 0; flat < t->numel; ++flat) {
    int64_t src = 0;
    for (int i = 0; i < t->ndim; ++i) src += idx[i] * tstride[t->perm[i]];
    if (to_ir)
      ir[flat] = torch[src];
    else
      ((float*)torch)[src] = ir[flat];
    for (int i = nd - 1; i >= 0; --i) {
      if (++idx[i] < irshape[i]) break;
      idx[i] = 0;
    }
  }
}

/* Checks f holds exactly the tensors of `model` with param == want (names,
 * F32, shapes) and copies them into the arena. */
static int import_tensors(struct descent_aot* s, const struct st_file* f, int want) {
  const struct descent_aot_model* m = s->model;
  int count = 0;
  for (int i = 0; i < m->ntensors; ++i) {
    const struct descent_aot_tensor* t = &m->tensors[i];
    if (t->param != want) continue;
    ++count;
    const struct st_entry* e = NULL;
    for (int k = 0; k < f->n; ++k)
      if (strcmp(f->e[k].name, t->name) == 0) e = &f->e[k];
    if (!e || strcmp(e->dtype, t->count ? "I64" : "F32") != 0 || e->ndim != t->ndim)
      return DESCENT_AOT_EMISMATCH;
    for (int d = 0; d < t->ndim; ++d)
      if (e->shape[d] != t->shape[d]) return DESCENT_AOT_EMISMATCH;
    if (e->off[1] - e->off[0] != t->numel * (t->count ? 8 : 4)) return DESCENT_AOT_EFORMAT;
    if (t->count) { /* a count descent can hold exactly in a float, as descent checks */
      int64_t v = 0;
      for (int b = 7; b >= 0; --b)
        v = (int64_t)((uint64_t)v << 8 | f->bytes[f->data + e->off[0] + b]);
      if (v < 0 || v > ((int64_t)1 << 24)) return DESCENT_AOT_EFORMAT;
    }
  }
  if (count != f->n) return DESCENT_AOT_EMISMATCH;
  for (int i = 0; i < m->ntensors; ++i) {
    const struct descent_aot_tensor* t = &m->tensors[i];
    if (t->param != want) continue;
    for (int k = 0; k < f->n; ++k)
      if (strcmp(f->e[k].name, t->name) == 0 && t->count) {
        int64_t v = 0;
        for (int b = 7; b >= 0; --b)
          v = (int64_t)((uint64_t)v << 8 | f->bytes[f->data + f->e[k].off[0] + b]);
        *(float*)(s->arena + t->offset) = (float)v;
      } else if (strcmp(f->e[k].name, t->name) == 0) {
        float* tmp = (float*)malloc((size_t)t->numel * 4 + 1);
        if (!tmp) return DESCENT_AOT_ENOMEM;
        memcpy(tmp, f->bytes + f->data + f->e[k].off[0], (size_t)t->numel * 4); /* little-endian host */
        copy_permuted(t, tmp, (float*)(s->arena + t->offset), 1);
        free(tmp);
      }
  }
  return 0;
}

static void optim_path(const char* path, char* out, size_t cap) {
  size_t n = strlen(path), e = strlen(".safetensors");
  if (n > e && strcmp(path + n - e, ".safetensors") == 0 && n + 6 < cap) {
    memcpy(out, path, n - e);
    strcpy(out + n - e, ".optim.safetensors");
  } else if (n + 19 < cap) {
    strcpy(out, path);
    strcat(out, ".optim.safetensors");
  } else {
    out[0] = 0;
  }
}

static int has_state(const struct descent_aot_model* m) {
  for (int i = 0; i < m->ntensors; ++i)
    if (!m->tensors[i].param) return 1;
  return 0;
}

int descent_aot_load(struct descent_aot* s, const char* path) {
  if (!s || !path) return DESCENT_AOT_ENULL;
  struct st_file f;
  int rc = st_read(path, &f, s->model->ntensors);
  if (!rc) rc = import_tensors(s, &f, 1);
  st_free(&f);
  if (rc) return rc;
  /* The optimizer file, when there is one for this optimizer: state and step.
   * Otherwise the state is zeroed and the step is 0, as descent does. */
  for (int i = 0; i < s->model->ntensors; ++i)
    if (!s->model->tensors[i].param)
      memset(s->arena + s->model->tensors[i].offset, 0, (size_t)s->model->tensors[i].numel * 4);
  s->step = 0;
  char opath[4096];
  optim_path(path, opath, sizeof opath);
  FILE* probe = opath[0] ? fopen(opath, "rb") : NULL;
  if (!probe) return 0;
  fclose(probe);
  rc = st_read(opath, &f, s->model->ntensors);
  if (!rc) {
    const char* opt = st_meta(&f, "optimizer");
    const char* step = st_meta(&f, "step");
    if (opt && strcmp(opt, s->model->optimizer) == 0 && (has_state(s->model) ? f.n > 0 : 1)) {
      rc = has_state(s->model) ? import_tensors(s, &f, 0) : 0;
      if (!rc && step) {
        char* end = NULL;
        long long v = strtoll(step, &end, 10);
        if (*end || v < 0 || v >= ((long long)1 << 53)) rc = DESCENT_AOT_EFORMAT;
        else s->step = v;
      }
    }
  }
  st_free(&f);
  return rc;
}

static uint32_t crc32_of(const unsigned char* p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return c ^ 0xffffffffu;
}

/* Serializes the tensors with param == want and the metadata into a new buffer. */
static unsigned char* st_build(struct descent_aot* s, int want, const char* meta, size_t* size) {
  const struct descent_aot_model* m = s->model;
  size_t cap = 256 + strlen(meta), data = 0;
  for (int i = 0; i < m->ntensors; ++i)
    if (m->tensors[i].param == want) {
      cap += strlen(m->tensors[i].name) + 160;
      data += (size_t)m->tensors[i].numel * (m->tensors[i].count ? 8 : 4);
    }
  char* h = (char*)malloc(cap);
  if (!h) return NULL;
  size_t n = 0, off = 0;
  n += (size_t)sprintf(h + n, "{\"__metadata__\":{%s}", meta);
  for (int i = 0; i < m->ntensors; ++i) {
    const struct descent_aot_tensor* t = &m->tensors[i];
    if (t->param != want) continue;
    const size_t bytes = (size_t)t->numel * (t->count ? 8 : 4);
    n += (size_t)sprintf(h + n, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t->name,
                         t->count ? "I64" : "F32");
    for (int d = 0; d < t->ndim; ++d) n += (size_t)sprintf(h + n, "%s%lld", d ? "," : "", (long long)t->shape[d]);
    n += (size_t)sprintf(h + n, "],\"data_offsets\":[%lld,%lld]}", (long long)off,
                         (long long)(off + bytes));
    off += bytes;
  }
  h[n++] = '}';
  while ((8 + n) % 8) h[n++] = ' ';
  unsigned char* b = (unsigned char*)malloc(8 + n + data + 1);
  if (!b) {
    free(h);
    return NULL;
  }
  for (int i = 0; i < 8; ++i) b[i] = (unsigned char)((uint64_t)n >> (8 * i));
  memcpy(b + 8, h, n);
  free(h);
  unsigned char* d = b + 8 + n;
  for (int i = 0; i < m->ntensors; ++i) {
    const struct descent_aot_tensor* t = &m->tensors[i];
    if (t->param != want) continue;
    if (t->count) { /* little-endian int64, as PyTorch saves num_batches_tracked */
      uint64_t v = (uint64_t)(int64_t) * (const float*)(s->arena + t->offset);
      for (int b = 0; b < 8; ++b)
        d[b] = (unsigned char)(v >> (8 * b));
      d += 8;
      continue;
    }
    copy_permuted(t, (const float*)d, (float*)(s->arena + t->offset), 0);
    d += (size_t)t->numel * 4;
  }
  *size = 8 + n + data;
  return b;
}

/* Writes to PATH.tmp, then renames (a failed write leaves PATH as it was). */
static int write_file(const char* path, const unsigned char* b, size_t n) {
  char tmp[4200];
  if (strlen(path) + 5 > sizeof tmp) return DESCENT_AOT_EARG;
  strcpy(tmp, path);
  strcat(tmp, ".tmp");
  FILE* fp = fopen(tmp, "wb");
  if (!fp) return DESCENT_AOT_EIO;
  int ok = fwrite(b, 1, n, fp) == n;
  ok = (fclose(fp) == 0) && ok;
  if (!ok || rename(tmp, path) != 0) {
    remove(tmp);
    return DESCENT_AOT_EIO;
  }
  return 0;
}

int descent_aot_save(struct descent_aot* s, const char* path) {
  if (!s || !path) return DESCENT_AOT_ENULL;
  char opath[4096], meta[512];
  optim_path(path, opath, sizeof opath);
  if (!opath[0]) return DESCENT_AOT_EARG;
  size_t on = 0, mn = 0;
  snprintf(meta, sizeof meta, "\"epoch\":\"0\",\"optimizer\":\"%s\",\"step\":\"%lld\"", s->model->optimizer,
           (long long)s->step);
  unsigned char* ob = st_build(s, 0, meta, &on);
  if (!ob) return DESCENT_AOT_ENOMEM;
  snprintf(meta, sizeof meta,
           "\"format\":\"pt\",\"model\":\"%s\",\"optimizer_file_crc32\":\"%08x\",\"producer\":\"descent\","
           "\"step\":\"%lld\"",
           s->model->name, crc32_of(ob, on), (long long)s->step);
  unsigned char* mb = st_build(s, 1, meta, &mn);
  int rc = mb ? write_file(opath, ob, on) : DESCENT_AOT_ENOMEM;
  if (!rc) rc = write_file(path, mb, mn);
  free(ob);
  free(mb);
  return rc;
}
