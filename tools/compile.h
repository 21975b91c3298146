// `descent compile`: ahead-of-time compilation of a model's train and eval
// steps (or, with --inference, the eval step alone) into a C header and a
// static library (docs/aot.md).
#pragma once

#include <cstdint>
#include <string>

namespace descent {

struct AotArgs {
  std::string model, out, weights, cpu;
  bool inference = false;
  uint64_t seed = 0; ///< the initial parameters written as M.init.safetensors
};

/// Writes OUT/M.h and OUT/libM.a (and OUT/M.safetensors with --weights) for
/// the model M; returns the exit code.
int runCompile(const AotArgs& a);

/// The C identifier a model's API is named by: its file stem with every other
/// character replaced by '_' (and a leading '_' before a digit).
std::string aotName(const std::string& model_name);

} // namespace descent
