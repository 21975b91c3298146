// Fault injection: `descent train` and `eval` under a virtual-memory limit
// (ulimit -v, RLIMIT_AS). Running out of memory must be an ordinary error,
// one line and exit 1, wherever it happens (LLVM's allocations, a compile
// thread, the thread pool, data loading), never "terminate called ...",
// "LLVM ERROR: out of memory" or a signal.
//
// Not registered in sanitizer builds (make test-sanitize): AddressSanitizer
// and ThreadSanitizer reserve terabytes of virtual address space for their
// shadow memory, so under any RLIMIT_AS the binary cannot even start. The
// test and the binary are compiled with the same flags, so the compiler's
// sanitizer macros here say how `descent` was built.
#include "cli_test_util.h"

#include <catch2/catch.hpp>
#include <fmt/format.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define DESCENT_TEST_UNDER_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DESCENT_TEST_UNDER_SANITIZER 1
#endif

#ifndef DESCENT_TEST_UNDER_SANITIZER

using namespace descent::testing;

TEST_CASE("out of memory is one line and exit 1, at every memory limit", "[cli][fault]") {
  ScratchDir tmp;
  writeBinaryCsv(tmp / "bin.csv", 256, 1);
  RunResult made =
      runDescent(fmt::format("train models/binary_bce.nn --data {} --epochs 1 --save {}",
                             tmp / "bin.csv", tmp / "w.safetensors"));
  REQUIRE(made.code == 0);
  const std::string commands[] = {
      fmt::format("train models/binary_bce.nn --data {} --epochs 2 --threads 4", tmp / "bin.csv"),
      fmt::format("eval models/binary_bce.nn --data {} --weights {}", tmp / "bin.csv",
                  tmp / "w.safetensors")};
  int out_of_memory = 0, ran = 0;
  // From too little to start the compiler to enough for the whole run; the
  // failures move with the limit (which allocation or thread is the first to
  // miss), hence the sweep.
  for (int mb = 160; mb <= 560; mb += 40) {
    for (const std::string& cmd : commands) {
      std::string full =
          fmt::format("cd " DESCENT_SOURCE_DIR " && ulimit -v {} && exec " DESCENT_BINARY_DIR
                      "/descent {} > {} 2> {}",
                      mb * 1024, cmd, tmp / "out", tmp / "err");
      int status = std::system(full.c_str());
      std::string err = readText(tmp / "err");
      INFO("ulimit -v " << mb * 1024 << ": descent " << cmd << "\n" << err);
      // Below some limit the dynamic loader itself cannot map the libraries:
      // descent never runs, nothing to check.
      if (err.find("error while loading shared libraries") != std::string::npos) continue;
      ++ran;
      REQUIRE(WIFEXITED(status)); // not killed by SIGABRT (134) or SIGSEGV
      int code = WEXITSTATUS(status);
      CHECK((code == 0 || code == 1));
      CHECK(err.find("terminate called") == std::string::npos);
      CHECK(err.find("LLVM ERROR") == std::string::npos);
      if (code == 1) {
        CHECK(err.rfind("error: out of memory", 0) == 0);
        CHECK(std::count(err.begin(), err.end(), '\n') == 1);
        ++out_of_memory;
      }
    }
  }
  // The sweep did reach both outcomes: the test is not vacuous.
  CHECK(ran > 4);
  CHECK(out_of_memory > 0);
  CHECK(out_of_memory < ran);
}

#endif // DESCENT_TEST_UNDER_SANITIZER
