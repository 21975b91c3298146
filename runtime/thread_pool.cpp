// The thread pool is header-only (see thread_pool.h); this file keeps
// the header compiling on its own inside descent_runtime.
#include "runtime/thread_pool.h"
