// Kernel-graph verifier: accepts what fuse and plan_buffers build for every
// model (train and eval steps), and rejects kernel graphs broken on purpose
// (kernels swapped, an op dropped or duplicated, live buffers overlapping,
// GEMM parameters wrong, ...) with a message naming what is wrong.
#include "compiler/passes/fuse.h"
#include "compiler/passes/kernel_printer.h"
#include "compiler/passes/kernel_verifier.h"
#include "compiler/passes/plan_buffers.h"
#include "compiler/passes/train_graph.h"
#include "tests/common/test_support.h"

#include <catch2/catch.hpp>
#include <stdexcept>

using namespace descent;
using descent::testsupport::jitModelFiles;
using descent::testsupport::loadModel;
using descent::testsupport::parseIr;
using descent::testsupport::readText;
using descent::testsupport::sourceDir;

namespace {

/// A train step of tests/passes/ (by default fuse_mlp.ir: two layers), fused and planned.
struct Planned {
  std::unique_ptr<Graph> g;
  KernelGraph kg;

  explicit Planned(const std::string& file = "fuse_mlp.ir")
      : Planned(parseIr(readText(sourceDir() + "/tests/passes/" + file))) {}

  explicit Planned(std::unique_ptr<Graph> graph) {
    g = std::move(graph);
    std::string err;
    kg = fuseGraph(*g, err);
    INFO(err);
    REQUIRE(err.empty());
    planBuffers(kg);
    INFO(printKernelGraph(kg));
    REQUIRE(verifyKernelGraph(kg, KernelStage::Planned).empty());
  }

  int kernel(const std::string& part) const {
    for (size_t i = 0; i < kg.kernels.size(); ++i)
      if (kg.kernels[i].name.find(part) != std::string::npos) return int(i);
    FAIL("no kernel named *" << part << "*");
    return -1;
  }

  int buffer(const std::string& name) const {
    for (size_t i = 0; i < kg.buffers.size(); ++i)
      if (kg.buffers[i].name == name) return int(i);
    FAIL("no buffer %" << name);
    return -1;
  }

  const Value* value(const std::string& name) const {
    for (const auto& op : g->ops())
      if (op->result && op->result->name == name) return op->result;
    FAIL("no value %" << name);
    return nullptr;
  }

  /// True when some problem contains `part`; prints them all otherwise.
  bool rejects(const std::string& part, KernelStage stage = KernelStage::Planned) const {
    std::vector<std::string> problems = verifyKernelGraph(kg, stage);
    std::string all;
    for (const auto& p : problems)
      all += p + "\n";
    INFO("problems:\n" << all);
    for (const auto& p : problems)
      if (p.find(part) != std::string::npos) return true;
    return false;
  }
};

} // namespace

TEST_CASE("kernel verifier accepts the train and eval steps of every model", "[passes][verifier]") {
  for (const std::string& path : jitModelFiles()) {
    ModelSpec spec = loadModel(path);
    for (bool u8 : {false, true}) {
      if (u8 && !spec.fitsDefaultData()) continue;
      BuildOptions opts;
      opts.batch = spec.batch;
      opts.input_u8 = u8;
      std::unique_ptr<Graph> graphs[] = {buildTrainGraph(spec, opts),
                                         buildEvalGraph(spec, spec.batch, u8)};
      for (const auto& g : graphs) {
        std::string err;
        KernelGraph kg = fuseGraph(*g, err);
        INFO(path << " @" << g->name() << ": " << err);
        REQUIRE(err.empty());
        auto fused = verifyKernelGraph(kg, KernelStage::Fused);
        CHECK(fused == std::vector<std::string>{});
        planBuffers(kg);
        auto planned = verifyKernelGraph(kg, KernelStage::Planned);
        CHECK(planned == std::vector<std::string>{});
      }
    }
  }
}

TEST_CASE("kernel verifier: kernels out of dependency order", "[passes][verifier]") {
  Planned p;
  // The second layer's forward GEMM before the first's: it reads %2 too early.
  std::swap(p.kg.kernels[size_t(p.kernel("k0_"))], p.kg.kernels[size_t(p.kernel("k1_"))]);
  CHECK(p.rejects("reads %2, which a later kernel (k0_linear0_fwd_line3) computes"));
  CHECK(p.rejects("before any kernel writes it"));
}

TEST_CASE("kernel verifier: a param read after its update", "[passes][verifier]") {
  Planned p;
  // Move the dW+update kernel of w2 before the kernel copying w2 for dX.
  int t = p.kernel("linear2_wT"), u = p.kernel("linear2_dW_sgd");
  REQUIRE(t < u);
  Kernel k = p.kg.kernels[size_t(u)];
  p.kg.kernels.erase(p.kg.kernels.begin() + u);
  p.kg.kernels.insert(p.kg.kernels.begin() + t, k);
  CHECK(p.rejects("reads %w2 after k6_linear2_dW_sgd_line3 updates it (write-after-read)"));
}

TEST_CASE("kernel verifier: an op dropped from its kernel or computed twice",
          "[passes][verifier]") {
  SECTION("dropped") {
    Planned p;
    Kernel& k = p.kg.kernels[size_t(p.kernel("linear0_fwd"))];
    REQUIRE(k.ops.size() == 3);
    k.ops.pop_back(); // relu %2
    CHECK(p.rejects("relu %2 is in no kernel"));
  }
  SECTION("twice") {
    Planned p;
    const Op* relu = p.kg.kernels[size_t(p.kernel("linear0_fwd"))].ops.back();
    p.kg.kernels[size_t(p.kernel("linear2_fwd"))].ops.push_back(relu);
    CHECK(p.rejects("relu %2 is in two kernels: k0_linear0_fwd_line3 and k1_linear2_fwd_line3"));
  }
  SECTION("an update that is not the epilogue") {
    Planned p;
    Kernel& k = p.kg.kernels[size_t(p.kernel("linear2_dW_sgd"))];
    k.sink = nullptr;
    CHECK(p.rejects("sgd_update %w2 is not the kernel's epilogue"));
  }
}

TEST_CASE("kernel verifier: buffers live at once overlapping in memory", "[passes][verifier]") {
  Planned p;
  // Two scratch buffers whose lifetimes overlap, placed at the same offset.
  const auto& bufs = p.kg.buffers;
  int a = -1, b = -1;
  for (size_t i = 0; i < bufs.size() && b < 0; ++i)
    for (size_t j = i + 1; j < bufs.size(); ++j) {
      const Buffer &x = bufs[i], &y = bufs[j];
      bool scratch = !x.persistent && !x.input && !y.persistent && !y.input;
      if (scratch && x.first_use <= y.last_use && y.first_use <= x.last_use &&
          x.offset != y.offset && x.bytes <= y.bytes) {
        a = int(i), b = int(j);
        break;
      }
    }
  REQUIRE(b >= 0);
  p.kg.buffers[size_t(a)].offset = p.kg.buffers[size_t(b)].offset;
  CHECK(p.rejects("are live at once and overlap in memory"));
  // Before planning offsets are not looked at.
  CHECK(!p.rejects("overlap in memory", KernelStage::Fused));
}

TEST_CASE("kernel verifier: placement inside the scratch region", "[passes][verifier]") {
  SECTION("unaligned") {
    Planned p;
    p.kg.buffers[size_t(p.buffer("2"))].offset += 4;
    CHECK(p.rejects("buffer %2: offset"));
    CHECK(p.rejects("64-byte aligned"));
  }
  SECTION("past the end") {
    Planned p;
    p.kg.scratch_bytes = 64;
    CHECK(p.rejects("scratch region"));
  }
  SECTION("a persistent buffer placed in scratch, so it would be reused") {
    Planned p;
    p.kg.buffers[size_t(p.buffer("w0"))].offset = 0;
    CHECK(p.rejects("buffer %w0 (persistent) is placed at scratch offset 0"));
  }
  SECTION("a lifetime that does not match the kernels' reads and writes") {
    Planned p;
    p.kg.buffers[size_t(p.buffer("2"))].last_use -= 1;
    CHECK(p.rejects("buffer %2: lifetime recorded as kernels 0.."));
  }
  SECTION("a kernel naming a buffer that does not exist") {
    Planned p;
    p.kg.kernels[0].reads.push_back(999);
    CHECK(p.rejects("k0_linear0_fwd_line3: reads buffer 999, out of range"));
  }
}

TEST_CASE("kernel verifier: GEMM parameters against the operand shapes", "[passes][verifier]") {
  SECTION("K") {
    Planned p;
    p.kg.kernels[size_t(p.kernel("linear2_fwd"))].gemm.K = 4;
    CHECK(
        p.rejects("k1_linear2_fwd_line3: gemm M=2 N=3 K=4 but %3 = matmul f32[2,5], f32[5,3] gives "
                  "M=2 N=3 K=5"));
  }
  SECTION("leading dimension") {
    Planned p;
    p.kg.kernels[size_t(p.kernel("linear2_fwd"))].gemm.lda = 4;
    CHECK(p.rejects("lda=4 but A %2 is f32[2,5]"));
  }
  SECTION("batched K of dW") {
    Planned p;
    p.kg.kernels[size_t(p.kernel("linear2_dW"))].gemm.k_batched = false;
    CHECK(p.rejects("K is not the runtime row count but %2 is batched"));
  }
  SECTION("dX reading W instead of its transposed copy") {
    Planned p;
    Kernel& k = p.kg.kernels[size_t(p.kernel("linear2_dX"))];
    k.gemm.b_buffer = p.buffer("w2");
    CHECK(p.rejects("is not the copy made by an earlier transpose kernel"));
  }
  SECTION("transpose of the wrong shape") {
    Planned p;
    Kernel& t = p.kg.kernels[size_t(p.kernel("linear2_wT"))];
    std::swap(t.t_rows, t.t_cols);
    CHECK(p.rejects("transposes [3,5] but %w2 is f32[5,3]"));
  }
  SECTION("normalize folded but loaded as is") {
    Planned p;
    p.kg.kernels[size_t(p.kernel("linear0_fwd"))].gemm.a_normalize = nullptr;
    CHECK(p.rejects("lists normalize %n as folded but loads A without it"));
  }
}

TEST_CASE("kernel verifier: GEMMs in columns and their transposed A", "[passes][verifier]") {
  // LeNet-5 at batch 64: the dX of Linear(400, 120) runs in columns from
  // its dYT copy, the dW of Linear(84, 10) in columns from X's rows.
  const ModelSpec spec = descent::testsupport::loadRepoModel("models/lenet5.nn");
  BuildOptions opts;
  opts.batch = 64;
  SECTION("a GEMM in columns that gemmInColumns rules out") {
    Planned p(buildTrainGraph(spec, opts));
    p.kg.kernels[size_t(p.kernel("linear7_fwd"))].gemm.columns = true;
    CHECK(p.rejects("computes C in columns, which gemmInColumns rules out for M=64 N=120 K=400"));
  }
  SECTION("a dX in columns reading dY itself as its Aᵀ") {
    Planned p(buildTrainGraph(spec, opts));
    GemmInfo& g = p.kg.kernels[size_t(p.kernel("linear7_dX"))].gemm;
    REQUIRE(g.columns);
    g.at_buffer = g.a_buffer;
    CHECK(p.rejects("its Aᵀ is not the copy made by an earlier transpose kernel"));
  }
  SECTION("a dX in columns reading another layer's dYᵀ") {
    Planned p(buildTrainGraph(spec, opts));
    p.kg.kernels[size_t(p.kernel("linear7_dX"))].gemm.at_buffer =
        p.kg.kernels[size_t(p.kernel("linear9_dX"))].gemm.at_buffer;
    CHECK(p.rejects("[64,84], not of A [64,120]"));
  }
  SECTION("a dX reading W by rows in place but in rows") {
    Planned p(buildTrainGraph(spec, opts));
    GemmInfo& g = p.kg.kernels[size_t(p.kernel("linear7_dX"))].gemm;
    g.columns = false;
    g.at_buffer = -1;
    CHECK(p.rejects("neither computes C in columns nor packs Wᵀ (packsTransposedB)"));
  }
  SECTION("a transposed A on a GEMM in rows") {
    Planned p(buildTrainGraph(spec, opts));
    p.kg.kernels[size_t(p.kernel("linear7_fwd"))].gemm.at_buffer =
        p.kg.kernels[size_t(p.kernel("linear7_dX"))].gemm.at_buffer;
    CHECK(p.rejects("reads a transposed A but does not compute a dX in columns"));
  }
}

TEST_CASE("kernel verifier: iteration spaces and reductions", "[passes][verifier]") {
  SECTION("epilogue shape") {
    Planned p;
    Kernel& k = p.kg.kernels[size_t(p.kernel("linear0_fwd"))];
    k.rows = 3;
    CHECK(p.rejects("add_bias %1 (f32[2,5], batched) does not match the iteration space [3(n),5]"));
  }
  SECTION("a loss split across tasks") {
    Planned p;
    p.kg.kernels[size_t(p.kernel("log_softmax"))].parallel = true;
    CHECK(p.rejects("must run on one task"));
  }
  SECTION("a stored value missing from the writes") {
    Planned p;
    Kernel& k = p.kg.kernels[size_t(p.kernel("linear0_fwd"))];
    k.writes.clear();
    CHECK(p.rejects("stores %2 but does not list its buffer in its writes"));
  }
}

TEST_CASE("checkKernelGraph throws a logic_error naming the graph and the pass",
          "[passes][verifier]") {
  Planned p;
  CHECK_NOTHROW(checkKernelGraph(p.kg, KernelStage::Planned, "plan_buffers"));
  p.kg.kernels[0].ops.clear();
  try {
    checkKernelGraph(p.kg, KernelStage::Planned, "plan_buffers");
    FAIL("no exception");
  } catch (const std::logic_error& e) {
    std::string what = e.what();
    CHECK(what.rfind("invalid kernel graph of @tiny after plan_buffers:\n  ", 0) == 0);
    CHECK(what.find("k0_linear0_fwd_line3: a gemm kernel with no ops") != std::string::npos);
  }
}

TEST_CASE("kernel verifier: graphs fuse schedules but the kernels could not run",
          "[passes][verifier]") {
  auto problems = [](const std::string& ir) {
    auto g = parseIr(ir);
    std::string err;
    KernelGraph kg = fuseGraph(*g, err);
    INFO(err);
    REQUIRE(err.empty());
    planBuffers(kg);
    std::string all;
    for (const auto& p : verifyKernelGraph(kg, KernelStage::Planned))
      all += p + "\n";
    return all;
  };
  SECTION("a dropout mask returned: recomputed by its readers, so never stored") {
    std::string p = problems(R"(graph @t(%x: f32[2,3] input, %seed: i32[] seed, %step: i32[] step) {
  %m = dropout_mask %seed, %step {p=0.5, rows=2, cols=3, salt=0} : f32[2,3]
  %y = mul %x, %m : f32[2,3]
  return y=%y, m=%m
})");
    CHECK(p == "graph output %m is computed by no kernel (dropout_mask %m is recomputed by its "
               "readers)\n");
  }
  SECTION("a scalar input other than the step and the seed") {
    std::string p = problems(R"(graph @t(%x: f32[2,3] input, %s: f32[]) {
  %l = mse_loss %x, %x {reduction="mean"} : f32[]
  %m = mul %l, %s : f32[]
  return m=%m
})");
    CHECK(p == "k1_mul: mul %m reads %s, a scalar input that is neither the step nor the seed: "
               "kernels receive no other scalar\n");
  }
}

TEST_CASE("kernel verifier: views (flatten, reshape_as) alias their root's buffer",
          "[passes][verifier][nd]") {
  {
    // An op moved into the kernel that computes the root of a view it reads.
    Planned p("fuse_views.ir");
    Kernel& relu = p.kg.kernels[size_t(p.kernel("k0_relu"))];
    Kernel& mul = p.kg.kernels[size_t(p.kernel("k1_mul"))];
    relu.ops.push_back(mul.ops.front());
    mul.ops.clear();
    CHECK(p.rejects("k0_relu_line3: mul %s reads %f, a view of %r, which this kernel computes"));
  }
  {
    Planned p("fuse_views.ir");
    p.kg.alias_of.erase(p.value("f"));
    CHECK(p.rejects("view flatten %f is not recorded as an alias of %r"));
  }
  {
    Planned p("fuse_views.ir");
    p.kg.buffer_of[p.value("u")] = p.buffer("ds");
    CHECK(p.rejects("buffer_of maps view %u to buffer %ds, not to the buffer of %v"));
  }
  {
    // The forward GEMM reads the flattened batch without folding its normalize.
    Planned p("fuse_flatten_fold.ir");
    Kernel& fwd = p.kg.kernels[size_t(p.kernel("k0_linear1_fwd"))];
    fwd.gemm.a_normalize = nullptr;
    fwd.folded.clear();
    CHECK(p.rejects("k0_linear1_fwd_line3: reads %f, which is folded, without folding it"));
  }
}

TEST_CASE("kernel verifier: a sliced weight gradient's partials and their sum",
          "[passes][verifier]") {
  Planned p("fuse_sliced_weight_grad.ir");
  const int a = p.kernel("w_dW_partials"), s = p.kernel("w_dW_sgd");
  REQUIRE(s == a + 1);
  SECTION("the sum before its partials") {
    std::swap(p.kg.kernels[size_t(a)], p.kg.kernels[size_t(s)]);
    CHECK(p.rejects("are not added up by a later column_sum kernel over %dw_partials"));
    CHECK(p.rejects("which no earlier partials kernel wrote"));
  }
  SECTION("the sum reading another buffer") {
    p.kg.kernels[size_t(s)].partials = p.buffer("c");
    CHECK(p.rejects("sums partials %c into conv2d_weight_grad %dw"));
    CHECK(p.rejects("are not added up by a later column_sum kernel"));
  }
  SECTION("chunks that do not cover the batch") {
    p.kg.kernels[size_t(a)].chunk_rows = 2;
    CHECK(p.rejects("5 chunks of 2 samples x 54 weights, but a batch of 5"));
  }
  SECTION("a partials kernel that does not list x") {
    auto& r = p.kg.kernels[size_t(a)].reads;
    r.erase(r.begin());
    CHECK(p.rejects("reads %x but the kernel does not list its buffer in its reads"));
  }
}
