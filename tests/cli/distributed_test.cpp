// `descent train` under `mpirun -np 2 --oversubscribe` (data-parallel training,
// docs/distributed.md): two processes train what one process trains (the MLP
// with a partial last batch; Dropout + Adam), bitwise the same run after run;
// rank 0 alone prints and writes; BatchNorm's statistics are the global
// batch's (synchronized); a data file missing on one rank, and a rank
// killed mid-training, end the job with an error naming the rank; eval and
// predict are refused under mpirun.
#include "tests/cli/cli_test_util.h"

#include "runtime/dataset.h"
#include "runtime/safetensors.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <fmt/format.h>
#include <thread>

using namespace descent;
using namespace descent::testing;

namespace {

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
    ++n;
  return n;
}

// Root (CI containers) must opt in; --oversubscribe lets 2 ranks share fewer cores.
const std::string kMpirun = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun "
                            "--oversubscribe";

// Runs `mpirun MPIARGS` from the repository, capturing stdout and stderr.
RunResult runMpi(const std::string& mpi_args) { return runInRepo(kMpirun + " " + mpi_args); }

const std::string kDescent = DESCENT_BINARY_DIR "/descent";

std::vector<nlohmann::json> metrics(const std::string& path) {
  return readJsonl(path);
}

// Largest |a - b| over every float tensor of two checkpoints (integer ones must be equal).
double maxAbsDiff(const std::string& a, const std::string& b) {
  SafeTensors x = readSafetensors(a), y = readSafetensors(b);
  REQUIRE(x.tensors.size() == y.tensors.size());
  double worst = 0;
  for (const auto& [name, t] : x.tensors) {
    REQUIRE(y.tensors.count(name));
    if (t.dtype == "I64") { // BatchNorm's num_batches_tracked: the same count
      CHECK(t.data == y.tensors.at(name).data);
      continue;
    }
    std::vector<float> u = toFloats(t, name, a), v = toFloats(y.tensors.at(name), name, b);
    REQUIRE(u.size() == v.size());
    for (size_t i = 0; i < u.size(); ++i)
      worst = std::max(worst, std::abs(double(u[i]) - double(v[i])));
  }
  return worst;
}

// One process against two: per-epoch losses and test accuracy, and the
// weights. Tolerances: the two runs differ only in the order of the float
// additions of each gradient (the sum over 2 shards, then the 1/n scale,
// against one sum of per-sample terms already scaled), a few ulps per step.
void checkTwoEqualOne(const std::string& model, const std::string& extra, double weight_tol,
                      int64_t samples = 300) {
  ScratchDir tmp;
  writeIdxSlice(tmp.path.string(), samples); // 300: 4 batches of 64 and a partial one of 44
  const std::string args = fmt::format("train {} --data {} --epochs 1 --threads 1 --seed 5 {}",
                                       model, tmp.path.string(), extra);
  RunResult one = runDescent(args + " --save " + (tmp / "one.safetensors") + " --metrics " +
                             (tmp / "one.jsonl"));
  REQUIRE(one.code == 0);
  RunResult two = runMpi("-np 2 " + kDescent + " " + args + " --save " + (tmp / "two.safetensors") +
                         " --metrics " + (tmp / "two.jsonl"));
  INFO(two.err);
  REQUIRE(two.code == 0);
  CHECK(count(two.out, "data-parallel on 2 processes") == 1); // rank 0 alone prints
  CHECK(count(two.out, "epoch   1") == 1);
  CHECK(count(two.out, "saved ") == 1);
  auto m1 = metrics(tmp / "one.jsonl"), m2 = metrics(tmp / "two.jsonl");
  REQUIRE(m1.size() == 1);
  REQUIRE(m2.size() == 1); // one writer: no rank appended a second line
  CHECK(m2[0]["train_loss"].get<double>() ==
        Approx(m1[0]["train_loss"].get<double>()).epsilon(1e-5));
  CHECK(m2[0]["test_loss"].get<double>() == Approx(m1[0]["test_loss"].get<double>()).epsilon(1e-5));
  CHECK(m2[0]["test_accuracy"].get<double>() == m1[0]["test_accuracy"].get<double>());
  CHECK(maxAbsDiff(tmp / "one.safetensors", tmp / "two.safetensors") < weight_tol);
  // The same seed and world size: the same bits, run after run.
  RunResult again =
      runMpi("-np 2 " + kDescent + " " + args + " --save " + (tmp / "again.safetensors"));
  REQUIRE(again.code == 0);
  CHECK(readText(tmp / "two.safetensors") == readText(tmp / "again.safetensors"));
  CHECK(readText(tmp / "two.optim.safetensors") == readText(tmp / "again.optim.safetensors"));
}

} // namespace

TEST_CASE("train under mpirun -np 2 equals one process: the MLP with a partial last batch",
          "[cli][mpi]") {
  // SGD: the weights move by lr * gradient; measured: 1e-8 apart.
  checkTwoEqualOne("models/mnist_mlp.nn", "", 1e-6);
}

TEST_CASE("train under mpirun -np 2 equals one process: Dropout and Adam", "[cli][mpi]") {
  // Dropout masks keyed by the global row: the same samples dropped. Adam
  // moves a weight by up to lr = 1e-3 per step whatever the gradient's size,
  // so a near-zero gradient's last bits can show: measured, 1 of 203,530
  // weights 1.1e-5 apart, the rest within 1e-6.
  checkTwoEqualOne("models/mnist_ce.nn", "", 1e-4);
}

TEST_CASE("train under mpirun with a data file missing on one rank names that rank", "[cli][mpi]") {
  ScratchDir tmp;
  writeIdxSlice(tmp.path.string(), 130);
  const std::string args =
      "train models/mnist_mlp.nn --epochs 1 --threads 1 --save " + (tmp / "w.safetensors");
  // Rank 0 reads the slice; rank 1 (the second program) a directory that does not exist.
  RunResult r = runMpi(fmt::format("-np 1 {0} {1} --data {2} : -np 1 {0} {1} --data {3}", kDescent,
                                   args, tmp.path.string(), tmp / "missing"));
  INFO(r.out + r.err);
  CHECK(r.code == 1);
  CHECK(count(r.err, "error: rank 1 of 2: " + (tmp / "missing") + ": No such file or directory") ==
        1);
  CHECK(r.out.find("parameters") == std::string::npos); // nothing started
  CHECK_FALSE(std::filesystem::exists(tmp / "w.safetensors"));
}

TEST_CASE("train under mpirun with a batch too small for the processes is refused before training",
          "[cli][mpi]") {
  ScratchDir tmp;
  writeIdxSlice(tmp.path.string(), 129); // the last batch of 64 holds 1 sample
  RunResult r = runMpi("-np 2 " + kDescent + " train models/mnist_mlp.nn --epochs 1 --data " +
                       tmp.path.string());
  INFO(r.err);
  CHECK(r.code == 2);
  CHECK(count(r.err, "every process needs at least one sample of each batch, but 2 processes share "
                     "a batch of 1 (the last, partial batch)") == 1);
}

TEST_CASE("train under mpirun -np 2 equals one process: synchronized BatchNorm", "[cli][mpi]") {
  // BatchNorm2d and BatchNorm1d normalize with the global batch's statistics
  // (every rank's sums, added in rank order), and the running statistics in
  // the checkpoint are the global batch's. 259 samples: 4 batches of 64
  // (shards of 32) and a last one of 3, whose shards are 1 and 2 samples:
  // rank 0's BatchNorm1d sees one value per channel, which the global batch
  // allows. Measured: losses to 6 digits; weights within 9.8e-6 on main
  // before the flat-plane conv weight gradient and 1.27e-5 after it (the
  // largest on 9.weight, the Linear after BatchNorm1d, whose 1-sample shard
  // amplifies rounding differences of the summation order).
  checkTwoEqualOne("models/lenet5_bn.nn", "", 3e-5, 259);
}

TEST_CASE("eval and predict under mpirun are refused once, before anything is read or written",
          "[cli][mpi]") {
  ScratchDir tmp;
  // Neither the weights nor the data exist: the refusal comes first.
  for (const std::string command : {"eval", "predict"}) {
    RunResult r = runMpi("-np 2 " + kDescent + " " + command + " models/mnist_mlp.nn --weights " +
                         (tmp / "w.safetensors") + " --data " + (tmp / "none") +
                         (command == "predict" ? " --out " + (tmp / "p.csv") : ""));
    INFO(r.out + r.err);
    CHECK(r.code == 2);
    CHECK(count(r.err, "error: descent " + command +
                           " does not run data-parallel (2 processes): run it without mpirun") ==
          1);
    CHECK(r.out.empty());
  }
  CHECK_FALSE(std::filesystem::exists(tmp / "p.csv"));
}

TEST_CASE("train under mpirun with a rank killed mid-training ends the job", "[cli][mpi]") {
  ScratchDir tmp;
  writeIdxSlice(tmp.path.string(), 1280);
  // Many epochs of 20 steps: still training when rank 1 is killed.
  const std::string cmd =
      "cd " DESCENT_SOURCE_DIR " && exec env " + kMpirun + " -np 2 " + kDescent +
      " train models/mnist_mlp.nn --epochs 1000 --threads 1 --data " + tmp.path.string() +
      " --save " + (tmp / "w.safetensors") + " > " + (tmp / "out") + " 2> " + (tmp / "err");
  pid_t mpirun = fork();
  REQUIRE(mpirun >= 0);
  if (mpirun == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait for the first epoch (so the checkpoint exists), then kill rank 1:
  // the process whose environment says OMPI_COMM_WORLD_RANK=1.
  pid_t victim = -1;
  for (int i = 0; i < 600 && victim < 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (readText(tmp / "out").find("epoch   1") == std::string::npos) continue;
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
      std::string env = readText(e.path().string() + "/environ");
      std::string cmdline = readText(e.path().string() + "/cmdline");
      // Ours: descent, training on this test's data, as rank 1.
      if (cmdline.rfind(kDescent, 0) == 0 && cmdline.find(tmp.path.string()) != std::string::npos &&
          env.find(std::string("OMPI_COMM_WORLD_RANK=1") + '\0') != std::string::npos)
        victim = pid_t(std::stol(e.path().filename().string()));
    }
  }
  REQUIRE(victim > 0);
  kill(victim, SIGKILL);
  int status = 0;
  waitpid(mpirun, &status, 0);
  std::string err = readText(tmp / "err");
  INFO(err);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) != 0);
  // Open MPI's launcher names the rank and the signal.
  CHECK(err.find("process rank 1") != std::string::npos);
  CHECK(err.find("signal 9") != std::string::npos);
  // The checkpoint of the last finished epoch is intact.
  CHECK_NOTHROW(readSafetensors(tmp / "w.safetensors"));
}
