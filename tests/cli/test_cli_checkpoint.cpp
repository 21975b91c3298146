// End-to-end fault tests of `descent train` checkpoints: SIGINT and SIGTERM in
// the middle of an epoch followed by an exact resume, outputs checked before
// training, metrics appended on resume, a damaged optimizer file, and a model
// file whose name is not UTF-8.
#include "cli_test_util.h"
#include "runtime/safetensors.h"

#include <catch2/catch.hpp>
#include <csignal>
#include <fmt/format.h>
#include <regex>

using namespace descent;
using namespace descent::testing;

namespace {

/// Starts `descent ARGS` in the background with stdout/stderr to files.
pid_t startDescent(const std::string& args, const std::string& out, const std::string& err) {
  std::string cmd =
      fmt::format("exec {}/descent {} > {} 2> {}", DESCENT_BINARY_DIR, args, out, err);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (chdir(DESCENT_SOURCE_DIR) != 0) _exit(127);
    execl("/bin/sh", "sh", "-c", cmd.c_str(), (char*)nullptr);
    _exit(127);
  }
  return pid;
}

} // namespace

TEST_CASE(
    "SIGINT and SIGTERM mid-epoch save the position and the resumed run equals the straight one",
    "[cli][faults]") {
  for (int sig : {SIGINT, SIGTERM}) {
    INFO("signal " << sig);
    ScratchDir tmp;
    writeRegressionCsv(tmp / "reg.csv", 20000, 8, 3);
    const std::string common = fmt::format(
        "train models/regression_mse.nn --data {} --batch 1 --threads 1", tmp / "reg.csv");
    pid_t pid = startDescent(fmt::format("{} --seed 4 --epochs 100000 --save {} --metrics {}",
                                         common, tmp / "s.safetensors", tmp / "m.jsonl"),
                             tmp / "out", tmp / "err");
    // Signal once an epoch is done, so the run is (almost surely) inside a later one.
    for (int i = 0; i < 1200 && readJsonl(tmp / "m.jsonl").empty(); ++i)
      usleep(50000);
    kill(pid, sig);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 128 + sig);
    std::string out = readText(tmp / "out");
    INFO(out << readText(tmp / "err"));
    std::smatch m;
    REQUIRE(std::regex_search(
        out, m, std::regex(R"(interrupted in epoch (\d+) after (\d+) of 20000 steps)")));
    const int epoch = std::stoi(m[1]), steps = std::stoi(m[2]);
    CHECK(out.find("saved " + (tmp / "s.safetensors")) != std::string::npos);

    if (steps > 0) {
      // The rest of the epoch needs the same shuffle: another seed is refused.
      RunResult bad = runDescent(
          fmt::format("{} --seed 9 --epochs 1 --init {}", common, tmp / "s.safetensors"));
      INFO(bad.err);
      CHECK(bad.code == 2);
      CHECK(bad.err.find("--seed 4 --batch 1 on 20000 samples") != std::string::npos);
    }
    RunResult r =
        runDescent(fmt::format("{} --seed 4 --epochs 1 --init {} --save {} --metrics {}", common,
                               tmp / "s.safetensors", tmp / "s.safetensors", tmp / "m.jsonl"));
    INFO(r.err);
    REQUIRE(r.code == 0);
    if (steps > 0)
      CHECK(r.out.find(fmt::format("(resuming in epoch {} after its step {},", epoch, steps)) !=
            std::string::npos);
    RunResult ref = runDescent(fmt::format("{} --seed 4 --epochs {} --save {} --metrics {}", common,
                                           epoch, tmp / "ref.safetensors", tmp / "ref.jsonl"));
    REQUIRE(ref.code == 0);
    CHECK(readText(tmp / "s.safetensors") == readText(tmp / "ref.safetensors"));
    auto got = readJsonl(tmp / "m.jsonl"), want = readJsonl(tmp / "ref.jsonl");
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      CHECK(got[i]["epoch"] == want[i]["epoch"]);
      CHECK(got[i]["train_loss"] == want[i]["train_loss"]);
    }
  }
}

TEST_CASE("unwritable outputs are reported before training starts", "[cli][faults]") {
  ScratchDir tmp;
  writeRegressionCsv(tmp / "reg.csv", 64, 8, 1);
  const std::string train =
      fmt::format("train models/regression_mse.nn --data {} --epochs 1", tmp / "reg.csv");
  std::filesystem::create_directory(tmp / "dir");
  const std::string ro = ::geteuid() == 0 ? "/sys/descent.safetensors" : tmp / "dir/x";
  if (::geteuid() != 0)
    std::filesystem::permissions(tmp / "dir", std::filesystem::perms::owner_read |
                                                  std::filesystem::perms::owner_exec);
  struct Case {
    std::string args, error;
  };
  const Case cases[] = {
      {"--save " + tmp / "missing/x.safetensors",
       tmp / "missing/x.safetensors: No such file or directory"},
      {"--save " + ro, ro + ": Permission denied"},
      {"--save " + tmp / "dir", tmp / "dir: Is a directory"},
      {"--metrics " + tmp / "missing/m.jsonl", tmp / "missing/m.jsonl: No such file or directory"},
      {"--metrics " + ro, ro + ": Permission denied"},
  };
  for (const Case& c : cases) {
    RunResult r = runDescent(train + " " + c.args);
    INFO(c.args << "\n" << r.out);
    CHECK(r.code == 1);
    CHECK(r.err == "error: " + c.error + "\n");
    CHECK(r.out.find("epoch") == std::string::npos);
  }
  std::filesystem::permissions(tmp / "dir", std::filesystem::perms::owner_all);
}

TEST_CASE("metrics files are appended to when resuming from --init", "[cli]") {
  ScratchDir tmp;
  writeRegressionCsv(tmp / "reg.csv", 64, 8, 1);
  const std::string train =
      fmt::format("train models/regression_mse.nn --data {}", tmp / "reg.csv");
  REQUIRE(runDescent(fmt::format("{} --epochs 2 --save {} --metrics {}", train,
                                 tmp / "a.safetensors", tmp / "m.jsonl"))
              .code == 0);
  RunResult r = runDescent(fmt::format("{} --epochs 1 --init {} --metrics {}", train,
                                       tmp / "a.safetensors", tmp / "m.jsonl"));
  REQUIRE(r.code == 0);
  auto rows = readJsonl(tmp / "m.jsonl");
  REQUIRE(rows.size() == 3);
  for (int i = 0; i < 3; ++i)
    CHECK(rows[size_t(i)]["epoch"] == i + 1);
  // A fresh run (no --init) starts the file again.
  REQUIRE(runDescent(fmt::format("{} --epochs 1 --metrics {}", train, tmp / "m.jsonl")).code == 0);
  CHECK(readJsonl(tmp / "m.jsonl").size() == 1);
}

TEST_CASE("eval ignores a damaged optimizer file and train --init names it", "[cli][faults]") {
  ScratchDir tmp;
  writeRegressionCsv(tmp / "reg.csv", 64, 8, 1);
  const std::string data = "--data " + tmp / "reg.csv";
  REQUIRE(runDescent(fmt::format("train models/regression_mse.nn {} --epochs 1 --save {}", data,
                                 tmp / "a.safetensors"))
              .code == 0);
  std::ofstream(tmp / "a.optim.safetensors", std::ios::binary) << "damaged";
  RunResult ev = runDescent(
      fmt::format("eval models/regression_mse.nn {} --weights {}", data, tmp / "a.safetensors"));
  INFO(ev.err);
  CHECK(ev.code == 0);
  RunResult tr = runDescent(fmt::format("train models/regression_mse.nn {} --epochs 1 --init {}",
                                        data, tmp / "a.safetensors"));
  CHECK(tr.code == 1);
  CHECK(tr.err.rfind("error: " + tmp / "a.optim.safetensors: ", 0) == 0);
  CHECK(std::count(tr.err.begin(), tr.err.end(), '\n') == 1);
}

TEST_CASE("a model file whose name is not UTF-8 trains and saves", "[cli]") {
  ScratchDir tmp;
  writeRegressionCsv(tmp / "reg.csv", 64, 8, 1);
  const std::string model = tmp / "reg\xff\xfe.nn";
  std::filesystem::copy_file(std::string(DESCENT_SOURCE_DIR) + "/models/regression_mse.nn", model);
  RunResult r = runDescent(fmt::format("train '{}' --data {} --epochs 2 --save {}", model,
                                       tmp / "reg.csv", tmp / "a.safetensors"));
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(readSafetensors(tmp / "a.safetensors").metadata.at("model") ==
        "reg\xef\xbf\xbd\xef\xbf\xbd");
}
