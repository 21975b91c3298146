// Checkpoints and the training loop under faults: a process killed between the
// two files of a checkpoint, a full disk, unwritable outputs, planted symlinks,
// permissions, malformed or huge optimizer metadata, non-UTF-8 model names,
// and an exact resume after an interruption in the middle of an epoch.
#include "runtime/atomic_file.h"
#include "runtime/checkpoint.h"
#include "runtime/init.h"
#include "runtime/safetensors.h"
#include "runtime/trainer.h"
#include "runtime_test_util.h"
#include "tests/common/test_support.h"

#include "compiler/interp/dropout_rng.h"

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace descent;
using namespace descent::testutil;

namespace {

std::string errorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const DataError& e) {
    return e.what();
  }
  return "(no DataError)";
}

/// A small classifier with optimizer state and Dropout (so the step and the
/// seed matter), written to `dir`.
ModelSpec smallModel(const TempDir& dir, const std::string& optimizer, bool dropout = true,
                     const std::string& extra = "") {
  std::string path = dir / "small.nn";
  writeBytes(path, fmt::format(R"(input  x: f32[4]
target y: class[3]
model = Sequential(Linear(4, 8), ReLU(), {}Linear(8, 3), LogSoftmax(dim=1))
loss      = NLLLoss()
optimizer = {}
batch     = 7
epochs    = 2
{}
)",
                               dropout ? "Dropout(p=0.25), " : "", optimizer, extra));
  return testsupport::loadModel(path);
}

/// 50 samples of 4 features and 3 classes (50 = 7 batches of 7 and one of 1).
Dataset smallData() {
  Dataset d;
  d.source = "small";
  d.count = 50;
  d.features = 4;
  d.target_size = 3;
  for (int64_t i = 0; i < d.count; ++i) {
    for (int j = 0; j < 4; ++j)
      d.f32.push_back(std::sin(float(i * 4 + j) * 0.7f));
    d.labels.push_back(int32_t((i * 7) % 3));
  }
  return d;
}

std::unique_ptr<Engine> makeEngine(const ModelSpec& spec, const std::string& kind) {
  EngineOptions o;
  o.batch = spec.batch;
  o.threads = 1;
  return kind == "jit" ? makeJitEngine(spec, o) : makeInterpEngine(spec, o);
}

/// Forwards to an engine and raises `flag` after `stop_after` train steps, as
/// a SIGINT handler would between two steps.
class InterruptingEngine final : public Engine {
public:
  InterruptingEngine(Engine& e, int64_t stop_after, std::atomic<bool>& flag)
      : e_(e), left_(stop_after), flag_(flag) {}
  const std::vector<TensorInfo>& params() const override { return e_.params(); }
  const std::vector<TensorInfo>& states() const override { return e_.states(); }
  float* param(const std::string& n) override { return e_.param(n); }
  float* state(const std::string& n) override { return e_.state(n); }
  float trainStep(const void* x, const void* y, int64_t n, int64_t step, int32_t seed) override {
    float loss = e_.trainStep(x, y, n, step, seed);
    if (--left_ == 0) flag_ = true;
    return loss;
  }
  void setHyper(double lr, double momentum) override { e_.setHyper(lr, momentum); }
  EvalResult eval(const void* x, const void* y, int64_t n) override { return e_.eval(x, y, n); }

private:
  Engine& e_;
  int64_t left_;
  std::atomic<bool>& flag_;
};

TrainOptions options(const std::string& save, const std::string& metrics = "") {
  TrainOptions o;
  o.epochs = 2;
  o.batch = 7;
  o.seed = 5;
  o.save_path = save;
  o.metrics_path = metrics;
  return o;
}

std::vector<float> stateOf(Engine& e, const std::string& name) {
  for (const TensorInfo& s : e.states())
    if (s.name == name) return {e.state(name), e.state(name) + s.numel()};
  for (const TensorInfo& p : e.params())
    if (p.name == name) return {e.param(name), e.param(name) + p.numel()};
  FAIL("no tensor " << name);
  return {};
}

/// Rewrites one metadata entry of a safetensors file.
void setMeta(const std::string& path, const std::string& key, const std::string& value) {
  SafeTensors st = readSafetensors(path);
  st.metadata[key] = value;
  writeSafetensors(path, st);
}

/// Makes model file `run` expect optimizer file `opt` as it is now (after an
/// edit), as if they had been saved together.
void pairUp(const std::string& run, const std::string& opt) {
  std::string bytes = readFile(opt);
  uLong crc =
      crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(bytes.data()), uInt(bytes.size()));
  setMeta(run, "optimizer_file_crc32", fmt::format("{:08x}", crc));
}

// write(2) stand-ins for the fault-injection tests. Test-only state: the
// hooks are plain function pointers.
int g_writes_before_enospc = 0;
ssize_t writeUntilFull(int fd, const void* buf, size_t n) {
  if (g_writes_before_enospc-- <= 0) {
    errno = ENOSPC;
    return -1;
  }
  return ::write(fd, buf, n);
}
ssize_t writeHalfThenFull(int fd, const void* buf, size_t n) {
  if (n > 1) return ::write(fd, buf, n / 2);
  errno = ENOSPC;
  return -1;
}

} // namespace

TEST_CASE("atomic writes never follow a planted symlink", "[atomic][faults]") {
  TempDir d;
  writeBytes(d / "victim", "precious");
  // The name the temporary used to have (path.tmp-<pid>), and the target itself.
  std::filesystem::create_symlink(d / "victim", d / ("ckpt.tmp-" + std::to_string(::getpid())));
  writeFileAtomic(d / "ckpt", "new");
  CHECK(readFile(d / "victim") == "precious");
  CHECK(readFile(d / "ckpt") == "new");
  std::filesystem::create_symlink(d / "victim", d / "link");
  writeFileAtomic(d / "link", "replaced");
  CHECK(readFile(d / "victim") == "precious");
  CHECK(!std::filesystem::is_symlink(d / "link"));
  CHECK(readFile(d / "link") == "replaced");
}

TEST_CASE("atomic writes keep the permissions of the file they replace", "[atomic]") {
  TempDir d;
  writeFileAtomic(d / "private", "v1");
  REQUIRE(::chmod((d / "private").c_str(), 0600) == 0);
  writeFileAtomic(d / "private", "v2");
  struct stat st {};
  REQUIRE(::stat((d / "private").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  // A new file gets the usual 0666 & ~umask.
  mode_t mask = ::umask(022);
  ::umask(mask);
  writeFileAtomic(d / "fresh", "x");
  REQUIRE(::stat((d / "fresh").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == (0666 & ~mask));
}

TEST_CASE("a full disk leaves the old file and no temporary", "[atomic][faults]") {
  TempDir d;
  writeFileAtomic(d / "ckpt", "old contents");
  WriteFaults full;
  full.write = writeHalfThenFull;
  std::string big(1000, 'x');
  CHECK(errorOf([&] { writeFileAtomic(d / "ckpt", big, &full); }) ==
        d / "ckpt" + ": No space left on device");
  CHECK(readFile(d / "ckpt") == "old contents");
  CHECK(listDir(d.path()) == std::vector<std::string>{"ckpt"});
}

TEST_CASE("checkWritable finds unwritable outputs before any work", "[atomic][faults]") {
  TempDir d;
  checkWritable(d / "ok.safetensors");
  CHECK(listDir(d.path()).empty());
  CHECK(errorOf([&] { checkWritable(d / "missing/x.safetensors"); }) ==
        d / "missing/x.safetensors" + ": No such file or directory");
  CHECK(errorOf([&] { checkWritable(d.path()); }) == d.path() + ": Is a directory");
  // An unwritable directory: mode 0555, or for root (who ignores modes) sysfs.
  std::string ro = d / "ro";
  std::filesystem::create_directory(ro);
  REQUIRE(::chmod(ro.c_str(), 0555) == 0);
  std::string target = ::geteuid() == 0 ? "/sys/descent-test.safetensors" : ro + "/x.safetensors";
  // What the system says (EACCES, or EROFS where /sys is mounted read-only).
  int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  REQUIRE(fd < 0);
  const std::string why = std::strerror(errno);
  CHECK(errorOf([&] { checkWritable(target); }) == target + ": " + why);
  ::chmod(ro.c_str(), 0755);
}

TEST_CASE("a checkpoint pair split by a kill between the two renames is refused",
          "[checkpoint][faults]") {
  TempDir d;
  ModelSpec spec = smallModel(d, "SGD(lr=0.1, momentum=0.9)");
  auto engine = makeEngine(spec, "interp");
  initParams(*engine, 1);
  Dataset data = smallData();
  TrainOptions o = options(d / "run.safetensors");
  o.epochs = 1;
  TrainResult r1 = train(*engine, spec, data, nullptr, o, {});
  REQUIRE(loadCheckpoint(d / "run.safetensors", *engine, spec).step == r1.progress.step);

  // Epoch 2 is saved by a child process that dies right after the first rename.
  TrainResult r2 = train(
      *engine, spec, data, nullptr,
      [&] {
        TrainOptions o2 = o;
        o2.save_path.clear();
        return o2;
      }(),
      r1.progress);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    WriteFaults die;
    die.after_rename = [](const std::string&) { ::_exit(0); };
    saveCheckpoint(d / "run.safetensors", *engine, spec, r2.progress, &die);
    ::_exit(1); // not reached: the first rename kills us
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);

  auto fresh = makeEngine(spec, "interp");
  std::string err = errorOf([&] { loadCheckpoint(d / "run.safetensors", *fresh, spec); });
  CHECK(
      err.rfind(d / "run.optim.safetensors: belongs to another save than " + d / "run.safetensors",
                0) == 0);
  CHECK(err.find("delete " + d / "run.optim.safetensors") != std::string::npos);
  // eval and predict need only the weights.
  loadWeights(d / "run.safetensors", *fresh);
}

TEST_CASE("a full disk during a checkpoint keeps the previous pair loadable",
          "[checkpoint][faults]") {
  TempDir d;
  ModelSpec spec = smallModel(d, "SGD(lr=0.1, momentum=0.9)");
  auto engine = makeEngine(spec, "interp");
  initParams(*engine, 1);
  Dataset data = smallData();
  TrainOptions o = options(d / "run.safetensors");
  o.epochs = 1;
  TrainResult r1 = train(*engine, spec, data, nullptr, o, {});
  const std::string model_bytes = readFile(d / "run.safetensors");
  const std::string optim_bytes = readFile(d / "run.optim.safetensors");
  o.save_path.clear();
  TrainResult r2 = train(*engine, spec, data, nullptr, o, r1.progress);
  // The optimizer file is written, then the disk fills during the model file.
  g_writes_before_enospc = 1;
  WriteFaults full;
  full.write = writeUntilFull;
  CHECK(errorOf([&] {
          saveCheckpoint(d / "run.safetensors", *engine, spec, r2.progress, &full);
        }) == d / "run.safetensors: No space left on device");
  CHECK(readFile(d / "run.safetensors") == model_bytes);
  CHECK(readFile(d / "run.optim.safetensors") == optim_bytes);
  CHECK(listDir(d.path()) ==
        std::vector<std::string>{"run.optim.safetensors", "run.safetensors", "small.nn"});
  auto fresh = makeEngine(spec, "interp");
  CHECK(loadCheckpoint(d / "run.safetensors", *fresh, spec).step == r1.progress.step);
}

TEST_CASE("loadWeights ignores a damaged optimizer file and loadCheckpoint names it",
          "[checkpoint]") {
  TempDir d;
  ModelSpec spec = smallModel(d, "Adam(lr=0.01)");
  auto engine = makeEngine(spec, "interp");
  initParams(*engine, 1);
  saveCheckpoint(d / "run.safetensors", *engine, spec, {});
  writeBytes(d / "run.optim.safetensors", "garbage");
  loadWeights(d / "run.safetensors", *engine);
  CHECK(errorOf([&] {
          loadCheckpoint(d / "run.safetensors", *engine, spec);
        }).rfind(d / "run.optim.safetensors: ", 0) == 0);
}

TEST_CASE("optimizer metadata is validated strictly", "[checkpoint][errors]") {
  TempDir d;
  ModelSpec spec = smallModel(d, "Adam(lr=0.01)");
  auto engine = makeEngine(spec, "interp");
  initParams(*engine, 1);
  const std::string run = d / "run.safetensors", opt = d / "run.optim.safetensors";
  TrainProgress p;
  p.step = 938;
  p.epoch = 2;
  saveCheckpoint(run, *engine, spec, p);
  const std::string good = readFile(opt);
  struct Case {
    const char* key;
    std::string value, expected;
  };
  const Case cases[] = {
      {"epoch", "9223372036854775807",
       "bad 'epoch' metadata '9223372036854775807': expected an integer from 0 to 938"},
      {"epoch", "-1", "bad 'epoch' metadata '-1': expected an integer from 0 to 938"},
      {"step", "938abc",
       "bad 'step' metadata '938abc': expected an integer from 0 to 9007199254740992"},
      {"step", " 938",
       "bad 'step' metadata ' 938': expected an integer from 0 to 9007199254740992"},
      {"step", "", "bad 'step' metadata '': expected an integer from 0 to 9007199254740992"},
      {"step", "9\n38",
       "bad 'step' metadata '9?38': expected an integer from 0 to 9007199254740992"},
      {"step", "18446744073709551616",
       "bad 'step' metadata '18446744073709551616': expected an integer from 0 to "
       "9007199254740992"},
      {"step", "1", "bad 'epoch' metadata '2': expected an integer from 0 to 1"},
      {"epoch_step", "937", "bad 'epoch_step' metadata '937': expected an integer from 0 to 936"},
  };
  for (const Case& c : cases) {
    INFO(c.key << " = " << c.value);
    writeBytes(opt, good);
    setMeta(opt, c.key, c.value);
    pairUp(run, opt);
    CHECK(errorOf([&] { loadCheckpoint(run, *engine, spec); }) == opt + ": " + c.expected);
  }
  writeBytes(opt, good);
  SafeTensors st = readSafetensors(opt);
  st.metadata.erase("step");
  writeSafetensors(opt, st);
  pairUp(run, opt);
  CHECK(errorOf([&] { loadCheckpoint(run, *engine, spec); }) == opt + ": missing 'step' metadata");
  // A mid-epoch position beyond the end of the epoch.
  writeBytes(opt, good);
  for (auto [k, v] : {std::pair<const char*, const char*>{"epoch_step", "8"},
                      {"seed", "5"},
                      {"shuffle", "true"},
                      {"batch", "7"},
                      {"samples", "50"},
                      {"epoch_loss_sum", "1.5"}})
    setMeta(opt, k, v);
  pairUp(run, opt);
  CHECK(
      errorOf([&] { loadCheckpoint(run, *engine, spec); }) ==
      opt +
          ": bad 'epoch_step' metadata 8: an epoch of 50 samples in batches of 7 has fewer steps");
  setMeta(opt, "epoch_step", "7");
  pairUp(run, opt);
  CHECK(loadCheckpoint(run, *engine, spec).epoch_step == 7);
  setMeta(opt, "epoch_loss_sum", "nan");
  pairUp(run, opt);
  CHECK(errorOf([&] { loadCheckpoint(run, *engine, spec); }) ==
        opt + ": bad 'epoch_loss_sum' metadata 'nan': expected a finite number");
}

TEST_CASE("steps beyond 2^31 and 2^32 reach the kernels intact", "[checkpoint][engine]") {
  TempDir d;
  Dataset data = smallData();
  BatchBuffers buf;
  std::vector<int64_t> idx(50);
  for (int64_t i = 0; i < 50; ++i)
    idx[size_t(i)] = i;
  gatherBatch(data, idx, 0, 7, buf);
  for (const char* kind : {"jit", "interp"}) {
    INFO(kind);
    // SGD momentum: only step 1 starts the buffer from the gradient; 2^31
    // used to arrive as a negative number and 2^32 + 1 as 1. (No Dropout: its
    // mask depends on the step.)
    ModelSpec sgd = smallModel(d, "SGD(lr=0.1, momentum=0.9)", false);
    std::vector<std::vector<float>> after;
    for (int64_t step : {int64_t(2), (int64_t(1) << 31), (int64_t(1) << 32) + 1}) {
      auto e = makeEngine(sgd, kind);
      initParams(*e, 3);
      for (const TensorInfo& s : e->states())
        std::fill_n(e->state(s.name), s.numel(), 0.5f);
      CHECK(std::isfinite(e->trainStep(buf.x(), buf.y(), 7, step, 0)));
      after.push_back(stateOf(*e, "0.weight.momentum_buffer"));
    }
    CHECK(after[1] == after[0]);
    CHECK(after[2] == after[0]);
    // Adam's bias corrections 1 - beta^step are the same at 10^7, 2^31 and
    // 2^32, not the NaN of a negative step.
    ModelSpec adam = smallModel(d, "Adam(lr=0.01)", false);
    std::vector<std::vector<float>> weights;
    for (int64_t step : {int64_t(10000000), (int64_t(1) << 31), (int64_t(1) << 32)}) {
      auto a = makeEngine(adam, kind);
      initParams(*a, 3);
      CHECK(std::isfinite(a->trainStep(buf.x(), buf.y(), 7, step, 0)));
      weights.push_back(stateOf(*a, "0.weight"));
    }
    CHECK(weights[1] == weights[0]);
    CHECK(weights[2] == weights[0]);
  }
}

TEST_CASE("dropout masks of steps 2^32 apart differ", "[engine]") {
  const int64_t big = (int64_t(1) << 32) + 1;
  int same = 0;
  for (uint64_t i = 0; i < 256; ++i)
    same += dropoutBits(7, 1, 3, i) == dropoutBits(7, big, 3, i);
  CHECK(same < 8);
}

TEST_CASE("non-UTF-8 model names are saved with U+FFFD", "[checkpoint]") {
  TempDir d;
  ModelSpec spec = smallModel(d, "Adam(lr=0.01)");
  spec.name = "model\xff\xfe-\xc3\xa9";
  auto engine = makeEngine(spec, "interp");
  initParams(*engine, 1);
  saveCheckpoint(d / "run.safetensors", *engine, spec, {});
  CHECK(readSafetensors(d / "run.safetensors").metadata.at("model") ==
        "model\xef\xbf\xbd\xef\xbf\xbd-\xc3\xa9");
}

TEST_CASE("a run interrupted mid-epoch resumes bit for bit", "[checkpoint][trainer]") {
  for (const char* kind : {"jit", "interp"}) {
    for (const char* opt : {"SGD(lr=0.1, momentum=0.9)", "Adam(lr=0.01)",
                            "RMSprop(lr=0.01, momentum=0.5, centered=True, weight_decay=0.01)",
                            // Adagrad's sum starts at initial_accumulator_value, its clr
                            // decays with the step: both must continue, not restart
                            "Adagrad(lr=0.05, lr_decay=0.1, initial_accumulator_value=0.2)",
                            "Adadelta(lr=0.5, weight_decay=0.01)"}) {
      INFO(kind << " " << opt);
      TempDir d;
      ModelSpec spec = smallModel(d, opt);
      Dataset data = smallData();
      Dataset test = smallData();

      auto straight = makeEngine(spec, kind);
      initParams(*straight, 1);
      TrainResult full =
          train(*straight, spec, data, &test, options(d / "a.safetensors", d / "a.jsonl"), {});
      REQUIRE(full.epochs.size() == 2);

      // Stop after step 11 = step 3 of epoch 2, then resume from the checkpoint.
      std::atomic<bool> flag{false};
      auto inner = makeEngine(spec, kind);
      initParams(*inner, 1);
      InterruptingEngine stopping(*inner, 11, flag);
      TrainOptions o = options(d / "b.safetensors", d / "b.jsonl");
      o.interrupt = &flag;
      TrainResult part = train(stopping, spec, data, &test, o, {});
      CHECK(part.interrupted);
      CHECK(part.epochs.size() == 1);

      auto resumed = makeEngine(spec, kind);
      TrainProgress start = loadCheckpoint(d / "b.safetensors", *resumed, spec);
      CHECK(start.step == 11);
      CHECK(start.epoch == 1);
      CHECK(start.epoch_step == 3);
      TrainOptions r = options(d / "b.safetensors", d / "b.jsonl");
      r.epochs = 1; // the rest of epoch 2
      r.metrics_append = true;
      TrainResult rest = train(*resumed, spec, data, &test, r, start);
      REQUIRE(rest.epochs.size() == 1);
      CHECK(rest.epochs[0].epoch == 2);
      CHECK(rest.epochs[0].train_loss == full.epochs[1].train_loss);
      CHECK(rest.epochs[0].test_loss == full.epochs[1].test_loss);
      CHECK(rest.progress.step == full.progress.step);
      CHECK(readFile(d / "b.safetensors") == readFile(d / "a.safetensors"));
      for (const TensorInfo& s : straight->states())
        CHECK(stateOf(*resumed, s.name) == stateOf(*straight, s.name));
      // The metrics of both epochs, in order, as in the straight run.
      auto lines = [](const std::string& text) {
        std::vector<nlohmann::json> rows;
        std::istringstream in(text);
        for (std::string l; std::getline(in, l);) {
          auto j = nlohmann::json::parse(l);
          rows.push_back({j["epoch"], j["train_loss"], j["test_loss"]});
        }
        return rows;
      };
      CHECK(lines(readFile(d / "b.jsonl")) == lines(readFile(d / "a.jsonl")));
    }
  }
}

TEST_CASE("a run with a learning-rate schedule resumes bit for bit", "[checkpoint][trainer][scheduler]") {
  // OneCycleLR steps (and cycles SGD's momentum) after every batch, the others
  // after every epoch; ReduceLROnPlateau reads the test loss.
  const std::pair<const char*, const char*> runs[] = {
      {"SGD(lr=0.1)", "scheduler = OneCycleLR(optimizer, max_lr=0.2)"},
      {"Adam(lr=0.01)", "scheduler = ReduceLROnPlateau(factor=0.5, patience=0, threshold=0.3)"},
      {"SGD(lr=0.1, momentum=0.9)", "scheduler = StepLR(step_size=1, gamma=0.5)"},
      // RMSprop's momentum is cycled like SGD's (torch: 'momentum' in its defaults)
      {"RMSprop(lr=0.01, momentum=0.5)", "scheduler = OneCycleLR(optimizer, max_lr=0.02)"}};
  for (const char* kind : {"jit", "interp"}) {
    for (auto [opt, sched] : runs) {
      INFO(kind << " " << opt << " " << sched);
      TempDir d;
      ModelSpec spec = smallModel(d, opt, true, sched);
      REQUIRE(spec.scheduler);
      Dataset data = smallData(), test = smallData();
      auto straight = makeEngine(spec, kind);
      initParams(*straight, 1);
      TrainOptions o = options(d / "a.safetensors", d / "a.jsonl");
      o.epochs = 4;
      TrainResult full = train(*straight, spec, data, &test, o, {});
      REQUIRE(full.epochs.size() == 4);
      // The rate changes from epoch to epoch.
      CHECK(full.epochs[0].lr != full.epochs[3].lr);

      // Stop after step 11 (mid-epoch 2), resume for the other 2.6 epochs.
      std::atomic<bool> flag{false};
      auto inner = makeEngine(spec, kind);
      initParams(*inner, 1);
      InterruptingEngine stopping(*inner, 11, flag);
      TrainOptions b = options(d / "b.safetensors", d / "b.jsonl");
      b.epochs = 4;
      b.interrupt = &flag;
      REQUIRE(train(stopping, spec, data, &test, b, {}).interrupted);
      auto resumed = makeEngine(spec, kind);
      TrainProgress start = loadCheckpoint(d / "b.safetensors", *resumed, spec);
      CHECK(!start.scheduler.empty());
      b.interrupt = nullptr;
      b.epochs = 3; // the rest of epoch 2, then 3 and 4
      b.metrics_append = true;
      TrainResult rest = train(*resumed, spec, data, &test, b, start);
      REQUIRE(rest.epochs.size() == 3);
      for (size_t i = 0; i < 3; ++i) {
        CHECK(rest.epochs[i].lr == full.epochs[i + 1].lr);
        CHECK(rest.epochs[i].train_loss == full.epochs[i + 1].train_loss);
      }
      CHECK(readFile(d / "b.safetensors") == readFile(d / "a.safetensors"));
      CHECK(readFile(d / "b.optim.safetensors") == readFile(d / "a.optim.safetensors"));
    }
  }
}

TEST_CASE("a schedule's state is checked when a run resumes", "[checkpoint][trainer][scheduler]") {
  TempDir d;
  ModelSpec step = smallModel(d, "SGD(lr=0.1)", false, "scheduler = StepLR(step_size=1)");
  Dataset data = smallData();
  auto e = makeEngine(step, "jit");
  initParams(*e, 1);
  TrainOptions o = options(d / "a.safetensors");
  o.epochs = 1;
  train(*e, step, data, nullptr, o, {});
  // Another schedule in the model file: refused before training, naming both.
  ModelSpec cosine = smallModel(d, "SGD(lr=0.1)", false, "scheduler = CosineAnnealingLR(T_max=3)");
  auto c = makeEngine(cosine, "jit");
  TrainProgress start = loadCheckpoint(d / "a.safetensors", *c, cosine);
  try {
    train(*c, cosine, data, nullptr, o, start);
    FAIL("no error");
  } catch (const std::invalid_argument& err) {
    CHECK(std::string(err.what()) ==
          "the checkpoint was saved with scheduler StepLR, but the model file's is CosineAnnealingLR");
  }
  // Damaged state.
  setMeta(d / "a.optim.safetensors", "scheduler", R"({"kind":"StepLR","last_epoch":1})");
  pairUp(d / "a.safetensors", d / "a.optim.safetensors");
  start = loadCheckpoint(d / "a.safetensors", *e, step);
  try {
    train(*e, step, data, nullptr, o, start);
    FAIL("no error");
  } catch (const std::invalid_argument& err) {
    CHECK(std::string(err.what()) == "the checkpoint has bad 'scheduler' metadata: no number 'lr'");
  }
  // OneCycleLR with fewer total steps than the run: refused before any step.
  ModelSpec one = smallModel(d, "SGD(lr=0.1)", false, "scheduler = OneCycleLR(max_lr=0.1, total_steps=10)");
  auto f = makeEngine(one, "jit");
  initParams(*f, 1);
  std::vector<float> before = stateOf(*f, "0.weight");
  o.epochs = 2; // 16 steps
  try {
    train(*f, one, data, nullptr, o, {});
    FAIL("no error");
  } catch (const std::invalid_argument& err) {
    CHECK(std::string(err.what()).find("OneCycleLR(): total_steps is 10 but this run takes 16 steps") !=
          std::string::npos);
  }
  CHECK(stateOf(*f, "0.weight") == before);
}

TEST_CASE("a mid-epoch checkpoint resumes only with the same seed, batch and data",
          "[checkpoint][trainer]") {
  TrainProgress p;
  p.step = 11;
  p.epoch = 1;
  p.epoch_step = 3;
  p.seed = 5;
  p.batch = 7;
  p.samples = 50;
  TrainOptions o = options("");
  CHECK(resumeMismatch(p, o, 50).empty());
  o.seed = 6;
  CHECK(resumeMismatch(p, o, 50) ==
        "was interrupted in epoch 2 after 3 steps of a run with --seed 5 --batch 7 on 50 samples; "
        "finishing that epoch exactly needs the same (this run has --seed 6 --batch 7 on 50 "
        "samples)");
  o.seed = 5;
  CHECK(!resumeMismatch(p, o, 49).empty());
  o.shuffle = false;
  CHECK(!resumeMismatch(p, o, 50).empty());
  p.epoch_step = 0;
  CHECK(resumeMismatch(p, o, 49).empty());
}

TEST_CASE("a failing metrics write still saves the checkpoint", "[trainer][faults]") {
  TempDir d;
  ModelSpec spec = smallModel(d, "Adam(lr=0.01)");
  auto engine = makeEngine(spec, "interp");
  initParams(*engine, 1);
  Dataset data = smallData();
  TrainOptions o = options(d / "run.safetensors", d / "gone/m.jsonl");
  o.epochs = 1;
  CHECK(errorOf([&] { train(*engine, spec, data, nullptr, o, {}); }) ==
        d / "gone/m.jsonl: No such file or directory (the checkpoint " + d / "run.safetensors" +
            " of epoch 1 was saved)");
  auto fresh = makeEngine(spec, "interp");
  CHECK(loadCheckpoint(d / "run.safetensors", *fresh, spec).epoch == 1);
}
