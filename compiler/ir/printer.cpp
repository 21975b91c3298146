// Printing of the graph IR text form (see printer.h and docs/ir.md).
#include "compiler/ir/printer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace descent {

namespace {

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

/// A param's description (param_desc.h) in braces, leaving out what is
/// implied: the layout when it is PyTorch's, the fan-in when it is 0.
std::string printDesc(const ParamDesc& d) {
  std::vector<std::string> parts;
  if (!d.isIdentity()) {
    parts.push_back(fmt::format("torch_shape=[{}]", fmt::join(d.torch_shape, ",")));
    parts.push_back(fmt::format("perm=[{}]", fmt::join(d.perm, ",")));
  }
  if (d.fan_in) parts.push_back(fmt::format("fan_in={}", d.fan_in));
  if (d.init.kind != InitDist::Kind::Default)
    parts.push_back(fmt::format("init=\"{}\"", initDistText(d.init)));
  if (d.buffer != BufferKind::None)
    parts.push_back(d.buffer == BufferKind::Float ? "buffer=\"float\"" : "buffer=\"count\"");
  return parts.empty() ? "" : fmt::format(" {{{}}}", fmt::join(parts, ", "));
}

std::string printArg(const Value* v, bool with_external) {
  std::string s = fmt::format("%{}: {}", v->name, v->type.str());
  if (with_external) s += " " + quote(v->external_name) + printDesc(v->desc);
  if (v->role != InputRole::None) s += std::string(" ") + inputRoleName(v->role);
  return s;
}

} // namespace

std::string printAttr(const Attr& a) {
  if (auto* i = std::get_if<int64_t>(&a)) return std::to_string(*i);
  if (auto* b = std::get_if<bool>(&a)) return *b ? "true" : "false";
  if (auto* s = std::get_if<std::string>(&a)) return quote(*s);
  if (auto* l = std::get_if<std::vector<double>>(&a)) {
    std::string s = "[";
    for (size_t i = 0; i < l->size(); ++i)
      s += (i ? ", " : "") + printAttr((*l)[i]);
    return s + "]";
  }
  double d = std::get<double>(a);
  std::string s = fmt::format("{}", d);
  // Keep doubles recognisable as doubles when read back.
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

std::string printOp(const Graph& g, const Op& op) {
  std::string s;
  if (op.result) s += fmt::format("%{} = ", op.result->name);
  s += opName(op.kind);
  for (size_t i = 0; i < op.operands.size(); ++i)
    s += fmt::format("{}%{}", i ? ", " : " ", op.operands[i]->name);
  if (!op.attrs.items().empty()) {
    s += " {";
    bool first = true;
    for (const auto& [n, v] : op.attrs.items()) {
      s += fmt::format("{}{}={}", first ? "" : ", ", n, printAttr(v));
      first = false;
    }
    s += "}";
  }
  if (op.result) s += " : " + op.result->type.str();
  if (op.loc.known()) s += fmt::format(" loc({}:{}:{})", quote(g.file()), op.loc.line, op.loc.col);
  if (op.from) s += fmt::format(" from %{}", op.from->name);
  return s;
}

std::string printGraph(const Graph& g) {
  std::string s = fmt::format("graph @{}(", g.name());
  for (size_t i = 0; i < g.inputs().size(); ++i)
    s += (i ? ", " : "") + printArg(g.inputs()[i], false);
  s += ")";
  auto list = [&](const char* kw, const std::vector<Value*>& vs) {
    if (vs.empty()) return;
    s += fmt::format("\n    {}(", kw);
    for (size_t i = 0; i < vs.size(); ++i) s += (i ? ",\n           " : "") + printArg(vs[i], true);
    s += ")";
  };
  list("params", g.params());
  list("state", g.states());
  s += " {\n";
  for (const auto& op : g.ops()) s += "  " + printOp(g, *op) + "\n";
  if (!g.outputs().empty()) {
    s += "  return";
    for (size_t i = 0; i < g.outputs().size(); ++i)
      s += fmt::format("{} {}=%{}", i ? "," : "", g.outputs()[i].first, g.outputs()[i].second->name);
    s += "\n";
  }
  s += "}\n";
  return s;
}

} // namespace descent
