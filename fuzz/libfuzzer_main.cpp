// libFuzzer entry point of one fuzz target, chosen at compile time with
// -DDESCENT_FUZZ_TARGET=<function in descent::fuzz> (see fuzz/CMakeLists.txt).
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  descent::fuzz::DESCENT_FUZZ_TARGET(data, size);
  return 0;
}
