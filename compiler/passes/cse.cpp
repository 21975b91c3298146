// CSE (see cse.h): one forward walk with a table keyed by the op's printed
// kind, operands and attributes (operands already rewritten to their
// representatives, so chains of duplicates collapse in one walk).
#include "compiler/passes/cse.h"

#include "compiler/ir/printer.h"

#include <string>
#include <unordered_map>
#include <unordered_set>

namespace descent {

namespace {

std::string key(const Op& op) {
  std::string k = opName(op.kind);
  for (const Value* v : op.operands) k += " " + std::to_string(v->id);
  for (const auto& [n, a] : op.attrs.items()) k += " " + n + "=" + printAttr(a);
  return k;
}

} // namespace

int eliminateCommonSubexpressions(Graph& g) {
  std::unordered_map<std::string, Value*> seen;
  std::unordered_set<const Op*> dead;
  for (const auto& op : g.ops()) {
    if (!op->result) continue; // updates have effects
    auto [it, inserted] = seen.try_emplace(key(*op), op->result);
    if (inserted) continue;
    g.replaceAllUses(op->result, it->second);
    dead.insert(op.get());
  }
  g.removeOpsIf([&](const Op& op) { return dead.count(&op) > 0; });
  return int(dead.size());
}

} // namespace descent
