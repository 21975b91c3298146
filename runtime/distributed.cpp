// MPI world detection and the collectives of data-parallel training (see
// distributed.h).
#include "runtime/distributed.h"

#include <algorithm>
#include <cstdlib>
#include <fmt/format.h>
#define OMPI_SKIP_MPICXX 1 // the C API only: Open MPI's C++ bindings are deprecated
#include <mpi.h>
#include <stdexcept>

namespace descent {

namespace {

/// Environment variable `name` as an integer in [lo, 2^30), else `fallback`.
int envInt(const char* name, long lo, int fallback) {
  const char* s = std::getenv(name);
  if (!s) return fallback;
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  return end != s && *end == '\0' && v >= lo && v < (1 << 30) ? int(v) : fallback;
}

} // namespace

int launchedWorldSize() {
  // Only Open MPI's launcher sets this; reading it keeps MPI_Init (which
  // starts Open MPI's runtime, ~100 ms) out of every single-process run.
  return envInt("OMPI_COMM_WORLD_SIZE", 2, 1);
}

int launchedRank() {
  return envInt("OMPI_COMM_WORLD_RANK", 1, 0);
}

DataParallel::DataParallel() {
  if (MPI_Init(nullptr, nullptr) != MPI_SUCCESS) throw std::runtime_error("MPI_Init failed");
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  // The measurement of docs/distributed.md: the same step with each
  // reduction completed where it starts (no overlap), for comparison.
  const char* b = std::getenv("DESCENT_MPI_BLOCKING");
  blocking_ = b && std::string(b) == "1";
}

/// One reduction slot: the gradient in pieces of at most 2^30 floats (MPI
/// counts are int), each gathered into a [size][piece] buffer by its own
/// request. A rank's own row is its partial gradient, copied in at start
/// (the gather is in place), so the kernels may reuse the gradient's buffer
/// while the gather runs.
struct DataParallel::Reduction {
  struct Piece {
    int64_t at = 0;
    int count = 0;
    std::vector<float> gathered;
  };
  std::vector<Piece> pieces;
  std::vector<MPI_Request> requests;
  bool active = false;
};

DataParallel::~DataParallel() {
  reductions_.clear();
  MPI_Finalize();
}

void DataParallel::start(int slot, const float* partial, int64_t count) {
  if (size_t(slot) >= reductions_.size()) reductions_.resize(size_t(slot) + 1);
  auto& red = reductions_[size_t(slot)];
  if (!red) red = std::make_unique<Reduction>();
  const int64_t piece = int64_t(1) << 30;
  red->pieces.resize(size_t((count + piece - 1) / piece));
  red->requests.assign(red->pieces.size(), MPI_REQUEST_NULL);
  for (size_t p = 0; p < red->pieces.size(); ++p) {
    auto& pc = red->pieces[p];
    pc.at = int64_t(p) * piece;
    pc.count = int(std::min(piece, count - pc.at));
    pc.gathered.resize(size_t(pc.count) * size_t(size_));
    std::copy(partial + pc.at, partial + pc.at + pc.count,
              pc.gathered.begin() + int64_t(rank_) * pc.count);
    if (blocking_)
      MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, pc.gathered.data(), pc.count, MPI_FLOAT,
                    MPI_COMM_WORLD);
    else
      MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, pc.gathered.data(), pc.count, MPI_FLOAT,
                     MPI_COMM_WORLD, &red->requests[p]);
  }
  red->active = true;
}

void DataParallel::finish(int slot, float* sum) {
  Reduction& red = *reductions_.at(size_t(slot));
  MPI_Waitall(int(red.requests.size()), red.requests.data(), MPI_STATUSES_IGNORE);
  red.active = false;
  // Rank order, in float, then the scale: fixed for a given world size.
  const float s = scale_;
  for (const auto& pc : red.pieces) {
    const float* g = pc.gathered.data();
    for (int64_t i = 0; i < pc.count; ++i) {
      float acc = g[i];
      for (int r = 1; r < size_; ++r)
        acc += g[int64_t(r) * pc.count + i];
      sum[pc.at + i] = acc * s;
    }
  }
}

void DataParallel::progress() {
  // Open MPI advances a non-blocking collective's schedule only inside MPI
  // calls (no progress thread): a test of the requests in flight moves them
  // on between kernels.
  for (auto& red : reductions_)
    if (red && red->active) {
      int flag = 0;
      MPI_Testall(int(red->requests.size()), red->requests.data(), &flag, MPI_STATUSES_IGNORE);
    }
}

GradientReducer DataParallel::reducer() {
  GradientReducer r;
  r.start = [this](int slot, const float* partial, int64_t count) { start(slot, partial, count); };
  r.finish = [this](int slot, float* sum) { finish(slot, sum); };
  r.progress = [this] { progress(); };
  r.sum_ranks = [this](std::vector<double>& v) { sum(v); };
  return r;
}

void DataParallel::sum(std::vector<double>& values) {
  const int n = int(values.size());
  std::vector<double> all(values.size() * size_t(size_));
  MPI_Allgather(values.data(), n, MPI_DOUBLE, all.data(), n, MPI_DOUBLE, MPI_COMM_WORLD);
  for (int i = 0; i < n; ++i) {
    double acc = all[size_t(i)];
    for (int r = 1; r < size_; ++r)
      acc += all[size_t(r * n + i)];
    values[size_t(i)] = acc;
  }
}

double DataParallel::sum(double v) {
  std::vector<double> one{v};
  sum(one);
  return one[0];
}

bool DataParallel::any(bool flag) {
  int in = flag ? 1 : 0, out = 0;
  MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return out != 0;
}

std::pair<std::string, int> DataParallel::agree(const std::string& error, int code) {
  // The lowest failing rank, then its message broadcast from it.
  int mine = error.empty() ? size_ : rank_, first = size_;
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (first == size_) return {"", 0};
  int len = int(error.size());
  int info[2] = {len, code};
  MPI_Bcast(info, 2, MPI_INT, first, MPI_COMM_WORLD);
  std::string msg = rank_ == first ? error : std::string(size_t(info[0]), ' ');
  MPI_Bcast(msg.data(), info[0], MPI_CHAR, first, MPI_COMM_WORLD);
  if (first != 0) msg = fmt::format("rank {} of {}: {}", first, size_, msg);
  return {msg, info[1]};
}

void DataParallel::abort(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code); // not reached: MPI_Abort ends the process
}

} // namespace descent
