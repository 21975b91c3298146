// The distribution a parameter's initial values are drawn from: what a
// model's `init=` / `bias_init=` (torch.nn.init's functions) resolves to once
// the tensor's fans are known. It travels from the frontend through the IR's
// param descriptions to the runtime's seeded draw (compiler/ir/param_init.h).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace descent {

struct InitDist {
  enum class Kind {
    Default,  ///< PyTorch's layer default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), zeros at fan_in 0
    Constant, ///< every value `a` (zeros_, ones_, constant_)
    Uniform,  ///< U(a, b) (uniform_, xavier_uniform_, kaiming_uniform_)
    Normal,   ///< N(mean a, std b) (normal_, xavier_normal_, kaiming_normal_)
  };
  Kind kind = Kind::Default;
  double a = 0, b = 0;
  bool operator==(const InitDist&) const = default;
};

/// "constant(0)", "uniform(-0.1, 0.1)", "normal(0, 0.02)"; "" for Default.
/// Numbers print in their shortest exact form, so parseInitDist gives back
/// the same doubles.
std::string initDistText(const InitDist& d);

/// The inverse of initDistText (not of Default's ""); nullopt when `s` is not
/// one of those forms, or when a uniform has a > b or a normal a negative std.
std::optional<InitDist> parseInitDist(std::string_view s);

} // namespace descent
