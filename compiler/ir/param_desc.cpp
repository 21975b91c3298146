// Parameter descriptions and the layout permutation (see param_desc.h).
#include "compiler/ir/param_desc.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <numeric>

namespace descent {

namespace {

/// Row-major strides of `shape`.
std::vector<int64_t> stridesOf(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (size_t i = shape.size(); i-- > 1;)
    s[i - 1] = s[i] * shape[i];
  return s;
}

/// Walks every element of the IR tensor in row-major order and calls
/// f(ir_index, torch_index).
template <typename F> void forEachElement(const ParamDesc& d, F f) {
  const std::vector<int64_t> ir = d.irShape();
  const std::vector<int64_t> tstride = stridesOf(d.torch_shape);
  const size_t rank = ir.size();
  // The PyTorch stride of each IR dimension.
  std::vector<int64_t> step(rank);
  for (size_t i = 0; i < rank; ++i)
    step[i] = tstride[size_t(d.perm[i])];
  int64_t n = 1;
  for (int64_t e : ir)
    n *= e;
  std::vector<int64_t> idx(rank, 0);
  int64_t t = 0;
  for (int64_t k = 0; k < n; ++k) {
    f(k, t);
    // Odometer increment over the IR dimensions, keeping t in step.
    for (size_t i = rank; i-- > 0;) {
      if (++idx[i] < ir[i]) {
        t += step[i];
        break;
      }
      t -= step[i] * (ir[i] - 1);
      idx[i] = 0;
    }
  }
}

} // namespace

std::vector<int64_t> ParamDesc::irShape() const {
  std::vector<int64_t> s(perm.size());
  for (size_t i = 0; i < perm.size(); ++i)
    s[i] = torch_shape[size_t(perm[i])];
  return s;
}

bool ParamDesc::isIdentity() const {
  for (size_t i = 0; i < perm.size(); ++i)
    if (perm[i] != int(i)) return false;
  return true;
}

ParamDesc identityDesc(std::vector<int64_t> torch_shape, int64_t fan_in) {
  std::vector<int> perm(torch_shape.size());
  std::iota(perm.begin(), perm.end(), 0);
  return ParamDesc{std::move(torch_shape), std::move(perm), fan_in};
}

ParamDesc permutedDesc(std::vector<int64_t> torch_shape, std::vector<int> perm, int64_t fan_in) {
  return ParamDesc{std::move(torch_shape), std::move(perm), fan_in};
}

int64_t torchFanIn(const std::vector<int64_t>& torch_shape) {
  if (torch_shape.size() < 2) return 0; // PyTorch defines it for weights (rank >= 2) only
  int64_t f = torch_shape[1];
  for (size_t i = 2; i < torch_shape.size(); ++i)
    f *= torch_shape[i];
  return f;
}

std::string checkParamDesc(const ParamDesc& d, const std::vector<int64_t>& ir_shape) {
  if (d.perm.size() != d.torch_shape.size())
    return fmt::format("the permutation has {} entries for a rank-{} PyTorch shape", d.perm.size(),
                       d.torch_shape.size());
  std::vector<bool> seen(d.perm.size(), false);
  for (int p : d.perm) {
    if (p < 0 || size_t(p) >= d.perm.size() || seen[size_t(p)])
      return fmt::format("[{}] is not a permutation of 0..{}", fmt::join(d.perm, ","),
                         int(d.perm.size()) - 1);
    seen[size_t(p)] = true;
  }
  if (d.irShape() != ir_shape)
    return fmt::format("PyTorch shape [{}] permuted by [{}] is [{}], not the IR's [{}]",
                       fmt::join(d.torch_shape, ","), fmt::join(d.perm, ","),
                       fmt::join(d.irShape(), ","), fmt::join(ir_shape, ","));
  if (d.fan_in < 0) return fmt::format("fan_in must be >= 0, got {}", d.fan_in);
  return {};
}

void torchToIr(const ParamDesc& d, const float* src, float* dst) {
  forEachElement(d, [&](int64_t ir, int64_t torch) { dst[ir] = src[torch]; });
}

void irToTorch(const ParamDesc& d, const float* src, float* dst) {
  forEachElement(d, [&](int64_t ir, int64_t torch) { dst[torch] = src[ir]; });
}

} // namespace descent
