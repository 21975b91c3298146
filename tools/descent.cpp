// The `descent` command line: check, ir, train, eval, predict, gradcheck, bench, opt, compile.
// Exit codes: 0 success, 1 an error in the user's input (model file, data,
// checkpoint, a diverging run, out of memory), 2 command-line misuse.
// Every command-line mistake is reported on one line in the user's terms
// ("--lr must be > 0, got -1"), not in CLI11's.
#include "compiler/codegen/target.h"
#include "compiler/frontend/sema.h"
#include "runtime/distributed.h"
#include "runtime/errors.h"
#include "runtime/trainer.h"
#include "tools/commands.h"
#include "tools/compile.h"
#include "tools/opt.h"

#include <CLI/CLI.hpp>
#include <atomic>
#include <charconv>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fmt/format.h>
#include <iostream>
#include <limits>
#include <optional>
#include <system_error>
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

const std::vector<std::string> kCommands = {"check",   "ir",        "train", "eval",
                                            "predict", "gradcheck", "bench", "opt", "compile"};

std::string joinNames(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i)
    out += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
  return out;
}

// The validators below return "" or the whole message, starting with the
// option's name; CLI11 prefixes it with "NAME: " again, which describe() drops.

/// An integer in [lo, hi].
CLI::Validator intIn(const std::string& name, int64_t lo, int64_t hi) {
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        std::string_view v = s;
        if (v.size() > 1 && v[0] == '+') v.remove_prefix(1);
        int64_t x = 0;
        auto r = std::from_chars(v.data(), v.data() + v.size(), x);
        bool digits = r.ptr == v.data() + v.size() && r.ptr != v.data();
        if (r.ec == std::errc::result_out_of_range && digits)
          x = v[0] == '-' ? INT64_MIN : INT64_MAX;
        else if (r.ec != std::errc() || !digits)
          return fmt::format("{} must be an integer, got '{}'", name, s);
        if (x < lo) return fmt::format("{} must be >= {}, got {}", name, lo, s);
        if (x > hi) return fmt::format("{} must be <= {}, got {}", name, hi, s);
        return {};
      },
      fmt::format("INT in [{}, {}]", lo, hi));
}

/// A finite number > 0 (nan and inf are not learning rates).
CLI::Validator positiveFinite(const std::string& name) {
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        double x = 0;
        auto r = std::from_chars(s.data(), s.data() + s.size(), x);
        bool whole = r.ptr == s.data() + s.size() && r.ptr != s.data();
        if (!whole) return fmt::format("{} must be a number, got '{}'", name, s);
        if (r.ec == std::errc::result_out_of_range || !std::isfinite(x))
          return fmt::format("{} must be a finite number, got {}", name, s);
        if (!(x > 0)) return fmt::format("{} must be > 0, got {}", name, s);
        return {};
      },
      "NUMBER > 0");
}

/// A seed: any integer torch.manual_seed accepts, -2^63 .. 2^64-1 (negative
/// ones are taken modulo 2^64, as PyTorch does). Rewritten to the unsigned value.
CLI::Validator seedValue(const std::string& name) {
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        std::string_view v = s;
        if (v.size() > 1 && v[0] == '+') v.remove_prefix(1);
        const char* end = v.data() + v.size();
        uint64_t u = 0;
        if (!v.empty() && v[0] == '-') {
          int64_t x = 0;
          auto r = std::from_chars(v.data(), end, x);
          if (r.ptr != end || v.size() < 2)
            return fmt::format("{} must be an integer, got '{}'", name, s);
          if (r.ec != std::errc())
            return fmt::format(
                "{} must fit in 64 bits (-2^63 to 2^64-1, as torch.manual_seed), got {}", name, s);
          u = uint64_t(x);
        } else {
          auto r = std::from_chars(v.data(), end, u);
          if (r.ptr != end || v.empty())
            return fmt::format("{} must be an integer, got '{}'", name, s);
          if (r.ec != std::errc())
            return fmt::format(
                "{} must fit in 64 bits (-2^63 to 2^64-1, as torch.manual_seed), got {}", name, s);
        }
        s = std::to_string(u);
        return {};
      },
      "INT (64-bit)");
}

/// One of `choices`.
CLI::Validator oneOf(const std::string& name, const std::vector<std::string>& choices) {
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        if (std::find(choices.begin(), choices.end(), s) != choices.end()) return {};
        std::string hint = didYouMean(s, choices);
        return fmt::format("{} must be {}, got '{}'{}", name, joinNames(choices), s,
                           hint.empty() ? "" : " (" + hint + ")");
      },
      "{" + joinNames(choices) + "}");
}

/// A CPU LLVM knows (see checkCpuName); "help" lists them.
CLI::Validator cpuName(bool will_run) {
  return CLI::Validator([=](std::string& s) { return checkCpuName(s, will_run); },
                        "NAME (native, x86-64-v3, ...; help lists them)");
}

/// CLI11's error in the user's words: "--epochs given twice", not "At Most 1
/// required but received 2".
std::string describe(const CLI::App& app, const CLI::ParseError& e) {
  std::string what = e.what();
  const CLI::App* sub = app.get_subcommands().empty() ? nullptr : app.get_subcommands().front();
  std::string cmd = sub ? sub->get_name() : "";
  auto colon = what.find(": ");
  std::string name = colon == std::string::npos ? "" : what.substr(0, colon);
  std::string rest = colon == std::string::npos ? what : what.substr(colon + 2);
  if (dynamic_cast<const CLI::ValidationError*>(&e)) {
    // Our validators' messages already start with the option's name.
    if (rest.rfind(name, 0) == 0) return rest;
    return what;
  }
  if (dynamic_cast<const CLI::ArgumentMismatch*>(&e)) {
    auto rec = rest.find("received ");
    if (rest.find("At Most") != std::string::npos && rec != std::string::npos) {
      std::string n = rest.substr(rec + 9);
      return fmt::format("{} given {}; give it once", name, n == "2" ? "twice" : n + " times");
    }
    if (rest.find("missing") != std::string::npos) return fmt::format("{} needs a value", name);
    return what;
  }
  if (dynamic_cast<const CLI::RequiredError*>(&e)) {
    if (!sub)
      return fmt::format("no command given; use {} (see descent --help)", joinNames(kCommands));
    if (what == "model is required")
      return fmt::format("{} needs a model file: descent {} MODEL.nn ... (see descent {} --help)",
                         cmd, cmd, cmd);
    if (what == "file is required")
      return "opt needs an IR file: descent opt FILE.ir --pass ... (see descent opt --help)";
    auto is = what.find(" is required");
    if (is != std::string::npos)
      return fmt::format("{} needs {} (see descent {} --help)", cmd, what.substr(0, is), cmd);
    return what;
  }
  if (dynamic_cast<const CLI::ExcludesError*>(&e)) {
    // CLI11: "--index excludes --out".
    auto ex = what.find(" excludes ");
    if (ex != std::string::npos)
      return fmt::format("{} and {} cannot be given together (see descent {} --help)",
                         what.substr(0, ex), what.substr(ex + 10), cmd);
    return what;
  }
  if (dynamic_cast<const CLI::ExtrasError*>(&e)) {
    std::vector<std::string> extra = app.remaining(true);
    if (extra.empty()) return what;
    const std::string& arg = extra.front();
    if (!sub)
      return fmt::format(
          "unexpected argument '{}'; put options after the command (descent COMMAND ...)", arg);
    if (arg.size() > 1 && arg[0] == '-') {
      std::vector<std::string> names;
      for (const CLI::Option* o : sub->get_options())
        for (const std::string& l : o->get_lnames())
          names.push_back("--" + l);
      std::string opt = arg.substr(0, arg.find('='));
      std::string hint = didYouMean(opt, names);
      return fmt::format("{} has no option {}{} (see descent {} --help)", cmd, opt,
                         hint.empty() ? "" : "; " + hint, cmd);
    }
    return fmt::format("unexpected argument '{}': {} takes one {} file (see descent {} --help)",
                       arg, cmd, cmd == "opt" ? "IR" : "model", cmd);
  }
  return what;
}

} // namespace

int main(int argc, char** argv) {
  installOutOfMemoryHandler();
  // Options before the command: CLI11 would complain about something else.
  if (argc >= 2 && argv[1][0] == '-' && std::string_view(argv[1]) != "-h" &&
      std::string_view(argv[1]) != "--help" && std::string_view(argv[1]) != "--version") {
    fmt::print(stderr,
               "error: {} comes before the command; options go after it: descent COMMAND MODEL.nn "
               "[options]\n",
               argv[1]);
    return 2;
  }
  // An unknown command is named (CLI11 would say "A subcommand is required").
  if (argc >= 2 && argv[1][0] != '-' &&
      std::find(kCommands.begin(), kCommands.end(), argv[1]) == kCommands.end()) {
    std::string hint = didYouMean(argv[1], kCommands);
    fmt::print(stderr, "error: unknown command '{}'{}; the commands are {} (see descent --help)\n",
               argv[1], hint.empty() ? "" : " (" + hint + ")", joinNames(kCommands));
    return 2;
  }
  // `--cpu help` lists the names, as `llc -mcpu=help` does, whatever else is given.
  for (int i = 1; i < argc; ++i)
    if (std::string_view(argv[i]) == "--cpu=help" ||
        (std::string_view(argv[i]) == "--cpu" && i + 1 < argc &&
         std::string_view(argv[i + 1]) == "help")) {
      fmt::print("--cpu accepts native (this machine: {}) and these x86-64 CPUs:\n", hostCpuName());
      for (const std::string& n : knownCpuNames())
        if (n != "native") fmt::print("  {}\n", n);
      return 0;
    }
  CLI::App app{"descent: a static computation-graph compiler for training neural networks"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "descent 0.1");
  CommonArgs a;
  // The same limit the model language puts on `batch` (docs/language.md).
  const CLI::Validator kBatchRange = intIn("--batch", 1, int64_t(1) << 20);

  auto addModel = [&](CLI::App* c) {
    c->add_option("model", a.model, "model file (.nn)")->required();
  };
  auto addData = [&](CLI::App* c) {
    c->add_option("--data", a.data, "IDX directory (MNIST layout) or CSV file; default: Fashion-MNIST");
    c->add_option("--test-data", a.test_data, "CSV file with test samples (IDX directories bring their own)");
  };
  // `ir` only compiles; the others run the code, so it must suit this machine.
  auto addEngine = [&](CLI::App* c, bool runs) {
    c->add_option("--threads", a.threads, "worker threads (default: all cores)")
        ->check(intIn("--threads", 0, 256));
    c->add_option("--cpu", a.cpu,
                  "target CPU for the JIT (default: native, this machine), e.g. x86-64-v3")
        ->check(cpuName(runs));
    c->add_option("--engine", a.engine, "jit (compiled kernels) or interp (reference interpreter)")
        ->check(oneOf("--engine", {"jit", "interp"}));
  };

  CLI::App* check = app.add_subcommand("check", "verify a model file and print a summary");
  addModel(check);

  CLI::App* ir = app.add_subcommand("ir", "print a compiler stage");
  addModel(ir);
  ir->add_option("--stage", a.stage, "ast | graph | train | kernels | llvm | asm")
      ->check(oneOf("--stage", {"ast", "graph", "train", "kernels", "llvm", "asm"}))
      ->required();
  ir->add_flag("--dot", a.dot, "Graphviz output (graph and train stages)");
  ir->add_option("--batch", a.batch, "batch size (default: the model's)")->check(kBatchRange);
  addEngine(ir, false);

  CLI::App* trainc = app.add_subcommand("train", "train a model");
  addModel(trainc);
  addData(trainc);
  addEngine(trainc, true);
  trainc->add_option("--epochs", a.epochs, "epochs (default: the model's)")
      ->check(intIn("--epochs", 1, 1000000));
  trainc->add_option("--batch", a.batch, "batch size (default: the model's)")->check(kBatchRange);
  trainc->add_option("--lr", a.lr, "learning rate (default: the model's)")
      ->check(positiveFinite("--lr"));
  trainc->add_option("--seed", a.seed, "seed for initialisation, shuffling and Dropout")
      ->transform(seedValue("--seed"));
  trainc->add_option("--init", a.init, "start from this checkpoint (safetensors, PyTorch names)");
  trainc->add_option("--save", a.save, "write a checkpoint here after each epoch");
  trainc->add_flag("--no-shuffle", a.no_shuffle, "keep the data order");
  trainc->add_option("--metrics", a.metrics, "write one JSON object per epoch to this file");

  CLI::App* evalc = app.add_subcommand("eval", "evaluate a checkpoint: loss, accuracy, confusion matrix");
  addModel(evalc);
  addData(evalc);
  addEngine(evalc, true);
  evalc->add_option("--weights", a.weights, "checkpoint (safetensors)")->required();
  evalc->add_option("--batch", a.batch, "batch size (default: the model's)")->check(kBatchRange);

  CLI::App* predict = app.add_subcommand(
      "predict", "classify one test sample and draw it, or write every prediction to a CSV file");
  addModel(predict);
  addData(predict);
  addEngine(predict, true);
  predict->add_option("--weights", a.weights, "checkpoint (safetensors)")->required();
  CLI::Option* index = predict->add_option("--index", a.index, "sample index in the test set")
                           ->check(intIn("--index", 0, INT64_MAX));
  predict->add_option("--out", a.out, "write one row per sample of the data to this CSV file")
      ->excludes(index);

  CLI::App* grad = app.add_subcommand("gradcheck", "compare compiled gradients with finite differences");
  addModel(grad);
  grad->add_option("--seed", a.seed, "seed for the weights, batch and directions")
      ->transform(seedValue("--seed"));

  CLI::App* bench = app.add_subcommand("bench", "measure train-step speed against this machine's peak");
  addModel(bench);
  addEngine(bench, true);
  bench->add_option("--batch", a.batch, "batch size (default: the model's)")->check(kBatchRange);
  bench->add_option("--steps", a.steps, "timed steps")->check(intIn("--steps", 1, 1000000000));
  bench->add_flag("--json", a.json, "print one JSON object instead of the report");

  CLI::App* opt =
      app.add_subcommand("opt", "run compiler passes on graph IR text and print the result");
  std::string opt_file;
  std::vector<std::string> opt_passes;
  opt->add_option("file", opt_file, "graph IR text (descent ir --stage graph|train), - for stdin")
      ->required();
  opt->add_option("--pass", opt_passes,
                  fmt::format("a pass to run, in order: {}", fmt::join(optPassNames(), " | ")))
      ->check(oneOf("--pass", optPassNames()))
      ->allow_extra_args(false);

  CLI::App* compilec = app.add_subcommand(
      "compile", "compile the train step and predictor ahead of time into a C library (docs/aot.md)");
  AotArgs aot;
  compilec->add_option("model", aot.model, "model file (.nn)")->required();
  compilec->add_option("--out", aot.out, "directory for M.h and libM.a")->required();
  compilec->add_option("--cpu", aot.cpu, "target CPU (default: native, this machine), e.g. x86-64-v3")
      ->check(cpuName(false));
  compilec->add_flag("--inference", aot.inference, "only the forward pass (eval mode)");
  compilec->add_option("--weights", aot.weights,
                       "checkpoint to ship beside the library as M.safetensors (validated)");
  compilec->add_option("--seed", aot.seed,
                       "seed of the initial parameters written as M.init.safetensors (as train --seed)")
      ->transform(seedValue("--seed"));

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "error: {}\n", describe(app, e));
    return 2;
  }

  a.seed_given = trainc->count("--seed") + grad->count("--seed") > 0;
  std::signal(SIGINT, onInterrupt);
  std::signal(SIGTERM, onInterrupt);
  a.interrupt = &g_interrupted;
  a.tty = isatty(STDERR_FILENO);
  try {
    if (*check) return runCheck(a);
    if (*ir) return runIr(a);
    if (*trainc) {
      // Under mpirun with more than one process: data-parallel training
      // (docs/distributed.md); a plain run never starts MPI.
      std::optional<DataParallel> dp;
      if (launchedWorldSize() > 1) dp.emplace();
      a.dp = dp ? &*dp : nullptr;
      int rc = runTrain(a); // 130: stopped by a signal
      return rc == 130 ? 128 + g_signal.load() : rc;
    }
    if (*evalc) return runEval(a);
    if (*predict) return runPredict(a);
    if (*grad) return runGradcheck(a);
    if (*bench) return runBench(a);
    if (*opt) return runOpt(opt_file, opt_passes);
    if (*compilec) return runCompile(aot);
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
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "error: out of memory: the system refused an allocation (see `ulimit -v` "
                       "and the free memory)\n");
    return 1;
  } catch (const std::system_error& e) {
    // std::thread and std::async report a thread that cannot start this way.
    if (e.code() == std::errc::resource_unavailable_try_again)
      fmt::print(stderr, "error: out of memory: cannot start a thread ({})\n", e.code().message());
    else
      fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
