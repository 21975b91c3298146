// Parser unit tests: statements, calls, keyword arguments, tuples, trailing
// commas, locations on nodes, nesting limit and error recovery.
#include "compiler/frontend/ast_printer.h"
#include "compiler/frontend/frontend.h"
#include "compiler/frontend/parser.h"

#include <catch2/catch.hpp>

using namespace descent;

namespace {

ast::File parseOk(const std::string& src) {
  Diagnostics d("t.nn", src);
  auto file = parseSource("t.nn", src, d);
  INFO(d.render());
  REQUIRE(file);
  return *file;
}

} // namespace

TEST_CASE("parser: declarations and assignments") {
  auto f = parseOk("input  x: f32[784]\ntarget y: class[10]\nbatch = 64\n");
  REQUIRE(f.stmts.size() == 3);
  CHECK(f.stmts[0].kind == ast::StmtKind::Input);
  CHECK(f.stmts[0].name == "x");
  CHECK(f.stmts[0].name_loc == SourceLoc{1, 8});
  CHECK(f.stmts[0].type.elem == "f32");
  CHECK(f.stmts[0].type.size == 784);
  CHECK(f.stmts[0].type.size_loc == SourceLoc{1, 15});
  CHECK(f.stmts[1].kind == ast::StmtKind::Target);
  CHECK(f.stmts[1].type.elem == "class");
  CHECK(f.stmts[2].kind == ast::StmtKind::Assign);
  CHECK(f.stmts[2].name == "batch");
  CHECK(f.stmts[2].value.kind == ast::ExprKind::Int);
  CHECK(f.stmts[2].value.int_value == 64);
  CHECK(f.stmts[2].value.loc == SourceLoc{3, 9});
}

TEST_CASE("parser: calls across lines, keyword args, trailing commas") {
  auto f = parseOk("model = Sequential(\n    Linear(784, 128, bias=False),\n    LogSoftmax(dim=-1),\n)\n");
  REQUIRE(f.stmts.size() == 1);
  const ast::Expr& seq = f.stmts[0].value;
  CHECK(seq.kind == ast::ExprKind::Call);
  CHECK(seq.text == "Sequential");
  REQUIRE(seq.args.size() == 2);
  const ast::Expr& lin = seq.args[0].value;
  CHECK(lin.text == "Linear");
  CHECK(lin.loc == SourceLoc{2, 5});
  REQUIRE(lin.args.size() == 3);
  CHECK(lin.args[0].name.empty());
  CHECK(lin.args[2].name == "bias");
  CHECK(lin.args[2].name_loc == SourceLoc{2, 22});
  CHECK(lin.args[2].value.kind == ast::ExprKind::Bool);
  CHECK_FALSE(lin.args[2].value.bool_value);
  const ast::Arg& dim = seq.args[1].value.args[0];
  CHECK(dim.name == "dim");
  CHECK(dim.value.int_value == -1);
  CHECK(dim.value.text == "-1");
}

TEST_CASE("parser: tuples, 1-tuples, parentheses and lists") {
  auto f = parseOk("a = Adam(betas=(0.9, 0.999,))\nb = Normalize((0.5,), (0.5))\nc = F([1, 2])\n");
  const ast::Expr& betas = f.stmts[0].value.args[0].value;
  CHECK(betas.kind == ast::ExprKind::Tuple);
  REQUIRE(betas.elements.size() == 2);
  CHECK(betas.elements[1].float_value == Approx(0.999));
  const ast::Expr& norm = f.stmts[1].value;
  CHECK(norm.args[0].value.kind == ast::ExprKind::Tuple); // (0.5,) is a tuple
  CHECK(norm.args[1].value.kind == ast::ExprKind::Float); // (0.5) is just 0.5
  CHECK(f.stmts[2].value.args[0].value.kind == ast::ExprKind::Tuple);
  CHECK(f.stmts[2].value.args[0].value.elements.size() == 2);
}

TEST_CASE("parser: strings keep their contents") {
  auto f = parseOk("loss = NLLLoss(reduction='sum')\n");
  CHECK(f.stmts[0].value.args[0].value.kind == ast::ExprKind::String);
  CHECK(f.stmts[0].value.args[0].value.text == "sum");
}

TEST_CASE("parser: recovery reports every broken statement") {
  std::string src = "model = Sequential(Linear(784 10))\n"
                    "loss = NLLLoss(\n"
                    "optimizer = SGD(lr=0.1) 7\n"
                    "batch = = 3\n"
                    "epochs = 5\n";
  Diagnostics d("t.nn", src);
  auto toks = lex(src, d);
  ast::File f = parse(toks, d);
  REQUIRE(d.errors().size() == 4);
  CHECK(d.errors()[0].loc == SourceLoc{1, 31});
  CHECK(d.errors()[0].message == "expected ',' or ')', found number '10'");
  CHECK(d.errors()[1].loc == SourceLoc{2, 15});
  CHECK(d.errors()[1].message == "'(' was never closed");
  CHECK(d.errors()[2].loc == SourceLoc{3, 25});
  CHECK(d.errors()[3].loc == SourceLoc{4, 9});
  // The statement after the errors parsed normally.
  REQUIRE_FALSE(f.stmts.empty());
  CHECK(f.stmts.back().name == "epochs");
  CHECK_FALSE(f.stmts.back().broken);
  CHECK(f.stmts[0].broken);
}

TEST_CASE("parser: deep nesting is an error, not a stack overflow") {
  for (const char* open : {"(", "["}) {
    std::string src = "model = Sequential(";
    for (int i = 0; i < 10000; ++i) src += open;
    Diagnostics d("t.nn", src);
    auto file = parseSource("t.nn", src, d);
    CHECK_FALSE(file);
    REQUIRE(d.errors().size() == 1);
    CHECK(d.errors()[0].message.find("too deeply nested") != std::string::npos);
    CHECK(d.errors()[0].loc.col == 20 + kMaxNesting - 1);
  }
  // Exactly at the limit it parses.
  std::string ok = "a = ";
  for (int i = 0; i < kMaxNesting; ++i) ok += "(";
  ok += "1,";
  for (int i = 0; i < kMaxNesting; ++i) ok += ")";
  Diagnostics d("t.nn", ok);
  CHECK(parseSource("t.nn", ok, d));
}

TEST_CASE("parser: very long lines") {
  std::string src = "model = Sequential(";
  for (int i = 0; i < 20000; ++i) src += "ReLU(), ";
  src += ")\n";
  auto f = parseOk(src);
  CHECK(f.stmts[0].value.args.size() == 20000);
  CHECK(f.stmts[0].value.args.back().value.loc.col == 20 + 8 * 19999);
}

TEST_CASE("parser: AST printer shows nodes with locations") {
  auto f = parseOk("input x: f32[784]\nmodel = Sequential(Linear(784, 10, bias=False))\n");
  std::string out = printAst(f);
  CHECK(out.find("Input x: f32[784] <1:1>") != std::string::npos);
  CHECK(out.find("Assign model <2:1>") != std::string::npos);
  CHECK(out.find("    Call Sequential <2:9>\n      Call Linear <2:20>\n        Int 784 <2:27>") !=
        std::string::npos);
  CHECK(out.find("bias=Bool False <2:41>") != std::string::npos);
}
