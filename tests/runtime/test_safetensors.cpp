// Safetensors: round trip of every dtype, layout details PyTorch's loader
// relies on, and each corruption case with its message checked.
#include "runtime/atomic_file.h"
#include "runtime/errors.h"
#include "runtime/safetensors.h"
#include "runtime_test_util.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

using namespace descent;
using namespace descent::testutil;
using Catch::Matchers::Contains;

namespace {

/// Builds a file from a header text and a data section, like a hand-made checkpoint.
std::string rawFile(const std::string& header, const std::string& data) {
  std::string s(8, '\0');
  uint64_t n = header.size();
  std::memcpy(s.data(), &n, 8);
  return s + header + data;
}

SafeTensors sample() {
  SafeTensors st;
  const std::vector<float> w = {0.5f, -1.25f, 3.0f, 1e-30f, -0.0f, 7.0f};
  st.tensors["0.weight"] = fromFloats({3, 2}, w);
  st.tensors["0.bias"] = fromFloats({3}, std::vector<float>{1, 2, 3});
  st.tensors["d"] = fromDoubles({1}, std::vector<double>{0.1});
  st.tensors["step"] = fromInt64s({}, std::vector<int64_t>{42});
  std::vector<int32_t> i32 = {-7, 9};
  StTensor t;
  t.dtype = "I32";
  t.shape = {2};
  t.data.resize(8);
  std::memcpy(t.data.data(), i32.data(), 8);
  st.tensors["i"] = t;
  st.metadata["format"] = "pt";
  st.metadata["descent.model"] = "mnist_mlp";
  return st;
}

} // namespace

TEST_CASE("safetensors round trip", "[safetensors]") {
  TempDir d;
  const SafeTensors st = sample();
  writeSafetensors(d / "m.safetensors", st);
  SafeTensors back = readSafetensors(d / "m.safetensors");
  CHECK(back.metadata == st.metadata);
  REQUIRE(back.tensors.size() == st.tensors.size());
  for (const auto& [name, t] : st.tensors) {
    INFO(name);
    REQUIRE(back.tensors.count(name));
    CHECK(back.tensors[name].dtype == t.dtype);
    CHECK(back.tensors[name].shape == t.shape);
    CHECK(back.tensors[name].data == t.data);
  }
  CHECK(toFloats(back.tensors["0.weight"], "0.weight", "m") ==
        std::vector<float>{0.5f, -1.25f, 3.0f, 1e-30f, -0.0f, 7.0f});
  CHECK(toFloats(back.tensors["d"], "d", "m") == std::vector<float>{0.1f});
  CHECK(toInt64s(back.tensors["step"], "step", "m") == std::vector<int64_t>{42});
  CHECK(toInt64s(back.tensors["i"], "i", "m") == std::vector<int64_t>{-7, 9});
  CHECK(requireFloats(back, "0.bias", {3}, "m") == std::vector<float>{1, 2, 3});
}

TEST_CASE("safetensors layout: padded header, contiguous aligned data", "[safetensors]") {
  const std::string bytes = serializeSafetensors(sample());
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  CHECK(n % 8 == 0);
  const std::string header = bytes.substr(8, n);
  auto j = nlohmann::json::parse(header);
  CHECK(j["__metadata__"]["format"] == "pt");
  // Offsets tile the data section with no holes (safetensors' own loader
  // rejects holes) and 8-byte dtypes come first so they stay aligned.
  std::vector<std::pair<int64_t, int64_t>> spans;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    int64_t b = it.value()["data_offsets"][0], e = it.value()["data_offsets"][1];
    spans.emplace_back(b, e);
    if (dtypeSize(it.value()["dtype"]) == 8) CHECK(b % 8 == 0);
  }
  std::sort(spans.begin(), spans.end());
  int64_t at = 0;
  for (auto [b, e] : spans) {
    CHECK(b == at);
    at = e;
  }
  CHECK(static_cast<size_t>(at) == bytes.size() - 8 - n);
}

TEST_CASE("safetensors corruption cases", "[safetensors][errors]") {
  TempDir d;
  const std::string p = d / "bad.safetensors";
  const std::string good = serializeSafetensors(sample());

  SECTION("shorter than the length field") {
    writeBytes(p, good.substr(0, 5));
    CHECK(messageOf([&] { readSafetensors(p); }) ==
          p + ": not a safetensors file: 5 bytes, too short for the 8-byte header length");
  }
  SECTION("truncated header") {
    writeBytes(p, good.substr(0, 20));
    CHECK_THAT(messageOf([&] { readSafetensors(p); }),
               Contains(p + ": safetensors header length") && Contains("exceeds the file (20 bytes)"));
  }
  SECTION("header length too large") {
    std::string bad = good;
    uint64_t huge = uint64_t(1) << 40;
    std::memcpy(bad.data(), &huge, 8);
    writeBytes(p, bad);
    CHECK(messageOf([&] { readSafetensors(p); }) ==
          p + ": safetensors header length 1099511627776 exceeds the file (" +
              std::to_string(bad.size()) + " bytes)");
  }
  SECTION("bad JSON") {
    writeBytes(p, rawFile("{\"a\": {\"dtype\": \"F32\",", "    "));
    CHECK_THAT(messageOf([&] { readSafetensors(p); }),
               Contains(p + ": bad JSON in safetensors header: parse error"));
  }
  SECTION("header not an object") {
    writeBytes(p, rawFile("[1, 2]  ", ""));
    CHECK(messageOf([&] { readSafetensors(p); }) == p + ": safetensors header is not a JSON object");
  }
  SECTION("offsets out of range") {
    writeBytes(p, rawFile(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "1234"));
    CHECK(messageOf([&] { readSafetensors(p); }) ==
          p + ": tensor 'w': data_offsets [0, 8] out of range: the data section has 4 bytes");
  }
  SECTION("offsets do not match dtype*shape") {
    writeBytes(p, rawFile(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", "12345678"));
    CHECK(messageOf([&] { readSafetensors(p); }) ==
          p + ": tensor 'w': data_offsets [0, 8] hold 8 bytes but F32 [3] needs 12");
  }
  SECTION("overlapping offsets") {
    writeBytes(p, rawFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                          "123456789012"));
    CHECK(messageOf([&] { readSafetensors(p); }) ==
          p + ": tensor 'b': data_offsets [4, 12] overlap tensor 'a' [0, 8]");
  }
  SECTION("reversed offsets") {
    writeBytes(p, rawFile(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", "12345678"));
    CHECK(messageOf([&] { readSafetensors(p); }) == p + ": tensor 'a': bad data_offsets [8,0]");
  }
  SECTION("unknown dtype") {
    writeBytes(p, rawFile(R"({"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})", "1234"));
    CHECK(messageOf([&] { readSafetensors(p); }) ==
          p + ": tensor 'a': unsupported dtype 'BF16' (supported: F32, F64, I64, I32, U8)");
  }
  SECTION("negative shape") {
    writeBytes(p, rawFile(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "1234"));
    CHECK(messageOf([&] { readSafetensors(p); }) == p + ": tensor 'a': bad shape [-1]");
  }
  SECTION("missing fields and bad metadata") {
    writeBytes(p, rawFile(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", "1234"));
    CHECK(messageOf([&] { readSafetensors(p); }) == p + ": tensor 'a': missing dtype");
    writeBytes(p, rawFile(R"({"__metadata__":{"k":1}})", ""));
    CHECK(messageOf([&] { readSafetensors(p); }) ==
          p + ": safetensors __metadata__ entry 'k' is not a string");
  }
  SECTION("deeply nested JSON is refused before it is built") {
    // 100000 levels used to overflow the stack in dump() for the message.
    const size_t depth = 100000;
    writeBytes(p, rawFile(R"({"a":{"dtype":"F32","shape":)" + std::string(depth, '[') +
                              std::string(depth, ']') + R"(,"data_offsets":[0,0]}})",
                          ""));
    CHECK(messageOf([&] { readSafetensors(p); }) ==
          p + ": safetensors header nests JSON more than 64 levels deep");
    // 64 levels parse (and are then rejected as a bad shape, shortened).
    writeBytes(p, rawFile(R"({"a":{"dtype":"F32","shape":)" + std::string(62, '[') +
                              std::string(62, ']') + R"(,"data_offsets":[0,0]}})",
                          ""));
    CHECK(messageOf([&] { readSafetensors(p); }) ==
          p + ": tensor 'a': bad shape " + std::string(60, '[') + "...");
  }
  SECTION("a number beyond double names the file") {
    writeBytes(p, rawFile(R"({"a":1e999})", ""));
    CHECK(messageOf([&] { readSafetensors(p); }) ==
          p + ": bad JSON in safetensors header: number overflow parsing '1e999'");
  }
  SECTION("header longer than the reference implementation's limit") {
    // A sparse file: 100 MB of header length without writing it.
    std::string bad(8, '\0');
    const uint64_t n = 100'000'001;
    std::memcpy(bad.data(), &n, 8);
    writeBytes(p, bad);
    std::filesystem::resize_file(p, 8 + n);
    CHECK(messageOf([&] { readSafetensors(p); }) ==
          p + ": safetensors header length 100000001 exceeds the limit of 100000000 bytes");
  }
  SECTION("unused trailing bytes") {
    writeBytes(p, good + "junk");
    const size_t data = good.size() - 8 - [&] {
      uint64_t n;
      std::memcpy(&n, good.data(), 8);
      return n;
    }();
    CHECK(messageOf([&] { readSafetensors(p); }) ==
          p + ": 4 unused bytes after the last tensor (the tensors end at byte " +
              std::to_string(data) + " of a " + std::to_string(data + 4) + "-byte data section)");
    writeBytes(p, rawFile(R"({"__metadata__":{"k":"v"}})", "x"));
    CHECK(messageOf([&] { readSafetensors(p); }) ==
          p + ": 1 unused byte after the last tensor (the tensors end at byte 0 of a 1-byte "
              "data section)");
  }
  SECTION("a hole between tensors") {
    writeBytes(p, rawFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                          R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                          "123456789012"));
    CHECK(messageOf([&] { readSafetensors(p); }) ==
          p + ": tensor 'b': data_offsets [8, 12] leave bytes [4, 8) of the data section unused");
  }
  SECTION("not a regular file") {
    CHECK(messageOf([&] { readSafetensors(d.path()); }) == d.path() + ": Is a directory");
  }
  SECTION("missing file") {
    CHECK(messageOf([&] { readSafetensors(d / "none"); }) == d / "none" + ": No such file or directory");
  }
}

TEST_CASE("safetensors typed accessors reject wrong dtypes and shapes", "[safetensors][errors]") {
  SafeTensors st = sample();
  CHECK(messageOf([&] { toFloats(st.tensors["step"], "step", "c.st"); }) ==
        "c.st: tensor 'step' has dtype I64, expected F32 or F64");
  CHECK(messageOf([&] { requireFloats(st, "0.bias", {4}, "c.st"); }) ==
        "c.st: tensor '0.bias' has shape [3], expected [4]");
  CHECK_THAT(messageOf([&] { requireFloats(st, "2.weight", {1}, "c.st"); }),
             Contains("c.st: no tensor '2.weight' (the file has: 0.bias, 0.weight"));
  CHECK_THROWS_AS(fromFloats({2, 2}, std::vector<float>{1, 2, 3}), DataError);
}
