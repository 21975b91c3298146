// What a parameter (or optimizer-state tensor) is in PyTorch's terms: its
// shape there, the permutation from PyTorch's layout to the IR's, and the
// fan-in and distribution its initialization uses. Init, checkpoints, both engines and
// gradcheck read this description instead of guessing from rank or order;
// the permutation code works for any rank (a conv weight [out,in,kh,kw]).
#pragma once

#include "compiler/frontend/init_dist.h"

#include <cstdint>
#include <string>
#include <vector>

namespace descent {

/// A module buffer (`register_buffer`): BatchNorm's running statistics.
/// Buffers are state values (ValueKind::State) written by the train step's
/// forward pass (batch_norm_update_stats) and read by the eval step; they are
/// saved with the model's state_dict, not the optimizer's. Count: an integer
/// counter (num_batches_tracked), int64 in files, a float in the engines
/// (exact up to 2^24 batches).
enum class BufferKind : uint8_t { None, Float, Count };

struct ParamDesc {
  /// PyTorch's shape: [out, in] for a Linear weight, [out] for its bias.
  std::vector<int64_t> torch_shape;
  /// IR dimension i is PyTorch dimension perm[i] (IR shape[i] ==
  /// torch_shape[perm[i]]). A Linear weight, stored [in, out]: {1, 0}.
  /// Identity for tensors kept in PyTorch's layout.
  std::vector<int> perm;
  /// Inputs per output for PyTorch's default init (kaiming_uniform with
  /// a=sqrt(5) for weights, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for biases,
  /// both the same bound); 0 for tensors initialized to zero (optimizer state).
  int64_t fan_in = 0;
  /// The model's `init=`/`bias_init=`, resolved; Default draws by fan_in.
  InitDist init{};
  /// Not None for a module buffer; `init` then gives its starting value
  /// (constant(1) for running_var; Default: zero).
  BufferKind buffer = BufferKind::None;

  /// The IR's shape: torch_shape permuted by perm.
  std::vector<int64_t> irShape() const;
  bool isIdentity() const;
  bool operator==(const ParamDesc&) const = default;
};

/// The value a state tensor starts at: a buffer's constant init (running_var:
/// 1), else 0 (optimizer state, running_mean, num_batches_tracked).
inline double stateStart(const ParamDesc& d) {
  return d.buffer != BufferKind::None && d.init.kind == InitDist::Kind::Constant ? d.init.a : 0.0;
}

/// A tensor kept in PyTorch's layout.
ParamDesc identityDesc(std::vector<int64_t> torch_shape, int64_t fan_in = 0);
/// A tensor stored with IR dimension i = PyTorch dimension perm[i].
ParamDesc permutedDesc(std::vector<int64_t> torch_shape, std::vector<int> perm, int64_t fan_in = 0);
/// PyTorch's fan-in of a weight of shape [out, in, k1, k2, ...]
/// (torch.nn.init._calculate_fan_in_and_fan_out): in * k1 * k2 * ...;
/// 0 below rank 2 (a bias takes its weight's fan-in).
int64_t torchFanIn(const std::vector<int64_t>& torch_shape);

/// "" when `d` is a valid description of a tensor of IR shape `ir_shape`
/// (perm a permutation of 0..rank-1, shapes agreeing, fan_in >= 0), else
/// what is wrong.
std::string checkParamDesc(const ParamDesc& d, const std::vector<int64_t>& ir_shape);

/// Copies a tensor from PyTorch's layout (src, torch_shape) into the IR's
/// (dst, irShape()), any rank; and back. src and dst must not overlap.
void torchToIr(const ParamDesc& d, const float* src, float* dst);
void irToTorch(const ParamDesc& d, const float* src, float* dst);

} // namespace descent
