// The MPI job a process runs in, for data-parallel training (issue #15,
// docs/distributed.md): the world size and rank when `descent` is launched by
// Open MPI's `mpirun`, and the few collectives the trainer needs, each in a
// fixed order so a run is bitwise reproducible for a given world size. A
// plain run never initializes MPI and pays nothing. The only file that
// includes mpi.h is distributed.cpp.
#pragma once

#include "compiler/passes/allreduce.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace descent {

/// The world size Open MPI's launcher announced in the environment
/// (OMPI_COMM_WORLD_SIZE), 1 when not launched by mpirun.
int launchedWorldSize();
/// This process's rank as Open MPI's launcher announced it
/// (OMPI_COMM_WORLD_RANK), 0 when not launched by mpirun.
int launchedRank();

/// One initialized MPI session (MPI_Init ... MPI_Finalize) and the
/// collectives of data-parallel training over MPI_COMM_WORLD. Create it only
/// when launchedWorldSize() > 1, at most once per process. Every collective
/// must be called by every rank in the same order.
class DataParallel {
public:
  DataParallel();
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;
  int size() const { return size_; }
  int rank() const { return rank_; }

  /// The allreduce ops' reduction: every rank's partial gradient is gathered
  /// (a non-blocking MPI_Iallgather, started by GradientReducer::start) and
  /// summed in rank order on every rank (at finish), then multiplied by the
  /// step's scale (setScale): the same bits on every rank and in every run,
  /// unlike MPI_Allreduce, whose order Open MPI does not fix.
  GradientReducer reducer();
  /// The factor the next reductions apply (1 / the global batch's count for a
  /// mean loss).
  void setScale(float s) { scale_ = s; }

  /// Sums each element over the ranks, in rank order (the same result on every rank).
  void sum(std::vector<double>& values);
  double sum(double v);
  /// True on every rank when `flag` is true on any.
  bool any(bool flag);

  /// A check every rank makes before training: "" when this rank is fine,
  /// else its one-line error and exit code. Returns, on every rank, the
  /// first failing rank's error ("" when none failed) with its code; the
  /// message names the rank unless it is rank 0 (whose message is the
  /// single-process one).
  std::pair<std::string, int> agree(const std::string& error, int code);

  /// Ends the whole job now (MPI_Abort): a failure on one rank mid-training,
  /// where the others would wait for it in the next reduction.
  [[noreturn]] void abort(int code);

private:
  int size_ = 1, rank_ = 0;
  float scale_ = 1.0f;
  bool blocking_ = false; ///< DESCENT_MPI_BLOCKING=1: blocking gathers (no overlap)
  struct Reduction;       ///< one slot's gather buffers and requests (distributed.cpp)
  std::vector<std::unique_ptr<Reduction>> reductions_; ///< by slot, reused every step
  void start(int slot, const float* partial, int64_t count);
  void finish(int slot, float* sum);
  void progress();
};

} // namespace descent
