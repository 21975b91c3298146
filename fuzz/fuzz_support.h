// Shared pieces of the fuzz targets: the list of targets (used by the libFuzzer
// mains and by the replay driver that runs the corpus and regressions under
// ctest), a per-process scratch directory for the readers that take a path,
// and the oracle for bad input (a DataError naming the file, nothing else).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace descent::fuzz {

/// A target takes arbitrary bytes and aborts (or lets an exception escape) on
/// any bug; returning means the input was handled correctly.
using Target = void (*)(const uint8_t* data, size_t size);

void modelParser(const uint8_t* data, size_t size); // target_parser.cpp
void safetensors(const uint8_t* data, size_t size); // target_safetensors.cpp
void checkpoint(const uint8_t* data, size_t size);  // target_checkpoint.cpp
void idx(const uint8_t* data, size_t size);         // target_idx.cpp
void csv(const uint8_t* data, size_t size);         // target_csv.cpp
void irParser(const uint8_t* data, size_t size);    // target_ir.cpp

struct NamedTarget {
  const char* name; ///< fuzz_<name> binary, fuzz/corpus/<name>, fuzz/dict/<name>.dict
  Target run;
};
inline constexpr NamedTarget kTargets[] = {
    {"parser", modelParser},
    {"safetensors", safetensors},
    {"checkpoint", checkpoint},
    {"idx", idx},
    {"csv", csv},
    {"ir", irParser},
};

/// Prints "fuzz: <what>" to stderr and aborts: the fuzzer records the input.
[[noreturn]] void fail(std::string_view what);

/// The directory this process writes its inputs to: a fresh directory in
/// /dev/shm (tmpfs, so a file per input costs no disk I/O), or in $TMPDIR or
/// /tmp where there is none. Removed when the process exits normally.
const std::string& scratchDir();

/// Writes `bytes` to scratchDir()/name (replacing it) and returns the path.
std::string writeScratch(const std::string& name, std::string_view bytes);

/// Runs `read()`, which reads the file(s) under scratchDir(). Returns true if
/// it returned, false if it threw descent::DataError whose message names a
/// file in scratchDir() (the contract of every reader). Any other exception
/// propagates (an uncaught exception is a finding).
template <typename F> bool readsOrRejects(F&& read);

/// Checks the message of a DataError (fails unless it names a scratch file).
void checkDataErrorMessage(const std::string& message);

} // namespace descent::fuzz

#include "runtime/errors.h"

template <typename F> bool descent::fuzz::readsOrRejects(F&& read) {
  try {
    read();
    return true;
  } catch (const descent::DataError& e) {
    checkDataErrorMessage(e.what());
    return false;
  }
}
