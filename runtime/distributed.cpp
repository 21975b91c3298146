// MPI world detection and the multi-process guard (see distributed.h).
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

MpiSession::MpiSession() {
  if (MPI_Init(nullptr, nullptr) != MPI_SUCCESS) throw std::runtime_error("MPI_Init failed");
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
}

MpiSession::~MpiSession() {
  MPI_Finalize();
}

std::optional<std::string> refuseMultiProcess(const std::string& command) {
  if (launchedWorldSize() <= 1) return std::nullopt;
  MpiSession mpi;
  // Every rank reaches this point before any of them exits, so mpirun sees a
  // uniform, orderly failure rather than one rank aborting the others.
  MPI_Barrier(MPI_COMM_WORLD);
  if (mpi.rank() != 0) return std::string();
  return fmt::format("descent {} under mpirun with {} processes: data-parallel training is not "
                     "implemented yet (issue #15), so each process would train alone and all would "
                     "write the same files; run it as one process (mpirun -np 1 or without mpirun)",
                     command, mpi.size());
}

} // namespace descent
