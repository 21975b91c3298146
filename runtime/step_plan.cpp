// The step's dependency plan (see step_plan.h): conflicts on arena byte
// ranges, then a list schedule of the kernels over the threads under a small
// cost model, trying each way of running the choosable kernels whole or split.
#include "runtime/step_plan.h"

#include <algorithm>
#include <cstdint>
#include <utility>

namespace descent {

namespace {

// The cost model, in microseconds. Rough on purpose: it only has to tell a
// 1 us kernel from a 100 us one and see that two 8 us GEMMs side by side
// beat the same two split one after the other. Measured on the notebook
// model (2026-11-29, `descent bench --threads 2`): GEMMs run at ~120-140
// GFLOP/s per thread; a split kernel's pieces take about est/threads + 4 us
// each (the operands cross to the other core's cache: a 1 MFLOP GEMM's
// halves took 7.2 and 8.6 us against 7.6 us whole); kernels without FLOPs
// stream their operands at ~20 GB/s; a one-piece kernel whose input was
// written on the other core reads it at ~10 GB/s.
constexpr double kFlopsPerUs = 1.2e5;
constexpr double kBytesPerUs = 2e4;
constexpr double kCrossBytesPerUs = 1e4;
constexpr double kKernelUs = 0.2;
constexpr double kSplitUs = 4.0;
/// At most 2^kMaxChoices plans are simulated; choosable kernels past the
/// first kMaxChoices stay split.
constexpr int kMaxChoices = 10;

struct Range {
  int64_t lo, hi;
};

bool intersects(const std::vector<Range>& a, const std::vector<Range>& b) {
  for (const Range& x : a)
    for (const Range& y : b)
      if (x.lo < y.hi && y.lo < x.hi) return true;
  return false;
}

/// Bytes of `a` that `b` covers too.
double overlapBytes(const std::vector<Range>& a, const std::vector<Range>& b) {
  double n = 0;
  for (const Range& x : a)
    for (const Range& y : b)
      n += double(std::max<int64_t>(0, std::min(x.hi, y.hi) - std::max(x.lo, y.lo)));
  return n;
}

} // namespace

StepPlan planStep(const KernelGraph& kg, const std::vector<int>& chunks,
                  const std::vector<double>& flops, const std::vector<bool>& choosable,
                  int threads) {
  const size_t nk = kg.kernels.size();
  StepPlan plan;
  plan.deps.assign(nk, {});
  // Arena byte ranges each kernel reads and writes (%x and %y are the
  // caller's, read-only).
  std::vector<std::vector<Range>> rd(nk), wr(nk);
  std::vector<double> bytes(nk, 0.0);
  auto ranges = [&](const std::vector<int>& bufs, std::vector<Range>& out, double& total) {
    for (int b : bufs) {
      const Buffer& buf = kg.buffers[size_t(b)];
      total += double(buf.bytes);
      if (buf.input || buf.offset < 0) continue;
      out.push_back({buf.offset, buf.offset + buf.bytes});
    }
  };
  for (size_t k = 0; k < nk; ++k) {
    ranges(kg.kernels[k].reads, rd[k], bytes[k]);
    ranges(kg.kernels[k].writes, wr[k], bytes[k]);
  }
  for (size_t j = 0; j < nk; ++j)
    for (size_t i = 0; i < j; ++i)
      if (intersects(wr[i], rd[j]) || intersects(rd[i], wr[j]) || intersects(wr[i], wr[j]))
        plan.deps[j].push_back(int(i));

  std::vector<double> est(nk);
  for (size_t k = 0; k < nk; ++k)
    est[k] = kKernelUs + (flops[k] > 0 ? flops[k] / kFlopsPerUs : bytes[k] / kBytesPerUs);

  std::vector<size_t> choice;
  for (size_t k = 0; k < nk; ++k)
    if (choosable[k] && chunks[k] > 1 && choice.size() < size_t(kMaxChoices)) choice.push_back(k);

  // Simulates the threads running the kernels in order, each one-piece
  // kernel on the thread that finishes it first (the caller on a tie).
  auto simulate = [&](const std::vector<int>& ch, std::vector<int>* owner) {
    std::vector<double> avail(size_t(threads), 0.0), finish(nk, 0.0);
    std::vector<int> ran_on(nk, -1); // -1: split over every thread
    if (owner) owner->assign(nk, -1);
    for (size_t k = 0; k < nk; ++k) {
      double ready = 0;
      for (int d : plan.deps[k])
        ready = std::max(ready, finish[size_t(d)]);
      if (ch[k] > 1) {
        double sum = 0;
        for (double& a : avail)
          sum += std::max(a, ready);
        const double f = std::max(ready + est[k] / threads, (sum + est[k]) / threads + kSplitUs);
        for (double& a : avail)
          a = f;
        finish[k] = f;
        continue;
      }
      int best = 0;
      double best_f = 0;
      for (int t = 0; t < threads; ++t) {
        // Inputs last written on another core cross to this one.
        double cross = 0;
        for (int d : plan.deps[k])
          if (ran_on[size_t(d)] != t)
            cross += overlapBytes(wr[size_t(d)], rd[k]) *
                     (ran_on[size_t(d)] < 0 ? 1.0 - 1.0 / threads : 1.0);
        const double f = std::max(avail[size_t(t)], ready) + est[k] + cross / kCrossBytesPerUs;
        if (t == 0 || f < best_f) best = t, best_f = f;
      }
      avail[size_t(best)] = best_f;
      finish[k] = best_f;
      ran_on[k] = best;
      if (owner) (*owner)[k] = best;
    }
    return *std::max_element(avail.begin(), avail.end());
  };

  // Every way of running the choosable kernels whole (bit set) or split; the
  // first shortest plan wins, so ties keep them split.
  std::vector<int> ch = chunks;
  uint32_t best_mask = 0;
  double best = simulate(ch, nullptr);
  for (uint32_t mask = 1; mask < (1u << choice.size()); ++mask) {
    for (size_t c = 0; c < choice.size(); ++c)
      ch[choice[c]] = (mask >> c) & 1 ? 1 : chunks[choice[c]];
    const double t = simulate(ch, nullptr);
    if (t < best) best = t, best_mask = mask;
  }
  plan.chunks = chunks;
  for (size_t c = 0; c < choice.size(); ++c)
    if ((best_mask >> c) & 1) plan.chunks[choice[c]] = 1;
  plan.model_us = simulate(plan.chunks, &plan.owner);
  return plan;
}

} // namespace descent
