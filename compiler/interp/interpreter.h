// The reference interpreter of the graph IR: executes any graph (forward, grad,
// train, eval) with plain loops, in float or double. It is the test oracle for
// the gradient checks, the PyTorch reference tests and the JIT's differential
// tests, so it favours obvious correctness over speed and follows PyTorch's
// order of floating-point operations where that is cheap to do.
#pragma once

#include "compiler/ir/graph.h"

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace descent {

/// What persists across train steps: params and optimizer state, in the
/// order of graph.params() / graph.states(), in IR layout (weights [in, out]).
template <typename T> struct InterpState {
  std::vector<std::vector<T>> params;
  std::vector<std::vector<T>> states;
};

/// The batch: one vector per graph input, keyed by the input's name (the
/// user's, like "x" or "img"; find them with Graph::inputByRole). u8 pixels
/// are given as the values 0..255, labels as integral values, %step is 1-based
/// (the optimizer step being taken).
template <typename T> struct InterpInputs {
  std::map<std::string, std::vector<T>> values;
  /// When nonzero, the exact value of %step, which a float input holds exactly
  /// only up to 2^24 (a long run at batch 1 passes that).
  int64_t step = 0;
  /// The learning rate and momentum (SGD) or beta1 (Adam, AdamW) of this step
  /// when a schedule changed them; otherwise the update ops' attributes.
  std::optional<double> lr = std::nullopt, momentum = std::nullopt;
  /// What an allreduce op computes (data-parallel training, the allreduce
  /// pass): sum[i] over the ranks of partial[i]; see GradientReducer.
  std::function<void(const T* partial, T* sum, int64_t count)> reducer = nullptr;
  /// What the batch_norm_sync_* ops sum over the ranks (synchronized
  /// BatchNorm): GradientReducer::sum_ranks.
  std::function<void(std::vector<double>& values)> sum_ranks = nullptr;
  /// The batch's first row in the global batch (a data-parallel shard): Dropout
  /// masks are keyed by the global row.
  int64_t first_row = 0;
};

/// Sizes `state.states` to the graph's optimizer state and buffers and fills
/// them with their starting values (zero; a BatchNorm running_var one: the
/// state before the first step), and checks `state.params` has the right sizes.
/// Throws std::invalid_argument when a param has the wrong size.
template <typename T> void initInterpState(const Graph& g, InterpState<T>& state);

/// Runs the graph once. Update ops write `state` in place. Returns the graph's
/// named outputs ("loss", "grad:0.weight", ...). When `trace` is given it
/// receives every op result. Throws std::invalid_argument on a missing or
/// mis-sized input or param.
template <typename T>
std::map<std::string, std::vector<T>> interpret(const Graph& g, const InterpInputs<T>& inputs,
                                                InterpState<T>& state,
                                                std::unordered_map<const Value*, std::vector<T>>* trace = nullptr);

extern template void initInterpState<float>(const Graph&, InterpState<float>&);
extern template void initInterpState<double>(const Graph&, InterpState<double>&);
extern template std::map<std::string, std::vector<float>>
interpret<float>(const Graph&, const InterpInputs<float>&, InterpState<float>&,
                 std::unordered_map<const Value*, std::vector<float>>*);
extern template std::map<std::string, std::vector<double>>
interpret<double>(const Graph&, const InterpInputs<double>&, InterpState<double>&,
                  std::unordered_map<const Value*, std::vector<double>>*);

} // namespace descent
