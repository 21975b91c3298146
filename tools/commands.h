// The subcommands of the `descent` CLI, one function each, sharing the parsed
// arguments. descent.cpp parses; these do the work and return the exit code.
#pragma once

#include "compiler/frontend/model_spec.h"

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace descent {

class DataParallel; // runtime/distributed.h

/// Command-line misuse discovered after parsing (exit code 2).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The model file had errors; they were printed already (exit code 1).
struct ReportedError : std::runtime_error {
  ReportedError() : std::runtime_error("model file has errors") {}
};

/// Reads and checks a model file; prints its diagnostics and throws
/// ReportedError when it has errors, DataError when it cannot be read.
ModelSpec loadModel(const std::string& path);

/// Everything any subcommand may take; 0 / "" means "not given".
struct CommonArgs {
  std::string model, data, test_data, stage, init, save, metrics, weights, cpu, out;
  std::string engine = "jit";
  bool dot = false, no_shuffle = false, tty = false, json = false;
  int64_t epochs = 0, batch = 0, index = 0, steps = 0;
  int threads = 0;
  double lr = 0;
  uint64_t seed = 0;
  bool seed_given = false; ///< --seed was given: it overrides the model's `seed =`
  const std::atomic<bool>* interrupt = nullptr;
  /// `train` under mpirun with more than one process (docs/distributed.md).
  DataParallel* dp = nullptr;
};

/// "1 epoch", "5 epochs".
std::string plural(int64_t n, const std::string& noun);

int runCheck(const CommonArgs& a);
int runIr(const CommonArgs& a);
int runTrain(const CommonArgs& a);
int runEval(const CommonArgs& a);
int runPredict(const CommonArgs& a);
int runGradcheck(const CommonArgs& a);
int runBench(const CommonArgs& a);

} // namespace descent
