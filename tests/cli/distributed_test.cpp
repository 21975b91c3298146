// `descent train` under `mpirun -np 2`: until data-parallel training exists
// (issue #15), a multi-process launch is refused before any work, by rank 0
// alone, instead of every rank training alone and racing for the same files.
#include "tests/cli/cli_test_util.h"

#include <catch2/catch.hpp>

using namespace descent::testing;

namespace {

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
    ++n;
  return n;
}

} // namespace

TEST_CASE("train under mpirun -np 2 is refused once, before any work", "[cli][mpi]") {
  ScratchDir tmp;
  // Root (CI containers) must opt in; --oversubscribe lets 2 ranks share fewer cores.
  std::string cmd =
      "cd " DESCENT_SOURCE_DIR " && OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
      "mpirun -np 2 --oversubscribe " DESCENT_BINARY_DIR "/descent train models/mnist_mlp.nn "
      "--save " +
      (tmp / "run.safetensors") + " --metrics " + (tmp / "m.jsonl") + " > " + (tmp / "out") +
      " 2> " + (tmp / "err");
  int status = std::system(cmd.c_str());
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) != 0);
  std::string err = readText(tmp / "err"), out = readText(tmp / "out");
  INFO(err);
  CHECK(count(err, "error: descent train under mpirun with 2 processes: data-parallel training is "
                   "not implemented yet") == 1);
  CHECK(out.find("parameters") == std::string::npos); // no rank loaded the model's data
  CHECK_FALSE(std::filesystem::exists(tmp / "run.safetensors"));
  CHECK_FALSE(std::filesystem::exists(tmp / "m.jsonl"));
}
