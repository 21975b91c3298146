// --cpu validation and the out-of-memory hook (see target.h).
#include "compiler/codegen/target.h"

#include "compiler/frontend/sema.h"

#include <llvm/ADT/SmallVector.h>
#include <llvm/ADT/StringMap.h>
#include <llvm/Support/ErrorHandling.h>
#include <llvm/TargetParser/Host.h>
#include <llvm/TargetParser/Triple.h>
#include <llvm/TargetParser/X86TargetParser.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <unistd.h>

namespace descent {

namespace {

// The levels every x86-64 compiler accepts, named first in messages.
const char* const kLevels = "native, x86-64, x86-64-v2, x86-64-v3, x86-64-v4";

bool hostIsX86_64() {
  return llvm::Triple(llvm::sys::getProcessTriple()).getArch() == llvm::Triple::x86_64;
}

[[noreturn]] void onBadAlloc(void*, const char*, bool) {
  // Must not allocate (the allocation just failed) and must not return. Threads
  // may run out of memory together: the first one reports and exits, the
  // others wait for that (like a signal flag, the only state a handler can reach).
  static std::atomic_flag reported = ATOMIC_FLAG_INIT;
  if (reported.test_and_set())
    for (;;)
      ::pause();
  static const char kMsg[] = "error: out of memory: the system refused an allocation (see `ulimit "
                             "-v` and the free memory)\n";
  (void)!::write(STDERR_FILENO, kMsg, sizeof kMsg - 1);
  ::_exit(1);
}

} // namespace

bool isHostCpu(const std::string& cpu) {
  return cpu.empty() || cpu == "native" || cpu == "host";
}

std::string hostCpuName() {
  return llvm::sys::getHostCPUName().str();
}

std::vector<std::string> knownCpuNames() {
  llvm::SmallVector<llvm::StringRef, 128> names;
  llvm::X86::fillValidCPUArchList(names, /*Only64Bit=*/true);
  std::vector<std::string> out;
  for (llvm::StringRef n : names)
    out.push_back(n.str());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  out.insert(out.begin(), "native");
  return out;
}

std::string checkCpuName(const std::string& cpu, bool will_run) {
  if (isHostCpu(cpu)) return {};
  if (!hostIsX86_64())
    return fmt::format("--cpu {}: descent generates x86-64 code only; use --cpu native", cpu);
  if (llvm::X86::parseArchX86(cpu, /*Only64Bit=*/true) == llvm::X86::CK_None) {
    std::string why = llvm::X86::parseArchX86(cpu, /*Only64Bit=*/false) != llvm::X86::CK_None
                          ? "is a 32-bit CPU (descent generates 64-bit code)"
                          : "is not an x86-64 CPU LLVM knows";
    // Reversed so that a tie goes to the newer level ("x86-64-v5" -> v4).
    std::vector<std::string> names = knownCpuNames();
    std::reverse(names.begin(), names.end());
    std::string hint = didYouMean(cpu, names);
    return fmt::format("--cpu {} {}{}; use {} or a CPU name such as haswell or znver3 "
                       "(--cpu help lists them all)",
                       cpu, why, hint.empty() ? "" : " (" + hint + ")", kLevels);
  }
  if (!will_run) return {};
  // Code for this CPU runs here: every instruction set it may use must be
  // one this machine has, or the first such instruction is SIGILL.
  llvm::SmallVector<llvm::StringRef, 64> features;
  llvm::X86::getFeaturesForCPU(cpu, features);
  llvm::StringMap<bool> host = llvm::sys::getHostCPUFeatures();
  std::vector<std::string> missing;
  for (llvm::StringRef f : features) {
    auto it = host.find(f);
    if (it != host.end() && !it->second) missing.push_back(f.str());
  }
  if (missing.empty()) return {};
  std::string list;
  for (size_t i = 0; i < missing.size() && i < 4; ++i)
    list += (i ? ", " : "") + missing[i];
  if (missing.size() > 4) list += fmt::format(" and {} more", missing.size() - 4);
  return fmt::format(
      "--cpu {}: code for it uses {}, which this machine ({}) lacks; use --cpu native, "
      "or view that code with `descent ir --stage asm --cpu {}`",
      cpu, list, hostCpuName(), cpu);
}

void installOutOfMemoryHandler() {
  llvm::install_bad_alloc_error_handler(onBadAlloc);
  // A failed `new` (in LLVM or in descent, on any thread) goes to the same
  // handler, as in LLVM's own tools: nothing can then escape a worker thread
  // as std::bad_alloc and terminate the process.
  llvm::install_out_of_memory_new_handler();
}

} // namespace descent
