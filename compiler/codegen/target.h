// The target machine as the user names it (--cpu) and the process-wide LLVM
// hooks the CLI installs: which CPU names are accepted, whether this machine
// can run code made for one, and out-of-memory inside LLVM as a plain error.
// Kept apart from jit.cpp so callers need no LLVM headers.
#pragma once

#include <string>
#include <vector>

namespace descent {

/// True for the names that mean "this machine": "", "native", "host".
bool isHostCpu(const std::string& cpu);

/// Checks a --cpu name before any LLVM target is created (an unknown name
/// makes LLVM print warnings and abort). Accepted: the host names, and every
/// 64-bit x86 CPU LLVM knows; when `will_run` is set the code is executed
/// here, so the CPU must also use no instruction set this machine lacks.
/// Returns "" when usable, else a one-line reason that starts with
/// "--cpu NAME" and says what to use instead.
std::string checkCpuName(const std::string& cpu, bool will_run);

/// The 64-bit x86 CPU names LLVM knows, sorted, with "native" first.
std::vector<std::string> knownCpuNames();

/// The LLVM name of this machine's CPU (what "native" stands for).
std::string hostCpuName();

/// Makes allocation failure inside LLVM an ordinary error instead of an
/// abort ("LLVM ERROR: out of memory"): failed `new` anywhere in the process
/// and failed mallocs in LLVM print "error: out of memory ..." on one line
/// and exit with status 1. Call once at start-up, before any thread starts.
void installOutOfMemoryHandler();

} // namespace descent
