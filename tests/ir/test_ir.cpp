// Graph IR tests: printer/parser round trip on every model, parser and
// verifier errors, shape rules of every layer, the golden forward graph.
#include "compiler/ir/dot.h"
#include "compiler/ir/model_builder.h"
#include "compiler/ir/param_init.h"
#include "compiler/ir/parser.h"
#include "compiler/ir/printer.h"
#include "compiler/ir/verifier.h"
#include "compiler/passes/train_graph.h"
#include "tests/common/test_support.h"

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <set>

using namespace descent;
using descent::testsupport::loadRepoModel;

namespace {

const char* kModels[] = {"models/mnist_mlp.nn", "models/mnist_ce.nn", "models/regression_mse.nn",
                         "models/binary_bce.nn"};

ModelSpec specWith(std::vector<Layer> layers, int64_t inputs, LossKind loss, TargetKind target,
                   int64_t target_size) {
  ModelSpec s;
  s.name = "t";
  s.path = "t.nn";
  s.input_size = inputs;
  s.layers = std::move(layers);
  for (size_t i = 0; i < s.layers.size(); ++i) s.layers[i].index = int(i);
  s.loss.kind = loss;
  s.target_kind = target;
  s.target_size = target_size;
  s.batch = 5;
  return s;
}

Layer linear(int64_t in, int64_t out, bool bias = true) {
  Layer l{LayerKind::Linear, {3, 1}};
  l.in_features = in;
  l.out_features = out;
  l.bias = bias;
  return l;
}
Layer layer(LayerKind k) { return Layer{k, {4, 1}}; }

std::string roundTrip(const Graph& g) {
  std::string text = printGraph(g);
  std::string err;
  auto g2 = parseGraph(text, err);
  INFO(err);
  REQUIRE(g2);
  return printGraph(*g2);
}

} // namespace

TEST_CASE("print(parse(print(g))) == print(g) for every model and variant", "[ir]") {
  for (const char* path : kModels) {
    ModelSpec spec = loadRepoModel(path);
    for (bool training : {true, false})
      for (bool u8 : {true, false}) {
        BuildOptions o;
        o.batch = 7;
        o.training = training;
        o.input_u8 = u8;
        o.eval_outputs = !training;
        auto g = buildForwardGraph(spec, o);
        INFO(path << " training=" << training << " u8=" << u8);
        CHECK(verifyGraph(*g) == "");
        CHECK(roundTrip(*g) == printGraph(*g));
      }
  }
}

TEST_CASE("forward graph of the notebook model matches the golden FileCheck", "[ir]") {
  ModelSpec spec = loadRepoModel("models/mnist_mlp.nn");
  BuildOptions o;
  o.batch = spec.batch;
  o.input_u8 = true;
  auto g = buildForwardGraph(spec, o);
  std::string out;
  int rc = descent::testsupport::fileCheck(printGraph(*g), std::string(DESCENT_SOURCE_DIR) + "/tests/ir/mnist_graph.check",
                                           out);
  INFO(out);
  CHECK(rc == 0);
}

TEST_CASE("every layer gets the right shape and params", "[ir]") {
  SECTION("Linear with and without bias") {
    auto spec = specWith({linear(13, 7), linear(7, 1, false)}, 13, LossKind::MSELoss, TargetKind::Real, 1);
    auto g = buildForwardGraph(spec, {});
    REQUIRE(g->params().size() == 3);
    CHECK(g->params()[0]->type == f32({13, 7}));
    CHECK(g->params()[0]->external_name == "0.weight");
    CHECK(g->params()[1]->type == f32({7}));
    CHECK(g->params()[2]->external_name == "1.weight");
    CHECK(g->params()[2]->type == f32({7, 1}));
    CHECK(g->input("y")->type == f32({64, 1}));
  }
  SECTION("activations keep the shape; softmax rows; dropout adds a mask only in training") {
    for (LayerKind k : {LayerKind::ReLU, LayerKind::Sigmoid, LayerKind::Tanh, LayerKind::LeakyReLU,
                        LayerKind::Softmax, LayerKind::LogSoftmax, LayerKind::Dropout}) {
      auto spec = specWith({linear(4, 3), layer(k)}, 4, LossKind::NLLLoss, TargetKind::Class, 3);
      BuildOptions o;
      o.batch = 5;
      auto g = buildForwardGraph(spec, o);
      CHECK(verifyGraph(*g) == "");
      const Op& last_layer = *g->ops()[g->ops().size() - 2];
      CHECK(last_layer.result->type == f32({5, 3}));
      bool has_mask = false;
      for (const auto& op : g->ops()) has_mask |= op->kind == OpKind::DropoutMask;
      CHECK(has_mask == (k == LayerKind::Dropout));
      CHECK((g->input("seed") != nullptr) == (k == LayerKind::Dropout));
      o.training = false;
      auto ge = buildForwardGraph(spec, o);
      for (const auto& op : ge->ops()) CHECK(op->kind != OpKind::DropoutMask);
    }
  }
  SECTION("CrossEntropyLoss is log_softmax + nll_loss; eval graphs count correct rows") {
    auto spec = specWith({linear(4, 3)}, 4, LossKind::CrossEntropyLoss, TargetKind::Class, 3);
    BuildOptions o;
    o.eval_outputs = true;
    auto g = buildForwardGraph(spec, o);
    std::string text = printGraph(*g);
    CHECK(text.find("log_softmax") != std::string::npos);
    CHECK(text.find("nll_loss") != std::string::npos);
    REQUIRE(g->output("correct"));
    CHECK(g->output("output")->type == f32({64, 3}));
  }
}

TEST_CASE("the IR parser reports line:col and the problem", "[ir]") {
  std::string err;
  CHECK_FALSE(parseGraph("graph @g(%x: f32[2,3]) {\n  %0 = frobnicate %x : f32[2,3]\n}\n", err));
  CHECK(err == "2:8: unknown op 'frobnicate'");
  CHECK_FALSE(parseGraph("graph @g(%x: f32[2,3]) {\n  %0 = relu %y : f32[2,3]\n}\n", err));
  CHECK(err == "2:13: use of undefined value %y");
  CHECK_FALSE(parseGraph("graph @g(%x: f32[2,3]) {\n  %0 = relu %x : f32[3,2]\n}\n", err));
  CHECK(err == "2:8: relu gives f32[2,3], but the text says f32[3,2]");
  CHECK_FALSE(parseGraph("graph @g(%x: f32[2,3], %w: f32[4,5]) {\n  %0 = matmul %x, %w : f32[2,5]\n}\n", err));
  CHECK(err == "2:8: matmul inner dimensions differ: 3 vs 4 (f32[2,3] x f32[4,5])");
  CHECK_FALSE(parseGraph("graph @g(%x: q8[2]) {\n}\n", err));
  CHECK(err == "1:14: unknown dtype 'q8'");
  // Attribute checks of an op's math definition (compiler/ir/op_math.h).
  CHECK_FALSE(parseGraph("graph @g(%x: f32[2,3]) {\n  %0 = gelu %x {approximate=\"fast\"} : f32[2,3]\n}\n", err));
  CHECK(err == "2:8: approximate must be \"none\" or \"tanh\", got \"fast\"");
  CHECK_FALSE(parseGraph("graph @g(%x: f32[2,3]) {\n  %0 = softplus %x {beta=0.0} : f32[2,3]\n}\n", err));
  CHECK(err == "2:8: softplus beta must not be 0");
  CHECK(parseGraph("graph @g(%x: f32[2,3]) {\n  %0 = gelu %x {approximate=\"tanh\"} : f32[2,3]\n}\n", err));
}

TEST_CASE("the verifier rejects reads after an update and state misuse", "[ir]") {
  const char* text = R"(graph @g(%x: f32[2,3], %step: i32[])
    params(%w: f32[3,3] "0.weight") {
  %0 = matmul %x, %w : f32[2,3]
  %1 = matmul %x, %0 {transpose_a=true} : f32[3,3]
  sgd_update %w, %1, %step {lr=0.1}
  %2 = matmul %x, %w : f32[2,3]
  return loss=%2
})";
  std::string err;
  CHECK_FALSE(parseGraph(text, err));
  CHECK(err.find("%w is read after its update") != std::string::npos);

  const char* text2 = R"(graph @g(%x: f32[2,3], %step: i32[])
    params(%w: f32[3,3] "0.weight")
    state(%m: f32[3,3] "0.weight.momentum_buffer") {
  %0 = add %w, %m : f32[3,3]
  return loss=%0
})";
  CHECK_FALSE(parseGraph(text2, err));
  CHECK(err.find("optimizer state %m read outside an update") != std::string::npos);
}

TEST_CASE("inputs carry their role, and internal names step aside for the user's", "[ir][names]") {
  // Issue 11, item 6: an input named like the step counter, the seed, a
  // parameter or the loss keeps its name; the internal value gets a suffix.
  ModelSpec spec = specWith({linear(6, 4), layer(LayerKind::Dropout), layer(LayerKind::LogSoftmax)}, 6,
                            LossKind::NLLLoss, TargetKind::Class, 4);
  spec.layers[1].p = 0.5;
  for (auto [input, target] : {std::pair{"step", "seed"}, std::pair{"w0", "loss"}, std::pair{"img", "label"}}) {
    spec.input_name = input;
    spec.target_name = target;
    BuildOptions o;
    o.batch = 5;
    o.training = true;
    auto g = buildForwardGraph(spec, o);
    INFO(input << " " << target << "\n" << printGraph(*g));
    CHECK(g->inputByRole(InputRole::Input)->name == input);
    CHECK(g->inputByRole(InputRole::Target)->name == target);
    CHECK(g->inputByRole(InputRole::Step)->type == i32({}));
    REQUIRE(g->inputByRole(InputRole::Seed));
    std::set<std::string> names;
    for (const Value* v : g->inputs()) CHECK(names.insert(v->name).second);
    for (const Value* v : g->params()) CHECK(names.insert(v->name).second);
    CHECK(names.insert(g->output("loss")->name).second);
    CHECK(verifyGraph(*g) == "");
    CHECK(roundTrip(*g) == printGraph(*g));
    std::string err;
    auto g2 = parseGraph(printGraph(*g), err);
    REQUIRE(g2);
    for (InputRole r : {InputRole::Input, InputRole::Target, InputRole::Step, InputRole::Seed})
      CHECK(g2->inputByRole(r)->name == g->inputByRole(r)->name);
  }
  spec.input_name = "step";
  spec.target_name = "seed";
  BuildOptions o;
  o.batch = 5;
  o.training = true;
  CHECK(printGraph(*buildForwardGraph(spec, o)).rfind(
            "graph @t(%step: f32[5,6] input, %seed: i32[5] target, %step.1: i32[] step, %seed.1: i32[] seed)", 0) ==
        0);

  std::string err;
  CHECK_FALSE(parseGraph("graph @g(%x: f32[2,3] inptu) {\n}\n", err));
  CHECK(err == "1:23: unknown input role 'inptu' (expected input, target, step or seed)");
  CHECK_FALSE(parseGraph("graph @g(%x: f32[2,3] input, %z: f32[2,3] input) {\n}\n", err));
  CHECK(err == "1:43: two inputs have the role 'input'");
  CHECK_FALSE(parseGraph("graph @g(%s: f32[2] step) {\n}\n", err));
  CHECK(err.find("input %s with the role 'step' must be i32[], not f32[2]") != std::string::npos);
  auto plain = parseGraph("graph @g(%x: f32[2,3], %step: i32[]) {\n}\n", err);
  REQUIRE(plain);
  CHECK(plain->inputByRole(InputRole::Step) == nullptr); // a role is declared, never guessed from a name
}

TEST_CASE("paramFanIns reads each parameter's fan-in from its description, not names or order",
          "[ir][init]") {
  ModelSpec spec = specWith({linear(6, 4, /*bias=*/false), layer(LayerKind::ReLU), linear(4, 3)}, 6,
                            LossKind::MSELoss, TargetKind::Real, 3);
  BuildOptions o;
  o.batch = 2;
  auto g = buildForwardGraph(spec, o);
  CHECK(paramFanIns(*g) == std::vector<int64_t>{6, 4, 4}); // 0.weight, 2.weight, 2.bias
  // Parsed with the bias listed first and names that say nothing: the text's
  // descriptions decide.
  std::string err;
  auto p = parseGraph(R"(graph @g(%a: f32[2,5] input)
    params(%q: f32[3] "p" {fan_in=5}, %r: f32[5,3] "q" {torch_shape=[3,5], perm=[1,0], fan_in=5}) {
  %0 = matmul %a, %r : f32[2,3]
  %1 = add_bias %0, %q : f32[2,3]
  return loss=%1
})",
                      err);
  INFO(err);
  REQUIRE(p);
  CHECK(paramFanIns(*p) == std::vector<int64_t>{5, 5});
}

TEST_CASE("a param's init distribution prints, parses back, and bad ones are refused", "[ir]") {
  const char* text = R"IR(graph @g(%a: f32[2,5] input)
    params(%q: f32[3] "p" {fan_in=5, init="constant(0.25)"}, %r: f32[5,3] "q" {torch_shape=[3,5], perm=[1,0], fan_in=5, init="normal(0, 0.05050762722761054)"}, %s: f32[3] "s" {init="uniform(-0.1, 0.30000000000000004)"}) {
  %0 = matmul %a, %r : f32[2,3]
  %1 = add_bias %0, %q : f32[2,3]
  %2 = add_bias %1, %s : f32[2,3]
  return loss=%2
})IR";
  std::string err;
  auto g = parseGraph(text, err);
  INFO(err);
  REQUIRE(g);
  const auto& ps = g->params();
  CHECK(ps[0]->desc.init == InitDist{InitDist::Kind::Constant, 0.25, 0});
  CHECK(ps[1]->desc.init == InitDist{InitDist::Kind::Normal, 0, 0.05050762722761054});
  CHECK(ps[2]->desc.init == InitDist{InitDist::Kind::Uniform, -0.1, 0.30000000000000004});
  // print -> parse -> print is the identity (the doubles round-trip exactly).
  std::string printed = printGraph(*g);
  CHECK(printed.find("init=\"uniform(-0.1, 0.30000000000000004)\"") != std::string::npos);
  auto again = parseGraph(printed, err);
  REQUIRE(again);
  CHECK(printGraph(*again) == printed);
  for (const char* bad : {"uniform(1, 0)", "normal(0, -1)", "gauss(0, 1)", "constant()", "normal(0, 1"}) {
    INFO(bad);
    std::string t = fmt::format(R"IR(graph @g(%a: f32[2,3] input) params(%q: f32[3] "p" {{init="{}"}}) {{
  %0 = add_bias %a, %q : f32[2,3]
  return loss=%0
}})IR", bad);
    CHECK_FALSE(parseGraph(t, err));
    CHECK(err.find(fmt::format("bad init '{}'", bad)) != std::string::npos);
  }
}

TEST_CASE("attributes print and parse back with their types", "[ir]") {
  CHECK(printAttr(Attr{1.0}) == "1.0");
  CHECK(printAttr(Attr{0.003}) == "0.003");
  CHECK(printAttr(Attr{1e-8}) == "1e-08");
  CHECK(printAttr(Attr{int64_t(3)}) == "3");
  CHECK(printAttr(Attr{true}) == "true");
  CHECK(printAttr(Attr{std::string("me\"an")}) == "\"me\\\"an\"");
  const char* text = R"(graph @g(%x: f32[2,3]) {
  %0 = leaky_relu %x {negative_slope=1.0} : f32[2,3]
  return out=%0
})";
  std::string err;
  auto g = parseGraph(text, err);
  REQUIRE(g);
  const Attr* a = g->ops()[0]->attrs.find("negative_slope");
  REQUIRE(a);
  CHECK(std::holds_alternative<double>(*a));
}

TEST_CASE("a loss list attribute prints and parses back and must fit its columns", "[ir]") {
  CHECK(printAttr(Attr{std::vector<double>{0.5, 2.0, 1.0}}) == "[0.5, 2.0, 1.0]");
  CHECK(printAttr(Attr{std::vector<double>{}}) == "[]");
  const std::string head = "graph @g(%x: f32[4,3], %y: i32[4]) {\n  %0 = nll_loss %x, %y ";
  std::string err;
  auto g = parseGraph(head + "{ignore_index=-100, weight=[0.5, 2, 1.5]} : f32[]\n  return loss=%0\n}\n", err);
  INFO(err);
  REQUIRE(g);
  CHECK(g->ops()[0]->attrs.getDoubles("weight") == std::vector<double>{0.5, 2.0, 1.5});
  CHECK(g->ops()[0]->attrs.getInt("ignore_index") == -100);
  CHECK(printGraph(*parseGraph(printGraph(*g), err)) == printGraph(*g));
  CHECK_FALSE(parseGraph(head + "{weight=[0.5, 2.0]} : f32[]\n}\n", err));
  CHECK(err == "2:8: weight has 2 values for 3 classes");
  CHECK_FALSE(parseGraph(head + "{weight=[0.5, \"a\", 1.0]} : f32[]\n}\n", err));
  CHECK(err.find("a list attribute holds numbers only") != std::string::npos);
  const std::string bce = "graph @g(%x: f32[4,3], %t: f32[4,3]) {\n  %0 = bce_with_logits %x, %t ";
  CHECK(parseGraph(bce + "{pos_weight=[3.0]} : f32[]\n}\n", err));
  CHECK_FALSE(parseGraph(bce + "{pos_weight=[1.0, 2.0]} : f32[]\n}\n", err));
  CHECK(err == "2:8: pos_weight has 2 values for 3 outputs");
}

TEST_CASE("Graphviz output has a node per op and an edge per use", "[ir]") {
  ModelSpec spec = loadRepoModel("models/mnist_mlp.nn");
  auto g = buildForwardGraph(spec, {});
  std::string dot = graphToDot(*g);
  CHECK(dot.rfind("digraph", 0) == 0);
  size_t boxes = 0, edges = 0;
  for (size_t p = 0; (p = dot.find("shape=box,", p)) != std::string::npos; ++p) ++boxes;
  for (size_t p = 0; (p = dot.find(" -> ", p)) != std::string::npos; ++p) ++edges;
  CHECK(boxes == g->ops().size());
  size_t uses = g->outputs().size();
  for (const auto& op : g->ops()) uses += op->operands.size();
  CHECK(edges == uses);
}

TEST_CASE("params describe their PyTorch shape, layout and fan-in", "[ir][params]") {
  ModelSpec spec = specWith({linear(6, 4, /*bias=*/false), layer(LayerKind::ReLU), linear(4, 3)}, 6,
                            LossKind::MSELoss, TargetKind::Real, 3);
  BuildOptions o;
  o.batch = 2;
  auto g = buildForwardGraph(spec, o);
  REQUIRE(g->params().size() == 3);
  const ParamDesc& w0 = g->params()[0]->desc;
  CHECK(w0.torch_shape == std::vector<int64_t>{4, 6}); // nn.Linear(6, 4).weight is [out, in]
  CHECK(w0.perm == std::vector<int>{1, 0});            // stored [in, out]
  CHECK(w0.irShape() == g->params()[0]->type.shape);
  CHECK(w0.fan_in == 6);
  const ParamDesc& b2 = g->params()[2]->desc;
  CHECK(b2.torch_shape == std::vector<int64_t>{3});
  CHECK(b2.isIdentity());
  CHECK(b2.fan_in == 4); // the bias draws with its weight's fan-in

  // Optimizer state has its param's layout and starts at zero.
  ModelSpec adam = specWith({linear(6, 4)}, 6, LossKind::MSELoss, TargetKind::Real, 4);
  adam.optimizer.kind = OptimizerKind::Adam;
  auto train = buildTrainGraph(adam, o);
  REQUIRE(!train->states().empty());
  for (const Value* s : train->states()) {
    CHECK(s->desc.fan_in == 0);
    CHECK(s->desc.irShape() == s->type.shape);
  }
  CHECK(train->states()[0]->desc.perm == std::vector<int>{1, 0});

  // The description prints and parses back.
  std::string text = printGraph(*train);
  CHECK(text.find("\"0.weight\" {torch_shape=[4,6], perm=[1,0], fan_in=6}") != std::string::npos);
  std::string err;
  auto back = parseGraph(text, err);
  INFO(err);
  REQUIRE(back);
  CHECK(printGraph(*back) == text);
  for (size_t i = 0; i < train->params().size(); ++i)
    CHECK(back->params()[i]->desc == train->params()[i]->desc);
  for (size_t i = 0; i < train->states().size(); ++i)
    CHECK(back->states()[i]->desc == train->states()[i]->desc);
}

TEST_CASE("the parser rejects a param description that does not fit the tensor", "[ir][params]") {
  std::string err;
  CHECK_FALSE(parseGraph(
      "graph @g() params(%w: f32[2,3] \"w\" {torch_shape=[2,3], perm=[1,0]}) {\n}\n", err));
  CHECK(err.find("%w: PyTorch shape [2,3] permuted by [1,0] is [3,2], not the IR's [2,3]") !=
        std::string::npos);
  CHECK_FALSE(parseGraph("graph @g() params(%w: f32[2,3] \"w\" {perm=[0,0]}) {\n}\n", err));
  CHECK(err.find("%w: [0,0] is not a permutation of 0..1") != std::string::npos);
  CHECK_FALSE(parseGraph("graph @g() params(%w: f32[2,3] \"w\" {perm=[1,0,2]}) {\n}\n", err));
  CHECK(err.find("%w: the permutation has 3 entries") != std::string::npos);
  CHECK_FALSE(parseGraph("graph @g() params(%w: f32[2,3] \"w\" {fan=3}) {\n}\n", err));
  CHECK(err.find("unknown param description 'fan'") != std::string::npos);
  // No description: PyTorch's layout, fan-in 0.
  auto g = parseGraph("graph @g() params(%w: f32[2,3] \"w\") {\n}\n", err);
  REQUIRE(g);
  CHECK(g->params()[0]->desc == identityDesc({2, 3}, 0));
}

TEST_CASE("the layout permutation works for any rank: a 4-D conv weight", "[ir][params]") {
  // nn.Conv2d(3, 5, kernel_size=(2, 4)).weight is [out, in, kh, kw] = [5, 3, 2, 4];
  // a backend might store it [kh, kw, in, out].
  ParamDesc d = permutedDesc({5, 3, 2, 4}, {2, 3, 1, 0});
  d.fan_in = torchFanIn(d.torch_shape);
  CHECK(d.fan_in == 3 * 2 * 4); // in * kh * kw, as torch.nn.init computes it
  CHECK(d.irShape() == std::vector<int64_t>{2, 4, 3, 5});
  CHECK(checkParamDesc(d, {2, 4, 3, 5}).empty());
  const int64_t n = 5 * 3 * 2 * 4;
  std::vector<float> torch(static_cast<size_t>(n)), ir(static_cast<size_t>(n), -1.0f),
      back(static_cast<size_t>(n), -1.0f);
  for (int64_t i = 0; i < n; ++i)
    torch[size_t(i)] = float(i);
  torchToIr(d, torch.data(), ir.data());
  // IR element [h][w][c][o] is PyTorch's [o][c][h][w], computed independently.
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t w = 0; w < 4; ++w)
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t o = 0; o < 5; ++o)
          REQUIRE(ir[size_t(((h * 4 + w) * 3 + c) * 5 + o)] ==
                  torch[size_t(((o * 3 + c) * 2 + h) * 4 + w)]);
  irToTorch(d, ir.data(), back.data());
  CHECK(back == torch);
  // A Linear weight: the transpose.
  ParamDesc lin = permutedDesc({2, 3}, {1, 0});
  std::vector<float> t{0, 1, 2, 3, 4, 5}, r(6);
  torchToIr(lin, t.data(), r.data());
  CHECK(r == std::vector<float>{0, 3, 1, 4, 2, 5});
  // Identity and scalars copy as they are.
  std::vector<float> s{7}, s2{0};
  torchToIr(identityDesc({}), s.data(), s2.data());
  CHECK(s2[0] == 7);
  CHECK(torchFanIn({10, 64}) == 64);
}

TEST_CASE("flatten follows torch.flatten's shape rule and errors, reshape_as keeps the count",
          "[ir][nd]") {
  auto parseOne = [](const std::string& op, std::string& err) {
    return parseGraph("graph @g(%x: f32[2,3,4,5], %v: f32[4,6]) {\n  " + op + "\n}\n", err);
  };
  std::string err;
  // Dims wrap like Python indices over the rank (with the batch); start..end merge.
  CHECK(parseOne("%0 = flatten %x {end_dim=-1, start_dim=1} : f32[2,60]", err));
  CHECK(parseOne("%0 = flatten %x {end_dim=2, start_dim=1} : f32[2,12,5]", err));
  CHECK(parseOne("%0 = flatten %x {end_dim=-2, start_dim=-3} : f32[2,12,5]", err));
  CHECK(parseOne("%0 = flatten %x {end_dim=2, start_dim=2} : f32[2,3,4,5]", err));
  CHECK(parseOne("%0 = flatten %x {end_dim=-1, start_dim=0} : f32[120]", err));
  CHECK_FALSE(parseOne("%0 = flatten %x {end_dim=4, start_dim=1} : f32[2,60]", err));
  CHECK(err == "2:8: flatten of %x (f32[2,3,4,5]): Dimension out of range (expected to be in "
               "range of [-4, 3], but got 4)");
  CHECK_FALSE(parseOne("%0 = flatten %x {end_dim=1, start_dim=-5} : f32[2,60]", err));
  CHECK(err == "2:8: flatten of %x (f32[2,3,4,5]): Dimension out of range (expected to be in "
               "range of [-4, 3], but got -5)");
  CHECK_FALSE(parseOne("%0 = flatten %x {end_dim=1, start_dim=2} : f32[2,60]", err));
  CHECK(err == "2:8: flatten of %x (f32[2,3,4,5]): flatten() has invalid args: start_dim cannot "
               "come after end_dim");
  CHECK_FALSE(parseOne("%0 = flatten %x {end_dim=-1, start_dim=1} : f32[2,3,20]", err));
  CHECK(err == "2:8: flatten gives f32[2,60], but the text says f32[2,3,20]");
  // reshape_as: x's elements in like's shape.
  CHECK_FALSE(parseOne("%0 = reshape_as %v, %x : f32[2,3,4]", err));
  CHECK(err == "2:8: reshape_as: shape '[2, 3, 4, 5]' of %x is invalid for input %v of size 24 "
               "(f32[4,6])");
  CHECK(parseGraph("graph @g(%x: f32[2,12], %l: f32[2,3,4]) {\n  %0 = reshape_as %x, %l : "
                   "f32[2,3,4]\n}\n",
                   err));
}

TEST_CASE("an N-D input keeps its shape in the graph, Flatten is a flatten op", "[ir][nd]") {
  ModelSpec s = specWith({layer(LayerKind::ReLU), layer(LayerKind::Flatten), linear(12, 4)}, 12,
                         LossKind::MSELoss, TargetKind::Real, 4);
  s.input_shape = {3, 4};
  BuildOptions o;
  o.batch = 5;
  auto g = buildForwardGraph(s, o);
  std::string text = printGraph(*g);
  INFO(text);
  CHECK(text.find("(%x: f32[5,3,4] input") != std::string::npos);
  CHECK(text.find("relu %x : f32[5,3,4]") != std::string::npos);
  CHECK(text.find("flatten %0 {end_dim=-1, start_dim=1} : f32[5,12]") != std::string::npos);
  CHECK(text.find("matmul %1, %w2 : f32[5,4]") != std::string::npos);
  CHECK(roundTrip(*g) == text);
  // On a [B, F] input, Flatten() changes no shape: PyTorch's identity, no op.
  s.input_shape = {12};
  text = printGraph(*buildForwardGraph(s, o));
  CHECK(text.find("flatten") == std::string::npos);
  CHECK(text.find("(%x: f32[5,12] input") != std::string::npos);
}

TEST_CASE("ops that need rank 2 name the N-D shape they got", "[ir][nd]") {
  std::string err;
  const std::string head = "graph @g(%x: f32[2,3,4], %w: f32[12,5], %b: f32[4], %y: i32[2]) {\n  ";
  CHECK_FALSE(parseGraph(head + "%0 = matmul %x, %w : f32[2,5]\n}\n", err));
  CHECK(err == "2:8: matmul lhs %x must have rank 2, got f32[2,3,4]");
  CHECK_FALSE(parseGraph(head + "%0 = add_bias %x, %b : f32[2,3,4]\n}\n", err));
  CHECK(err == "2:8: add_bias input %x must have rank 2, got f32[2,3,4]");
  CHECK_FALSE(parseGraph(head + "%0 = log_softmax %x {dim=1} : f32[2,3,4]\n}\n", err));
  CHECK(err == "2:8: operand %x must have rank 2, got f32[2,3,4]");
  CHECK_FALSE(parseGraph(head + "%0 = nll_loss %x, %y : f32[]\n}\n", err));
  CHECK(err == "2:8: scores %x must have rank 2, got f32[2,3,4]");
  // Elementwise ops take any rank.
  CHECK(parseGraph(head + "%0 = gelu %x : f32[2,3,4]\n  %1 = mul %0, %x : f32[2,3,4]\n}\n", err));
}
