// Safetensors checkpoints in PyTorch's layout (see checkpoint.h).
#include "runtime/checkpoint.h"

#include "runtime/errors.h"
#include "runtime/safetensors.h"

#include <algorithm>
#include <filesystem>
#include <fmt/format.h>

namespace descent {

namespace {

// PyTorch shape of a tensor the engine stores transposed.
std::vector<int64_t> torchShape(const TensorInfo& t) {
  if (!t.transposed) return t.shape;
  return {t.shape[1], t.shape[0]};
}

// Copies `n` rows x `m` cols from src into dst transposed (dst is m x n).
void transpose(const float* src, float* dst, int64_t n, int64_t m) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) dst[j * n + i] = src[i * m + j];
}

StTensor exportTensor(const TensorInfo& t, const float* data) {
  std::vector<float> out(data, data + t.numel());
  if (t.transposed) transpose(data, out.data(), t.shape[0], t.shape[1]);
  return fromFloats(torchShape(t), out);
}

void importTensor(const SafeTensors& st, const TensorInfo& t, float* data, const std::string& path) {
  std::vector<float> v = requireFloats(st, t.name, torchShape(t), path);
  if (t.transposed) transpose(v.data(), data, t.shape[1], t.shape[0]);
  else std::copy(v.begin(), v.end(), data);
}

} // namespace

std::string optimizerStatePath(const std::string& path) {
  const std::string ext = ".safetensors";
  if (path.size() > ext.size() && path.compare(path.size() - ext.size(), ext.size(), ext) == 0)
    return path.substr(0, path.size() - ext.size()) + ".optim" + ext;
  return path + ".optim" + ext;
}

void saveCheckpoint(const std::string& path, Engine& engine, const ModelSpec& spec,
                    const TrainProgress& progress) {
  SafeTensors model;
  for (const TensorInfo& p : engine.params()) model.tensors[p.name] = exportTensor(p, engine.param(p.name));
  model.metadata["format"] = "pt";
  model.metadata["producer"] = "descent";
  model.metadata["model"] = spec.name;

  SafeTensors optim;
  for (const TensorInfo& s : engine.states()) optim.tensors[s.name] = exportTensor(s, engine.state(s.name));
  optim.metadata["optimizer"] = optimizerName(spec.optimizer.kind);
  optim.metadata["step"] = std::to_string(progress.step);
  optim.metadata["epoch"] = std::to_string(progress.epoch);
  // The optimizer file first: a checkpoint whose model file exists always has
  // state at least as new as it.
  writeSafetensors(optimizerStatePath(path), optim);
  writeSafetensors(path, model);
}

TrainProgress loadCheckpoint(const std::string& path, Engine& engine, const ModelSpec& spec) {
  SafeTensors model = readSafetensors(path);
  for (const auto& [name, t] : model.tensors) {
    bool known = std::any_of(engine.params().begin(), engine.params().end(),
                             [&](const TensorInfo& p) { return p.name == name; });
    if (!known)
      throw DataError(fmt::format("{}: unexpected tensor '{}': the model has no such parameter", path, name));
  }
  for (const TensorInfo& p : engine.params()) importTensor(model, p, engine.param(p.name), path);

  TrainProgress progress;
  for (const TensorInfo& s : engine.states()) std::fill_n(engine.state(s.name), s.numel(), 0.0f);
  std::string opath = optimizerStatePath(path);
  if (!std::filesystem::exists(opath)) return progress;
  SafeTensors optim = readSafetensors(opath);
  auto meta = [&](const char* key) -> std::string {
    auto it = optim.metadata.find(key);
    return it == optim.metadata.end() ? std::string() : it->second;
  };
  if (meta("optimizer") != optimizerName(spec.optimizer.kind)) return progress;
  for (const TensorInfo& s : engine.states()) {
    // A momentum buffer only exists once momentum != 0; a file from a run
    // without one leaves the state zeroed.
    if (!optim.tensors.count(s.name)) return progress;
  }
  for (const TensorInfo& s : engine.states()) importTensor(optim, s, engine.state(s.name), opath);
  try {
    progress.step = std::stoll(meta("step"));
    progress.epoch = std::stoll(meta("epoch"));
  } catch (const std::exception&) {
    throw DataError(fmt::format("{}: bad or missing 'step'/'epoch' metadata", opath));
  }
  return progress;
}

} // namespace descent
