// `descent opt`: runs passes on graph IR text and prints the result, like
// mlir-opt (the graph IR after simplify/cse/dce, the kernel graph's text form
// after fuse/plan-buffers). What the FileCheck tests in tests/passes/ drive.
#pragma once

#include <string>
#include <vector>

namespace descent {

/// The passes `--pass` accepts, in pipeline order.
const std::vector<std::string>& optPassNames();

/// Reads `file` ("-" = standard input), runs `passes` in order, verifying the
/// graph after each graph pass and the kernel graph after fuse and
/// plan-buffers, and prints the result on standard output. Returns 0; throws
/// DataError (exit 1) when the file cannot be read, does not parse or is
/// not a graph the fuser supports (a refusal, or a kernel graph the verifier
/// rejects), UsageError (exit 2) when the passes are in an
/// impossible order.
int runOpt(const std::string& file, const std::vector<std::string>& passes);

} // namespace descent
