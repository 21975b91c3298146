// Safetensors checkpoints in PyTorch's layout (see checkpoint.h).
#include "runtime/checkpoint.h"

#include "runtime/errors.h"
#include "runtime/safetensors.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>
#include <zlib.h>

namespace descent {

namespace {

// The layout conversion at the edge: PyTorch's shape and order in the file,
// the IR's in the engine, as the tensor's description says (any rank).
StTensor exportTensor(const TensorInfo& t, const float* data) {
  std::vector<float> out(size_t(t.numel()));
  irToTorch(t.desc, data, out.data());
  return fromFloats(t.desc.torch_shape, out);
}

void importTensor(const SafeTensors& st, const TensorInfo& t, float* data, const std::string& path) {
  std::vector<float> v = requireFloats(st, t.name, t.desc.torch_shape, path);
  torchToIr(t.desc, v.data(), data);
}

bool isBuffer(const TensorInfo& t) {
  return t.desc.buffer != BufferKind::None;
}

// Module buffers (BatchNorm's running statistics) are in the model's
// state_dict; num_batches_tracked is int64 there, as PyTorch saves it.
StTensor exportBuffer(const TensorInfo& t, const float* data) {
  if (t.desc.buffer == BufferKind::Count) {
    const int64_t v = int64_t(data[0]);
    return fromInt64s(t.desc.torch_shape, std::span<const int64_t>(&v, 1));
  }
  return exportTensor(t, data);
}

void importBuffer(const SafeTensors& st, const TensorInfo& t, float* data,
                  const std::string& path) {
  if (t.desc.buffer != BufferKind::Count) return importTensor(st, t, data, path);
  auto it = st.tensors.find(t.name);
  if (it == st.tensors.end()) throw DataError(fmt::format("{}: missing tensor '{}'", path, t.name));
  if (!it->second.shape.empty())
    throw DataError(fmt::format("{}: tensor '{}' has shape [{}], expected a scalar []", path,
                                t.name, fmt::join(it->second.shape, ", ")));
  const int64_t v = toInt64s(it->second, t.name, path).at(0);
  if (v < 0 || v > (int64_t(1) << 24))
    throw DataError(
        fmt::format("{}: tensor '{}' is {}, expected a count from 0 to 16777216", path, t.name, v));
  data[0] = float(v);
}

/// `s` with every byte that is not part of valid UTF-8 replaced by U+FFFD:
/// JSON (the safetensors header) can only hold Unicode, and a model file name
/// is whatever bytes the filesystem allows.
std::string validUtf8(const std::string& s) {
  std::string dumped =
      nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return nlohmann::json::parse(dumped).get<std::string>();
}

/// The key under which a model file records its optimizer file's CRC-32.
constexpr const char* kOptimizerCrc = "optimizer_file_crc32";

std::string crc32Hex(std::string_view bytes) {
  uLong crc = ::crc32(0L, Z_NULL, 0);
  // zlib takes at most 4 GiB per call.
  for (size_t done = 0; done < bytes.size();) {
    uInt n = uInt(std::min<size_t>(bytes.size() - done, 1u << 30));
    crc = ::crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + done), n);
    done += n;
  }
  return fmt::format("{:08x}", crc);
}

/// A metadata value as quoted in a one-line message: at most 40 bytes, control
/// characters (a newline) shown as '?'.
std::string shown(const std::string& value) {
  std::string s = value.substr(0, 40);
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return s;
}

std::string metaOf(const SafeTensors& st, const char* key) {
  auto it = st.metadata.find(key);
  return it == st.metadata.end() ? std::string() : it->second;
}

/// Strict integer metadata: the whole string is a decimal number in [lo, hi].
template <typename Int>
Int metaInt(const SafeTensors& st, const std::string& path, const char* key, Int lo, Int hi,
            std::optional<Int> missing = std::nullopt) {
  auto it = st.metadata.find(key);
  if (it == st.metadata.end()) {
    if (missing) return *missing;
    throw DataError(fmt::format("{}: missing '{}' metadata", path, key));
  }
  const std::string& s = it->second;
  Int v{};
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi)
    throw DataError(fmt::format("{}: bad '{}' metadata '{}': expected an integer from {} to {}",
                                path, key, shown(s), lo, hi));
  return v;
}

/// Reads and validates the progress metadata of an optimizer file.
TrainProgress readProgress(const SafeTensors& optim, const std::string& opath) {
  TrainProgress p;
  p.step = metaInt<int64_t>(optim, opath, "step", 0, kMaxStep);
  // Every completed epoch took at least one step.
  p.epoch = metaInt<int64_t>(optim, opath, "epoch", 0, p.step);
  p.epoch_step = metaInt<int64_t>(optim, opath, "epoch_step", 0, p.step - p.epoch, 0);
  p.scheduler = metaOf(optim, "scheduler"); // validated by the LrScheduler that loads it
  if (p.epoch_step == 0) return p;
  p.seed = metaInt<uint64_t>(optim, opath, "seed", 0, UINT64_MAX);
  p.batch = metaInt<int64_t>(optim, opath, "batch", 1, kMaxStep);
  p.samples = metaInt<int64_t>(optim, opath, "samples", 1, kMaxStep);
  if (p.epoch_step >= (p.samples + p.batch - 1) / p.batch)
    throw DataError(fmt::format("{}: bad 'epoch_step' metadata {}: an epoch of {} samples in "
                                "batches of {} has fewer steps",
                                opath, p.epoch_step, p.samples, p.batch));
  std::string shuffle = metaOf(optim, "shuffle");
  if (shuffle != "true" && shuffle != "false")
    throw DataError(fmt::format("{}: bad 'shuffle' metadata '{}': expected true or false", opath,
                                shown(shuffle)));
  p.shuffle = shuffle == "true";
  std::string sum = metaOf(optim, "epoch_loss_sum");
  auto [end, ec] = std::from_chars(sum.data(), sum.data() + sum.size(), p.epoch_loss_sum);
  if (sum.empty() || ec != std::errc() || end != sum.data() + sum.size() ||
      !std::isfinite(p.epoch_loss_sum))
    throw DataError(fmt::format("{}: bad 'epoch_loss_sum' metadata '{}': expected a finite number",
                                opath, shown(sum)));
  return p;
}

} // namespace

std::string optimizerStatePath(const std::string& path) {
  const std::string ext = ".safetensors";
  if (path.size() > ext.size() && path.compare(path.size() - ext.size(), ext.size(), ext) == 0)
    return path.substr(0, path.size() - ext.size()) + ".optim" + ext;
  return path + ".optim" + ext;
}

void saveCheckpoint(const std::string& path, Engine& engine, const ModelSpec& spec,
                    const TrainProgress& progress, const WriteFaults* faults) {
  SafeTensors model;
  for (const TensorInfo& p : engine.params())
    model.tensors[p.name] = exportTensor(p, engine.param(p.name));
  for (const TensorInfo& s : engine.states())
    if (isBuffer(s)) model.tensors[s.name] = exportBuffer(s, engine.state(s.name));
  model.metadata["format"] = "pt";
  model.metadata["producer"] = "descent";
  model.metadata["model"] = validUtf8(spec.name);
  model.metadata["step"] = std::to_string(progress.step);

  SafeTensors optim;
  for (const TensorInfo& s : engine.states())
    if (!isBuffer(s)) optim.tensors[s.name] = exportTensor(s, engine.state(s.name));
  optim.metadata["optimizer"] = optimizerName(spec.optimizer.kind);
  optim.metadata["step"] = std::to_string(progress.step);
  optim.metadata["epoch"] = std::to_string(progress.epoch);
  if (!progress.scheduler.empty()) optim.metadata["scheduler"] = progress.scheduler;
  if (progress.epoch_step > 0) {
    optim.metadata["epoch_step"] = std::to_string(progress.epoch_step);
    // fmt's shortest representation reads back as the same double.
    optim.metadata["epoch_loss_sum"] = fmt::format("{}", progress.epoch_loss_sum);
    optim.metadata["seed"] = std::to_string(progress.seed);
    optim.metadata["shuffle"] = progress.shuffle ? "true" : "false";
    optim.metadata["batch"] = std::to_string(progress.batch);
    optim.metadata["samples"] = std::to_string(progress.samples);
  }
  const std::string opath = optimizerStatePath(path);
  // Both files are complete on disk before either replaces its predecessor;
  // only a crash between the two renames can split the pair, and the model
  // file's record of its optimizer file makes loadCheckpoint notice it. A
  // digest rather than a random id: the same training gives the same bytes.
  const std::string optim_bytes = serializeSafetensors(optim);
  model.metadata[kOptimizerCrc] = crc32Hex(optim_bytes);
  PendingFile optim_file(opath, optim_bytes, faults);
  PendingFile model_file(path, serializeSafetensors(model), faults);
  optim_file.commit();
  model_file.commit();
}

namespace {

/// loadWeights, returning the file's metadata.
std::map<std::string, std::string> importWeights(const std::string& path, Engine& engine) {
  SafeTensors model = readSafetensors(path);
  for (const auto& [name, t] : model.tensors) {
    auto named = [&](const TensorInfo& p) { return p.name == name; };
    bool known = std::any_of(engine.params().begin(), engine.params().end(), named) ||
                 std::any_of(engine.states().begin(), engine.states().end(),
                             [&](const TensorInfo& s) { return isBuffer(s) && named(s); });
    if (!known)
      throw DataError(
          fmt::format("{}: unexpected tensor '{}': the model has no such parameter", path, name));
  }
  for (const TensorInfo& p : engine.params()) importTensor(model, p, engine.param(p.name), path);
  for (const TensorInfo& s : engine.states())
    if (isBuffer(s)) importBuffer(model, s, engine.state(s.name), path);
  return std::move(model.metadata);
}

} // namespace

void loadWeights(const std::string& path, Engine& engine) {
  importWeights(path, engine);
}

TrainProgress loadCheckpoint(const std::string& path, Engine& engine, const ModelSpec& spec) {
  auto model_meta = importWeights(path, engine);
  TrainProgress progress;
  for (const TensorInfo& s : engine.states())
    if (!isBuffer(s)) std::fill_n(engine.state(s.name), s.numel(), 0.0f);
  std::string opath = optimizerStatePath(path);
  if (!std::filesystem::exists(opath)) return progress;
  SafeTensors optim = readSafetensors(opath);
  // Model files from PyTorch (or older descent) record no optimizer file.
  if (auto want = model_meta.find(kOptimizerCrc); want != model_meta.end()) {
    const std::string have = crc32Hex(readFile(opath));
    if (have != want->second)
      throw DataError(fmt::format(
          "{}: belongs to another save than {} (optimizer step {}, model step {}; CRC-32 {}, the "
          "model file expects {}): the pair is out of step, e.g. after a crash between the two "
          "writes; delete {} to resume these weights with a fresh optimizer",
          opath, path, shown(metaOf(optim, "step")),
          model_meta.count("step") ? shown(model_meta["step"]) : "unknown", have,
          shown(want->second), opath));
  }
  if (metaOf(optim, "optimizer") != optimizerName(spec.optimizer.kind)) return progress;
  for (const TensorInfo& s : engine.states()) {
    // A momentum buffer only exists once momentum != 0; a file from a run
    // without one leaves the state zeroed.
    if (!isBuffer(s) && !optim.tensors.count(s.name)) return progress;
  }
  TrainProgress loaded = readProgress(optim, opath);
  for (const TensorInfo& s : engine.states())
    if (!isBuffer(s)) importTensor(optim, s, engine.state(s.name), opath);
  return loaded;
}

} // namespace descent
