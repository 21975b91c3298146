// Synchronized BatchNorm (PyTorch's SyncBatchNorm) for data-parallel training
// (docs/distributed.md): the host arithmetic of the batch_norm_sync_stats and
// batch_norm_sync_grad ops, shared by the JIT's executor and the interpreter
// so both compute the same bits. Each rank's per-channel partial sums, in
// double, are summed over the ranks in rank order (`sumRanks`), then the
// single-process formulas of batch_norm_stats / batch_norm_grad run with the
// global sums and the global count.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

namespace descent {

/// Sums each element over every rank, in rank order (the same bits on every
/// rank and in every run); DataParallel::sum in the runtime.
using RankSum = std::function<void(std::vector<double>& values)>;

/// batch_norm_stats over the global batch: x is this rank's [B,C,S] shard.
/// Two passes, as one process does: Σx and the count are summed over the
/// ranks first, giving the global mean (f32, as batch_norm_stats rounds it);
/// then Σ(x - mean)², each term in T and accumulated in double exactly as
/// one process does, is summed over the ranks. Rows [mean; invstd; var_sum /
/// (N - 1)], N the global count (the trainer refuses a global batch with one
/// value per channel before training, so N > 1).
template <typename T>
void syncBatchNormStats(const T* x, int64_t B, int64_t C, int64_t S, double eps,
                        const RankSum& sumRanks, T* out) {
  std::vector<double> part(static_cast<size_t>(C) + 1);
  part[0] = double(B * S);
  for (int64_t c = 0; c < C; ++c) {
    double sum = 0;
    for (int64_t n = 0; n < B; ++n)
      for (int64_t k = 0; k < S; ++k)
        sum += double(x[(n * C + c) * S + k]);
    part[size_t(c) + 1] = sum;
  }
  sumRanks(part);
  const double N = part[0];
  std::vector<T> mean(static_cast<size_t>(C));
  std::vector<double> vs(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    mean[size_t(c)] = T(part[size_t(c) + 1] / N);
    double v = 0;
    for (int64_t n = 0; n < B; ++n)
      for (int64_t k = 0; k < S; ++k) {
        const T d = x[(n * C + c) * S + k] - mean[size_t(c)];
        v += double(d * d);
      }
    vs[size_t(c)] = v;
  }
  sumRanks(vs);
  for (int64_t c = 0; c < C; ++c) {
    const T var_sum = T(vs[size_t(c)]);
    const double var = double(var_sum / T(N));
    out[c] = mean[size_t(c)];
    out[C + c] = (var != 0 || eps != 0) ? T(1.0 / std::sqrt(var + eps)) : T(0);
    out[2 * C + c] = var_sum / T(N - 1);
  }
}

/// batch_norm_grad over the global batch: per channel, sum = Σ dy and dotp =
/// Σ (x - mean)·dy (each sample's plane in T, the planes in double, as one
/// process does) are summed over the ranks, then dx = (dy - sum/N - (x -
/// mean)·k)·invstd·w, k = dotp·invstd²/N, N the global count. `w` may be null.
template <typename T>
void syncBatchNormGrad(const T* dy, const T* x, const T* st, const T* w, int64_t B, int64_t C,
                       int64_t S, const RankSum& sumRanks, T* out) {
  std::vector<double> part(2 * size_t(C) + 1);
  part[0] = double(B * S);
  for (int64_t c = 0; c < C; ++c) {
    const T mean = st[c];
    double sum = 0, dotp = 0;
    for (int64_t n = 0; n < B; ++n) {
      T s = T(0), d = T(0);
      for (int64_t k = 0; k < S; ++k) {
        const int64_t i = (n * C + c) * S + k;
        s += dy[i];
        d += (x[i] - mean) * dy[i];
      }
      sum += double(s);
      dotp += double(d);
    }
    part[1 + 2 * size_t(c)] = sum;
    part[2 + 2 * size_t(c)] = dotp;
  }
  sumRanks(part);
  const double N = part[0];
  for (int64_t c = 0; c < C; ++c) {
    const T mean = st[c], invstd = st[C + c];
    const double sum = part[1 + 2 * size_t(c)], dotp = part[2 + 2 * size_t(c)];
    const T k = T(dotp) * invstd * invstd / T(N);
    const T grad_mean = T(sum / N);
    const T scale = invstd * (w ? w[c] : T(1));
    for (int64_t n = 0; n < B; ++n)
      for (int64_t j = 0; j < S; ++j) {
        const int64_t i = (n * C + c) * S + j;
        out[i] = (dy[i] - grad_mean - (x[i] - mean) * k) * scale;
      }
  }
}

} // namespace descent
