/* Test driver for test_aot (aot_test.cpp), built against the mnist_mlp
 * library: every misuse of the API returns its error code (no crash), and a
 * checkpoint loads and saves. Prints one line per failed check, then "done".
 * Usage: misuse_driver CKPT OTHER_MODEL_CKPT GARBAGE_FILE SAVE_PATH */
#include "mnist_mlp.h"

#include <stdio.h>

static int failures = 0;

static void expect(int got, int want, const char* what) {
  if (got != want) {
    printf("FAIL %s: got %d, want %d\n", what, got, want);
    ++failures;
  }
}

int main(int argc, char** argv) {
  if (argc != 5) return 2;
  static uint8_t x[mnist_mlp_BATCH * mnist_mlp_INPUT_FEATURES];
  static int32_t y[mnist_mlp_BATCH];
  static float out[mnist_mlp_BATCH * mnist_mlp_OUTPUTS];
  float loss;
  int correct;
  double lr;
  expect(mnist_mlp_create(NULL), DESCENT_AOT_ENULL, "create(NULL)");
  mnist_mlp* m = NULL;
  expect(mnist_mlp_create(&m), DESCENT_AOT_OK, "create");
  expect(mnist_mlp_train_step(NULL, x, y, 1, &loss), DESCENT_AOT_ENULL, "train_step(NULL instance)");
  expect(mnist_mlp_train_step(m, NULL, y, 1, &loss), DESCENT_AOT_ENULL, "train_step(x NULL)");
  expect(mnist_mlp_train_step(m, x, NULL, 1, &loss), DESCENT_AOT_ENULL, "train_step(y NULL)");
  expect(mnist_mlp_train_step(m, x, y, 0, &loss), DESCENT_AOT_EARG, "train_step(n 0)");
  expect(mnist_mlp_train_step(m, x, y, mnist_mlp_BATCH + 1, &loss), DESCENT_AOT_EARG, "train_step(n > batch)");
  expect(mnist_mlp_eval(m, x, y, -1, &loss, &correct), DESCENT_AOT_EARG, "eval(n -1)");
  expect(mnist_mlp_eval(m, NULL, y, 1, &loss, &correct), DESCENT_AOT_ENULL, "eval(x NULL)");
  expect(mnist_mlp_predict(m, x, 1, NULL), DESCENT_AOT_ENULL, "predict(out NULL)");
  expect(mnist_mlp_predict(m, x, mnist_mlp_BATCH + 1, out), DESCENT_AOT_EARG, "predict(n > batch)");
  expect(mnist_mlp_set_threads(m, 0), DESCENT_AOT_EARG, "set_threads(0)");
  expect(mnist_mlp_set_threads(NULL, 2), DESCENT_AOT_ENULL, "set_threads(NULL)");
  expect(mnist_mlp_get_lr(m, &lr), DESCENT_AOT_OK, "get_lr");
  expect(lr == 0.003, 1, "get_lr is the model's lr");
  expect(mnist_mlp_set_lr(m, -0.1), DESCENT_AOT_EARG, "set_lr(-0.1)");
  expect(mnist_mlp_set_lr(m, 0.1), DESCENT_AOT_OK, "set_lr on SGD (a per-step scalar)");
  expect(mnist_mlp_get_lr(m, &lr), DESCENT_AOT_OK, "get_lr after set_lr");
  expect(lr == 0.1, 1, "get_lr is the lr set");
  expect(mnist_mlp_set_step(m, -1), DESCENT_AOT_EARG, "set_step(-1)");
  expect(mnist_mlp_tensor(m, "no.such", (float**)&lr, NULL), DESCENT_AOT_EARG, "tensor(unknown name)");
  expect(mnist_mlp_load(m, NULL), DESCENT_AOT_ENULL, "load(NULL)");
  expect(mnist_mlp_load(m, "/nonexistent/x.safetensors"), DESCENT_AOT_EIO, "load(missing file)");
  expect(mnist_mlp_load(m, argv[2]), DESCENT_AOT_EMISMATCH, "load(another model's checkpoint)");
  expect(mnist_mlp_load(m, argv[3]), DESCENT_AOT_EFORMAT, "load(garbage)");
  expect(mnist_mlp_save(m, "/nonexistent/dir/x.safetensors"), DESCENT_AOT_EIO, "save(unwritable)");
  expect(mnist_mlp_load(m, argv[1]), DESCENT_AOT_OK, "load");
  expect(mnist_mlp_set_threads(m, 2), DESCENT_AOT_OK, "set_threads(2)");
  expect(mnist_mlp_train_step(m, x, y, 5, &loss), DESCENT_AOT_OK, "train_step");
  expect(mnist_mlp_save(m, argv[4]), DESCENT_AOT_OK, "save");
  mnist_mlp_destroy(m);
  mnist_mlp_destroy(NULL);
  printf("done, %d failure(s)\n", failures);
  return failures ? 1 : 0;
}
