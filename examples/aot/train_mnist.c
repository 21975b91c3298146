/* Trains models/mnist_mlp.nn for one epoch on Fashion-MNIST through the
 * library `descent compile` made (mnist_mlp.h, libmnist_mlp.a), and prints
 * the epoch's line as `descent train models/mnist_mlp.nn --epochs 1` does,
 * with the same numbers: it starts from the parameters descent initializes
 * (mnist_mlp.init.safetensors, written by descent compile) and draws the
 * batches in descent's order (runtime/trainer.cpp, shuffleIndices: a
 * Fisher-Yates shuffle driven by std::mt19937_64, reimplemented below).
 * Usage: train_mnist DATA_DIR INIT.safetensors [SAVE.safetensors]
 * Build: cc -std=c99 -O2 train_mnist.c libmnist_mlp.a -lpthread -lm -lz */
#include "mnist_mlp.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* std::mt19937_64 (C++11 [rand.predef]: mersenne_twister_engine<uint64_t,
 * 64, 312, 156, 31, 0xb5026f5aa96619e9, 29, 0x5555555555555555, 17,
 * 0x71d67fffeda60000, 37, 0xfff7eee000000000, 43, 6364136223846793005>). */
struct mt64 {
  uint64_t s[312];
  int i;
};

static void mt64_seed(struct mt64* m, uint64_t seed) {
  m->s[0] = seed;
  for (int i = 1; i < 312; ++i) m->s[i] = 6364136223846793005ull * (m->s[i - 1] ^ (m->s[i - 1] >> 62)) + (uint64_t)i;
  m->i = 312;
}

static uint64_t mt64_next(struct mt64* m) {
  if (m->i >= 312) {
    for (int k = 0; k < 312; ++k) {
      uint64_t y = (m->s[k] & 0xffffffff80000000ull) | (m->s[(k + 1) % 312] & 0x7fffffffull);
      m->s[k] = m->s[(k + 156) % 312] ^ (y >> 1) ^ ((y & 1) ? 0xb5026f5aa96619e9ull : 0);
    }
    m->i = 0;
  }
  uint64_t x = m->s[m->i++];
  x ^= (x >> 29) & 0x5555555555555555ull;
  x ^= (x << 17) & 0x71d67fffeda60000ull;
  x ^= (x << 37) & 0xfff7eee000000000ull;
  x ^= x >> 43;
  return x;
}

/* descent's shuffle of epoch `epoch` (1-based, as printed) for `seed`. */
static void shuffle(int64_t* idx, int64_t n, uint64_t seed, int64_t epoch) {
  struct mt64 m;
  mt64_seed(&m, seed * 0x9E3779B97F4A7C15ull + (uint64_t)epoch + 1);
  for (int64_t i = n - 1; i > 0; --i) {
    int64_t j = (int64_t)(mt64_next(&m) % (uint64_t)(i + 1));
    int64_t t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
  }
}

/* Reads a gzipped IDX file: its items (count) of `item` bytes each. */
static unsigned char* read_idx(const char* dir, const char* name, int dims, int64_t* count, int64_t* item) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  gzFile f = gzopen(path, "rb");
  if (!f) {
    fprintf(stderr, "error: %s: cannot open\n", path);
    return NULL;
  }
  unsigned char hdr[16];
  int hn = 4 + 4 * dims;
  if (gzread(f, hdr, (unsigned)hn) != hn || hdr[2] != 8 || hdr[3] != dims) {
    fprintf(stderr, "error: %s: not an IDX file of %d dimension(s)\n", path, dims);
    gzclose(f);
    return NULL;
  }
  *count = (int64_t)hdr[4] << 24 | hdr[5] << 16 | hdr[6] << 8 | hdr[7];
  *item = 1;
  for (int d = 1; d < dims; ++d)
    *item *= (int64_t)hdr[4 + 4 * d] << 24 | hdr[5 + 4 * d] << 16 | hdr[6 + 4 * d] << 8 | hdr[7 + 4 * d];
  size_t bytes = (size_t)(*count * *item);
  unsigned char* data = malloc(bytes ? bytes : 1);
  if (!data || gzread(f, data, (unsigned)bytes) != (int)bytes) {
    fprintf(stderr, "error: %s: truncated\n", path);
    free(data);
    data = NULL;
  }
  gzclose(f);
  return data;
}

static int check(int rc, const char* what) {
  if (rc) fprintf(stderr, "error: %s: %s\n", what, mnist_mlp_strerror(rc));
  return rc;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s DATA_DIR INIT.safetensors [SAVE.safetensors]\n", argv[0]);
    return 2;
  }
  int64_t n_train, n_test, px, one;
  unsigned char* train_x = read_idx(argv[1], "train-images-idx3-ubyte.gz", 3, &n_train, &px);
  unsigned char* train_y = read_idx(argv[1], "train-labels-idx1-ubyte.gz", 1, &n_train, &one);
  unsigned char* test_x = read_idx(argv[1], "t10k-images-idx3-ubyte.gz", 3, &n_test, &px);
  unsigned char* test_y = read_idx(argv[1], "t10k-labels-idx1-ubyte.gz", 1, &n_test, &one);
  if (!train_x || !train_y || !test_x || !test_y) return 1;
  if (px != mnist_mlp_INPUT_FEATURES) {
    fprintf(stderr, "error: %s: images of %lld pixels, the model takes %d\n", argv[1], (long long)px,
            mnist_mlp_INPUT_FEATURES);
    return 1;
  }
  mnist_mlp* m = NULL;
  if (check(mnist_mlp_create(&m), "create") || check(mnist_mlp_load(m, argv[2]), argv[2])) return 1;

  enum { B = mnist_mlp_BATCH, IN = mnist_mlp_INPUT_FEATURES };
  static uint8_t x[B * IN];
  static int32_t y[B];
  int64_t* idx = malloc((size_t)n_train * sizeof *idx);
  if (!idx) return 1;
  for (int64_t i = 0; i < n_train; ++i) idx[i] = i;
  shuffle(idx, n_train, 0, 1); /* descent train's default --seed 0, epoch 1 */
  double loss_sum = 0;
  int64_t steps = 0;
  for (int64_t b = 0; b < n_train; b += B) {
    int n = (int)(n_train - b < B ? n_train - b : B);
    for (int i = 0; i < n; ++i) {
      memcpy(x + (size_t)i * IN, train_x + (size_t)idx[b + i] * IN, IN);
      y[i] = train_y[idx[b + i]];
    }
    float loss;
    if (check(mnist_mlp_train_step(m, x, y, n, &loss), "train_step")) return 1;
    loss_sum += loss;
    ++steps;
  }
  double correct = 0;
  for (int64_t b = 0; b < n_test; b += B) {
    int n = (int)(n_test - b < B ? n_test - b : B);
    for (int i = 0; i < n; ++i) y[i] = test_y[b + i];
    float loss;
    int c;
    if (check(mnist_mlp_eval(m, test_x + b * IN, y, n, &loss, &c), "eval")) return 1;
    correct += c;
  }
  printf("epoch %3d  train loss %.6f  test accuracy %6.2f%%\n", 1, loss_sum / (double)steps,
         100 * (correct / (double)n_test));
  if (argc > 3 && check(mnist_mlp_save(m, argv[3]), argv[3])) return 1;
  mnist_mlp_destroy(m);
  free(idx);
  free(train_x);
  free(train_y);
  free(test_x);
  free(test_y);
  return 0;
}
