// The training loop (see trainer.h).
#include "runtime/trainer.h"
#include "runtime/scheduler.h"

#include "runtime/atomic_file.h"
#include "runtime/errors.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <random>

namespace descent {

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Fisher-Yates with our own bounded draw, so the order depends only on the
// seed and the epoch, not on the standard library's distributions.
void shuffleIndices(std::vector<int64_t>& idx, uint64_t seed, int64_t epoch) {
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + uint64_t(epoch) + 1);
  for (int64_t i = int64_t(idx.size()) - 1; i > 0; --i) {
    uint64_t j = rng() % uint64_t(i + 1);
    std::swap(idx[size_t(i)], idx[size_t(j)]);
  }
}

// A copy of every param and state, to fall back to when the loss diverges.
struct Snapshot {
  std::vector<std::vector<float>> params, states;
  void take(Engine& e) {
    params.clear();
    states.clear();
    for (const TensorInfo& p : e.params()) params.emplace_back(e.param(p.name), e.param(p.name) + p.numel());
    for (const TensorInfo& s : e.states()) states.emplace_back(e.state(s.name), e.state(s.name) + s.numel());
  }
  void restore(Engine& e) const {
    for (size_t i = 0; i < params.size(); ++i)
      std::copy(params[i].begin(), params[i].end(), e.param(e.params()[i].name));
    for (size_t i = 0; i < states.size(); ++i)
      std::copy(states[i].begin(), states[i].end(), e.state(e.states()[i].name));
  }
};

void drawProgress(int64_t epoch, int64_t epochs, int64_t done, int64_t total, double loss, double secs) {
  const int width = 30;
  int filled = total ? int(width * done / total) : width;
  std::string bar;
  for (int i = 0; i < width; ++i) bar += i < filled ? "█" : "░";
  std::fprintf(stderr, "\r  epoch %lld/%lld %s %3d%% loss %.4f %.1fs ", (long long)epoch,
               (long long)epochs, bar.c_str(), total ? int(100 * done / total) : 100, loss, secs);
  std::fflush(stderr);
}

void clearProgress() {
  std::fprintf(stderr, "\r%80s\r", "");
  std::fflush(stderr);
}

// Of a mean loss, the divisor per row: the outputs of a real target (MSE,
// BCE, L1 ... average over every element), 1 for class targets and batchmean.
double rowDivisor(const ModelSpec& spec) {
  if (spec.loss.reduction != Reduction::Mean || spec.target_kind == TargetKind::Class) return 1;
  return double(spec.outputSize());
}

// Per-sample loss of a batch from the graph's reduced loss.
double perSampleSum(const ModelSpec& spec, double loss, int64_t n) {
  // mean: NLL/CE divide by n; MSE/BCE by n*outputs. sum: already summed.
  if (spec.loss.reduction == Reduction::Sum) return loss;
  return loss * double(n);
}

} // namespace

ModelSpec dataParallelSpec(const ModelSpec& spec) {
  ModelSpec s = spec;
  s.loss.reduction = Reduction::Sum;
  return s;
}

double lossScale(const ModelSpec& spec, int64_t n) {
  if (spec.loss.reduction == Reduction::Sum) return 1;
  return double(float(1.0 / (double(n) * rowDivisor(spec))));
}

std::string dataParallelUnsupported(const ModelSpec& spec, int world, int64_t batch,
                                    int64_t samples) {
  if (spec.loss.reduction == Reduction::Mean &&
      (!spec.loss.weight.empty() || spec.loss.ignore_index))
    return "a mean loss with class weights or ignore_index divides by the weights of the whole "
           "batch, which data-parallel training does not sum across processes yet; use "
           "reduction='sum' or one process";
  const int64_t last = samples % batch;
  if (batch < world || (last > 0 && last < world))
    return fmt::format("every process needs at least one sample of each batch, but {} processes "
                       "share a batch of {}{}; use fewer processes or another --batch",
                       world, batch < world ? batch : last,
                       batch < world ? "" : " (the last, partial batch)");
  return {};
}

void gatherBatch(const Dataset& d, const std::vector<int64_t>& indices, int64_t begin, int64_t end,
                 BatchBuffers& out) {
  const int64_t n = end - begin, f = d.features;
  if (d.is_u8) {
    out.x_u8.resize(size_t(n * f));
    for (int64_t r = 0; r < n; ++r)
      std::memcpy(&out.x_u8[size_t(r * f)], &d.u8[size_t(indices[size_t(begin + r)] * f)], size_t(f));
  } else {
    out.x_f32.resize(size_t(n * f));
    for (int64_t r = 0; r < n; ++r)
      std::memcpy(&out.x_f32[size_t(r * f)], &d.f32[size_t(indices[size_t(begin + r)] * f)],
                  size_t(f) * sizeof(float));
  }
  if (!d.has_targets) {
    // Features only (prediction): the step still reads a target, so zeros.
    if (d.class_labels)
      out.y_labels.assign(size_t(n), 0);
    else
      out.y_real.assign(size_t(n * d.target_size), 0.0f);
  } else if (d.class_labels) {
    out.y_labels.resize(size_t(n));
    for (int64_t r = 0; r < n; ++r) out.y_labels[size_t(r)] = d.labels[size_t(indices[size_t(begin + r)])];
  } else {
    const int64_t t = d.target_size;
    out.y_real.resize(size_t(n * t));
    for (int64_t r = 0; r < n; ++r)
      std::memcpy(&out.y_real[size_t(r * t)], &d.targets[size_t(indices[size_t(begin + r)] * t)],
                  size_t(t) * sizeof(float));
  }
}

/// Asks the caches for the rows of [begin, end) that gatherBatch will copy
/// next. Shuffled rows are scattered over the dataset, so the copy waits on
/// ~800 cache misses per batch of 64 images; issued before a step, the
/// misses are served while the step runs instead of between steps (the
/// calling thread gathers while the other threads wait).
void prefetchBatch(const Dataset& d, const std::vector<int64_t>& indices, int64_t begin,
                   int64_t end) {
  const size_t row = size_t(d.features) * (d.is_u8 ? 1 : sizeof(float));
  const char* base = d.is_u8 ? reinterpret_cast<const char*>(d.u8.data())
                             : reinterpret_cast<const char*>(d.f32.data());
  if (!base) return;
  for (int64_t r = begin; r < end; ++r) {
    const char* p = base + size_t(indices[size_t(r)]) * row;
    for (size_t off = 0; off < row; off += 64)
      __builtin_prefetch(p + off, 0, 2);
  }
}

Task taskOf(const ModelSpec& spec) {
  if (spec.target_kind == TargetKind::Class) return Task::Classes;
  if (spec.loss.kind == LossKind::BCELoss || spec.loss.kind == LossKind::BCEWithLogitsLoss)
    return Task::Binary;
  return Task::Regression;
}

EvalStats evaluate(Engine& engine, const ModelSpec& spec, const Dataset& data, int64_t batch,
                   DataParallel* dp) {
  EvalStats s;
  s.count = data.count;
  s.task = taskOf(spec);
  bool classes = s.task == Task::Classes;
  s.classes = classes ? spec.target_size : 0;
  if (classes) s.confusion.assign(size_t(s.classes * s.classes), 0);
  std::vector<int64_t> idx(size_t(data.count));
  for (int64_t i = 0; i < data.count; ++i) idx[size_t(i)] = i;
  BatchBuffers buf;
  double loss_sum = 0, correct = 0;
  const int64_t outputs = spec.outputSize();
  // Binary: hits over all outputs. Regression: per output column, the sums
  // for R² (of y, y², squared residuals) and of absolute errors.
  const double threshold = spec.loss.kind == LossKind::BCEWithLogitsLoss ? 0.0 : 0.5;
  double hits = 0, abs_sum = 0;
  const auto cols = static_cast<size_t>(outputs);
  std::vector<double> sum_y(cols), sum_y2(cols), ss_res(cols);
  // Data-parallel: this rank's contiguous share of the rows; its engine
  // sums the loss (dataParallelSpec), turned back into per-sample sums here.
  const int64_t from = dp ? data.count * dp->rank() / dp->size() : 0;
  const int64_t to = dp ? data.count * (dp->rank() + 1) / dp->size() : data.count;
  for (int64_t b = from; b < to; b += batch) {
    int64_t e = std::min(to, b + batch), n = e - b;
    gatherBatch(data, idx, b, e, buf);
    EvalResult r = engine.eval(buf.x(), buf.y(), n);
    loss_sum += dp ? r.loss / rowDivisor(spec) : perSampleSum(spec, r.loss, n);
    correct += r.correct;
    if (classes && r.output) {
      for (int64_t i = 0; i < n; ++i) {
        const float* row = r.output + i * outputs;
        int64_t best = std::max_element(row, row + outputs) - row;
        const int64_t label = buf.y_labels[size_t(i)];
        // An ignore_index label is no class: it has no row in the matrix.
        if (label >= 0 && label < s.classes) s.confusion[size_t(label * s.classes + best)]++;
      }
    } else if (r.output) {
      for (int64_t i = 0; i < n * outputs; ++i) {
        const double p = r.output[i], y = buf.y_real[size_t(i)];
        if (s.task == Task::Binary) {
          hits += (p > threshold) == (y > 0.5);
        } else {
          const size_t c = size_t(i % outputs);
          sum_y[c] += y;
          sum_y2[c] += y * y;
          ss_res[c] += (p - y) * (p - y);
          abs_sum += std::abs(p - y);
        }
      }
    }
  }
  if (dp) {
    // Every count and sum of every rank, added in rank order.
    std::vector<double> v{loss_sum, correct, hits, abs_sum};
    v.insert(v.end(), sum_y.begin(), sum_y.end());
    v.insert(v.end(), sum_y2.begin(), sum_y2.end());
    v.insert(v.end(), ss_res.begin(), ss_res.end());
    v.insert(v.end(), s.confusion.begin(), s.confusion.end());
    dp->sum(v);
    loss_sum = v[0], correct = v[1], hits = v[2], abs_sum = v[3];
    size_t at = 4;
    for (auto* col : {&sum_y, &sum_y2, &ss_res})
      for (double& c : *col)
        c = v[at++];
    for (int64_t& c : s.confusion)
      c = int64_t(v[at++]);
  }
  s.loss = data.count ? loss_sum / double(data.count) : 0;
  const double values = double(data.count * outputs);
  if (s.task == Task::Classes) s.accuracy = data.count ? correct / double(data.count) : 0;
  if (s.task == Task::Binary) s.accuracy = data.count ? hits / values : 0;
  if (s.task == Task::Regression && data.count) {
    s.mae = abs_sum / values;
    // sklearn: a constant column scores 1 when predicted exactly, else 0.
    for (size_t c = 0; c < size_t(outputs); ++c) {
      const double n = double(data.count);
      const double ss_tot = sum_y2[c] - sum_y[c] * sum_y[c] / n;
      s.r2 += ss_tot > 0 ? 1 - ss_res[c] / ss_tot : ss_res[c] == 0 ? 1 : 0;
    }
    s.r2 /= double(outputs);
  }
  return s;
}

std::string resumeMismatch(const TrainProgress& start, const TrainOptions& opts, int64_t samples) {
  if (start.epoch_step == 0) return {};
  auto run = [](uint64_t seed, bool shuffle, int64_t batch, int64_t samples) {
    return fmt::format("--seed {}{} --batch {} on {} samples", seed, shuffle ? "" : " --no-shuffle",
                       batch, samples);
  };
  if (start.seed == opts.seed && start.shuffle == opts.shuffle && start.batch == opts.batch &&
      start.samples == samples)
    return {};
  return fmt::format("was interrupted in epoch {} after {} steps of a run with {}; finishing that "
                     "epoch exactly needs the same (this run has {})",
                     start.epoch + 1, start.epoch_step,
                     run(start.seed, start.shuffle, start.batch, start.samples),
                     run(opts.seed, opts.shuffle, opts.batch, samples));
}

TrainResult train(Engine& engine, const ModelSpec& spec, const Dataset& data, const Dataset* test,
                  const TrainOptions& opts, TrainProgress start) {
  if (std::string why = resumeMismatch(start, opts, data.count); !why.empty())
    throw std::invalid_argument("the checkpoint " + why);
  TrainResult result;
  result.progress = start;
  result.progress.seed = opts.seed;
  result.progress.shuffle = opts.shuffle;
  result.progress.batch = opts.batch;
  result.progress.samples = data.count;
  auto print = [&](const std::string& line) {
    if (opts.print) opts.print(line);
  };
  std::vector<int64_t> idx(size_t(data.count));
  // buf: the batch the step reads; ahead: the next one, gathered during the
  // step by a thread that would otherwise wait (Engine::runAlongsideNextStep).
  BatchBuffers buf, ahead;
  bool ahead_ready = false;
  Snapshot good;
  std::string metrics;
  if (opts.metrics_append && !opts.metrics_path.empty() &&
      std::filesystem::exists(opts.metrics_path)) {
    metrics = readFile(opts.metrics_path);
    if (!metrics.empty() && metrics.back() != '\n') metrics += '\n';
  }
  const int64_t steps_per_epoch = (data.count + opts.batch - 1) / opts.batch;
  // The schedule continues from the checkpoint's state; OneCycleLR's default
  // total is the whole run's steps (those before a resume included).
  std::optional<LrScheduler> sched;
  double lr = spec.optimizer.lr; // of the latest step
  if (spec.scheduler) {
    const int64_t run_steps = start.step + opts.epochs * steps_per_epoch - start.epoch_step;
    sched.emplace(spec, start.epoch + opts.epochs, steps_per_epoch);
    if (!start.scheduler.empty()) {
      try {
        sched->load(start.scheduler);
      } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(std::string("the checkpoint ") + e.what());
      }
    }
    sched->checkSteps(run_steps, spec.path);
    engine.setHyper(sched->lr(), sched->momentum());
    result.progress.scheduler = sched->state();
  }

  for (int64_t e = 0; e < opts.epochs && !result.interrupted; ++e) {
    const int64_t epoch = start.epoch + e + 1; // 1-based, continues across --init resumes
    for (int64_t i = 0; i < data.count; ++i) idx[size_t(i)] = i;
    if (opts.shuffle) shuffleIndices(idx, opts.seed, epoch);
    // A run interrupted mid-epoch resumes at the batch it stopped before, with
    // that epoch's shuffle and the losses it had summed.
    good.take(engine);
    const TrainProgress at_snapshot = result.progress;

    auto t0 = Clock::now();
    auto last_draw = t0;
    ahead_ready = false; // (an interrupted run's; the shuffle changed)
    double& loss_sum = result.progress.epoch_loss_sum;
    int64_t& steps = result.progress.epoch_step;
    const int64_t first_step = steps;
    for (int64_t b = steps * opts.batch; b < data.count; b += opts.batch) {
      bool stop = opts.interrupt && opts.interrupt->load();
      if (opts.dp) stop = opts.dp->any(stop); // every rank stops at the same step
      if (stop) {
        result.interrupted = true;
        break;
      }
      int64_t end = std::min(data.count, b + opts.batch);
      // Data-parallel: rank r of N takes rows [r*n/N, (r+1)*n/N) of the
      // global batch of n (the same shuffle on every rank).
      auto shard = [&](int64_t first) {
        const int64_t last = std::min(data.count, first + opts.batch);
        if (!opts.dp) return std::pair{first, last};
        const int64_t n = last - first, r = opts.dp->rank(), N = opts.dp->size();
        return std::pair{first + n * r / N, first + n * (r + 1) / N};
      };
      auto [lo, hi] = shard(b);
      double scale = 1;
      if (opts.dp) {
        scale = lossScale(spec, end - b);
        opts.dp->setScale(float(scale));
        engine.setFirstRow(lo - b);
      }
      if (ahead_ready)
        std::swap(buf, ahead);
      else
        gatherBatch(data, idx, lo, hi, buf);
      ahead_ready = false;
      if (end < data.count) {
        auto [next_lo, next_hi] = shard(end);
        prefetchBatch(data, idx, next_lo, next_hi);
        // Gathered here, on the caller, while the worker spun, the batch
        // cost the notebook model's 2-thread epoch ~9%; the worker waits
        // about as long inside the step (docs/performance.md, "sixth
        // session: the interleaved halves of W"), so it gathers it there.
        engine.runAlongsideNextStep([&, next_lo = next_lo, next_hi = next_hi] {
          try {
            gatherBatch(data, idx, next_lo, next_hi, ahead);
            ahead_ready = true;
          } catch (...) { // (out of memory: the caller gathers it again and reports it)
          }
        });
      }
      int64_t step = result.progress.step + 1;
      if (sched) lr = sched->lr();
      float loss = engine.trainStep(buf.x(), buf.y(), hi - lo, step, int32_t(opts.seed));
      // The global batch's loss: the ranks' sums, added in rank order.
      if (opts.dp) loss = float(opts.dp->sum(double(loss)) * scale);
      if (!std::isfinite(loss)) {
        if (opts.progress_bar) clearProgress();
        std::string kept;
        if (!opts.save_path.empty()) {
          good.restore(engine);
          saveCheckpoint(opts.save_path, engine, spec, at_snapshot);
          kept = fmt::format("; kept the weights from {} {} in {}",
                             at_snapshot.epoch_step ? "step" : "the start of epoch",
                             at_snapshot.epoch_step ? at_snapshot.step : epoch, opts.save_path);
        }
        throw DivergedError(fmt::format(
            "training diverged: the loss is {} at epoch {}, step {} of {}{} (hint: lower the learning "
            "rate, e.g. --lr {:g})",
            std::isnan(loss) ? "nan" : "infinite", epoch, steps + 1, steps_per_epoch, kept,
            lr / 10));
      }
      result.progress.step = step;
      loss_sum += loss;
      ++steps;
      if (sched && sched->perBatch()) { // OneCycleLR: scheduler.step() after optimizer.step()
        sched->stepBatch();
        engine.setHyper(sched->lr(), sched->momentum());
      }
      if (opts.progress_bar && std::chrono::duration<double>(Clock::now() - last_draw).count() > 0.1) {
        last_draw = Clock::now();
        drawProgress(epoch, start.epoch + opts.epochs, end, data.count, loss_sum / double(steps), secondsSince(t0));
      }
    }
    double secs = secondsSince(t0);
    if (opts.progress_bar) clearProgress();
    if (sched) result.progress.scheduler = sched->state();
    if (result.interrupted) {
      print(fmt::format("interrupted in epoch {} after {} of {} steps", epoch, steps,
                        steps_per_epoch));
      break;
    }

    EpochStats st;
    st.epoch = epoch;
    st.train_loss = steps ? loss_sum / double(steps) : 0;
    st.seconds = secs;
    st.lr = lr;
    const int64_t samples_run = data.count - first_step * opts.batch; // this session's part
    st.samples_per_second = secs > 0 ? double(samples_run) / secs : 0;
    result.progress.epoch = epoch;
    result.progress.epoch_step = 0;
    result.progress.epoch_loss_sum = 0;
    std::string line = fmt::format("epoch {:>3}  train loss {:.6f}", epoch, st.train_loss);
    if (test) {
      EvalStats ev = evaluate(engine, spec, *test, opts.batch, opts.dp);
      st.test_loss = ev.loss;
      line += fmt::format("  test loss {:.6f}", ev.loss);
      if (ev.task == Task::Regression) {
        st.test_r2 = ev.r2;
        st.test_mae = ev.mae;
        line += fmt::format("  test R² {:.4f}  test MAE {:.6f}", ev.r2, ev.mae);
      } else {
        st.test_accuracy = ev.accuracy;
        line += fmt::format("  test accuracy {:6.2f}%", 100 * ev.accuracy);
      }
    }
    if (sched) line += fmt::format("  lr {:.6g}", st.lr);
    line += fmt::format("  {:>9.0f} samples/s  {:.2f}s", st.samples_per_second, secs);
    print(line);
    result.epochs.push_back(st);

    // scheduler.step() after the epoch (ReduceLROnPlateau: with the test loss,
    // or the train loss without test data), before the checkpoint records it.
    if (sched && !sched->perBatch()) {
      sched->stepEpoch(st.test_loss ? *st.test_loss : st.train_loss);
      engine.setHyper(sched->lr(), sched->momentum());
      result.progress.scheduler = sched->state();
    }
    // The checkpoint first: a failing metrics write must not cost the epoch.
    if (!opts.save_path.empty()) saveCheckpoint(opts.save_path, engine, spec, result.progress);
    if (!opts.metrics_path.empty()) {
      nlohmann::json j;
      j["epoch"] = st.epoch;
      j["train_loss"] = st.train_loss;
      if (st.test_loss) j["test_loss"] = *st.test_loss;
      if (st.test_accuracy) j["test_accuracy"] = *st.test_accuracy;
      if (st.test_r2) j["test_r2"] = *st.test_r2;
      if (st.test_mae) j["test_mae"] = *st.test_mae;
      j["lr"] = st.lr;
      j["seconds"] = st.seconds;
      j["samples_per_second"] = st.samples_per_second;
      metrics += j.dump() + "\n";
      try {
        writeFileAtomic(opts.metrics_path, metrics);
      } catch (const DataError& err) {
        if (opts.save_path.empty()) throw;
        throw DataError(fmt::format("{} (the checkpoint {} of epoch {} was saved)", err.what(),
                                    opts.save_path, epoch));
      }
    }
  }
  if (result.interrupted && !opts.save_path.empty())
    saveCheckpoint(opts.save_path, engine, spec, result.progress);
  return result;
}

} // namespace descent
