// Error-message tests: every file in tests/malformed/ starts with one or more
// "# expect: LINE:COL: error: MESSAGE" lines; analyzing the file must produce
// exactly those diagnostics, in that order, and render them without crashing.
#include "compiler/frontend/frontend.h"
#include "compiler/frontend/parser.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <random>
#include <sstream>

using namespace descent;
namespace fs = std::filesystem;

namespace {

std::string readFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> expectations(const std::string& src) {
  std::vector<std::string> out;
  std::istringstream in(src);
  std::string line;
  const std::string prefix = "# expect: ";
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) out.push_back(line.substr(prefix.size()));
  return out;
}

std::string firstLineOf(const Diagnostics& d, const Diagnostic& e) {
  return fmt::format("{}:{}:{}: error: {}", d.path(), e.loc.line, e.loc.col, e.message);
}

std::vector<fs::path> malformedFiles() {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(fs::path(DESCENT_SOURCE_DIR) / "tests/malformed"))
    if (entry.path().extension() == ".nn") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

} // namespace

TEST_CASE("malformed: every file gives exactly its expected diagnostics") {
  std::vector<fs::path> files = malformedFiles();
  CHECK(files.size() >= 35);
  for (const fs::path& file : files) {
    std::string rel = "tests/malformed/" + file.filename().string();
    DYNAMIC_SECTION(rel) {
      std::string src = readFile(file);
      std::vector<std::string> expected = expectations(src);
      REQUIRE_FALSE(expected.empty());
      Diagnostics d(rel, src);
      auto spec = analyzeSource(rel, src, d);
      CHECK_FALSE(spec);
      std::string rendered = d.render();
      INFO(rendered);
      REQUIRE(d.hasErrors());
      CHECK(d.firstLine() == rel + ":" + expected[0]);
      std::vector<std::string> got;
      for (const Diagnostic& e : d.errors()) got.push_back(firstLineOf(d, e));
      std::vector<std::string> want;
      for (const std::string& e : expected) want.push_back(rel + ":" + e);
      CHECK(got == want);
      // Every diagnostic has a location and a caret line under its source line.
      for (const Diagnostic& e : d.errors()) CHECK(e.loc.known());
      CHECK(rendered.find("^\n") != std::string::npos);
    }
  }
}

TEST_CASE("malformed: an empty file reports every missing statement at 1:1") {
  Diagnostics d("empty.nn", "");
  CHECK_FALSE(analyzeSource("empty.nn", "", d));
  REQUIRE(d.errors().size() == 5);
  CHECK(d.firstLine() == "empty.nn:1:1: error: missing 'input' declaration");
  CHECK(d.errors()[4].message == "missing 'optimizer' statement");
}

TEST_CASE("malformed: random bytes never crash and always report errors") {
  std::mt19937 rng(12345);
  for (int round = 0; round < 200; ++round) {
    std::string src(size_t(rng() % 512), '\0');
    for (char& c : src) c = char(rng() % 256);
    Diagnostics d("junk.nn", src);
    CHECK_FALSE(analyzeSource("junk.nn", src, d));
    CHECK(d.hasErrors());
    CHECK_FALSE(d.render().empty());
  }
}

TEST_CASE("malformed: a generated file with NUL and high bytes points at the first bad byte") {
  fs::path dir = fs::path(DESCENT_BINARY_DIR) / "tests_tmp";
  fs::create_directories(dir);
  fs::path p = dir / "garbage.nn";
  {
    std::ofstream out(p, std::ios::binary);
    out << "input x: f32[4]\nbatch = 6";
    out.put('\0');
    out.put(char(0xC0));
    out << "4\n";
  }
  std::string src = readFile(p);
  Diagnostics d(p.string(), src);
  CHECK_FALSE(analyzeSource(p.string(), src, d));
  REQUIRE(d.hasErrors());
  CHECK(d.errors()[0].loc == SourceLoc{2, 10});
  CHECK(d.errors()[0].message == "invalid byte 0x00 in model file");
  // The rendered source line shows the bad bytes as '?', caret under the first.
  CHECK(d.render().find("  batch = 6??4\n           ^\n") != std::string::npos);
}

TEST_CASE("malformed: a text file that is not a model stops after a bounded number of errors") {
  std::string src;
  for (int i = 0; i < 5000; ++i) src += "this is not a model\n";
  Diagnostics d("prose.nn", src);
  CHECK_FALSE(analyzeSource("prose.nn", src, d));
  REQUIRE(d.errors().size() == kMaxErrors + 1);
  CHECK(d.errors()[0].loc == SourceLoc{1, 6});
  CHECK(d.errors().back().message == fmt::format("too many errors; stopping after {}", kMaxErrors));
  // The AST stage has the same bound.
  Diagnostics d2("prose.nn", src);
  CHECK_FALSE(parseSource("prose.nn", src, d2));
  CHECK(d2.errors().size() == kMaxErrors + 1);
}
