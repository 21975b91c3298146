// Gradient clipping in the compiled step (issue #14): clip_grad_value stays in
// the fused update (the kernel graph is the unclipped model's); clip_grad_norm
// stores every gradient, reduces them in one ordered grad_norm kernel and runs
// each update in its own kernel after it, saying so in the fusion report; a
// max_norm that never clips gives the unclipped numbers bit for bit, in both
// engines. (The PyTorch fixtures clip_* run through the reference, differential,
// thread and CLI tests that pick every fixture up.)
#include "helpers.h"

#include <cstring>

using namespace descent;
using namespace descent::cgtest;

namespace {

const std::string kFixtures = "/tests/reference/fixtures/";

std::string fixtureText(const std::string& name) {
  return readText(sourceDir() + kFixtures + name + "/model.nn");
}

/// The fixture's model text without its clipping statement.
std::string withoutClip(const std::string& text) {
  std::istringstream in(text);
  std::string line, out;
  while (std::getline(in, line))
    if (line.rfind("clip_grad_", 0) != 0) out += line + "\n";
  return out;
}

std::unique_ptr<Program> compileTrain(const Graph& g, int threads, std::string& err) {
  return Program::compile({&g}, JitOptions{"", threads, threads > 1}, err);
}

/// The kernel graph's text without the header comments (target, compile time).
std::string kernelGraph(const Program& p) {
  std::string t = p.kernelsText();
  return t.substr(t.find("kernels @"));
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1))
    ++n;
  return n;
}

} // namespace

TEST_CASE("clip_grad_norm: updates leave the dW GEMMs and run after one ordered grad_norm",
          "[codegen][clip]") {
  ModelSpec spec = specFromText("clip.nn", fixtureText("clip_norm_ce_sgd_momentum"));
  BuildOptions opts;
  opts.batch = spec.batch;
  auto train = buildTrainGraph(spec, opts);
  std::string err;
  auto prog = compileTrain(*train, 1, err);
  INFO(err);
  REQUIRE(prog);
  std::string text = prog->kernelsText();
  INFO(text);
  size_t gn = text.find(": grad_norm [1,1] (task 0: ordered reduction)");
  REQUIRE(gn != std::string::npos);
  CHECK(count(text, ": grad_norm ") == 1);
  // Four params (two weights, two biases): each update is a map kernel's
  // epilogue after grad_norm, none a GEMM's or a column sum's.
  CHECK(count(text, "epilogue sgd_update") == 4);
  CHECK(text.find("epilogue sgd_update") > gn);
  CHECK(text.find("_dW_sgd") == std::string::npos);
  CHECK(text.find("_db_sgd") == std::string::npos);
  CHECK(text.find("op       %") != std::string::npos);
  CHECK(count(text, "update not fused: clip_grad_norm needs every gradient first") == 4);
  CHECK(text.find("clip_coef") > gn);
}

TEST_CASE("clip_grad_value keeps the unclipped kernel graph (the clamp is in the fused update)",
          "[codegen][clip]") {
  std::string text = fixtureText("clip_value_nll_sgd_momentum");
  BuildOptions opts;
  ModelSpec clipped = specFromText("clip.nn", text);
  ModelSpec plain = specFromText("clip.nn", withoutClip(text));
  REQUIRE(clipped.clip.value);
  REQUIRE_FALSE(plain.clip.value);
  opts.batch = clipped.batch;
  auto a = buildTrainGraph(clipped, opts);
  auto b = buildTrainGraph(plain, opts);
  std::string err;
  auto pa = compileTrain(*a, 1, err);
  auto pb = compileTrain(*b, 1, err);
  REQUIRE(pa);
  REQUIRE(pb);
  CHECK(kernelGraph(*pa) == kernelGraph(*pb));
  CHECK(kernelGraph(*pa).find("_dW_sgd") != std::string::npos);
}

TEST_CASE("a clip_grad_norm that never clips is bitwise the unclipped run, in both engines",
          "[codegen][clip]") {
  std::string text = fixtureText("clip_norm_never_nll_sgd");
  ModelSpec clipped = specFromText("clip.nn", text);
  ModelSpec plain = specFromText("clip.nn", withoutClip(text));
  REQUIRE(clipped.clip.norm);
  BuildOptions opts;
  opts.batch = clipped.batch;
  auto gc = buildTrainGraph(clipped, opts);
  auto gp = buildTrainGraph(plain, opts);
  std::string err;
  for (int threads : {1, 2}) {
    INFO(threads << " thread(s)");
    auto pc = compileTrain(*gc, threads, err);
    auto pp = compileTrain(*gp, threads, err);
    INFO(err);
    REQUIRE(pc);
    REQUIRE(pp);
    auto init = randomParams(*gc, 11);
    InterpState<float> sc{init, {}}, sp{init, {}};
    initInterpState(*gc, sc);
    initInterpState(*gp, sp);
    for (size_t i = 0; i < init.size(); ++i)
      for (Program* p : {pc.get(), pp.get()})
        std::memcpy(p->param(gc->params()[i]->external_name), init[i].data(), init[i].size() * 4);
    for (int s = 1; s <= 5; ++s) {
      int64_t n = s == 4 ? clipped.batch - 3 : clipped.batch;
      Batch b = makeBatch(clipped, n, uint32_t(s));
      pc->run(0, b.x(false), b.y(), n, s, 3);
      pp->run(0, b.x(false), b.y(), n, s, 3);
      BuildOptions io = opts;
      io.batch = n;
      auto rc = buildTrainGraph(clipped, io);
      auto rp = buildTrainGraph(plain, io);
      interpret(*rc, interpInputs(*rc, b, n, false, s, 3), sc);
      interpret(*rp, interpInputs(*rp, b, n, false, s, 3), sp);
    }
    for (size_t i = 0; i < init.size(); ++i) {
      const Value* p = gc->params()[i];
      INFO(p->external_name);
      CHECK(std::memcmp(pc->param(p->external_name), pp->param(p->external_name),
                        size_t(p->type.numel()) * 4) == 0);
      CHECK(std::memcmp(sc.params[i].data(), sp.params[i].data(), sc.params[i].size() * 4) == 0);
    }
  }
}
