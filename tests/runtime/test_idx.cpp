// IDX loading: raw and gzip files generated here, the directory layouts, and
// every malformed case with its message text checked.
#include "runtime/dataset.h"
#include "runtime/errors.h"
#include "runtime/idx.h"
#include "runtime_test_util.h"

#include <filesystem>
#include <functional>
#include <zlib.h>

using namespace descent;
using namespace descent::testutil;
using Catch::Matchers::Contains;

namespace {

/// Writes a small train (12 x 5x3) + test (4 x 5x3) set, raw or gzip, under `sub`.
void writeSet(const TempDir& dir, const std::string& sub, bool gzip, bool with_test = true) {
  auto put = [&](const std::string& name, const std::string& bytes) {
    std::string p = dir / (sub.empty() ? name : sub + "/" + name);
    if (gzip)
      writeGzip(p + ".gz", bytes);
    else
      writeBytes(p, bytes);
  };
  put("train-images-idx3-ubyte", idxImages(12, 5, 3));
  put("train-labels-idx1-ubyte", idxLabels(12, 4));
  if (with_test) {
    put("t10k-images-idx3-ubyte", idxImages(4, 5, 3));
    put("t10k-labels-idx1-ubyte", idxLabels(4, 4));
  }
}

void checkSmallSet(const DataSplit& split, bool with_test = true) {
  const Dataset& tr = split.train;
  CHECK(tr.count == 12);
  CHECK(tr.features == 15);
  CHECK(tr.image_rows == 5);
  CHECK(tr.image_cols == 3);
  CHECK(tr.is_u8);
  CHECK(tr.class_labels);
  CHECK(tr.target_size == 4);
  REQUIRE(tr.u8.size() == 12 * 15);
  for (size_t i = 0; i < tr.u8.size(); ++i) REQUIRE(tr.u8[i] == (7 * i + 3) % 256);
  REQUIRE(tr.labels.size() == 12);
  for (size_t i = 0; i < tr.labels.size(); ++i) REQUIRE(tr.labels[i] == int32_t(i % 4));
  CHECK(tr.f32.empty());
  REQUIRE(split.test.has_value() == with_test);
  if (with_test) {
    CHECK(split.test->count == 4);
    CHECK(split.test->features == 15);
    CHECK(split.test->labels == std::vector<int32_t>{0, 1, 2, 3});
  }
}

/// One gzip member holding `data` in a single stored (uncompressed) deflate
/// block, so its size is exactly data.size() + 23 bytes.
std::string storedGzipMember(const std::string& data) {
  REQUIRE(data.size() <= 65535);
  std::string s = {'\x1f', '\x8b', 8, 0, 0, 0, 0, 0, 0, '\xff'};
  const auto len = static_cast<uint16_t>(data.size());
  s += {1, static_cast<char>(len & 0xff), static_cast<char>(len >> 8),
        static_cast<char>(~len & 0xff), static_cast<char>((~len >> 8) & 0xff)};
  s += data;
  uint32_t crc = static_cast<uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
  for (uint32_t v : {crc, static_cast<uint32_t>(data.size())})
    for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return s;
}

} // namespace

TEST_CASE("IDX raw files load", "[idx]") {
  TempDir d;
  writeSet(d, "", false);
  checkSmallSet(loadIdxDir(d.path()));
}

TEST_CASE("IDX gzip files load", "[idx]") {
  TempDir d;
  writeSet(d, "", true);
  checkSmallSet(loadIdxDir(d.path()));
}

TEST_CASE("IDX torchvision layouts MNIST/raw and raw are found", "[idx]") {
  {
    TempDir d;
    writeSet(d, "MNIST/raw", true);
    checkSmallSet(loadIdxDir(d.path()));
    CHECK_THAT(loadIdxDir(d.path()).train.source, Contains("/MNIST/raw/train-images-idx3-ubyte.gz"));
  }
  {
    TempDir d;
    writeSet(d, "raw", false);
    checkSmallSet(loadIdxDir(d.path() + "/"));
  }
}

TEST_CASE("IDX uncompressed file is preferred over its .gz", "[idx]") {
  TempDir d;
  writeSet(d, "", true);
  writeSet(d, "", false);
  IdxFiles f = findIdxFiles(d.path());
  CHECK(f.train_images == d / "train-images-idx3-ubyte");
  CHECK(f.test_labels == d / "t10k-labels-idx1-ubyte");
}

TEST_CASE("IDX without a test pair loads train only", "[idx]") {
  TempDir d;
  writeSet(d, "", false, false);
  checkSmallSet(loadIdxDir(d.path()), false);
}

TEST_CASE("IDX missing files are reported with what was looked for", "[idx][errors]") {
  TempDir d;
  std::string msg = messageOf([&] { loadIdxDir(d.path()); });
  CHECK_THAT(msg, Contains(d.path() + ": no IDX training data found"));
  CHECK_THAT(msg, Contains("train-images-idx3-ubyte[.gz]"));
  CHECK_THAT(msg, Contains("train-labels-idx1-ubyte[.gz]"));
  CHECK_THAT(msg, Contains(d.path() + "/MNIST/raw/"));
  CHECK_THAT(msg, Contains(d.path() + "/raw/"));

  msg = messageOf([&] { loadIdxDir(d / "nope"); });
  CHECK(msg == d / "nope" + ": No such file or directory");

  writeBytes(d / "train-images-idx3-ubyte", idxImages(2, 2, 2));
  msg = messageOf([&] { loadIdxDir(d.path()); });
  CHECK_THAT(msg, Contains("train-labels-idx1-ubyte[.gz]"));

  writeBytes(d / "train-labels-idx1-ubyte", idxLabels(2, 2));
  writeBytes(d / "t10k-images-idx3-ubyte", idxImages(2, 2, 2));
  msg = messageOf([&] { loadIdxDir(d.path()); });
  CHECK_THAT(msg, Contains("t10k-labels-idx1-ubyte[.gz]"));

  msg = messageOf([&] { readIdx(d / "missing-idx1-ubyte", 1); });
  CHECK(msg == d / "missing-idx1-ubyte" + ": No such file or directory");
}

TEST_CASE("IDX truncated raw file reports expected vs actual bytes", "[idx][errors]") {
  TempDir d;
  const std::string img = idxImages(12, 5, 3);
  writeBytes(d / "img", img.substr(0, img.size() - 7));
  std::string msg = messageOf([&] { readIdx(d / "img", 3); });
  CHECK(msg == d / "img" + ": truncated file: expected " + std::to_string(img.size()) +
                   " bytes (16-byte header + 12x5x3 images), got " + std::to_string(img.size() - 7));

  // Cut inside the header.
  writeBytes(d / "img", img.substr(0, 9));
  msg = messageOf([&] { readIdx(d / "img", 3); });
  CHECK(msg == d / "img" + ": truncated file: expected a 16-byte header, got 9 bytes");

  // Extra bytes are just as wrong: the header does not describe the file.
  writeBytes(d / "img", img + "xy");
  msg = messageOf([&] { readIdx(d / "img", 3); });
  CHECK_THAT(msg, Contains("trailing bytes: expected " + std::to_string(img.size())));
}

TEST_CASE("IDX gzip whose content is short reports decompressed size", "[idx][errors]") {
  TempDir d;
  const std::string lab = idxLabels(30, 10);
  writeGzip(d / "lab.gz", lab.substr(0, lab.size() - 4)); // a valid gzip of a short file
  std::string msg = messageOf([&] { readIdx(d / "lab.gz", 1); });
  CHECK(msg == d / "lab.gz" + ": truncated file: expected " + std::to_string(lab.size()) +
                   " bytes (8-byte header + 30 labels) after decompression, got " +
                   std::to_string(lab.size() - 4));
}

TEST_CASE("IDX truncated gzip stream", "[idx][errors]") {
  TempDir d;
  writeGzip(d / "full.gz", idxImages(12, 5, 3));
  const std::string gz = readBytes(d / "full.gz");
  // Cut in the middle of the deflate data, and separately only the trailer.
  for (size_t keep : {gz.size() / 2, gz.size() - 3}) {
    writeBytes(d / "train-images-idx3-ubyte.gz", gz.substr(0, keep));
    std::string msg = messageOf([&] { readIdx(d / "train-images-idx3-ubyte.gz", 3); });
    CHECK(msg == d / "train-images-idx3-ubyte.gz" + ": truncated gzip stream");
  }
}

TEST_CASE("IDX corrupt gzip bytes", "[idx][errors]") {
  TempDir d;
  writeGzip(d / "full.gz", idxImages(12, 5, 3));
  const std::string gz = readBytes(d / "full.gz");
  SECTION("bad CRC in the trailer") {
    std::string bad = gz;
    bad[bad.size() - 6] = static_cast<char>(bad[bad.size() - 6] ^ 0x55);
    writeBytes(d / "x.gz", bad);
    std::string msg = messageOf([&] { readIdx(d / "x.gz", 3); });
    CHECK_THAT(msg, Contains(d / "x.gz" + ": corrupt gzip stream ("));
    CHECK_THAT(msg, Contains("check"));
  }
  SECTION("invalid deflate block type") {
    std::string bad = gz;
    bad[10] = static_cast<char>(0xff); // first deflate byte (no FNAME from gzopen): BTYPE=11
    writeBytes(d / "x.gz", bad);
    std::string msg = messageOf([&] { readIdx(d / "x.gz", 3); });
    CHECK(msg == d / "x.gz" + ": corrupt gzip stream (invalid block type)");
  }
  SECTION(".gz name without gzip content") {
    writeBytes(d / "x.gz", idxImages(1, 2, 2));
    std::string msg = messageOf([&] { readIdx(d / "x.gz", 3); });
    CHECK_THAT(msg, Contains(d / "x.gz" + ": not a gzip file"));
  }
}

TEST_CASE("IDX wrong magic and element type", "[idx][errors]") {
  TempDir d;
  writeBytes(d / "labels-as-images", idxLabels(3, 3));
  std::string msg = messageOf([&] { readIdx(d / "labels-as-images", 3); });
  CHECK(msg == d / "labels-as-images" +
                   ": wrong IDX magic 0x00000801: expected 0x00000803 (images with 3 dimensions), "
                   "but the file has 1 dimension");

  std::string img = idxImages(2, 2, 2);
  img[0] = 'P';
  writeBytes(d / "png", img);
  msg = messageOf([&] { readIdx(d / "png", 3); });
  CHECK_THAT(msg, Contains(d / "png" + ": not an IDX file (magic 0x50000803"));

  img = idxImages(2, 2, 2);
  img[2] = 0x0D; // float
  writeBytes(d / "float", img);
  msg = messageOf([&] { readIdx(d / "float", 3); });
  CHECK_THAT(msg, Contains("unsupported IDX element type 0x0D"));

  writeBytes(d / "empty", idxImages(0, 28, 28));
  msg = messageOf([&] { readIdx(d / "empty", 3); });
  CHECK(msg == d / "empty" + ": dimension 0 is 0 (no images)");
}

TEST_CASE("IDX image/label count mismatch names both files", "[idx][errors]") {
  TempDir d;
  writeGzip(d / "train-images-idx3-ubyte.gz", idxImages(12, 5, 3));
  writeGzip(d / "train-labels-idx1-ubyte.gz", idxLabels(11, 4));
  std::string msg = messageOf([&] { loadIdxDir(d.path()); });
  CHECK(msg == d / "train-images-idx3-ubyte.gz" + " has 12 images but " +
                   d / "train-labels-idx1-ubyte.gz" + " has 11 labels");
}

TEST_CASE("checkLabels validates against the model's classes", "[idx][errors]") {
  TempDir d;
  writeSet(d, "", false, false);
  DataSplit s = loadIdxDir(d.path());
  CHECK_NOTHROW(checkLabels(s.train, 4));
  std::string msg = messageOf([&] { checkLabels(s.train, 3); });
  CHECK_THAT(msg, Contains("label 3 of sample 3 is out of range for 3 classes"));
}

TEST_CASE("Fashion-MNIST from the dataset-fashion-mnist package", "[idx][fashion]") {
  // Must fail, not skip, when the package is missing: the setup script installs it.
  const std::string dir = defaultDataDir();
  REQUIRE(dir == "/usr/share/datasets/fashion-mnist");
  REQUIRE(std::filesystem::is_directory(dir));
  DataSplit s = loadIdxDir(dir);
  CHECK(s.train.count == 60000);
  CHECK(s.train.features == 784);
  CHECK(s.train.image_rows == 28);
  CHECK(s.train.image_cols == 28);
  CHECK(s.train.u8.size() == size_t(60000) * 784);
  CHECK(s.train.u8.capacity() == s.train.u8.size()); // decompressed in place, no slack
  REQUIRE(s.test.has_value());
  CHECK(s.test->count == 10000);
  CHECK(s.test->u8.size() == size_t(10000) * 784);
  CHECK(s.train.target_size == 10);
  std::vector<int64_t> per_class(10, 0);
  for (const Dataset* ds : {&s.train, &*s.test})
    for (int32_t l : ds->labels) {
      REQUIRE(l >= 0);
      REQUIRE(l < 10);
      if (ds == &s.train) ++per_class[l];
    }
  // Fashion-MNIST's training set is balanced.
  for (int64_t n : per_class) CHECK(n == 6000);
  CHECK(fashionMnistClassNames().size() == 10);
  CHECK(fashionMnistClassNames()[0] == "T-shirt/top");
  CHECK(fashionMnistClassNames()[9] == "Ankle boot");
}

TEST_CASE("IDX gzip of several concatenated members loads (cat a.gz b.gz)", "[idx]") {
  TempDir d;
  const std::string img = idxImages(12, 5, 3);
  // Members split inside the header and inside the pixels, one of them empty,
  // then zero padding (accepted by gzip(1) and Python's gzip module).
  std::string cat;
  size_t at = 0;
  for (size_t cut : {size_t(6), size_t(6), size_t(100), img.size()}) {
    writeGzip(d / "part.gz", img.substr(at, cut - at));
    cat += readBytes(d / "part.gz");
    at = cut;
  }
  for (const std::string& tail : {std::string(), std::string(5, '\0')}) {
    writeBytes(d / "cat.gz", cat + tail);
    IdxArray a = readIdx(d / "cat.gz", 3);
    CHECK(a.dims == std::vector<int64_t>{12, 5, 3});
    CHECK(std::string(a.data.begin(), a.data.end()) == img.substr(16));
  }
}

TEST_CASE("IDX gzip member boundary across the 64 KiB read buffer", "[idx]") {
  TempDir d;
  const std::string img = idxImages(300, 16, 16); // 76816 bytes
  // The first member is 65512 + 23 = 65535 bytes: the next member's magic
  // 1f 8b straddles the reader's first and second 64 KiB buffers.
  const std::string first = storedGzipMember(img.substr(0, 65512));
  REQUIRE(first.size() == 65535);
  writeGzip(d / "rest.gz", img.substr(65512));
  writeBytes(d / "x.gz", first + readBytes(d / "rest.gz"));
  IdxArray a = readIdx(d / "x.gz", 3);
  CHECK(std::string(a.data.begin(), a.data.end()) == img.substr(16));
  // A lone 1f there followed by anything else is garbage, not a member.
  writeBytes(d / "x.gz", first + "\x1f\x8c");
  CHECK(messageOf([&] { readIdx(d / "x.gz", 3); }) ==
        d / "x.gz" + ": trailing garbage after the gzip data at byte 65535 (expected the end of "
                     "the file or another gzip member)");
}

TEST_CASE("IDX gzip with garbage after the last member is rejected", "[idx][errors]") {
  TempDir d;
  const std::string img = idxImages(12, 5, 3);
  // The whole file in the first member, so the garbage is the only problem.
  writeGzip(d / "x.gz", img);
  const std::string gz = readBytes(d / "x.gz");
  for (const std::string& junk : {std::string("junk"), std::string("\0\0PK", 4), std::string("\x1f")}) {
    writeBytes(d / "x.gz", gz + junk);
    const size_t offset = gz.size() + junk.find_first_not_of('\0');
    CHECK(messageOf([&] { readIdx(d / "x.gz", 3); }) ==
          d / "x.gz" + ": trailing garbage after the gzip data at byte " + std::to_string(offset) +
              " (expected the end of the file or another gzip member)");
  }
  // A second member that is cut short is a truncated stream, not garbage.
  writeBytes(d / "x.gz", gz + gz.substr(0, 12));
  CHECK(messageOf([&] { readIdx(d / "x.gz", 3); }) == d / "x.gz" + ": truncated gzip stream");
}

TEST_CASE("IDX eval-only loading reads just the set eval uses", "[idx]") {
  TempDir d;
  writeSet(d, "", true);
  // A broken training set is never opened when there is a test set...
  writeBytes(d / "train-images-idx3-ubyte.gz", "not gzip at all");
  DataSplit s = loadIdxDir(d.path(), IdxSets::EvalOnly);
  CHECK(s.train.count == 0);
  CHECK(s.train.u8.empty());
  REQUIRE(s.test.has_value());
  CHECK(s.test->count == 4);
  CHECK(s.test->labels == std::vector<int32_t>{0, 1, 2, 3});
  // ...and is the one loaded when there is none.
  TempDir t;
  writeSet(t, "", false, false);
  s = loadIdxDir(t.path(), IdxSets::EvalOnly);
  CHECK_FALSE(s.test.has_value());
  CHECK(s.train.count == 12);
}
