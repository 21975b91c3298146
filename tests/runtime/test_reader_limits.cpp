// Readers against inputs that would exhaust memory or block: a tiny gzip file
// declaring gigabytes, a CSV of blank lines, /dev/zero and a FIFO. Each case
// runs in a child process with a bounded address space and an alarm, so a
// regression shows up as a failed check (std::bad_alloc, a signal) instead of
// swapping or hanging the test run.
#include "runtime/csv.h"
#include "runtime/dataset.h"
#include "runtime/errors.h"
#include "runtime/idx.h"
#include "runtime/safetensors.h"
#include "runtime_test_util.h"

#include <cstdio>
#include <functional>
#include <new>
#include <signal.h>
#include <string>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace descent;
using namespace descent::testutil;

namespace {

/// The process's current address-space size in bytes (first field of statm).
uint64_t addressSpaceBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  REQUIRE(f != nullptr);
  unsigned long long pages = 0;
  REQUIRE(std::fscanf(f, "%llu", &pages) == 1);
  std::fclose(f);
  return pages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

/// Runs `f` in a child whose address space may grow by at most 1 GiB and
/// which gets SIGALRM after 60 s. Returns the DataError message `f` threw,
/// or a description of anything else: "no error", "std::bad_alloc",
/// "killed by signal N", "exited with status N".
std::string messageInChild(const std::function<void()>& f) {
  const uint64_t limit = addressSpaceBytes() + (uint64_t(1) << 30);
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    struct rlimit rl {};
    rl.rlim_cur = rl.rlim_max = limit;
    ::setrlimit(RLIMIT_AS, &rl);
    ::alarm(60);
    std::string out;
    try {
      f();
      out = "no error";
    } catch (const DataError& e) {
      out = e.what();
    } catch (const std::bad_alloc&) {
      out = "std::bad_alloc";
    } catch (const std::exception& e) {
      out = std::string("exception: ") + e.what();
    }
    size_t done = 0;
    while (done < out.size()) {
      ssize_t n = ::write(fds[1], out.data() + done, out.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0)
    out.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  // A sanitizer's allocator reports running out of memory and exits instead.
  if (WEXITSTATUS(status) != 0) return "exited with status " + std::to_string(WEXITSTATUS(status));
  return out;
}

} // namespace

TEST_CASE("a tiny gzip IDX file declaring 4 GiB fails without allocating it", "[idx][limits]") {
  TempDir d;
  // 65536 x 256 x 256 images = 4 GiB, the largest size the reader accepts, and no pixels.
  std::string head;
  putBigEndian32(head, 0x00000803);
  for (uint32_t dim : {65536u, 256u, 256u})
    putBigEndian32(head, dim);
  writeGzip(d / "bomb.gz", head);
  CHECK(readBytes(d / "bomb.gz").size() < 100);
  CHECK(messageInChild([&] { readIdx(d / "bomb.gz", 3); }) ==
        d / "bomb.gz" +
            ": truncated file: expected 4294967312 bytes (16-byte header + 65536x256x256 images) "
            "after decompression, got 16");
}

TEST_CASE("a CSV of blank lines reserves nothing", "[csv][limits]") {
  TempDir d;
  // One million blank lines: reserving rows from the line count would ask for
  // 1e6 * 784 floats (3 GB).
  writeBytes(d / "blank.csv", std::string(1000000, '\n'));
  CHECK(messageInChild([&] { loadCsv(d / "blank.csv", 784, 10, true); }) ==
        d / "blank.csv" + ": empty file (expected a header row and data rows)");
  // Short lines after a header do not count either.
  writeBytes(d / "short.csv", "a,b,label\n" + std::string(1000000, '\n') + "1,2\n");
  CHECK(countCsvRows(d / "short.csv", 3) == 1);
  CHECK(messageInChild([&] { loadCsv(d / "short.csv", 2, 10, true); }) ==
        d / "short.csv" + ":1000002: expected 3 columns (2 features + 1 label), got 2");
}

TEST_CASE("readers refuse devices and FIFOs instead of reading forever", "[limits][errors]") {
  TempDir d;
  const std::string zero = "/dev/zero";
  const std::string dev = zero + ": not a regular file (it is a character device)";
  CHECK(messageInChild([&] { loadCsv(zero, 1, 2, true); }) == dev);
  CHECK(messageInChild([&] { readIdx(zero, 1); }) == dev);
  CHECK(messageInChild([&] { readSafetensors(zero); }) == dev);

  // Opening a FIFO for reading blocks until a writer appears.
  const std::string fifo = d / "fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const std::string pipe_msg = fifo + ": not a regular file (it is a FIFO)";
  CHECK(messageInChild([&] { loadCsv(fifo, 1, 2, true); }) == pipe_msg);
  CHECK(messageInChild([&] { readIdx(fifo, 3); }) == pipe_msg);
  CHECK(messageInChild([&] { readSafetensors(fifo); }) == pipe_msg);
  // An IDX directory holding a FIFO under a data file's name says so too.
  REQUIRE(::mkfifo((d / "train-images-idx3-ubyte").c_str(), 0600) == 0);
  writeBytes(d / "train-labels-idx1-ubyte", idxLabels(2, 2));
  CHECK(messageInChild([&] { loadIdxDir(d.path()); }) ==
        d / "train-images-idx3-ubyte" + ": not a regular file (it is a FIFO)");
}
