// Differential tests: JIT kernels vs the reference interpreter (fp32) on every
// model in models/ and tests/reference/fixtures/: train trajectories, gradients,
// eval outputs; batch remainders; 1 and 2 threads; the AVX2 (x86-64-v3) target.
//
// Tolerances: both sides compute in fp32 but not in the same order (the JIT
// contracts a*b+c into FMAs, sums rows in vector lanes, and uses polynomial
// exp/log accurate to ~2 ulp), so each value may differ by a few ulp times
// the condition of the computation. Relative 2e-5 of the tensor's largest
// magnitude covers K=784 dot products comfortably (observed ~1e-6) while
// still catching any indexing or semantic error (those are O(1)).
#include "helpers.h"

#include <cstring>

using namespace descent;
using namespace descent::cgtest;

namespace {

constexpr double kTol = 2e-5;

struct TrainCase {
  int64_t batch;
  std::vector<int64_t> rows; ///< n of each step (<= batch): remainders included
  int threads;
  std::string cpu;
};

/// Runs the train step on the JIT (graph built for `batch`, run on n rows) and
/// on the interpreter (graph built for exactly n rows), comparing the loss
/// and every param and state after each step.
void checkTrain(const std::string& path, const TrainCase& tc, const std::string& source = "") {
  ModelSpec spec = source.empty() ? loadModel(path) : specFromText(path, source);
  bool u8 = spec.fitsDefaultData(); // image models read pixels
  BuildOptions opts;
  opts.batch = tc.batch;
  opts.input_u8 = u8;
  auto train = buildTrainGraph(spec, opts);
  std::string err;
  // split_all: every kernel's partition is exercised, not only the big GEMMs'.
  auto prog = Program::compile({train.get()}, JitOptions{tc.cpu, tc.threads, true}, err);
  INFO(path << ": " << err);
  REQUIRE(prog);
  INFO(prog->kernelsText());
  InterpState<float> st;
  st.params = randomParams(*train, 7);
  for (size_t i = 0; i < st.params.size(); ++i) {
    float* p = prog->param(train->params()[i]->external_name);
    REQUIRE(p);
    std::memcpy(p, st.params[i].data(), st.params[i].size() * 4);
  }
  bool first = true;
  for (size_t s = 0; s < tc.rows.size(); ++s) {
    int64_t n = tc.rows[s];
    int32_t step = int32_t(s + 1), seed = 1234;
    BuildOptions io = opts;
    io.batch = n;
    auto ref = buildTrainGraph(spec, io);
    if (first) initInterpState(*ref, st);
    first = false;
    Batch b = makeBatch(spec, n, uint32_t(100 + s));
    auto out = interpret(*ref, interpInputs(*ref, b, n, u8, step, seed), st);
    prog->run(0, b.x(u8), b.y(), n, step, seed);
    INFO("step " << step << " n=" << n);
    float jl = prog->outputScalar(0, "loss");
    REQUIRE(std::fabs(jl - out["loss"][0]) <= kTol * (1 + std::fabs(out["loss"][0])));
    // Adam moves every weight by ~lr * m/(sqrt(v)+eps): where a gradient
    // element cancels to ~0 its own relative error is large, and so is the
    // direction of that step, whatever the gradient's absolute accuracy. Allow
    // 5% of one step there (semantic errors are whole steps or more).
    double atol = spec.optimizer.kind != OptimizerKind::SGD ? 0.05 * spec.optimizer.lr : 0.0;
    for (size_t i = 0; i < ref->params().size(); ++i)
      requireClose(prog->param(ref->params()[i]->external_name), st.params[i], kTol,
                   ref->params()[i]->external_name, atol);
    for (size_t i = 0; i < ref->states().size(); ++i)
      requireClose(prog->state(ref->states()[i]->external_name), st.states[i], kTol,
                   ref->states()[i]->external_name);
  }
}

} // namespace

TEST_CASE("train trajectories match the interpreter on every model", "[codegen][differential]") {
  for (const std::string& path : jitModelFiles()) {
    SECTION(path) {
      ModelSpec spec = loadModel(path);
      int64_t B = spec.batch;
      // Full batches, then a remainder (8000 % 48 = 32 style) and a single row.
      checkTrain(path, {B, {B, B, B / 2 + 1, 1, B}, 1, ""});
    }
  }
}

TEST_CASE("train steps on 2 threads and on x86-64-v3 match the interpreter", "[codegen][differential]") {
  for (const std::string& path : jitModelFiles()) {
    SECTION(path + " 2 threads") {
      ModelSpec spec = loadModel(path);
      checkTrain(path, {48, {48, 32, 48}, 2, ""});
    }
    SECTION(path + " avx2") {
      ModelSpec spec = loadModel(path);
      checkTrain(path, {48, {48, 32}, 1, "x86-64-v3"});
    }
  }
}

TEST_CASE("register-blocked W transposes with ragged edges match the interpreter", "[codegen][differential]") {
  // W1 is [40, 20]: full 16x16 blocks plus 8 leftover rows and 4 leftover
  // columns (and [40, 20] / [20, 10] for the AVX2 8x8 blocks); W2 [20, 10]
  // has no full column block. Every dX reads one of these transposes.
  const std::string src = "input x: f32[24]\ntarget y: class[10]\n"
                          "model = Sequential(Linear(24, 40), ReLU(), Linear(40, 20), ReLU(),\n"
                          "                   Linear(20, 10), LogSoftmax(dim=1))\n"
                          "loss = NLLLoss()\noptimizer = SGD(lr=0.05)\nbatch = 16\n";
  for (int threads : {1, 2}) {
    SECTION("host, threads " + std::to_string(threads)) { checkTrain("ragged.nn", {16, {16, 9, 16}, threads, ""}, src); }
    SECTION("avx2, threads " + std::to_string(threads)) {
      checkTrain("ragged.nn", {16, {16, 9, 16}, threads, "x86-64-v3"}, src);
    }
  }
}

TEST_CASE("gradients match the interpreter on every model", "[codegen][differential]") {
  for (const std::string& path : jitModelFiles()) {
    SECTION(path) {
      ModelSpec spec = loadModel(path);
      bool u8 = spec.input_size == 784;
      BuildOptions opts;
      opts.batch = 20;
      opts.input_u8 = u8;
      auto grad = buildGradGraph(spec, opts);
      std::string err;
      auto prog = Program::compile({grad.get()}, JitOptions{"", 2, true}, err);
      INFO(err);
      REQUIRE(prog);
      INFO(prog->kernelsText());
      InterpState<float> st;
      st.params = randomParams(*grad, 3);
      initInterpState(*grad, st);
      for (size_t i = 0; i < st.params.size(); ++i)
        std::memcpy(prog->param(grad->params()[i]->external_name), st.params[i].data(), st.params[i].size() * 4);
      Batch b = makeBatch(spec, 20, 5);
      auto out = interpret(*grad, interpInputs(*grad, b, 20, u8, 1, 9), st);
      prog->run(0, b.x(u8), b.y(), 20, 1, 9);
      for (const auto& [name, v] : grad->outputs()) {
        const float* jit = prog->outputData(0, name);
        REQUIRE(jit);
        requireClose(jit, out[name], kTol, name);
      }
    }
  }
}

TEST_CASE("eval outputs (loss, log-probabilities, correct count) match", "[codegen][differential]") {
  for (const std::string& path : jitModelFiles()) {
    SECTION(path) {
      ModelSpec spec = loadModel(path);
      bool u8 = spec.input_size == 784;
      auto eval = buildEvalGraph(spec, 40, u8);
      std::string err;
      auto prog = Program::compile({eval.get()}, JitOptions{"", 1}, err);
      INFO(err);
      REQUIRE(prog);
      InterpState<float> st;
      st.params = randomParams(*eval, 11);
      initInterpState(*eval, st);
      for (size_t i = 0; i < st.params.size(); ++i)
        std::memcpy(prog->param(eval->params()[i]->external_name), st.params[i].data(), st.params[i].size() * 4);
      int64_t n = 27; // a partial batch: the eval graph is built for 40 rows
      auto ref = buildEvalGraph(spec, n, u8);
      Batch b = makeBatch(spec, n, 21);
      auto out = interpret(*ref, interpInputs(*ref, b, n, u8, 1, 0), st);
      prog->run(0, b.x(u8), b.y(), n, 1, 0);
      for (const auto& [name, v] : ref->outputs()) {
        INFO(name);
        if (v->type.rank() == 0) {
          REQUIRE(std::fabs(prog->outputScalar(0, name) - out[name][0]) <= kTol * (1 + std::fabs(out[name][0])));
        } else {
          requireClose(prog->outputData(0, name), out[name], kTol, name);
        }
      }
    }
  }
}

TEST_CASE("a train step is bitwise identical on 1, 2, 3 and 4 threads", "[codegen][threads]") {
  for (const std::string& path : jitModelFiles()) {
    SECTION(path) {
      ModelSpec spec = loadModel(path);
      bool u8 = spec.input_size == 784;
      BuildOptions opts;
      opts.batch = spec.batch;
      opts.input_u8 = u8;
      auto train = buildTrainGraph(spec, opts);
      std::string err;
      auto p1 = Program::compile({train.get()}, JitOptions{"", 1}, err);
      INFO(err);
      REQUIRE(p1);
      std::vector<std::unique_ptr<Program>> others;
      others.push_back(Program::compile({train.get()}, JitOptions{"", 2, true}, err));
      // The fixtures (small layers, one per arithmetic variant of an op)
      // check the two-thread split `--threads 2` runs; the variants below,
      // which exercise the pool rather than the arithmetic, run on models/.
      if (path.find("/tests/reference/fixtures/") == std::string::npos) {
        others.push_back(Program::compile({train.get()}, JitOptions{"", 2, false}, err)); // only big GEMMs split
        // More threads than this machine's cores: workers join late or not at
        // all, and the one-sided waits between kernels must still order them.
        others.push_back(Program::compile({train.get()}, JitOptions{"", 3, true}, err));
        others.push_back(Program::compile({train.get()}, JitOptions{"", 4, false}, err));
      }
      for (const auto& p : others) REQUIRE(p);
      auto init = randomParams(*train, 5);
      for (size_t i = 0; i < init.size(); ++i) {
        std::memcpy(p1->param(train->params()[i]->external_name), init[i].data(), init[i].size() * 4);
        for (const auto& p : others)
          std::memcpy(p->param(train->params()[i]->external_name), init[i].data(), init[i].size() * 4);
      }
      for (int s = 1; s <= 4; ++s) {
        int64_t n = s == 3 ? std::max<int64_t>(1, spec.batch - 5) : spec.batch; // a partial batch
        Batch b = makeBatch(spec, n, uint32_t(s));
        p1->run(0, b.x(u8), b.y(), n, s, 77);
        for (const auto& px : others) px->run(0, b.x(u8), b.y(), n, s, 77);
        float l1 = p1->outputScalar(0, "loss");
        for (const auto& px : others) {
          float lx = px->outputScalar(0, "loss");
          REQUIRE(std::memcmp(&l1, &lx, 4) == 0);
        }
      }
      for (const auto& p2x : others) {
        for (const Value* p : train->params())
          REQUIRE(std::memcmp(p1->param(p->external_name), p2x->param(p->external_name),
                              size_t(p->type.numel()) * 4) == 0);
        for (const Value* s : train->states())
          REQUIRE(std::memcmp(p1->state(s->external_name), p2x->state(s->external_name),
                              size_t(s->type.numel()) * 4) == 0);
      }
    }
  }
}

TEST_CASE("profile reports every thread's time in and at each kernel, and does not train",
          "[codegen][threads]") {
  ModelSpec spec = loadRepoModel("models/mnist_mlp.nn");
  BuildOptions opts;
  opts.batch = spec.batch;
  opts.input_u8 = true;
  auto train = buildTrainGraph(spec, opts);
  std::string err;
  auto p = Program::compile({train.get()}, JitOptions{"", 2, false}, err);
  INFO(err);
  REQUIRE(p);
  auto init = randomParams(*train, 5);
  for (size_t i = 0; i < init.size(); ++i)
    std::memcpy(p->param(train->params()[i]->external_name), init[i].data(), init[i].size() * 4);
  Batch b = makeBatch(spec, spec.batch, 1);
  std::vector<double> enter;
  auto t = p->profile(0, b.x(true), b.y(), spec.batch, 20, &enter);
  REQUIRE(enter.size() == 2);
  REQUIRE(!t.empty());
  for (const KernelTiming& k : t) {
    REQUIRE(k.thread_run_us.size() == 2);
    REQUIRE(k.thread_wait_us.size() == 2);
    REQUIRE(k.thread_run_us[0] + k.thread_run_us[1] > 0); // someone ran every kernel
    REQUIRE(k.micros >= k.thread_run_us[0]);
  }
  for (size_t i = 0; i < init.size(); ++i)
    REQUIRE(std::memcmp(p->param(train->params()[i]->external_name), init[i].data(),
                        init[i].size() * 4) == 0);
}
