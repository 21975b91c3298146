// Atomic whole-file writes: content replaced, no temporary left behind, and
// errors name the path.
#include "runtime/atomic_file.h"
#include "runtime/errors.h"
#include "runtime_test_util.h"

#include <algorithm>
#include <filesystem>
#include <functional>

using namespace descent;
using namespace descent::testutil;

TEST_CASE("writeFileAtomic writes, replaces and leaves no temp file", "[atomic]") {
  TempDir d;
  writeFileAtomic(d / "ckpt", "first");
  CHECK(readFile(d / "ckpt") == "first");
  std::string big(1 << 20, 'x');
  big[12345] = '\0';
  writeFileAtomic(d / "ckpt", big);
  CHECK(readFile(d / "ckpt") == big);
  writeFileAtomic(d / "empty", "");
  CHECK(readFile(d / "empty").empty());
  CHECK(listDir(d.path()) == std::vector<std::string>{"ckpt", "empty"});
}

TEST_CASE("writeFileAtomic and readFile errors name the path", "[atomic][errors]") {
  TempDir d;
  const std::string p = d / "no/such/dir/ckpt";
  try {
    writeFileAtomic(p, "x");
    FAIL("expected a DataError");
  } catch (const DataError& e) {
    CHECK(std::string(e.what()) == p + ": No such file or directory");
  }
  try {
    readFile(d / "missing");
    FAIL("expected a DataError");
  } catch (const DataError& e) {
    CHECK(std::string(e.what()) == d / "missing" + ": No such file or directory");
  }
  try {
    readFile(d.path());
    FAIL("expected a DataError");
  } catch (const DataError& e) {
    CHECK(std::string(e.what()) == d.path() + ": Is a directory");
  }
  CHECK(listDir(d.path()).empty());
}
