/* Test driver for test_aot (aot_test.cpp): built with `cc -std=c99 -Wall
 * -Werror -DMODEL=<M> -include <M>.h` against lib<M>.a. Fills every tensor
 * and the batches by the formulas aot_test.cpp uses for the JIT, runs
 * train steps (with a learning rate that changes every step), eval and
 * predict, and prints the bits of every result.
 * Usage: step_driver THREADS STEPS SEED */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define F(x) CAT(MODEL, x)
#define P(x) CAT(CAT(MODEL, _), x)

static uint32_t bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static uint32_t hash(const float* p, int64_t n) {
  uint32_t h = 2166136261u;
  for (int64_t i = 0; i < n; ++i) h = (h ^ bits(p[i])) * 16777619u;
  return h;
}

static uint32_t nameHash(const char* s) {
  uint32_t h = 0;
  for (; *s; ++s) h = h * 31u + (unsigned char)*s;
  return h;
}

int main(int argc, char** argv) {
  if (argc != 4) return 2;
  int threads = atoi(argv[1]), steps = atoi(argv[2]), seed = atoi(argv[3]);
  MODEL* m = NULL;
  int rc = P(create)(&m);
  if (rc) return 3;
  if (P(set_threads)(m, threads) || P(set_seed)(m, seed)) return 4;
  const struct descent_aot_model* tab = &F(_model_);
  for (int t = 0; t < tab->ntensors; ++t) {
    float* d = NULL;
    int64_t numel = 0;
    if (P(tensor)(m, tab->tensors[t].name, &d, &numel)) return 5;
    uint32_t h = nameHash(tab->tensors[t].name);
    for (int64_t j = 0; j < numel; ++j)
      d[j] = tab->tensors[t].param ? (float)((int)((j * 7 + h) % 17) - 8) * 0.01f : 0.0f;
  }
  const int B = P(BATCH), IN = P(INPUT_FEATURES), OUT = P(OUTPUTS);
#if CAT(MODEL, _INPUT_U8)
  uint8_t* x = malloc((size_t)B * IN);
  for (int i = 0; i < B * IN; ++i) x[i] = (uint8_t)((i * 31 + i / IN * 7) % 256);
#else
  float* x = malloc((size_t)B * IN * sizeof(float));
  for (int i = 0; i < B * IN; ++i) x[i] = (float)((i * 31 + i / IN * 7) % 19 - 9) * 0.1f;
#endif
#if CAT(MODEL, _TARGET_LABELS)
  int32_t* y = malloc((size_t)B * sizeof(int32_t));
  for (int i = 0; i < B; ++i) y[i] = (i * 3) % OUT;
#else
  float* y = malloc((size_t)B * OUT * sizeof(float));
  for (int i = 0; i < B * OUT; ++i) y[i] = (float)(i % 5) * 0.2f;
#endif
  float* out = malloc((size_t)B * OUT * sizeof(float));
  for (int s = 0; s < steps; ++s) {
    int n = s == steps - 1 && B > 3 ? B - 3 : B; /* the last step: a remainder batch */
    float loss = 0;
    /* A learning rate that changes every step, as a schedule would. */
    double lr0 = 0;
    if (P(get_lr)(m, &lr0) || P(set_lr)(m, tab->lr * (double)(s + 2) / 2.0)) return 8;
    if (P(train_step)(m, x, y, n, &loss)) return 6;
    printf("step %d loss %08x\n", s + 1, bits(loss));
  }
  for (int t = 0; t < tab->ntensors; ++t) {
    float* d = NULL;
    int64_t numel = 0;
    P(tensor)(m, tab->tensors[t].name, &d, &numel);
    printf("%s %08x\n", tab->tensors[t].name, hash(d, numel));
  }
  float loss = 0;
  int correct = 0;
  if (P(eval)(m, x, y, B - 1, &loss, &correct)) return 7;
  printf("eval loss %08x correct %d\n", bits(loss), correct);
  if (P(predict)(m, x, B - 1, out)) return 8;
  printf("predict %08x\n", hash(out, (int64_t)(B - 1) * OUT));
  P(destroy)(m);
  free(x);
  free(y);
  free(out);
  return 0;
}
