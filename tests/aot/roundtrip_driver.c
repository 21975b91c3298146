/* Test driver for test_aot (aot_test.cpp): loads a checkpoint descent wrote
 * into the AOT library and saves it again, so the test can compare the two
 * files (BatchNorm's buffers: running statistics as F32, num_batches_tracked
 * as I64). Usage: roundtrip_driver IN OUT; exit code: the failing call's
 * descent_aot error code plus 10, or 0. */
#include <stdio.h>

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define P(x) CAT(CAT(MODEL, _), x)

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  MODEL* m = NULL;
  int rc = P(create)(&m);
  if (rc) return 10 + rc;
  rc = P(load)(m, argv[1]);
  if (!rc) rc = P(save)(m, argv[2]);
  if (rc) fprintf(stderr, "%s\n", descent_aot_strerror(rc));
  P(destroy)(m);
  return rc ? 10 + rc : 0;
}
