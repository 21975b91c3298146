// Text form of InitDist (see init_dist.h), used by the graph IR's param
// descriptions.
#include "compiler/frontend/init_dist.h"

#include <charconv>
#include <cmath>
#include <fmt/format.h>
#include <vector>

namespace descent {

std::string initDistText(const InitDist& d) {
  switch (d.kind) {
  case InitDist::Kind::Default:
    return "";
  case InitDist::Kind::Constant:
    return fmt::format("constant({})", d.a);
  case InitDist::Kind::Uniform:
    return fmt::format("uniform({}, {})", d.a, d.b);
  case InitDist::Kind::Normal:
    return fmt::format("normal({}, {})", d.a, d.b);
  }
  return "";
}

std::optional<InitDist> parseInitDist(std::string_view s) {
  const size_t open = s.find('(');
  if (open == std::string_view::npos || s.empty() || s.back() != ')') return std::nullopt;
  const std::string_view name = s.substr(0, open);
  std::vector<double> args;
  std::string_view rest = s.substr(open + 1, s.size() - open - 2);
  while (!rest.empty()) {
    while (!rest.empty() && rest.front() == ' ')
      rest.remove_prefix(1);
    double v = 0;
    auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), v);
    if (ec != std::errc() || !std::isfinite(v)) return std::nullopt;
    args.push_back(v);
    rest.remove_prefix(size_t(ptr - rest.data()));
    if (rest.empty()) break;
    if (rest.front() != ',') return std::nullopt;
    rest.remove_prefix(1);
  }
  InitDist d;
  if (name == "constant" && args.size() == 1) {
    d.kind = InitDist::Kind::Constant;
    d.a = args[0];
    return d;
  }
  if (args.size() != 2) return std::nullopt;
  d.a = args[0];
  d.b = args[1];
  if (name == "uniform" && d.a <= d.b) {
    d.kind = InitDist::Kind::Uniform;
    return d;
  }
  if (name == "normal" && d.b >= 0) {
    d.kind = InitDist::Kind::Normal;
    return d;
  }
  return std::nullopt;
}

} // namespace descent
