// MPI world detection and the collectives of data-parallel training (see
// distributed.h).
#include "runtime/distributed.h"

#include <cstdlib>
#include <fmt/format.h>
#define OMPI_SKIP_MPICXX 1 // the C API only: Open MPI's C++ bindings are deprecated
#include <mpi.h>
#include <stdexcept>

namespace descent {

int launchedWorldSize() {
  // Only Open MPI's launcher sets this; reading it keeps MPI_Init (which
  // starts Open MPI's runtime, ~100 ms) out of every single-process run.
  const char* s = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (!s) return 1;
  char* end = nullptr;
  long n = std::strtol(s, &end, 10);
  return end != s && *end == '\0' && n > 1 && n < (1 << 30) ? int(n) : 1;
}

DataParallel::DataParallel() {
  if (MPI_Init(nullptr, nullptr) != MPI_SUCCESS) throw std::runtime_error("MPI_Init failed");
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
}

DataParallel::~DataParallel() {
  MPI_Finalize();
}

GradientReducer DataParallel::reducer() {
  return [this](const float* partial, float* sum, int64_t count) {
    gathered_.resize(size_t(count) * size_t(size_));
    // MPI counts are int: a gradient of 2^31 floats is beyond any model here,
    // but is cut into pieces rather than overflowing.
    const int64_t piece = int64_t(1) << 30;
    for (int64_t at = 0; at < count; at += piece) {
      const int c = int(std::min(piece, count - at));
      if (at == 0 && c == count) {
        MPI_Allgather(partial, c, MPI_FLOAT, gathered_.data(), c, MPI_FLOAT, MPI_COMM_WORLD);
      } else {
        std::vector<float> part(size_t(c) * size_t(size_));
        MPI_Allgather(partial + at, c, MPI_FLOAT, part.data(), c, MPI_FLOAT, MPI_COMM_WORLD);
        for (int r = 0; r < size_; ++r)
          std::copy(part.begin() + r * c, part.begin() + (r + 1) * c,
                    gathered_.begin() + r * count + at);
      }
    }
    // Rank order, in float, then the scale: fixed for a given world size.
    const float s = scale_;
    for (int64_t i = 0; i < count; ++i) {
      float acc = gathered_[size_t(i)];
      for (int r = 1; r < size_; ++r)
        acc += gathered_[size_t(r * count + i)];
      sum[i] = acc * s;
    }
  };
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
