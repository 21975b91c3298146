// Lexer unit tests: token kinds, spellings, values and 1-based locations.
#include "compiler/frontend/lexer.h"

#include <catch2/catch.hpp>

using namespace descent;

namespace {

std::vector<Token> lexOk(const std::string& src) {
  Diagnostics d("t.nn", src);
  std::vector<Token> toks = lex(src, d);
  INFO(d.render());
  REQUIRE_FALSE(d.hasErrors());
  return toks;
}

std::vector<TokKind> kinds(const std::vector<Token>& toks) {
  std::vector<TokKind> out;
  for (const Token& t : toks) out.push_back(t.kind);
  return out;
}

} // namespace

TEST_CASE("lexer: punctuation, names and locations") {
  auto toks = lexOk("model = Sequential(Linear(784, 128),)\n  x: f32[3]");
  using K = TokKind;
  CHECK(kinds(toks) == std::vector<K>{K::Ident, K::Equal, K::Ident, K::LParen, K::Ident, K::LParen,
                                      K::Int, K::Comma, K::Int, K::RParen, K::Comma, K::RParen,
                                      K::Newline, K::Ident, K::Colon, K::Ident, K::LBracket, K::Int,
                                      K::RBracket, K::End});
  CHECK(toks[0].loc == SourceLoc{1, 1});
  CHECK(toks[2].text == "Sequential");
  CHECK(toks[2].loc == SourceLoc{1, 9});
  CHECK(toks[6].int_value == 784);
  CHECK(toks[6].loc == SourceLoc{1, 27});
  CHECK(toks[13].text == "x");
  CHECK(toks[13].loc == SourceLoc{2, 3});
  CHECK(toks[17].int_value == 3);
}

TEST_CASE("lexer: number forms") {
  auto toks = lexOk("0.003 1e-8 .5 3. 42 2E+3");
  REQUIRE(toks.size() == 7);
  CHECK(toks[0].kind == TokKind::Float);
  CHECK(toks[0].float_value == Approx(0.003));
  CHECK(toks[1].kind == TokKind::Float);
  CHECK(toks[1].float_value == Approx(1e-8));
  CHECK(toks[2].kind == TokKind::Float);
  CHECK(toks[2].float_value == 0.5);
  CHECK(toks[3].kind == TokKind::Float);
  CHECK(toks[3].float_value == 3.0);
  CHECK(toks[3].text == "3.");
  CHECK(toks[4].kind == TokKind::Int);
  CHECK(toks[4].int_value == 42);
  CHECK(toks[4].float_value == 42.0);
  CHECK(toks[5].kind == TokKind::Float);
  CHECK(toks[5].float_value == 2000.0);
  CHECK(toks[5].loc.col == 21);
}

TEST_CASE("lexer: booleans in both spellings, strings in both quotes") {
  auto toks = lexOk("true True false False \"mean\" 'sum'");
  CHECK(toks[0].kind == TokKind::True);
  CHECK(toks[1].kind == TokKind::True);
  CHECK(toks[2].kind == TokKind::False);
  CHECK(toks[3].kind == TokKind::False);
  CHECK(toks[4].kind == TokKind::String);
  CHECK(toks[4].text == "mean");
  CHECK(toks[5].kind == TokKind::String);
  CHECK(toks[5].text == "sum");
  CHECK(toks[5].loc.col == 30);
}

TEST_CASE("lexer: comments and blank lines") {
  auto toks = lexOk("# header \xC3\xA9 comment\n\n\nbatch = 64   # trailing\n\n# end");
  using K = TokKind;
  // Comments may hold non-ASCII text; blank lines give no extra separators.
  CHECK(kinds(toks) == std::vector<K>{K::Ident, K::Equal, K::Int, K::Newline, K::End});
  CHECK(toks[0].loc == SourceLoc{4, 1});
}

TEST_CASE("lexer: CRLF line endings") {
  auto toks = lexOk("batch = 64\r\nepochs = 5\r\n");
  CHECK(toks[4].text == "epochs");
  CHECK(toks[4].loc == SourceLoc{2, 1});
}

TEST_CASE("lexer: errors carry their location and never stop lexing") {
  std::string src = "batch = 64;\nlr = 1e999\nn = 99999999999999999999\ns = \"open\nx = 12ab\n";
  Diagnostics d("t.nn", src);
  auto toks = lex(src, d);
  REQUIRE(d.errors().size() == 5);
  CHECK(d.errors()[0].message == "unexpected character ';'");
  CHECK(d.errors()[0].loc == SourceLoc{1, 11});
  CHECK(d.errors()[1].message == "number out of range");
  CHECK(d.errors()[1].loc == SourceLoc{2, 6});
  CHECK(d.errors()[2].message == "number out of range");
  CHECK(d.errors()[2].loc == SourceLoc{3, 5});
  CHECK(d.errors()[3].message == "unterminated string");
  CHECK(d.errors()[3].loc == SourceLoc{4, 5});
  CHECK(d.errors()[4].message == "invalid number '12ab'");
  CHECK(toks.back().kind == TokKind::End);
}

TEST_CASE("lexer: bad bytes are one error per run, and binary input stops after a bounded count") {
  std::string src = "x = \x01\x02\xff y\n";
  Diagnostics d("t.nn", src);
  lex(src, d);
  REQUIRE(d.errors().size() == 1);
  CHECK(d.errors()[0].message == "invalid byte 0x01 in model file");
  CHECK(d.errors()[0].loc == SourceLoc{1, 5});

  std::string junk;
  for (int i = 0; i < 4000; ++i) junk += (i % 2) ? char(0x80 + i % 100) : ';';
  Diagnostics d2("t.nn", junk);
  lex(junk, d2);
  CHECK(d2.errors().size() <= 25);
  CHECK(d2.errors().back().message.find("too many") != std::string::npos);
}

TEST_CASE("lexer: a UTF-8 byte-order mark is skipped without moving columns") {
  // Windows editors start UTF-8 files with EF BB BF; the CSV reader accepts it too.
  auto toks = lexOk("\xEF\xBB\xBF"
                    "input x: f32[2]\nbatch = 4");
  CHECK(toks[0].kind == TokKind::Ident);
  CHECK(toks[0].text == "input");
  CHECK(toks[0].loc == SourceLoc{1, 1});
  CHECK(toks[1].loc == SourceLoc{1, 7});
  // Only at the start of the file: elsewhere it is a non-ASCII byte as before.
  std::string mid = "x\n\xEF\xBB\xBF";
  Diagnostics d("t.nn", mid);
  lex(mid, d);
  CHECK(d.hasErrors());
}

TEST_CASE("diagnostics: the caret under line 1 of a file with a byte-order mark lines up") {
  std::string src = "\xEF\xBB\xBF"
                    "batch = 0\n";
  Diagnostics d("t.nn", src);
  d.error(SourceLoc{1, 9}, "batch must be >= 1, got 0");
  CHECK(d.render() == "t.nn:1:9: error: batch must be >= 1, got 0\n  batch = 0\n          ^\n");
}
