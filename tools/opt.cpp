// `descent opt` (see opt.h). The passes are the pipeline's own functions; a
// failed verification after a pass is a compiler bug (std::logic_error),
// while bad input text is the user's (DataError, one line naming the file).
#include "tools/opt.h"

#include "compiler/ir/parser.h"
#include "compiler/ir/printer.h"
#include "compiler/ir/verifier.h"
#include "compiler/passes/allreduce.h"
#include "compiler/passes/cse.h"
#include "compiler/passes/dce.h"
#include "compiler/passes/fuse.h"
#include "compiler/passes/kernel_printer.h"
#include "compiler/passes/kernel_verifier.h"
#include "compiler/passes/plan_buffers.h"
#include "compiler/passes/simplify.h"
#include "compiler/passes/weight_panels.h"
#include "runtime/atomic_file.h"
#include "runtime/errors.h"
#include "tools/commands.h"

#include <cctype>
#include <fmt/format.h>
#include <iostream>
#include <iterator>
#include <optional>
#include <stdexcept>

namespace descent {

namespace {

bool isKernelPass(const std::string& p) {
  return p == "fuse" || p == "plan-buffers" || p == "weight-panels";
}

/// Impossible orders are command-line misuse, reported before any work.
void checkOrder(const std::vector<std::string>& passes) {
  bool fused = false;
  for (const std::string& p : passes) {
    if (p == "fuse" && fused)
      throw UsageError("--pass fuse given twice: the graph is fused already");
    if ((p == "plan-buffers" || p == "weight-panels") && !fused)
      throw UsageError(fmt::format("--pass {} needs a kernel graph: put --pass fuse before it", p));
    if (!isKernelPass(p) && fused)
      throw UsageError(fmt::format(
          "--pass {} works on the graph IR and cannot follow --pass fuse (put it before fuse)", p));
    fused |= p == "fuse";
  }
}

std::string readInput(const std::string& file) {
  if (file != "-") return readFile(file);
  std::string text{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
  if (std::cin.bad()) throw DataError("<stdin>: cannot read standard input");
  return text;
}

/// The graph verifier's report as one line: the first problem and a count.
std::string firstProblem(const std::string& report) {
  size_t nl = report.find('\n');
  std::string first = report.substr(0, nl);
  size_t more = 0;
  for (size_t i = nl; i != std::string::npos && i + 1 < report.size(); i = report.find('\n', i + 1))
    ++more;
  return more ? fmt::format("{} (and {} more)", first, more) : first;
}

void verified(const Graph& g, const std::string& pass) {
  std::string err = verifyGraph(g);
  if (!err.empty()) throw std::logic_error("invalid graph after " + pass + ":\n" + err);
}

/// A kernel graph the verifier rejects. The graph it came from was valid IR,
/// so this is a graph the fuser does not support but failed to refuse: it is
/// reported like a refusal, on one line, rather than as an internal error.
void kernelsVerified(const KernelGraph& kg, KernelStage stage, const std::string& name,
                     const std::string& pass) {
  std::vector<std::string> problems = verifyKernelGraph(kg, stage);
  if (problems.empty()) return;
  throw DataError(
      fmt::format("{}: invalid kernel graph after {}: {}{}", name, pass, problems[0],
                  problems.size() > 1 ? fmt::format(" (and {} more)", problems.size() - 1) : ""));
}

} // namespace

const std::vector<std::string>& optPassNames() {
  static const std::vector<std::string> names = {
      "simplify", "cse", "dce", "allreduce", "fuse", "plan-buffers", "weight-panels"};
  return names;
}

int runOpt(const std::string& file, const std::vector<std::string>& passes) {
  checkOrder(passes);
  const std::string name = file == "-" ? "<stdin>" : file;
  std::string text = readInput(file);
  std::string error;
  std::unique_ptr<Graph> g = parseGraph(text, error);
  if (!g) {
    // Syntax errors come as "line:col: message"; the verifier's as sentences.
    bool positioned = !error.empty() && std::isdigit(static_cast<unsigned char>(error[0]));
    throw DataError(
        fmt::format("{}:{}{}", name, positioned ? "" : " invalid graph: ", firstProblem(error)));
  }
  // What each pass did, as comments the IR parser skips (the output stays valid input).
  std::string log;
  std::optional<KernelGraph> kg;
  for (const std::string& p : passes) {
    if (p == "simplify") {
      log += fmt::format("// simplify: {} rewrite(s)\n", simplify(*g));
      verified(*g, p);
    } else if (p == "cse") {
      log += fmt::format("// cse: {} op(s) removed\n", eliminateCommonSubexpressions(*g));
      verified(*g, p);
    } else if (p == "dce") {
      log += fmt::format("// dce: {} op(s) removed\n", eliminateDeadCode(*g));
      verified(*g, p);
    } else if (p == "allreduce") {
      log += fmt::format("// allreduce: {} op(s) added\n", insertAllReduce(*g));
      verified(*g, p);
    } else if (p == "fuse") {
      kg = fuseGraph(*g, error);
      if (!error.empty()) throw DataError(fmt::format("{}: cannot fuse: {}", name, error));
      kernelsVerified(*kg, KernelStage::Fused, name, p);
      log += fmt::format("// fuse: {} kernel(s)\n", kg->kernels.size());
    } else if (p == "plan-buffers") {
      planBuffers(*kg);
      kernelsVerified(*kg, KernelStage::Planned, name, p);
      log += fmt::format("// plan-buffers: {} scratch bytes\n", kg->scratch_bytes);
    } else if (p == "weight-panels") {
      chooseWeightPanels(*kg);
      int n = 0;
      for (const Buffer& b : kg->buffers)
        n += b.panels;
      log += fmt::format("// weight-panels: {} weight(s) in 64-column panels\n", n);
    }
  }
  std::cout << log << (kg ? printKernelGraph(*kg) : printGraph(*g));
  return 0;
}

} // namespace descent
