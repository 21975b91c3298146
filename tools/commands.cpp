// The subcommands of the `descent` CLI (see commands.h).
#include "tools/commands.h"

#include "compiler/frontend/ast_printer.h"
#include "compiler/frontend/frontend.h"
#include "compiler/frontend/summary.h"
#include "compiler/ir/dot.h"
#include "compiler/ir/printer.h"
#include "compiler/passes/train_graph.h"
#include "runtime/atomic_file.h"
#include "runtime/checkpoint.h"
#include "runtime/dataset.h"
#include "runtime/errors.h"
#include "runtime/gradcheck.h"
#include "runtime/init.h"
#include "runtime/trainer.h"
#include "tools/render.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <future>
#include <iostream>
#include <numeric>

namespace descent {

std::string plural(int64_t n, const std::string& noun) {
  return fmt::format("{} {}{}", n, noun, n == 1 ? "" : "s");
}

ModelSpec loadModel(const std::string& path) {
  std::string source = readFile(path);
  Diagnostics diags(path, source);
  auto spec = analyzeSource(path, source, diags);
  if (!spec) {
    std::cerr << diags.render();
    throw ReportedError();
  }
  return *spec;
}

namespace {

/// The seed: --seed, else the model's `seed =`, else `fallback`.
uint64_t seedOf(const ModelSpec& spec, const CommonArgs& a, uint64_t fallback) {
  if (a.seed_given) return a.seed;
  return spec.seed ? *spec.seed : fallback;
}

void applyOverrides(ModelSpec& spec, const CommonArgs& a) {
  if (a.epochs) spec.epochs = a.epochs;
  if (a.batch) spec.batch = a.batch;
  if (a.lr > 0) spec.optimizer.lr = a.lr;
}

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void checkFits(const ModelSpec& spec, const Dataset& d) {
  if (d.features != spec.input_size) {
    // Any declared shape with the sample's element count fits (the bytes are
    // the same); otherwise name both shapes.
    std::vector<int64_t> sample = d.image_rows > 0
                                      ? std::vector<int64_t>{d.image_rows, d.image_cols}
                                      : std::vector<int64_t>{d.features};
    throw DataError(fmt::format(
        "{}: samples are {} ({} elements), but {} declares input {}: f32{} ({} elements)", d.source,
        ModelSpec::shapeText(sample), d.features, spec.path, spec.input_name,
        ModelSpec::shapeText(spec.inputShape()), spec.input_size));
  }
  if (!d.has_targets) return;
  if (spec.target_kind == TargetKind::Class) {
    if (!d.class_labels)
      throw DataError(fmt::format("{}: has real-valued targets, but {} expects class labels",
                                  d.source, spec.path));
    checkLabels(d, spec.target_size, spec.loss.ignore_index);
  } else {
    if (d.class_labels)
      throw DataError(fmt::format("{}: has class labels, but {} expects real targets ({}: f32[{}])",
                                  d.source, spec.path, spec.target_name, spec.target_size));
    if (d.target_size != spec.target_size)
      throw DataError(fmt::format("{}: has {} target columns, but {} expects {}", d.source,
                                  d.target_size, spec.path, spec.target_size));
  }
}

/// `targets_optional`: predict also takes a CSV of features only.
Dataset loadCsvFor(const ModelSpec& spec, const std::string& path, bool targets_optional = false) {
  bool classes = spec.target_kind == TargetKind::Class;
  return loadCsv(path, spec.input_size, spec.target_size, classes, targets_optional,
                 spec.loss.ignore_index);
}

/// --data, or the default dataset when the model fits it.
std::string dataPath(const ModelSpec& spec, const CommonArgs& a) {
  if (!a.data.empty()) return a.data;
  if (!spec.fitsDefaultData())
    throw UsageError(
        fmt::format("{} does not fit the default dataset (Fashion-MNIST: input f32[784], "
                    "target class[10]); give --data DIR|FILE.csv",
                    spec.path));
  return defaultDataDir();
}

/// IDX directories hold uint8 images; CSV files hold floats.
bool dataIsImages(const ModelSpec& spec, const CommonArgs& a) {
  return std::filesystem::is_directory(dataPath(spec, a));
}

/// `eval_only`: load only the set eval and predict use (the test set when
/// there is one), not a training set they would never read. `targets_optional`:
/// a CSV may hold features only (predict).
DataSplit loadData(const ModelSpec& spec, const CommonArgs& a, bool eval_only = false,
                   bool targets_optional = false) {
  DataSplit split;
  std::string data = dataPath(spec, a);
  if (eval_only && !a.test_data.empty()) {
    // --test-data alone is used
  } else if (std::filesystem::is_directory(data))
    split = loadIdxDir(data, eval_only ? IdxSets::EvalOnly : IdxSets::All);
  else if (endsWith(data, ".csv") || std::filesystem::exists(data))
    split.train = loadCsvFor(spec, data, targets_optional);
  else
    throw DataError(fmt::format("{}: No such file or directory", data));
  if (!a.test_data.empty()) split.test = loadCsvFor(spec, a.test_data, targets_optional);
  if (split.train.count) checkFits(spec, split.train);
  if (split.test) checkFits(spec, *split.test);
  return split;
}

std::unique_ptr<Engine> makeEngine(const ModelSpec& spec, const CommonArgs& a, bool input_u8,
                                   int world_size = 1, GradientReducer reducer = {}) {
  EngineOptions o;
  o.batch = spec.batch;
  o.input_u8 = input_u8;
  o.threads = a.threads;
  o.cpu = a.cpu;
  o.world_size = world_size;
  o.reducer = std::move(reducer);
  if (a.engine == "interp") return makeInterpEngine(spec, o);
  return makeJitEngine(spec, o);
}

bool isDefaultFashion(const CommonArgs& a) {
  return a.data.empty() || a.data == defaultDataDir();
}

std::vector<std::string> classNames(const ModelSpec& spec, const CommonArgs& a) {
  if (isDefaultFashion(a) && spec.target_size == 10) return fashionMnistClassNames();
  std::vector<std::string> names;
  for (int64_t i = 0; i < spec.target_size; ++i)
    names.push_back(std::to_string(i));
  return names;
}

} // namespace

int runCheck(const CommonArgs& a) {
  ModelSpec spec = loadModel(a.model);
  std::cout << renderSummary(spec);
  return 0;
}

int runIr(const CommonArgs& a) {
  if (a.dot && a.stage != "graph" && a.stage != "train")
    throw UsageError(
        fmt::format("--dot is available for the graph and train stages, not {}", a.stage));
  if (a.stage == "ast") {
    std::string source = readFile(a.model);
    Diagnostics diags(a.model, source);
    auto file = parseSource(a.model, source, diags);
    if (!file) {
      std::cerr << diags.render();
      return 1;
    }
    std::cout << printAst(*file);
    return 0;
  }
  ModelSpec spec = loadModel(a.model);
  applyOverrides(spec, a);
  bool u8 = spec.fitsDefaultData();
  if (a.stage == "graph" || a.stage == "train") {
    LowerOptions o;
    o.batch = spec.batch;
    o.input_u8 = u8;
    o.forward = a.stage == "graph";
    o.train = a.stage == "train";
    o.eval = false;
    LoweredModel m = lowerModel(spec, o);
    const Graph& g = o.forward ? *m.forward : *m.train;
    std::cout << (a.dot ? graphToDot(g) : printGraph(g));
    return 0;
  }
  if (a.engine == "interp") throw UsageError(fmt::format("--stage {} needs --engine jit", a.stage));
  // Under mpirun (the world size from the launcher's environment, without
  // starting MPI): the data-parallel step, with its allreduce kernels; rank 0
  // prints.
  const int world = launchedWorldSize();
  if (const char* r = std::getenv("OMPI_COMM_WORLD_RANK"); world > 1 && r && std::string(r) != "0")
    return 0;
  auto engine = makeEngine(world > 1 ? dataParallelSpec(spec) : spec, a, u8, world);
  std::cout << engine->stageText(a.stage);
  return 0;
}

int runTrain(const CommonArgs& a) {
  // Data-parallel (under mpirun): every rank sets up alone; before training
  // they agree, and the first failing rank's error is reported once, naming
  // it. Only rank 0 prints and writes.
  DataParallel* dp = a.dp;
  const bool lead = !dp || dp->rank() == 0;
  ModelSpec spec;
  DataSplit data;
  std::unique_ptr<Engine> engine;
  TrainProgress start;
  TrainOptions o;
  std::vector<std::string> notes; // printed by rank 0 once every rank is set up
  auto printNotes = [&] {
    if (lead)
      for (const std::string& n : notes) fmt::print("{}\n", n);
  };
  auto setup = [&] {
    spec = loadModel(a.model);
    applyOverrides(spec, a);
    // Every output is checked before any work, not after the first epoch.
    if (lead && !a.save.empty()) {
      checkWritable(a.save);
      checkWritable(optimizerStatePath(a.save));
    }
    if (lead && !a.metrics.empty()) checkWritable(a.metrics);
    // The JIT compiles on another thread while the data inflates here.
    auto compiling = std::async(std::launch::async, [&, u8 = dataIsImages(spec, a)] {
      if (!dp) return makeEngine(spec, a, u8);
      return makeEngine(dataParallelSpec(spec), a, u8, dp->size(), dp->reducer());
    });
    try {
      data = loadData(spec, a);
    } catch (...) {
      compiling.wait(); // the compile reads spec and a
      throw;
    }
    engine = compiling.get();
    if (std::string e = spec.batchNormBatchError(data.train.count, spec.batch); !e.empty())
      throw DataError(fmt::format("{}:{}", spec.path, e)); // BatchNorm: before any step
    if (dp)
      if (std::string why = dataParallelUnsupported(spec, dp->size(), spec.batch, data.train.count);
          !why.empty())
        throw UsageError(fmt::format("{}: data-parallel training on {} processes: {}", spec.path,
                                     dp->size(), why));
    notes.push_back(fmt::format("{}: {} parameters, {}{}, batch {}, {}{}", spec.path,
                                spec.parameterCount(), plural(data.train.count, "training sample"),
                                data.test ? ", " + plural(data.test->count, "test sample") : "",
                                spec.batch, plural(spec.epochs, "epoch"),
                                dp ? fmt::format(", data-parallel on {} processes", dp->size())
                                   : ""));
    if (a.engine == "jit")
      notes.push_back(fmt::format(
          "compiled the train step in {:.0f} ms (alongside loading the data)",
          engine->compileMillis()));
    if (!a.init.empty()) {
      start = loadCheckpoint(a.init, *engine, spec);
      std::string resuming;
      if (start.epoch_step)
        resuming = fmt::format(" (resuming in epoch {} after its step {}, step {})",
                               start.epoch + 1, start.epoch_step, start.step);
      else if (start.step)
        resuming = fmt::format(" (resuming after epoch {}, step {})", start.epoch, start.step);
      notes.push_back(fmt::format("loaded {}{}", a.init, resuming));
    } else {
      initParams(*engine, seedOf(spec, a, 0));
    }
    o.epochs = spec.epochs;
    o.batch = spec.batch;
    o.seed = seedOf(spec, a, 0);
    o.shuffle = !a.no_shuffle;
    o.save_path = lead ? a.save : "";
    o.metrics_path = lead ? a.metrics : "";
    o.metrics_append = !a.init.empty();
    if (std::string why = resumeMismatch(start, o, data.train.count); !why.empty())
      throw UsageError(fmt::format("{}: {}", a.init, why));
    o.progress_bar = a.tty && lead;
    o.interrupt = a.interrupt;
    o.dp = dp;
    if (lead)
      o.print = [](const std::string& line) {
        fmt::print("{}\n", line);
        std::fflush(stdout);
      };
  };
  if (!dp) {
    setup();
    printNotes();
    TrainResult r = train(*engine, spec, data.train, data.test ? &*data.test : nullptr, o, start);
    if (!a.save.empty()) fmt::print("saved {}\n", a.save);
    return r.interrupted ? 130 : 0;
  }
  std::string error;
  int code = 0;
  try {
    setup();
  } catch (const ReportedError&) {
    error = "the model file has errors (above)";
    code = 1;
  } catch (const UsageError& e) {
    error = e.what();
    code = 2;
  } catch (const std::exception& e) {
    error = e.what();
    code = 1;
  }
  if (auto [msg, rc] = dp->agree(error, code); !msg.empty()) {
    if (lead) fmt::print(stderr, "error: {}\n", msg);
    return rc;
  }
  printNotes();
  std::fflush(stdout);
  TrainResult r;
  try {
    r = train(*engine, spec, data.train, data.test ? &*data.test : nullptr, o, start);
  } catch (const DivergedError& e) {
    // The global loss diverged: every rank knows it at the same step.
    if (lead) fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    // One rank failed alone (a write on rank 0, memory): the others would
    // wait for it in the next reduction, so the whole job ends now.
    fmt::print(stderr, "error: rank {} of {}: {}\n", dp->rank(), dp->size(), e.what());
    std::fflush(stderr);
    dp->abort(1);
  }
  if (lead && !a.save.empty()) fmt::print("saved {}\n", a.save);
  return r.interrupted ? 130 : 0;
}

namespace {

/// `eval` and `predict` under mpirun with several processes: each rank would
/// run the whole command (N copies of the output, N writers of --out), so
/// they are refused before anything is read, with one message: rank 0
/// throws the error (the job's exit code, 2); the other ranks return true
/// and end quietly with 0, which lets mpirun wait for rank 0's message
/// instead of ending the job, rank 0 included, at the first non-zero exit.
bool refuseDataParallel(const std::string& command) {
  const int world = launchedWorldSize();
  if (world <= 1) return false;
  if (launchedRank() != 0) return true;
  throw UsageError(fmt::format("descent {} does not run data-parallel ({} processes): run it "
                               "without mpirun (one process evaluates the whole data set)",
                               command, world));
}

} // namespace

int runEval(const CommonArgs& a) {
  if (refuseDataParallel("eval")) return 0;
  ModelSpec spec = loadModel(a.model);
  applyOverrides(spec, a);
  DataSplit data = loadData(spec, a, /*eval_only=*/true);
  const Dataset& d = data.test ? *data.test : data.train;
  auto engine = makeEngine(spec, a, d.is_u8);
  loadWeights(a.weights, *engine);
  EvalStats s = evaluate(*engine, spec, d, spec.batch);
  std::cout << renderEval(s, d.source, classNames(spec, a));
  return 0;
}

namespace {

/// The CSV `predict --out` writes: for class targets the predicted class and
/// the class probabilities (as `predict` draws them), for real targets the
/// model's outputs; `index` is the sample's 0-based position in the data.
std::string predictionsCsv(Engine& engine, const ModelSpec& spec, const Dataset& d) {
  const bool classes = spec.target_kind == TargetKind::Class;
  const int64_t outputs = spec.outputSize();
  std::string csv = classes ? "index,predicted" : "index";
  for (int64_t j = 0; j < outputs; ++j)
    csv += classes        ? fmt::format(",prob_{}", j)
           : outputs == 1 ? "," + spec.target_name
                          : fmt::format(",{}_{}", spec.target_name, j);
  csv += '\n';
  std::vector<int64_t> order(size_t(d.count));
  std::iota(order.begin(), order.end(), 0);
  BatchBuffers buf;
  std::vector<float> row;
  for (int64_t begin = 0; begin < d.count; begin += spec.batch) {
    const int64_t end = std::min(d.count, begin + spec.batch);
    gatherBatch(d, order, begin, end, buf);
    EvalResult r = engine.eval(buf.x(), buf.y(), end - begin);
    for (int64_t i = 0; i < end - begin; ++i) {
      csv += std::to_string(begin + i);
      const float* out = r.output + i * outputs;
      if (classes) {
        row.assign(out, out + outputs);
        std::vector<double> p = outputProbabilities(spec, row);
        csv += fmt::format(",{}", std::max_element(p.begin(), p.end()) - p.begin());
        for (double v : p)
          csv += fmt::format(",{:.9g}", v);
      } else {
        for (int64_t j = 0; j < outputs; ++j)
          csv += fmt::format(",{:.9g}", out[j]);
      }
      csv += '\n';
    }
  }
  return csv;
}

} // namespace

int runPredict(const CommonArgs& a) {
  if (refuseDataParallel("predict")) return 0;
  ModelSpec spec = loadModel(a.model);
  if (!a.out.empty()) checkWritable(a.out);
  DataSplit data = loadData(spec, a, /*eval_only=*/true, /*targets_optional=*/true);
  const Dataset& d = data.test ? *data.test : data.train;
  if (a.out.empty() && a.index >= d.count)
    throw UsageError(fmt::format("--index {} is out of range: {} has {}", a.index, d.source,
                                 plural(d.count, "sample")));
  auto engine = makeEngine(spec, a, d.is_u8);
  loadWeights(a.weights, *engine);
  if (!a.out.empty()) {
    writeFileAtomic(a.out, predictionsCsv(*engine, spec, d));
    fmt::print("wrote {} for {} to {}\n", plural(d.count, "prediction"), d.source, a.out);
    return 0;
  }
  BatchBuffers buf;
  std::vector<int64_t> idx{a.index};
  gatherBatch(d, idx, 0, 1, buf);
  EvalResult r = engine->eval(buf.x(), buf.y(), 1);
  std::vector<float> out(r.output, r.output + spec.outputSize());
  std::cout << renderPrediction(spec, d, a.index, out, classNames(spec, a));
  return 0;
}

} // namespace descent

namespace descent {

int runGradcheck(const CommonArgs& a) {
  ModelSpec spec = loadModel(a.model);
  GradcheckOptions o;
  o.seed = seedOf(spec, a, 0);
  if (o.seed == 0) o.seed = 1;
  GradcheckReport r = gradcheck(spec, o);
  std::cout << r.text;
  if (!r.passed) {
    fmt::print(stderr, "error: {}: gradients differ from finite differences (tolerance {:g})\n",
               a.model, o.tolerance);
    return 1;
  }
  return 0;
}

} // namespace descent
