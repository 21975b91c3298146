// The MPI job a process runs in: the world size and rank when `descent` is
// launched by Open MPI's `mpirun`, and the guard that refuses a multi-process
// `descent train` until data-parallel training exists (issue #15; see
// docs/distributed.md). A plain run never initializes MPI and pays nothing.
#pragma once

#include <optional>
#include <string>

namespace descent {

/// The world size Open MPI's launcher announced in the environment
/// (OMPI_COMM_WORLD_SIZE), 1 when not launched by mpirun.
int launchedWorldSize();

/// One initialized MPI session (MPI_Init ... MPI_Finalize); create it only when
/// launchedWorldSize() > 1, at most once per process.
class MpiSession {
public:
  MpiSession();
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  int size() const { return size_; }
  int rank() const { return rank_; }

private:
  int size_ = 1, rank_ = 0;
};

/// Under `mpirun -np N` with N > 1: the one-line error `command` reports (on
/// rank 0 only; the other ranks get an empty string and stay silent), after the
/// ranks agreed through MPI. Without mpirun (or with one process): nullopt.
/// Today every rank would otherwise train the whole data set by itself and race
/// to write the same --save and --metrics files.
std::optional<std::string> refuseMultiProcess(const std::string& command);

} // namespace descent
