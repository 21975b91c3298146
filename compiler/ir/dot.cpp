// Graphviz output of the graph IR (see dot.h).
#include "compiler/ir/dot.h"

#include <fmt/format.h>
#include <unordered_map>

namespace descent {

namespace {

const char* categoryColor(OpCategory c) {
  switch (c) {
  case OpCategory::Forward: return "lightblue";
  case OpCategory::Loss: return "gold";
  case OpCategory::Grad: return "salmon";
  case OpCategory::Update: return "palegreen";
  }
  return "white";
}

} // namespace

std::string graphToDot(const Graph& g) {
  std::string s = fmt::format("digraph \"{}\" {{\n  rankdir=TB;\n  node [fontname=\"monospace\"];\n", g.name());
  std::unordered_map<const Value*, std::string> node_of;
  int next = 0;
  auto argNode = [&](const Value* v, const char* shape) {
    std::string id = fmt::format("n{}", next++);
    node_of[v] = id;
    std::string label = v->external_name.empty() ? fmt::format("%{}\\n{}", v->name, v->type.str())
                                                 : fmt::format("%{} \\\"{}\\\"\\n{}", v->name,
                                                               v->external_name, v->type.str());
    s += fmt::format("  {} [shape={}, label=\"{}\"];\n", id, shape, label);
  };
  for (const Value* v : g.inputs()) argNode(v, "invhouse");
  for (const Value* v : g.params()) argNode(v, "box3d");
  for (const Value* v : g.states()) argNode(v, "cylinder");
  for (const auto& op : g.ops()) {
    std::string id = fmt::format("n{}", next++);
    std::string label = op->result ? fmt::format("%{} = {}\\n{}", op->result->name, opName(op->kind),
                                                 op->result->type.str())
                                   : std::string(opName(op->kind));
    if (op->loc.known()) label += fmt::format("\\nline {}", op->loc.line);
    s += fmt::format("  {} [shape=box, style=filled, fillcolor={}, label=\"{}\"];\n", id,
                     categoryColor(opInfo(op->kind).category), label);
    for (const Value* v : op->operands) s += fmt::format("  {} -> {};\n", node_of.at(v), id);
    if (op->result) node_of[op->result] = id;
  }
  for (const auto& [name, v] : g.outputs()) {
    s += fmt::format("  out_{} [shape=house, label=\"{}\"];\n  {} -> out_{};\n", name, name,
                     node_of.at(v), name);
  }
  return s + "}\n";
}

} // namespace descent
