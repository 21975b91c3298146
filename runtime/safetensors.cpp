// Safetensors reader and writer. The reader trusts nothing in the file: every
// offset and size is checked before use so a corrupt checkpoint produces a
// message instead of an out-of-bounds read.
#include "runtime/safetensors.h"

#include "runtime/atomic_file.h"
#include "runtime/errors.h"
#include "runtime/input_file.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace descent {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this code copies bytes as-is");

/// The reference implementation's limit on the JSON header (MAX_HEADER_SIZE).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

/// A valid header nests 3 levels (header, tensor entry, shape). The limit
/// leaves room for unknown fields while keeping the tree shallow enough that
/// nlohmann's recursive functions (dump() for a message) cannot exhaust the stack.
constexpr int kMaxHeaderDepth = 64;

/// nlohmann's what() without its "[json.exception.parse_error.101] " prefix.
std::string jsonMessage(const nlohmann::json::exception& e) {
  std::string msg = e.what();
  if (!msg.empty() && msg.front() == '[') {
    auto close = msg.find("] ");
    if (close != std::string::npos) msg.erase(0, close + 2);
  }
  return msg;
}

/// A JSON value for a message, shortened so a huge shape stays one short line.
std::string brief(const nlohmann::json& j) {
  std::string s = j.dump();
  constexpr size_t kMax = 60;
  if (s.size() > kMax) s = s.substr(0, kMax) + "...";
  return s;
}

std::string shapeText(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

template <typename T>
StTensor fromValues(const char* dtype, std::vector<int64_t> shape, std::span<const T> values) {
  if (numel(shape) != static_cast<int64_t>(values.size()))
    throw DataError(fmt::format("tensor of shape {} needs {} values, got {}", shapeText(shape),
                                numel(shape), values.size()));
  StTensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.data.resize(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(t.data.data(), values.data(), t.data.size());
  return t;
}

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

/// A JSON integer that fits int64 and is >= 0; false otherwise.
bool asCount(const nlohmann::json& j, int64_t& out) {
  if (j.is_number_unsigned()) {
    uint64_t u = j.get<uint64_t>();
    if (u > uint64_t(INT64_MAX)) return false;
    out = static_cast<int64_t>(u);
    return true;
  }
  if (j.is_number_integer()) {
    out = j.get<int64_t>();
    return out >= 0;
  }
  return false;
}

} // namespace

size_t dtypeSize(const std::string& dtype) {
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "F64" || dtype == "I64") return 8;
  if (dtype == "U8") return 1;
  return 0;
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

/// readSafetensors on bytes already read from `path`.
SafeTensors parseSafetensors(const std::string& path, const std::string& bytes) {
  if (bytes.size() < 8)
    throw DataError(fmt::format("{}: not a safetensors file: {} bytes, too short for the 8-byte "
                                "header length",
                                path, bytes.size()));
  const uint64_t n = load<uint64_t>(reinterpret_cast<const uint8_t*>(bytes.data()));
  if (n > bytes.size() - 8)
    throw DataError(fmt::format("{}: safetensors header length {} exceeds the file ({} bytes)",
                                path, n, bytes.size()));
  if (n > kMaxHeaderBytes)
    throw DataError(fmt::format("{}: safetensors header length {} exceeds the limit of {} bytes",
                                path, n, kMaxHeaderBytes));
  // The callback sees each array or object before it is built, so a deep
  // header is refused before the tree exists.
  auto bound_depth = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
    using E = nlohmann::json::parse_event_t;
    if ((event == E::object_start || event == E::array_start) && depth >= kMaxHeaderDepth)
      throw DataError(fmt::format("{}: safetensors header nests JSON more than {} levels deep",
                                  path, kMaxHeaderDepth));
    return true;
  };
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(n),
                                   bound_depth);
  } catch (const nlohmann::json::exception& e) {
    // parse_error, and out_of_range for a number beyond double (1e999).
    throw DataError(
        fmt::format("{}: bad JSON in safetensors header: {}", path, jsonMessage(e)));
  }
  if (!header.is_object())
    throw DataError(path + ": safetensors header is not a JSON object");

  const uint64_t data_size = bytes.size() - 8 - n;
  const uint8_t* data = reinterpret_cast<const uint8_t*>(bytes.data()) + 8 + n;
  SafeTensors st;
  struct Span {
    int64_t begin, end;
    std::string name;
  };
  std::vector<Span> spans;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object())
        throw DataError(path + ": safetensors __metadata__ is not an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          throw DataError(fmt::format("{}: safetensors __metadata__ entry '{}' is not a string",
                                      path, m.key()));
        st.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto bad = [&](const std::string& what) {
      return DataError(fmt::format("{}: tensor '{}': {}", path, name, what));
    };
    if (!v.is_object()) throw bad("header entry is not an object");
    if (!v.contains("dtype") || !v["dtype"].is_string()) throw bad("missing dtype");
    if (!v.contains("shape") || !v["shape"].is_array()) throw bad("missing shape");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() ||
        v["data_offsets"].size() != 2)
      throw bad("missing data_offsets [begin, end]");
    StTensor t;
    t.dtype = v["dtype"].get<std::string>();
    const size_t esize = dtypeSize(t.dtype);
    if (esize == 0)
      throw bad(fmt::format("unsupported dtype '{}' (supported: F32, F64, I64, I32, U8)", t.dtype));
    // Bound the element count so numel*esize cannot overflow.
    int64_t elements = 1;
    for (const auto& d : v["shape"]) {
      int64_t dim;
      if (!asCount(d, dim)) throw bad(fmt::format("bad shape {}", brief(v["shape"])));
      t.shape.push_back(dim);
      if (dim != 0 && elements > int64_t(data_size) / dim)
        throw bad(fmt::format("shape {} is larger than the file's data ({} bytes)",
                              brief(v["shape"]), data_size));
      elements *= dim;
    }
    int64_t begin, end;
    if (!asCount(v["data_offsets"][0], begin) || !asCount(v["data_offsets"][1], end) || begin > end)
      throw bad(fmt::format("bad data_offsets {}", brief(v["data_offsets"])));
    if (static_cast<uint64_t>(end) > data_size)
      throw bad(fmt::format("data_offsets [{}, {}] out of range: the data section has {} bytes",
                            begin, end, data_size));
    const int64_t want = elements * static_cast<int64_t>(esize);
    if (end - begin != want)
      throw bad(fmt::format("data_offsets [{}, {}] hold {} bytes but {} {} needs {}", begin, end,
                            end - begin, t.dtype, shapeText(t.shape), want));
    t.data.assign(data + begin, data + end);
    spans.push_back({begin, end, name});
    st.tensors.emplace(name, std::move(t));
  }
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.begin < b.begin; });
  // Compare each tensor with the furthest-reaching one before it, so empty
  // tensors in between cannot hide an overlap. Like the reference
  // implementation, the tensors must fill the data section exactly: a hole or
  // bytes after the last tensor mean a damaged or mis-assembled file.
  const Span* reach = nullptr;
  for (const Span& s : spans) {
    if (s.begin == s.end) continue;
    if (reach && s.begin < reach->end)
      throw DataError(fmt::format("{}: tensor '{}': data_offsets [{}, {}] overlap tensor '{}' "
                                  "[{}, {}]",
                                  path, s.name, s.begin, s.end, reach->name, reach->begin,
                                  reach->end));
    const int64_t filled = reach ? reach->end : 0;
    if (s.begin > filled)
      throw DataError(fmt::format("{}: tensor '{}': data_offsets [{}, {}] leave bytes [{}, {}) "
                                  "of the data section unused",
                                  path, s.name, s.begin, s.end, filled, s.begin));
    if (!reach || s.end > reach->end) reach = &s;
  }
  const uint64_t used = reach ? static_cast<uint64_t>(reach->end) : 0;
  if (used != data_size)
    throw DataError(fmt::format("{}: {} unused byte{} after the last tensor (the tensors end "
                                "at byte {} of a {}-byte data section)",
                                path, data_size - used, data_size - used == 1 ? "" : "s", used,
                                data_size));
  return st;
}

} // namespace

SafeTensors readSafetensors(const std::string& path) {
  const std::string bytes = readInputFile(path);
  try {
    return parseSafetensors(path, bytes);
  } catch (const nlohmann::json::exception& e) {
    // A JSON access the checks did not foresee still gives a one-line error.
    throw DataError(fmt::format("{}: bad safetensors header: {}", path, jsonMessage(e)));
  }
}

std::string serializeSafetensors(const SafeTensors& st) {
  // Largest elements first keeps every tensor naturally aligned (the header is
  // padded to 8), which is also what the reference writer does.
  std::vector<const std::pair<const std::string, StTensor>*> order;
  for (const auto& kv : st.tensors) order.push_back(&kv);
  std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) {
    return dtypeSize(a->second.dtype) > dtypeSize(b->second.dtype);
  });
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (auto* kv : order) {
    const StTensor& t = kv->second;
    const size_t esize = dtypeSize(t.dtype);
    if (esize == 0)
      throw DataError(fmt::format("tensor '{}': unsupported dtype '{}'", kv->first, t.dtype));
    if (static_cast<uint64_t>(numel(t.shape)) * esize != t.data.size())
      throw DataError(fmt::format("tensor '{}': {} {} needs {} bytes, has {}", kv->first, t.dtype,
                                  shapeText(t.shape), numel(t.shape) * int64_t(esize),
                                  t.data.size()));
    header[kv->first] = {{"dtype", t.dtype},
                         {"shape", t.shape},
                         {"data_offsets", {offset, offset + t.data.size()}}};
    offset += t.data.size();
  }
  if (!st.metadata.empty()) header["__metadata__"] = st.metadata;
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out;
  out.reserve(8 + json.size() + offset);
  const uint64_t n = json.size();
  out.append(reinterpret_cast<const char*>(&n), 8);
  out += json;
  for (auto* kv : order)
    out.append(reinterpret_cast<const char*>(kv->second.data.data()), kv->second.data.size());
  return out;
}

void writeSafetensors(const std::string& path, const SafeTensors& st) {
  std::string bytes;
  try {
    bytes = serializeSafetensors(st);
  } catch (const DataError& e) {
    throw DataError(path + ": " + e.what());
  }
  writeFileAtomic(path, bytes);
}

StTensor fromFloats(std::vector<int64_t> shape, std::span<const float> values) {
  return fromValues<float>("F32", std::move(shape), values);
}
StTensor fromDoubles(std::vector<int64_t> shape, std::span<const double> values) {
  return fromValues<double>("F64", std::move(shape), values);
}
StTensor fromInt64s(std::vector<int64_t> shape, std::span<const int64_t> values) {
  return fromValues<int64_t>("I64", std::move(shape), values);
}

std::vector<float> toFloats(const StTensor& t, const std::string& name, const std::string& path) {
  const size_t n = static_cast<size_t>(numel(t.shape));
  std::vector<float> out(n);
  if (t.dtype == "F32" && t.data.size() == n * 4) {
    if (n) std::memcpy(out.data(), t.data.data(), n * 4);
  } else if (t.dtype == "F64" && t.data.size() == n * 8) {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(load<double>(t.data.data() + 8 * i));
  } else {
    throw DataError(fmt::format("{}: tensor '{}' has dtype {}, expected F32 or F64", path, name,
                                t.dtype));
  }
  return out;
}

std::vector<int64_t> toInt64s(const StTensor& t, const std::string& name,
                              const std::string& path) {
  const size_t n = static_cast<size_t>(numel(t.shape));
  std::vector<int64_t> out(n);
  if (t.dtype == "I64" && t.data.size() == n * 8) {
    for (size_t i = 0; i < n; ++i) out[i] = load<int64_t>(t.data.data() + 8 * i);
  } else if (t.dtype == "I32" && t.data.size() == n * 4) {
    for (size_t i = 0; i < n; ++i) out[i] = load<int32_t>(t.data.data() + 4 * i);
  } else if (t.dtype == "U8" && t.data.size() == n) {
    for (size_t i = 0; i < n; ++i) out[i] = t.data[i];
  } else {
    throw DataError(fmt::format("{}: tensor '{}' has dtype {}, expected I64, I32 or U8", path, name,
                                t.dtype));
  }
  return out;
}

std::vector<float> requireFloats(const SafeTensors& st, const std::string& name,
                                 const std::vector<int64_t>& shape, const std::string& path) {
  auto it = st.tensors.find(name);
  if (it == st.tensors.end()) {
    std::string have;
    for (const auto& kv : st.tensors) have += (have.empty() ? "" : ", ") + kv.first;
    throw DataError(fmt::format("{}: no tensor '{}' (the file has: {})", path, name,
                                have.empty() ? "no tensors" : have));
  }
  if (it->second.shape != shape)
    throw DataError(fmt::format("{}: tensor '{}' has shape {}, expected {}", path, name,
                                shapeText(it->second.shape), shapeText(shape)));
  return toFloats(it->second, name, path);
}

} // namespace descent
