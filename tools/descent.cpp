// The `descent` command line: check, ir, train, eval, predict, gradcheck, bench.
// Exit codes: 0 success, 1 an error in the user's input (model file, data,
// checkpoint, a diverging run), 2 command-line misuse.
#include "compiler/frontend/ast_printer.h"
#include "compiler/frontend/frontend.h"
#include "compiler/frontend/summary.h"
#include "compiler/ir/dot.h"
#include "compiler/ir/model_builder.h"
#include "compiler/ir/printer.h"
#include "runtime/checkpoint.h"
#include "runtime/dataset.h"
#include "runtime/errors.h"
#include "runtime/init.h"
#include "runtime/trainer.h"
#include "tools/commands.h"

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <iostream>
#include <unistd.h>

using namespace descent;

namespace {

// The only process-wide state: a signal handler can reach nothing else.
std::atomic<bool> g_interrupted{false};
std::atomic<int> g_signal{0};

// SIGINT (Ctrl-C) and SIGTERM (kill, batch schedulers) both finish the step,
// save and exit 128 + the signal's number.
void onInterrupt(int sig) {
  int none = 0;
  g_signal.compare_exchange_strong(none, sig); // the first one decides the exit code
  // A second signal kills the process the usual way.
  if (g_interrupted.exchange(true)) std::_Exit(128 + sig);
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"descent: a static computation-graph compiler for training neural networks"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "descent 0.1");
  CommonArgs a;
  // The same limit the model language puts on `batch` (docs/language.md).
  const CLI::Range kBatchRange(int64_t(1), int64_t(1) << 20);

  auto addModel = [&](CLI::App* c) {
    c->add_option("model", a.model, "model file (.nn)")->required();
  };
  auto addData = [&](CLI::App* c) {
    c->add_option("--data", a.data, "IDX directory (MNIST layout) or CSV file; default: Fashion-MNIST");
    c->add_option("--test-data", a.test_data, "CSV file with test samples (IDX directories bring their own)");
  };
  auto addEngine = [&](CLI::App* c) {
    c->add_option("--threads", a.threads, "worker threads (default: all cores)")->check(CLI::Range(0, 256));
    c->add_option("--cpu", a.cpu, "target CPU for the JIT (default: this host), e.g. x86-64-v3");
    c->add_option("--engine", a.engine, "jit (compiled kernels) or interp (reference interpreter)")
        ->check(CLI::IsMember({"jit", "interp"}));
  };

  CLI::App* check = app.add_subcommand("check", "verify a model file and print a summary");
  addModel(check);

  CLI::App* ir = app.add_subcommand("ir", "print a compiler stage");
  addModel(ir);
  ir->add_option("--stage", a.stage, "ast | graph | train | kernels | llvm | asm")
      ->check(CLI::IsMember({"ast", "graph", "train", "kernels", "llvm", "asm"}))
      ->required();
  ir->add_flag("--dot", a.dot, "Graphviz output (graph and train stages)");
  ir->add_option("--batch", a.batch, "batch size (default: the model's)")->check(kBatchRange);
  addEngine(ir);

  CLI::App* trainc = app.add_subcommand("train", "train a model");
  addModel(trainc);
  addData(trainc);
  addEngine(trainc);
  trainc->add_option("--epochs", a.epochs, "epochs (default: the model's)")->check(CLI::Range(1, 1000000));
  trainc->add_option("--batch", a.batch, "batch size (default: the model's)")->check(kBatchRange);
  trainc->add_option("--lr", a.lr, "learning rate (default: the model's)")->check(CLI::PositiveNumber);
  trainc->add_option("--seed", a.seed, "seed for initialisation, shuffling and Dropout");
  trainc->add_option("--init", a.init, "start from this checkpoint (safetensors, PyTorch names)");
  trainc->add_option("--save", a.save, "write a checkpoint here after each epoch");
  trainc->add_flag("--no-shuffle", a.no_shuffle, "keep the data order");
  trainc->add_option("--metrics", a.metrics, "write one JSON object per epoch to this file");

  CLI::App* evalc = app.add_subcommand("eval", "evaluate a checkpoint: loss, accuracy, confusion matrix");
  addModel(evalc);
  addData(evalc);
  addEngine(evalc);
  evalc->add_option("--weights", a.weights, "checkpoint (safetensors)")->required();
  evalc->add_option("--batch", a.batch, "batch size (default: the model's)")->check(kBatchRange);

  CLI::App* predict = app.add_subcommand("predict", "classify one test sample and draw it");
  addModel(predict);
  addData(predict);
  addEngine(predict);
  predict->add_option("--weights", a.weights, "checkpoint (safetensors)")->required();
  predict->add_option("--index", a.index, "sample index in the test set")->check(CLI::NonNegativeNumber);

  CLI::App* grad = app.add_subcommand("gradcheck", "compare compiled gradients with finite differences");
  addModel(grad);
  grad->add_option("--seed", a.seed, "seed for the weights, batch and directions");

  CLI::App* bench = app.add_subcommand("bench", "measure train-step speed against this machine's peak");
  addModel(bench);
  addEngine(bench);
  bench->add_option("--batch", a.batch, "batch size (default: the model's)")->check(kBatchRange);
  bench->add_option("--steps", a.steps, "timed steps")->check(CLI::PositiveNumber);
  bench->add_flag("--json", a.json, "print one JSON object instead of the report");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }

  std::signal(SIGINT, onInterrupt);
  std::signal(SIGTERM, onInterrupt);
  a.interrupt = &g_interrupted;
  a.tty = isatty(STDERR_FILENO);
  try {
    if (*check) return runCheck(a);
    if (*ir) return runIr(a);
    if (*trainc) {
      int rc = runTrain(a); // 130: stopped by a signal
      return rc == 130 ? 128 + g_signal.load() : rc;
    }
    if (*evalc) return runEval(a);
    if (*predict) return runPredict(a);
    if (*grad) return runGradcheck(a);
    if (*bench) return runBench(a);
  } catch (const ReportedError&) {
    return 1;
  } catch (const UsageError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  } catch (const DataError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  } catch (const DivergedError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
