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
#include "compiler/support/window2d.h"

#include <cstring>
#include <functional>
#include <limits>

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
    if (first) {
      initInterpState(*ref, st);
      // The state's starting values (BatchNorm's running_var is 1) in the program too.
      for (size_t i = 0; i < st.states.size(); ++i)
        std::memcpy(prog->state(ref->states()[i]->external_name), st.states[i].data(),
                    st.states[i].size() * 4);
    }
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

/// The fusion report (`--stage kernels`) of model source `src` compiled for
/// `batch` rows on one thread.
std::string kernelReport(const std::string& name, const std::string& src, int64_t batch) {
  ModelSpec spec = specFromText(name, src);
  BuildOptions opts;
  opts.batch = batch;
  auto train = buildTrainGraph(spec, opts);
  std::string err;
  auto prog = Program::compile({train.get()}, JitOptions{"", 1, false}, err);
  INFO(name << ": " << err);
  REQUIRE(prog);
  return prog->kernelsText();
}

/// A classifier of `inputs` features into 10 classes through `layers` (a
/// Sequential's arguments), NLLLoss and SGD with momentum, batch 16: the
/// GEMM tests' models.
std::string gemmModel(int64_t inputs, const std::string& layers) {
  return "input x: f32[" + std::to_string(inputs) + "]\ntarget y: class[10]\n" +
         "model = Sequential(" + layers + ", LogSoftmax(dim=1))\n" +
         "loss = NLLLoss()\noptimizer = SGD(lr=0.05, momentum=0.9)\nbatch = 16\n";
}

/// checkTrain of `src` at batch 16 (runs of 16, 9 and 16 rows) on 1 and 2
/// threads, on the host and on AVX2 (x86-64-v3), each a section.
void checkTrainEverywhere(const std::string& path, const std::string& src) {
  for (int threads : {1, 2}) {
    SECTION("host, threads " + std::to_string(threads)) {
      checkTrain(path, {16, {16, 9, 16}, threads, ""}, src);
    }
    SECTION("avx2, threads " + std::to_string(threads)) {
      checkTrain(path, {16, {16, 9, 16}, threads, "x86-64-v3"}, src);
    }
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
  checkTrainEverywhere("ragged.nn", src);
}

TEST_CASE("dX GEMMs that transpose W into their packed panels match the interpreter",
          "[codegen][differential]") {
  // Linear(320, 48)'s dX (N = 320 inputs, K = 48 outputs) packs Wᵀ straight
  // from W [320,48] (packsTransposedB): 5 column tiles of 64 for AVX-512, 20
  // of 16 for AVX2, 3 or 6 register-transposed K blocks each; no wT kernel.
  // Linear(128, 48), the notebook model's layer-1 shape class, does the same
  // in two column tiles (eight for AVX2), one per thread on 2 threads.
  // Linear(48, 10)'s dX (K = 10) keeps its transpose kernel. Remainder rows
  // and 2 threads (tasks starting mid-column repack the panel) included.
  for (const auto& [name, inputs] : {std::pair{"packT.nn", 320}, std::pair{"packT128.nn", 128}}) {
    SECTION(name) {
      const std::string n = std::to_string(inputs);
      const std::string src = gemmModel(24, "Linear(24, " + n + "), ReLU(), Linear(" + n +
                                                ", 48), ReLU(), Linear(48, 10)");
      const std::string kernels = kernelReport(name, src, 16);
      INFO(kernels);
      CHECK(kernels.find("linear2_wT") == std::string::npos);
      CHECK(kernels.find("linear2_dX") != std::string::npos);
      CHECK(kernels.find("linear4_wT") != std::string::npos);
      checkTrainEverywhere(name, src);
    }
  }
}

TEST_CASE("GEMM tiles and transposed copies split by rows match the interpreter",
          "[codegen][differential]") {
  // Rows of 100 floats are not whole cache lines (splitsRows): the GEMMs
  // writing [n,100] and [40,100] (forward, dX, dW) number their tiles
  // row-major, and the transposed copies of W2 [40,100] (full 16 x 16
  // blocks, 8 ragged rows, 4 ragged columns) and W3 [100,10] (no full
  // block) split W's rows. split_all and 2 threads cut every one of them.
  const std::string src =
      gemmModel(24, "Linear(24, 40), ReLU(), Linear(40, 100), Tanh(), Linear(100, 10)");
  const std::string kernels = kernelReport("rows.nn", src, 16);
  INFO(kernels);
  CHECK(kernels.find("linear2_wT") != std::string::npos);
  CHECK(kernels.find("linear4_wT") != std::string::npos);
  checkTrainEverywhere("rows.nn", src);
}

TEST_CASE("GEMMs in columns match the interpreter and give the row kernels' bits",
          "[codegen][differential]") {
  // Batch 64 (whole 32-row tiles): the dX of Linear(256, 128) (K = 128,
  // W [256,128] in panels, read by rows in place), of Linear(128, 120) and of
  // Linear(120, 84) (Wᵀ copies otherwise) run in columns from dYᵀ copies, and
  // so does the dW of Linear(84, 10) (84 rows: a last tile of 20, or of 4
  // beyond 16 rows for AVX2). A ragged step (37 rows: tiles past n) and
  // 1-3 threads, split_all. With gemm_columns off the same program runs
  // rows everywhere: every param, state and loss must be bitwise the same.
  const std::string src = gemmModel(24, "Linear(24, 256), ReLU(), Linear(256, 128), ReLU(), "
                                        "Linear(128, 120), ReLU(), Linear(120, 84), Tanh(), "
                                        "Linear(84, 10)");
  const std::string kernels = kernelReport("columns.nn", src, 64);
  INFO(kernels);
  auto count = [&](const std::string& what) {
    size_t c = 0;
    for (size_t at = kernels.find(what); at != std::string::npos; at = kernels.find(what, at + 1))
      ++c;
    return c;
  };
  CHECK(count(" in columns\n") == 4); // the GEMM lines (notes say "C in columns:")
  CHECK(count("_dYT_") == 3);
  CHECK(count("linear8_wT") == 1); // K = 10: rows, from a Wᵀ copy
  CHECK(count("in 64-column panels") >= 1);
  ModelSpec spec = specFromText("columns.nn", src);
  BuildOptions opts;
  opts.batch = 64;
  auto train = buildTrainGraph(spec, opts);
  for (const std::string cpu : {"", "x86-64-v3"})
    for (int threads : {1, 2, 3}) {
      SECTION("cpu '" + cpu + "', threads " + std::to_string(threads)) {
        checkTrain("columns.nn", {64, {64, 37, 64}, threads, cpu}, src);
        std::string err;
        JitOptions on{cpu, threads, true}, off = on;
        off.gemm_columns = false;
        auto a = Program::compile({train.get()}, on, err);
        auto b = Program::compile({train.get()}, off, err);
        INFO(err);
        REQUIRE(a);
        REQUIRE(b);
        REQUIRE(b->kernelsText().find("in columns") == std::string::npos);
        auto init = randomParams(*train, 11);
        for (size_t i = 0; i < init.size(); ++i) {
          std::memcpy(a->param(train->params()[i]->external_name), init[i].data(),
                      init[i].size() * 4);
          std::memcpy(b->param(train->params()[i]->external_name), init[i].data(),
                      init[i].size() * 4);
        }
        for (int s = 1; s <= 3; ++s) {
          const int64_t n = s == 2 ? 37 : 64;
          Batch bt = makeBatch(spec, n, uint32_t(s));
          a->run(0, bt.x(false), bt.y(), n, s, 5);
          b->run(0, bt.x(false), bt.y(), n, s, 5);
          const float la = a->outputScalar(0, "loss"), lb = b->outputScalar(0, "loss");
          REQUIRE(std::memcmp(&la, &lb, 4) == 0);
        }
        for (const Value* p : train->params())
          REQUIRE(std::memcmp(a->param(p->external_name), b->param(p->external_name),
                              size_t(p->type.numel()) * 4) == 0);
        for (const Value* st : train->states())
          REQUIRE(std::memcmp(a->state(st->external_name), b->state(st->external_name),
                              size_t(st->type.numel()) * 4) == 0);
      }
    }
}

TEST_CASE("K-blocked GEMMs match the interpreter", "[codegen][differential]") {
  // Forward GEMMs with K > 128 and wide or huge B run K-blocked (emitGemm:
  // 128-row packed panels, partial sums carried between blocks):
  // Linear(2100, 64) (a 537 KB K x 64 panel: 17 blocks, the last of 52 rows;
  // AVX-512 only), Linear(300, 320) (ldb 320: blocks of 128, 128, 44), and
  // the dX of Linear(320, 144) (Wᵀ packed from W: blocks of 128 and 16).
  // Ragged batches (9 rows: clamped rows in the last row tile) and 2
  // threads (tasks starting mid-column) included.
  const std::string src = gemmModel(2100, "Linear(2100, 64), ReLU(), Linear(64, 300), ReLU(), "
                                          "Linear(300, 320), Tanh(), Linear(320, 144), ReLU(), "
                                          "Linear(144, 10)");
  checkTrainEverywhere("kblock.nn", src);
}

TEST_CASE("GEMMs over weights larger than L2 match the interpreter", "[codegen][differential]") {
  // Linear(4160, 128)'s W is 2.13 MB: its forward runs K-blocked (33 blocks,
  // the last of 64 rows) in one piece per thread, K blocks outermost so each
  // piece's column tiles share every block of A (kStreamedBytes,
  // emitGemmKBlocked), and its dW + SGD numbers its tiles row-major (C
  // larger than L2). Linear(200, 4160)'s forward (ldb 4160) carries more
  // than kMaxCarryBytes for all of C, so its column tiles stay outermost.
  // Ragged batches and 2 threads included.
  const std::string src =
      gemmModel(200, "Linear(200, 4160), ReLU(), Linear(4160, 128), ReLU(), Linear(128, 10)");
  checkTrainEverywhere("bigw.nn", src);
}

TEST_CASE("weights stored in 64-column panels match the interpreter", "[codegen][differential]") {
  // The first layer's W of Linear(40, 192) (three panels) and its momentum
  // buffer are kept in panels (compiler/passes/weight_panels.h): the forward
  // reads B panel by panel, the dW + SGD epilogue updates W and the buffer
  // through the panel index, and param() converts to and from row-major.
  // On AVX2 a tile is 16 columns, a quarter of a panel. Ragged batches and 2
  // threads (one panel each, then the third split) included.
  const std::string src = gemmModel(40, "Linear(40, 192), ReLU(), Linear(192, 10)");
  const std::string report = kernelReport("panels.nn", src, 16);
  INFO(report);
  // %w0 and %w0_buf, each once in the buffer list.
  size_t marked = 0;
  for (size_t at = report.find("in 64-column panels"); at != std::string::npos;
       at = report.find("in 64-column panels", at + 1))
    ++marked;
  REQUIRE(marked == 2);
  checkTrainEverywhere("panels.nn", src);
}

TEST_CASE("param() of a weight in panels reads and writes the row-major layout",
          "[codegen][threads]") {
  ModelSpec spec =
      specFromText("panels.nn", gemmModel(40, "Linear(40, 128), ReLU(), Linear(128, 10)"));
  BuildOptions opts;
  opts.batch = 16;
  auto train = buildTrainGraph(spec, opts);
  std::string err;
  JitOptions panels{"", 2, false}, rowMajor{"", 2, false};
  rowMajor.weight_panels = false;
  auto a = Program::compile({train.get()}, panels, err);
  auto b = Program::compile({train.get()}, rowMajor, err);
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(a->kernelsText().find("in 64-column panels") != std::string::npos);
  REQUIRE(b->kernelsText().find("in 64-column panels") == std::string::npos);
  InterpState<float> st;
  st.params = randomParams(*train, 3);
  for (size_t i = 0; i < st.params.size(); ++i)
    for (Program* p : {a.get(), b.get()})
      std::memcpy(p->param(train->params()[i]->external_name), st.params[i].data(),
                  st.params[i].size() * 4);
  // What was written reads back before any run (the copy is the caller's).
  REQUIRE(std::memcmp(a->param("0.weight"), st.params[0].data(), st.params[0].size() * 4) == 0);
  for (int step = 1; step <= 3; ++step) {
    Batch batch = makeBatch(spec, 16, uint32_t(step));
    for (Program* p : {a.get(), b.get()})
      p->run(0, batch.x(false), batch.y(), 16, step, 0);
    // Both layouts train to the same bits, read in the IR's layout.
    for (const Value* v : train->params())
      REQUIRE(std::memcmp(a->param(v->external_name), b->param(v->external_name),
                          v->type.numel() * 4) == 0);
    for (const Value* v : train->states())
      REQUIRE(std::memcmp(a->state(v->external_name), b->state(v->external_name),
                          v->type.numel() * 4) == 0);
  }
}

TEST_CASE("convolution and pooling kernels with odd shapes match the interpreter",
          "[codegen][differential][conv]") {
  // The vectorized direct convolutions (stride 1 along the width) and the
  // scalar fallback (stride 3): 1x1 and 7x7 kernels, padding > 1, dilation,
  // groups and depthwise, stride along the height only, widths that are not
  // a multiple of the vector width (3, 11, 15, 19), one input channel, a
  // register block's tail channels; Adam and SGD with momentum, whose
  // updates run in the dW/db kernels.
  const std::string odd =
      "input x: f32[3, 13, 19]\ntarget y: class[4]\n"
      "model = Sequential(\n"
      "  Conv2d(3, 10, kernel_size=7, padding=(4, 3), dilation=(1, 2)), ReLU(),\n"
      "  Conv2d(10, 10, kernel_size=1, groups=5), Tanh(),\n"
      "  Conv2d(10, 10, kernel_size=3, padding=2, groups=10), ReLU(),\n"
      "  Conv2d(10, 5, kernel_size=3, stride=(2, 1), padding=1), ReLU(),\n"
      "  Conv2d(5, 3, kernel_size=3, stride=3, padding=2),\n"
      "  MaxPool2d(2, ceil_mode=True), Flatten(), Linear(18, 4))\n"
      "loss = CrossEntropyLoss()\noptimizer = Adam(lr=0.01)\nbatch = 5\n";
  const std::string gray =
      "input x: f32[1, 9, 11]\ntarget y: class[3]\n"
      "model = Sequential(\n"
      "  Conv2d(1, 6, kernel_size=5, padding=2), ReLU(), MaxPool2d(2),\n"
      "  Conv2d(6, 7, kernel_size=(2, 3), padding=(0, 2)), ReLU(),\n"
      "  AvgPool2d(3, stride=2, padding=1), Flatten(), Linear(56, 3))\n"
      "loss = CrossEntropyLoss()\noptimizer = SGD(lr=0.05, momentum=0.9)\nbatch = 1\n";
  // Rows of 100 and 96 columns: the vectors in the middle of a row, which
  // read no padding at any tap, run as a loop (forward, input and weight
  // gradients), the masked ones at the ends outside it.
  const std::string wide =
      "input x: f32[2, 4, 100]\ntarget y: class[3]\n"
      "model = Sequential(\n"
      "  Conv2d(2, 4, 3, padding=1), ReLU(),\n"
      "  Conv2d(4, 3, kernel_size=(3, 5), padding=(0, 2), dilation=(1, 2)), Flatten(),\n"
      "  Linear(576, 3))\n"
      "loss = CrossEntropyLoss()\noptimizer = SGD(lr=0.05, momentum=0.9)\nbatch = 3\n";
  // Channels that fill the vector lanes better than the short rows: the
  // channel-vector kernel (emit_conv.cpp) for the forward (16 channels; 20,
  // padded to 32; bias + ReLU fused) and the input gradient (16 channels,
  // padding; 32 channels on rows of 100, the interior position blocks a loop).
  const std::string chans =
      "input x: f32[4, 6, 5]\ntarget y: class[3]\n"
      "model = Sequential(\n"
      "  Conv2d(4, 16, 3, padding=1), ReLU(),\n"
      "  Conv2d(16, 20, 3, padding=(2, 1)), ReLU(), Flatten(),\n"
      "  Linear(800, 3))\n"
      "loss = CrossEntropyLoss()\noptimizer = SGD(lr=0.05, momentum=0.9)\nbatch = 3\n";
  const std::string chansWide =
      "input x: f32[5, 3, 100]\ntarget y: class[3]\n"
      "model = Sequential(\n"
      "  Conv2d(5, 32, 3, padding=1), ReLU(),\n"
      "  Conv2d(32, 6, 3, padding=(1, 0)), Flatten(),\n"
      "  Linear(1764, 3))\n"
      "loss = CrossEntropyLoss()\noptimizer = SGD(lr=0.05, momentum=0.9)\nbatch = 2\n";
  // Weight gradients over the flat output plane (emit_conv_wgrad.cpp): no
  // tap reads padding and rows narrower than a vector. 16, 20 and 6 output
  // channels (a register block's tail), 3x3, 2x4 and 1x2 taps (a tap
  // group's tail), dilation, stride along the height, groups, planes whose
  // last vector is partial (6x7, 5x4 and 3x3 outputs).
  const std::string flat =
      "input x: f32[3, 10, 9]\ntarget y: class[3]\n"
      "model = Sequential(\n"
      "  Conv2d(3, 16, kernel_size=3, dilation=(2, 1)), ReLU(),\n"
      "  Conv2d(16, 20, kernel_size=(2, 4), stride=(1, 1), groups=2), ReLU(),\n"
      "  Conv2d(20, 6, kernel_size=(1, 2), stride=(2, 1)), Flatten(), Linear(54, 3))\n"
      "loss = CrossEntropyLoss()\noptimizer = SGD(lr=0.05, momentum=0.9)\nbatch = 3\n";
  // Weight gradients with vectors along the output channels
  // (emit_conv_wgrad.cpp): 20 output channels (a partial vector; on AVX2 a
  // tail block of channel vectors), 8 and 20 input channels (tail blocks),
  // a 19x17 plane in blocks of whole rows whose positions are not a multiple
  // of the vector (11 + 8 rows on AVX-512, 15 + 4 on AVX2), then stride 2
  // along both axes with dilation along the width (9x7, 16 channels).
  const std::string chanDw =
      "input x: f32[8, 22, 21]\ntarget y: class[3]\n"
      "model = Sequential(\n"
      "  Conv2d(8, 20, kernel_size=(4, 5)), ReLU(),\n"
      "  Conv2d(20, 16, kernel_size=3, stride=2, dilation=(1, 2)), ReLU(), Flatten(),\n"
      "  Linear(1008, 3))\n"
      "loss = CrossEntropyLoss()\noptimizer = Adam(lr=0.01)\nbatch = 3\n";
  for (int threads : {1, 2}) {
    // Every weight gradient above (batches 2-5) is sliced into chunks of one
    // sample (fuse.cpp); a batch of 10 makes 5 chunks of 2, and 7 rows a
    // short last chunk, in the three stride-1 schemes.
    SECTION("weight gradients in chunks of 2 samples, threads " + std::to_string(threads)) {
      checkTrain("chan_dw.nn", {10, {10, 7}, threads, ""}, chanDw);
      checkTrain("flat_conv.nn", {10, {7, 10}, threads, "x86-64-v3"}, flat);
      checkTrain("wide_conv.nn", {10, {9}, threads, ""}, wide);
    }
    SECTION("channel-vector weight gradients, threads " + std::to_string(threads)) {
      checkTrain("chan_dw.nn", {3, {3, 2, 3}, threads, ""}, chanDw);
      checkTrain("chan_dw.nn", {3, {3, 2, 3}, threads, "x86-64-v3"}, chanDw);
    }
    SECTION("channel vectors, threads " + std::to_string(threads)) {
      checkTrain("chan_conv.nn", {3, {3, 1, 2}, threads, ""}, chans);
      checkTrain("chan_conv.nn", {3, {3, 2}, threads, "x86-64-v3"}, chans);
      checkTrain("chan_wide_conv.nn", {2, {2, 1}, threads, ""}, chansWide);
      checkTrain("chan_wide_conv.nn", {2, {2, 1}, threads, "x86-64-v3"}, chansWide);
    }
    SECTION("flat plane weight gradients, threads " + std::to_string(threads)) {
      checkTrain("flat_conv.nn", {3, {3, 2, 3}, threads, ""}, flat);
      checkTrain("flat_conv.nn", {3, {3, 2, 3}, threads, "x86-64-v3"}, flat);
    }
    SECTION("wide rows, threads " + std::to_string(threads)) {
      checkTrain("wide_conv.nn", {3, {3, 2, 3}, threads, "x86-64-v3"}, wide);
    }
    SECTION("odd shapes, threads " + std::to_string(threads)) {
      checkTrain("odd_conv.nn", {5, {5, 3, 5}, threads, ""}, odd);
    }
    SECTION("one input channel, batch 1, threads " + std::to_string(threads)) {
      checkTrain("gray_conv.nn", {1, {1, 1, 1}, threads, ""}, gray);
    }
  }
  SECTION("odd shapes, avx2") { checkTrain("odd_conv.nn", {5, {5, 2}, 1, "x86-64-v3"}, odd); }
}

TEST_CASE("fused CNN backward epilogues and dy loads match the interpreter",
          "[codegen][differential][conv]") {
  // fuse.cpp's CNN backward fusions: relu_grad of the layer below in the
  // conv input gradient's epilogue, in the channel-vector kernel (16
  // channels on rows of 6, emit_conv.cpp) and the row-vector kernel (4
  // channels on rows of 40, emitConvGather); Dropout's mask multiply
  // computed in max_pool2d_grad's dy loads, in the vector pool gradient (2x2
  // windows) and the scalar one (stride 9: a span of more than 8 vectors).
  // Remainder batches (the mask is keyed by the row) and 2 threads included.
  const std::string chans =
      "input x: f32[3, 8, 6]\ntarget y: class[3]\n"
      "model = Sequential(\n"
      "  Conv2d(3, 16, 3, padding=1), ReLU(),\n"
      "  Conv2d(16, 16, 3, padding=1), ReLU(),\n"
      "  MaxPool2d(2), Dropout(0.25), Flatten(), Linear(192, 3))\n"
      "loss = CrossEntropyLoss()\noptimizer = SGD(lr=0.05, momentum=0.9)\nbatch = 3\n";
  const std::string rows = "input x: f32[2, 20, 40]\ntarget y: class[3]\n"
                           "model = Sequential(\n"
                           "  Conv2d(2, 4, 3, padding=1), ReLU(),\n"
                           "  Conv2d(4, 6, 3, padding=1), ReLU(),\n"
                           "  MaxPool2d(2, stride=9), Dropout(0.5), Flatten(), Linear(90, 3))\n"
                           "loss = CrossEntropyLoss()\noptimizer = Adam(lr=0.01)\nbatch = 3\n";
  for (const auto& [name, src] : {std::pair{"fused_chans.nn", chans}, {"fused_rows.nn", rows}}) {
    // Both fusions are made: the conv input gradient's kernel carries the
    // relu_grad, the pool gradient computes the multiply in its loads.
    const std::string kernels = kernelReport(name, src, 3);
    INFO(kernels);
    const size_t dx = kernels.find("= conv2d_input_grad");
    REQUIRE(dx != std::string::npos);
    const size_t next = kernels.find('\n', dx);
    CHECK(kernels.substr(next, kernels.find('\n', next + 1) - next).find("= relu_grad") !=
          std::string::npos);
    CHECK(kernels.find("(into the dy loads)") != std::string::npos);
    CHECK(kernels.find("relu_grad_line") == std::string::npos); // no relu_grad map kernel
    for (int threads : {1, 2}) {
      SECTION(std::string(name) + " host, threads " + std::to_string(threads)) {
        checkTrain(name, {3, {3, 2, 3}, threads, ""}, src);
      }
      SECTION(std::string(name) + " avx2, threads " + std::to_string(threads)) {
        checkTrain(name, {3, {3, 2, 3}, threads, "x86-64-v3"}, src);
      }
    }
  }
}

TEST_CASE("conv input gradients over the flat plane match the interpreter",
          "[codegen][differential][conv]") {
  // emit_conv_dx.cpp: dx as a GEMM of the taps x dy's flat plane per
  // sample and input channel, then col2im in registers. LeNet-5's conv2
  // shape (16 channels of 10x10, 6 of 14x14; relu_grad fused) on AVX-512
  // and AVX2 (100 positions: a partial last vector on both); on AVX-512
  // only (the rule keeps the row kernel on AVX2, the channel-vector kernel
  // takes 12 channels of 8x7 there): 12 channels of 8x7 (a half last
  // vector), padding 2 with a 5x5 kernel and a Tanh gradient (a 9x6 plane),
  // and stride 2 along the height with dilation and padding (5x9) with no
  // epilogue (a 1x1 conv without activation below). AVX2 runs them too.
  const std::string lenet =
      "input x: f32[1, 18, 18]\ntarget y: class[3]\n"
      "model = Sequential(\n"
      "  Conv2d(1, 6, kernel_size=5), ReLU(),\n"
      "  Conv2d(6, 16, kernel_size=5), ReLU(), MaxPool2d(2), Flatten(), Linear(400, 3))\n"
      "loss = CrossEntropyLoss()\noptimizer = SGD(lr=0.05, momentum=0.9)\nbatch = 3\n";
  const std::string odd =
      "input x: f32[2, 11, 9]\ntarget y: class[3]\n"
      "model = Sequential(\n"
      "  Conv2d(2, 5, 3, padding=1), ReLU(),\n"
      "  Conv2d(5, 12, kernel_size=(4, 3)), ReLU(), Flatten(), Linear(672, 3))\n"
      "loss = CrossEntropyLoss()\noptimizer = Adam(lr=0.01)\nbatch = 3\n";
  const std::string padded =
      "input x: f32[3, 9, 6]\ntarget y: class[3]\n"
      "model = Sequential(\n"
      "  Conv2d(3, 3, 3, padding=1), Tanh(),\n"
      "  Conv2d(3, 8, 5, padding=2), ReLU(), Flatten(), Linear(432, 3))\n"
      "loss = CrossEntropyLoss()\noptimizer = SGD(lr=0.05, momentum=0.9)\nbatch = 3\n";
  const std::string strided =
      "input x: f32[4, 12, 7]\ntarget y: class[3]\n"
      "model = Sequential(\n"
      "  Conv2d(4, 4, 1),\n"
      "  Conv2d(4, 16, 3, stride=(2, 1), padding=(1, 2), dilation=(2, 1)), ReLU(),\n"
      "  Flatten(), Linear(720, 3))\n"
      "loss = CrossEntropyLoss()\noptimizer = SGD(lr=0.05, momentum=0.9)\nbatch = 3\n";
  {
    // the relu_grad of the layer below rides in the input gradient's epilogue
    const std::string kernels = kernelReport("flat_dx_lenet.nn", lenet, 3);
    INFO(kernels);
    const size_t dx = kernels.find("= conv2d_input_grad");
    REQUIRE(dx != std::string::npos);
    const size_t next = kernels.find('\n', dx);
    CHECK(kernels.substr(next, kernels.find('\n', next + 1) - next).find("= relu_grad") !=
          std::string::npos);
  }
  for (int threads : {1, 2}) {
    SECTION("flat plane input gradients, threads " + std::to_string(threads)) {
      checkTrain("flat_dx_lenet.nn", {3, {3, 2, 3}, threads, ""}, lenet);
      checkTrain("flat_dx_lenet.nn", {3, {3, 2, 3}, threads, "x86-64-v3"}, lenet);
      checkTrain("flat_dx_odd.nn", {3, {3, 1, 2}, threads, ""}, odd);
      checkTrain("flat_dx_odd.nn", {3, {3, 1, 2}, threads, "x86-64-v3"}, odd);
      checkTrain("flat_dx_padded.nn", {3, {3, 2}, threads, ""}, padded);
      checkTrain("flat_dx_strided.nn", {3, {3, 2}, threads, ""}, strided);
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
      // BatchNorm's running statistics: positive values of a trained model.
      for (size_t i = 0; i < st.states.size(); ++i) {
        for (size_t k = 0; k < st.states[i].size(); ++k) st.states[i][k] = 0.5f + 0.125f * float((i + k) % 7);
        std::memcpy(prog->state(eval->states()[i]->external_name), st.states[i].data(), st.states[i].size() * 4);
      }
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
        // Work run alongside the step (the trainer's next-batch gather): once,
        // finished when run returns, whichever thread takes it.
        for (const auto& px : others) {
          int ran = 0;
          const std::function<void()> work = [&ran] { ++ran; };
          px->run(0, b.x(u8), b.y(), n, s, 77, 0, &work);
          REQUIRE(ran == 1);
        }
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

namespace {

/// One pooling layer's forward and gradient, JIT vs interpreter, bit for bit:
/// x [3, 2, H, Wd] with many ties, NaN, -0.0 and -inf; dy a param.
struct PoolCase {
  std::string op; ///< max_pool2d, avg_pool2d or adaptive_avg_pool2d
  int64_t H, Wd, kh, kw, sh, sw, ph, pw, dh, dw;
  bool ceil_mode, count_include_pad;
};

/// With `relu`, the max pool's gradient feeds only relu_grad of the pooled
/// input (ReLU before the pool), which the JIT fuses into the pool gradient.
void checkPoolBits(const PoolCase& pc, int threads, const std::string& cpu, bool relu = false) {
  const int64_t B = 3, C = 2;
  int64_t Ho, Wo;
  std::string attrs;
  if (pc.op == "adaptive_avg_pool2d") {
    Ho = pc.kh, Wo = pc.kw; // the output size
    attrs = "output_h=" + std::to_string(Ho) + ", output_w=" + std::to_string(Wo);
  } else {
    Ho = poolOutSize(pc.H, pc.kh, pc.sh, pc.ph, pc.dh, pc.ceil_mode);
    Wo = poolOutSize(pc.Wd, pc.kw, pc.sw, pc.pw, pc.dw, pc.ceil_mode);
    auto a = [](const char* n, int64_t v) {
      return std::string(n) + "=" + std::to_string(v) + ", ";
    };
    attrs = a("kernel_h", pc.kh) + a("kernel_w", pc.kw) + a("stride_h", pc.sh) +
            a("stride_w", pc.sw) + a("padding_h", pc.ph) + a("padding_w", pc.pw);
    if (pc.op == "max_pool2d")
      attrs += a("dilation_h", pc.dh) + a("dilation_w", pc.dw);
    else
      attrs += std::string("count_include_pad=") + (pc.count_include_pad ? "true" : "false") + ", ";
    attrs += std::string("ceil_mode=") + (pc.ceil_mode ? "true" : "false");
  }
  auto shape = [](int64_t a, int64_t b, int64_t c, int64_t d) {
    return "f32[" + std::to_string(a) + "," + std::to_string(b) + "," + std::to_string(c) + "," +
           std::to_string(d) + "]";
  };
  const std::string xs = shape(B, C, pc.H, pc.Wd), ys = shape(B, C, Ho, Wo);
  auto g = parseIr("graph @t(%x: " + xs + " input) params(%dy: " + ys +
                   " \"dy\") {\n  %0 = " + pc.op + " %x {" + attrs + "} : " + ys +
                   "\n  %1 = " + pc.op + "_grad %dy, %x {" + attrs + "} : " + xs +
                   (relu ? "\n  %2 = relu_grad %1, %x : " + xs + "\n  return y=%0, dx=%2\n}"
                         : "\n  return y=%0, dx=%1\n}"));
  std::mt19937 rng(uint32_t(pc.H * 131 + pc.Wd * 7 + pc.kw));
  std::vector<float> x(size_t(B * C * pc.H * pc.Wd)), dy(size_t(B * C * Ho * Wo));
  const float special[] = {-0.0f, std::numeric_limits<float>::quiet_NaN(),
                           -std::numeric_limits<float>::infinity()};
  for (float& v : x) { // small integers: ties in most windows, and a few specials
    const unsigned r = rng() % 64;
    v = r < 3 ? special[r] : float(int(r % 5) - 2);
  }
  for (float& v : dy) { // and some -0.0: a gradient of -0.0 must come out as +0.0 + -0.0
    const int r = int(rng() % 2001) - 1000;
    v = r % 7 == 0 ? -0.0f : float(r) / 64.0f;
  }
  std::string err;
  auto prog = Program::compile({g.get()}, JitOptions{cpu, threads, true}, err);
  INFO(pc.op << " " << attrs << " H=" << pc.H << " W=" << pc.Wd << " threads=" << threads
             << " cpu=" << cpu << ": " << err);
  REQUIRE(prog);
  if (relu) // fused: one kernel, no separate relu_grad
    REQUIRE(prog->kernelsText().find("masks each window's gradient by its max > 0") !=
            std::string::npos);
  std::memcpy(prog->param("dy"), dy.data(), dy.size() * 4);
  InterpState<float> st{{dy}, {}};
  initInterpState(*g, st);
  auto ref = interpret(*g, InterpInputs<float>{{{"x", x}}}, st);
  prog->run(0, x.data(), nullptr, B, 1, 0);
  for (const char* name : {"y", "dx"}) {
    const float* jit = prog->outputData(0, name);
    REQUIRE(jit);
    const std::vector<float>& want = ref[name];
    for (size_t i = 0; i < want.size(); ++i) {
      INFO(name << "[" << i << "]: jit " << jit[i] << ", interpreter " << want[i]);
      REQUIRE(std::memcmp(&jit[i], &want[i], 4) == 0);
    }
  }
}

} // namespace

TEST_CASE("pooling kernels give the interpreter's bits", "[codegen][differential][pool]") {
  // The vector path (one span per tap row, every tap a shuffle) and its
  // scalar fallbacks: 2x2/2 with a tail (28 -> 14) and over several vectors
  // (74 -> 37); overlapping windows (3/2, 3/1: the gradient's descending
  // taps) with padding, ceil_mode and dilation; count_include_pad false;
  // gaps between windows (stride 5 > kernel); a stride so large the span
  // exceeds 8 vectors (scalar loops); adaptive pooling that divides (as avg
  // pooling) and that does not (scalar). Integer inputs make ties common:
  // the gradient must go to the FIRST maximum.
  const std::vector<PoolCase> cases = {
      {"max_pool2d", 28, 28, 2, 2, 2, 2, 0, 0, 1, 1, false, true},
      {"avg_pool2d", 28, 28, 2, 2, 2, 2, 0, 0, 1, 1, false, true},
      {"max_pool2d", 5, 74, 2, 2, 2, 2, 0, 0, 1, 1, false, true},
      {"max_pool2d", 9, 19, 3, 3, 2, 2, 1, 1, 1, 1, true, true},
      {"avg_pool2d", 9, 19, 3, 3, 2, 2, 1, 1, 1, 1, true, false},
      {"avg_pool2d", 7, 21, 3, 3, 1, 1, 1, 1, 1, 1, false, true},
      {"max_pool2d", 7, 21, 3, 3, 1, 1, 1, 1, 2, 2, false, true},
      {"avg_pool2d", 6, 23, 2, 3, 1, 3, 1, 1, 1, 1, true, false},
      {"max_pool2d", 6, 40, 2, 2, 3, 5, 1, 1, 1, 1, true, true},
      {"max_pool2d", 9, 200, 9, 9, 9, 9, 0, 0, 1, 1, false, true},
      {"adaptive_avg_pool2d", 12, 12, 4, 4, 1, 1, 0, 0, 1, 1, false, true},
      {"adaptive_avg_pool2d", 13, 11, 4, 3, 1, 1, 0, 0, 1, 1, false, true},
  };
  for (const PoolCase& pc : cases) {
    checkPoolBits(pc, 1, "");
    checkPoolBits(pc, 2, "");
    checkPoolBits(pc, 1, "x86-64-v3"); // 8 lanes: other tails and spans
    if (pc.op == "max_pool2d") {       // relu_grad fused: masked by each window's max
      checkPoolBits(pc, 1, "", true);
      checkPoolBits(pc, 2, "x86-64-v3", true);
    }
  }
}

TEST_CASE("channel sums (conv bias gradients) give the interpreter's bits",
          "[codegen][differential][conv]") {
  // channel_sum: per sample, 16 partial sums over the plane folded pairwise,
  // then the samples in batch order (the interpreter's order, which the JIT
  // keeps with 16 / W vectors of partial sums: emit_window.cpp). Channel
  // counts around a side-by-side group of 4 (6, 16, 20, 40, 64: remainders
  // 2 and 0), planes of one position, below one block of 16, one block and
  // a block with a tail (1, 15, 16, 100); 1 to 3 threads (the tasks split
  // the channels) and AVX2 (two vectors per 16 partial sums). Values of
  // mixed magnitude make any change of order visible in the last bits.
  for (int64_t C : {6, 16, 20, 40, 64})
    for (int64_t S : {1, 15, 16, 100}) {
      const int64_t B = 3;
      const std::string xs =
          "f32[" + std::to_string(B) + "," + std::to_string(C) + ",1," + std::to_string(S) + "]";
      auto g = parseIr("graph @t(%x: " + xs + " input) {\n  %0 = channel_sum %x : f32[" +
                       std::to_string(C) + "]\n  return db=%0\n}");
      std::mt19937 rng(uint32_t(C * 1000 + S));
      std::vector<float> x(size_t(B * C * S));
      for (float& v : x)
        v = float(int(rng() % 2001) - 1000) * (rng() % 2 ? 1e-3f : 0.37f);
      InterpState<float> st;
      initInterpState(*g, st);
      auto ref = interpret(*g, InterpInputs<float>{{{"x", x}}}, st);
      for (int threads : {1, 2, 3})
        for (const char* cpu : {"", "x86-64-v3"}) {
          std::string err;
          auto prog = Program::compile({g.get()}, JitOptions{cpu, threads, true}, err);
          INFO("C=" << C << " S=" << S << " threads=" << threads << " cpu=" << cpu << ": " << err);
          REQUIRE(prog);
          prog->run(0, x.data(), nullptr, B, 1, 0);
          const float* jit = prog->outputData(0, "db");
          REQUIRE(jit);
          for (int64_t c = 0; c < C; ++c) {
            INFO("db[" << c << "]: jit " << jit[c] << ", interpreter " << ref["db"][size_t(c)]);
            REQUIRE(std::memcmp(&jit[c], &ref["db"][size_t(c)], 4) == 0);
          }
        }
    }
}
