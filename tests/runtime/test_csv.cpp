// CSV loading: features/targets split, exact float parsing, and every
// malformed case with its file:row location checked.
#include "runtime/csv.h"
#include "runtime/dataset.h"
#include "runtime/errors.h"
#include "runtime_test_util.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <functional>

using namespace descent;
using namespace descent::testutil;
using Catch::Matchers::Contains;

namespace {

float parsed(const char* text) {
  float v = 0;
  std::from_chars(text, text + std::strlen(text), v);
  return v;
}

} // namespace

TEST_CASE("CSV with class labels", "[csv]") {
  TempDir d;
  writeBytes(d / "a.csv", "f0,f1,\"f2\",label\n0.1,-2.5,3e-3,2\r\n\n 1 , 2 ,+3,0\n");
  Dataset ds = loadCsv(d / "a.csv", 3, 3, true);
  CHECK(ds.source == d / "a.csv");
  CHECK(ds.count == 2);
  CHECK(ds.features == 3);
  CHECK_FALSE(ds.is_u8);
  CHECK(ds.class_labels);
  CHECK(ds.target_size == 3);
  CHECK(ds.image_rows == 0);
  CHECK(ds.f32 == std::vector<float>{parsed("0.1"), -2.5f, parsed("3e-3"), 1, 2, 3});
  CHECK(ds.labels == std::vector<int32_t>{2, 0});
  CHECK(ds.targets.empty());
}

TEST_CASE("CSV with real targets", "[csv]") {
  TempDir d;
  writeBytes(d / "r.csv", "x,t0,t1\n1.5,0.25,-1\n-0,1e2,0.333333343\n");
  Dataset ds = loadCsv(d / "r.csv", 1, 2, false);
  CHECK(ds.count == 2);
  CHECK_FALSE(ds.class_labels);
  CHECK(ds.target_size == 2);
  CHECK(ds.f32 == std::vector<float>{1.5f, -0.0f});
  CHECK(ds.targets == std::vector<float>{0.25f, -1, 100, parsed("0.333333343")});
  CHECK(ds.labels.empty());
}

TEST_CASE("CSV floats round-trip exactly through '.9g'", "[csv]") {
  // Every float32 printed with 9 significant digits must parse back bit-exactly:
  // the reference fixtures rely on this.
  TempDir d;
  std::string text = "x,y\n";
  std::vector<float> want;
  uint32_t state = 12345;
  for (int i = 0; i < 500; ++i) {
    // Random sign and mantissa, exponent in [2^-20, 2^20): an LCG keeps it deterministic.
    state = state * 1664525u + 1013904223u;
    uint32_t bits = (state & 0x807fffffu) | ((107u + (state >> 8) % 40u) << 23);
    float v;
    std::memcpy(&v, &bits, 4);
    want.push_back(v);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.9g,0\n", double(v));
    text += buf;
  }
  writeBytes(d / "p.csv", text);
  Dataset ds = loadCsv(d / "p.csv", 1, 1, false);
  REQUIRE(ds.f32.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) REQUIRE(ds.f32[i] == want[i]);
}

TEST_CASE("CSV without a final newline and with CRLF line ends", "[csv]") {
  TempDir d;
  writeBytes(d / "a.csv", "a,b\r\n1,2\r\n3,4");
  Dataset ds = loadCsv(d / "a.csv", 1, 1, false);
  CHECK(ds.count == 2);
  CHECK(ds.f32 == std::vector<float>{1, 3});
  CHECK(ds.targets == std::vector<float>{2, 4});
  CsvTable t = parseCsv(d / "a.csv", 2, "1 feature + 1 target");
  CHECK(t.header == std::vector<std::string>{"a", "b"});
  CHECK(t.line_of_row == std::vector<int64_t>{2, 3});
}

TEST_CASE("CSV wrong column count", "[csv][errors]") {
  TempDir d;
  writeBytes(d / "c.csv", "a,b,label\n1,2,0\n1,2\n");
  CHECK(messageOf([&] { loadCsv(d / "c.csv", 2, 5, true); }) ==
        d / "c.csv" + ":3: expected 3 columns (2 features + 1 label), got 2");
  // The header is row 1 and is checked too.
  CHECK(messageOf([&] { loadCsv(d / "c.csv", 2, 2, false); }) ==
        d / "c.csv" + ":1: expected 4 columns (2 features + 2 targets), got 3");
}

TEST_CASE("CSV non-number names row, column and header", "[csv][errors]") {
  TempDir d;
  writeBytes(d / "n.csv", "a,b,label\n1,2,0\n3,abc,1\n");
  CHECK(messageOf([&] { loadCsv(d / "n.csv", 2, 2, true); }) ==
        d / "n.csv" + ":3: column 2 ('b'): 'abc' is not a number");
  writeBytes(d / "n.csv", "a,b,label\n1,,0\n");
  CHECK(messageOf([&] { loadCsv(d / "n.csv", 2, 2, true); }) ==
        d / "n.csv" + ":2: column 2 ('b'): '' is not a number");
  writeBytes(d / "n.csv", "a,b,label\n1,2.5x,0\n");
  CHECK(messageOf([&] { loadCsv(d / "n.csv", 2, 2, true); }) ==
        d / "n.csv" + ":2: column 2 ('b'): '2.5x' is not a number");
  writeBytes(d / "n.csv", "a,b,label\n1,nan,0\n");
  CHECK(messageOf([&] { loadCsv(d / "n.csv", 2, 2, true); }) ==
        d / "n.csv" + ":2: column 2 ('b'): 'nan' is not a finite number");
}

TEST_CASE("CSV label out of range or not an integer", "[csv][errors]") {
  TempDir d;
  writeBytes(d / "l.csv", "a,label\n1,0\n\n2,10\n");
  CHECK(messageOf([&] { loadCsv(d / "l.csv", 1, 10, true); }) ==
        d / "l.csv" + ":4: column 2 ('label'): label 10 is out of range [0, 10)");
  writeBytes(d / "l.csv", "a,label\n1,-1\n");
  CHECK(messageOf([&] { loadCsv(d / "l.csv", 1, 10, true); }) ==
        d / "l.csv" + ":2: column 2 ('label'): label -1 is out of range [0, 10)");
  writeBytes(d / "l.csv", "a,label\n1,2.5\n");
  CHECK(messageOf([&] { loadCsv(d / "l.csv", 1, 10, true); }) ==
        d / "l.csv" + ":2: column 2 ('label'): class label 2.5 is not an integer");
}

TEST_CASE("CSV labels equal to the loss's ignore_index load and others stay in range", "[csv]") {
  TempDir d;
  writeBytes(d / "l.csv", "a,label\n1,-100\n2,3\n3,-100\n");
  // Without an ignore_index (none written in the loss) -100 is no class.
  CHECK(messageOf([&] { loadCsv(d / "l.csv", 1, 10, true); }) ==
        d / "l.csv" + ":2: column 2 ('label'): label -100 is out of range [0, 10)");
  Dataset ds = loadCsv(d / "l.csv", 1, 10, true, false, int64_t(-100));
  CHECK(ds.labels == std::vector<int32_t>{-100, 3, -100});
  CHECK_NOTHROW(checkLabels(ds, 10, int64_t(-100)));
  CHECK(messageOf([&] { checkLabels(ds, 10); }) ==
        d / "l.csv" + ": label -100 of sample 0 is out of range for 10 classes");
  writeBytes(d / "l.csv", "a,label\n1,-1\n");
  CHECK(
      messageOf([&] { loadCsv(d / "l.csv", 1, 10, true, false, int64_t(-100)); }) ==
      d / "l.csv" +
          ":2: column 2 ('label'): label -1 is out of range [0, 10) and is not ignore_index=-100");
}

TEST_CASE("CSV empty, header-only and missing files", "[csv][errors]") {
  TempDir d;
  writeBytes(d / "e.csv", "");
  CHECK(messageOf([&] { loadCsv(d / "e.csv", 1, 2, true); }) ==
        d / "e.csv" + ": empty file (expected a header row and data rows)");
  writeBytes(d / "e.csv", "\n\n");
  CHECK(messageOf([&] { loadCsv(d / "e.csv", 1, 2, true); }) ==
        d / "e.csv" + ": empty file (expected a header row and data rows)");
  writeBytes(d / "h.csv", "a,label\n");
  CHECK(messageOf([&] { loadCsv(d / "h.csv", 1, 2, true); }) ==
        d / "h.csv" + ": no data rows after the header");
  CHECK(messageOf([&] { loadCsv(d / "none.csv", 1, 2, true); }) ==
        d / "none.csv" + ": No such file or directory");
  CHECK(messageOf([&] { loadCsv(d.path(), 1, 2, true); }) == d.path() + ": Is a directory");
}

TEST_CASE("CSV without a header row is an error with a hint, not a lost sample", "[csv][errors]") {
  TempDir d;
  writeBytes(d / "nh.csv", "\n5.1,3.5,0\n4.9,3.0,1\n");
  CHECK(messageOf([&] { loadCsv(d / "nh.csv", 2, 2, true); }) ==
        d / "nh.csv" + ":2: the first row ('5.1,3.5,0') is numbers, not column names: add a "
                       "header row (e.g. 'x1,x2,y') so this sample is not lost");
  // Long rows are shortened in the message, and the example header too.
  std::string row;
  for (int i = 0; i < 30; ++i) row += "0.125,";
  writeBytes(d / "nh.csv", row + "1\n");
  CHECK(messageOf([&] { loadCsv(d / "nh.csv", 30, 2, true); }) ==
        d / "nh.csv" + ":1: the first row ('" + row.substr(0, 40) +
            "...') is numbers, not column names: add a header row (e.g. 'x1,x2,...,x30,y') so "
            "this sample is not lost");
}

TEST_CASE("CSV header rows that look numeric", "[csv]") {
  TempDir d;
  // pandas writes 0,1,...,N-1 for an unnamed DataFrame and reads it back as names.
  writeBytes(d / "pd.csv", "0,1,2\n0.5,1.5,1\n2.5,3.5,0\n");
  Dataset ds = loadCsv(d / "pd.csv", 2, 2, true);
  CHECK(ds.count == 2);
  CHECK(ds.f32 == std::vector<float>{0.5f, 1.5f, 2.5f, 3.5f});
  CHECK(ds.labels == std::vector<int32_t>{1, 0});
  // One name that is not a number makes the row a header.
  writeBytes(d / "mix.csv", "1,2,label\n7,8,1\n");
  ds = loadCsv(d / "mix.csv", 2, 2, true);
  CHECK(ds.count == 1);
  CHECK(ds.f32 == std::vector<float>{7, 8});
}

TEST_CASE("CSV values below float32's range underflow like numpy's", "[csv]") {
  TempDir d;
  // 1e-40 and 1.4e-45 are subnormal floats; smaller magnitudes round to (signed) 0.
  writeBytes(d / "u.csv", "x,y\n1e-50,-1e-50\n1e-40,1.4e-45\n7e-46,1e-99999999999999999999\n0." +
                              std::string(400, '0') + "1,-0\n");
  Dataset ds = loadCsv(d / "u.csv", 1, 1, false);
  REQUIRE(ds.count == 4);
  CHECK(ds.f32 == std::vector<float>{0.0f, parsed("1e-40"), 0.0f, 0.0f});
  CHECK(ds.targets == std::vector<float>{-0.0f, parsed("1.4e-45"), 0.0f, -0.0f});
  CHECK_FALSE(std::signbit(ds.f32[0]));
  CHECK(std::signbit(ds.targets[0]));
  CHECK(parsed("1e-40") > 0);
  CHECK(parsed("1.4e-45") > 0);
  // Too large for float32 is still an error.
  for (const std::string& big : {std::string("1e39"), std::string("-1e999"), "1" + std::string(400, '0')}) {
    writeBytes(d / "o.csv", "x,y\n1," + big + "\n");
    CHECK(messageOf([&] { loadCsv(d / "o.csv", 1, 1, false); }) ==
          d / "o.csv" + ":2: column 2 ('y'): '" + big + "' is not a finite number");
  }
}

TEST_CASE("CSV label errors quote the label as written", "[csv][errors]") {
  TempDir d;
  // float32 would round these to 16777216, 3 and 0.
  writeBytes(d / "l.csv", "a,label\n1,16777217\n");
  CHECK(messageOf([&] { loadCsv(d / "l.csv", 1, 10, true); }) ==
        d / "l.csv" + ":2: column 2 ('label'): label 16777217 is out of range [0, 10)");
  writeBytes(d / "l.csv", "a,label\n1,3.0000001\n");
  CHECK(messageOf([&] { loadCsv(d / "l.csv", 1, 10, true); }) ==
        d / "l.csv" + ":2: column 2 ('label'): class label 3.0000001 is not an integer");
  writeBytes(d / "l.csv", "a,label\n1,1e-50\n");
  CHECK(messageOf([&] { loadCsv(d / "l.csv", 1, 10, true); }) ==
        d / "l.csv" + ":2: column 2 ('label'): class label 1e-50 is not an integer");
  writeBytes(d / "l.csv", "a,label\n1,2.50\n");
  CHECK(messageOf([&] { loadCsv(d / "l.csv", 1, 10, true); }) ==
        d / "l.csv" + ":2: column 2 ('label'): class label 2.50 is not an integer");
  // Integers written as floats are still labels.
  writeBytes(d / "l.csv", "a,label\n1,3.0\n2,+1e0\n3,-0\n");
  CHECK(loadCsv(d / "l.csv", 1, 10, true).labels == std::vector<int32_t>{3, 1, 0});
}
