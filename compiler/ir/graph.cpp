// Graph data structure and mutation helpers (see graph.h).
#include "compiler/ir/graph.h"

#include <algorithm>
#include <cassert>
#include <fmt/format.h>
#include <unordered_map>

namespace descent {

void Attrs::set(const std::string& name, Attr value) {
  auto it = std::lower_bound(items_.begin(), items_.end(), name,
                             [](const auto& item, const std::string& n) { return item.first < n; });
  if (it != items_.end() && it->first == name) it->second = std::move(value);
  else items_.insert(it, {name, std::move(value)});
}

const Attr* Attrs::find(const std::string& name) const {
  for (const auto& [n, v] : items_)
    if (n == name) return &v;
  return nullptr;
}

bool Attrs::has(const std::string& name) const { return find(name) != nullptr; }

int64_t Attrs::getInt(const std::string& name, int64_t fallback) const {
  const Attr* a = find(name);
  if (!a) return fallback;
  if (auto* i = std::get_if<int64_t>(a)) return *i;
  if (auto* b = std::get_if<bool>(a)) return *b;
  return fallback;
}

double Attrs::getDouble(const std::string& name, double fallback) const {
  const Attr* a = find(name);
  if (!a) return fallback;
  if (auto* d = std::get_if<double>(a)) return *d;
  if (auto* i = std::get_if<int64_t>(a)) return double(*i);
  return fallback;
}

bool Attrs::getBool(const std::string& name, bool fallback) const {
  const Attr* a = find(name);
  if (!a) return fallback;
  if (auto* b = std::get_if<bool>(a)) return *b;
  return fallback;
}

std::string Attrs::getString(const std::string& name, const std::string& fallback) const {
  const Attr* a = find(name);
  if (!a) return fallback;
  if (auto* s = std::get_if<std::string>(a)) return *s;
  return fallback;
}

std::vector<double> Attrs::getDoubles(const std::string& name) const {
  const Attr* a = find(name);
  if (!a) return {};
  if (auto* v = std::get_if<std::vector<double>>(a)) return *v;
  return {};
}

Value* Graph::newValue(std::string name, TensorType type, ValueKind kind) {
  auto v = std::make_unique<Value>();
  v->id = next_id_++;
  v->name = std::move(name);
  v->type = std::move(type);
  v->kind = kind;
  values_.push_back(std::move(v));
  return values_.back().get();
}

const char* inputRoleName(InputRole role) {
  switch (role) {
  case InputRole::None: return "";
  case InputRole::Input: return "input";
  case InputRole::Target: return "target";
  case InputRole::Step: return "step";
  case InputRole::Seed: return "seed";
  }
  return "";
}

std::optional<InputRole> parseInputRole(const std::string& word) {
  for (InputRole r : {InputRole::Input, InputRole::Target, InputRole::Step, InputRole::Seed})
    if (word == inputRoleName(r)) return r;
  return std::nullopt;
}

std::string Graph::uniqueName(const std::string& base) const {
  if (!findValue(base)) return base;
  for (int i = 1;; ++i) {
    std::string n = fmt::format("{}.{}", base, i);
    if (!findValue(n)) return n;
  }
}

Value* Graph::addInput(const std::string& name, TensorType type, InputRole role) {
  Value* v = newValue(uniqueName(name), std::move(type), ValueKind::Input);
  v->role = role;
  inputs_.push_back(v);
  return v;
}

Value* Graph::addParam(const std::string& name, TensorType type, const std::string& external,
                       ParamDesc desc) {
  assert(checkParamDesc(desc, type.shape).empty());
  Value* v = newValue(uniqueName(name), std::move(type), ValueKind::Param);
  v->external_name = external;
  v->desc = std::move(desc);
  params_.push_back(v);
  return v;
}

Value* Graph::addState(const std::string& name, TensorType type, const std::string& external,
                       ParamDesc desc) {
  assert(checkParamDesc(desc, type.shape).empty());
  Value* v = newValue(uniqueName(name), std::move(type), ValueKind::State);
  v->external_name = external;
  v->desc = std::move(desc);
  states_.push_back(v);
  return v;
}

std::string Graph::freshName() {
  // Skip names a parsed graph already uses.
  for (;;) {
    std::string n = std::to_string(next_name_++);
    if (!findValue(n)) return n;
  }
}

Op* Graph::addUnchecked(OpKind kind, std::vector<Value*> operands, Attrs attrs, SourceLoc loc,
                        std::optional<TensorType> type, std::string name) {
  auto op = std::make_unique<Op>();
  op->kind = kind;
  op->operands = std::move(operands);
  op->attrs = std::move(attrs);
  op->loc = loc;
  if (type) {
    op->result = newValue(name.empty() ? freshName() : std::move(name), *type, ValueKind::Result);
    op->result->def = op.get();
  }
  ops_.push_back(std::move(op));
  return ops_.back().get();
}

Value* Graph::add(OpKind kind, std::vector<Value*> operands, Attrs attrs, SourceLoc loc,
                  Value* from, std::string name) {
  Op probe{kind, operands, nullptr, attrs, loc, from};
  TensorType type;
  std::string err = inferType(probe, type);
  assert(err.empty() && "pass built an invalid op");
  if (!err.empty()) throw std::logic_error(fmt::format("internal error: {}: {}", opName(kind), err));
  bool has_result = opInfo(kind).category != OpCategory::Update;
  Op* op = addUnchecked(kind, std::move(operands), std::move(attrs), loc,
                        has_result ? std::optional<TensorType>(type) : std::nullopt, std::move(name));
  op->from = from;
  return op->result;
}

void Graph::setOutput(const std::string& name, Value* v) {
  for (auto& [n, val] : outputs_)
    if (n == name) {
      val = v;
      return;
    }
  outputs_.push_back({name, v});
}

Value* Graph::output(const std::string& name) const {
  for (const auto& [n, v] : outputs_)
    if (n == name) return v;
  return nullptr;
}

Value* Graph::findValue(const std::string& name) const {
  for (const auto& v : values_)
    if (v->name == name) return v.get();
  return nullptr;
}

Value* Graph::input(const std::string& name) const {
  for (Value* v : inputs_)
    if (v->name == name) return v;
  return nullptr;
}

Value* Graph::inputByRole(InputRole role) const {
  for (Value* v : inputs_)
    if (v->role == role) return v;
  return nullptr;
}

Value* Graph::paramByExternalName(const std::string& external) const {
  for (Value* v : params_)
    if (v->external_name == external) return v;
  return nullptr;
}

void Graph::replaceAllUses(Value* from, Value* to) {
  for (auto& op : ops_)
    for (Value*& v : op->operands)
      if (v == from) v = to;
  for (auto& [n, v] : outputs_)
    if (v == from) v = to;
}

std::unique_ptr<Graph> cloneGraph(const Graph& g) {
  auto out = std::make_unique<Graph>(g.name());
  out->setFile(g.file());
  std::unordered_map<const Value*, Value*> map;
  auto copyValue = [&](Value* nv, const Value* v) {
    nv->id = v->id;
    map[v] = nv;
  };
  for (Value* v : g.inputs()) copyValue(out->addInput(v->name, v->type, v->role), v);
  for (Value* v : g.params())
    copyValue(out->addParam(v->name, v->type, v->external_name, v->desc), v);
  for (Value* v : g.states())
    copyValue(out->addState(v->name, v->type, v->external_name, v->desc), v);
  int max_id = 0;
  for (const auto& op : g.ops()) {
    std::vector<Value*> operands;
    for (Value* v : op->operands) operands.push_back(map.at(v));
    std::optional<TensorType> type;
    if (op->result) type = op->result->type;
    Op* nop = out->addUnchecked(op->kind, std::move(operands), op->attrs, op->loc, type,
                                op->result ? op->result->name : std::string());
    nop->from = op->from ? map.at(op->from) : nullptr;
    if (op->result) copyValue(nop->result, op->result);
  }
  for (const auto& [n, v] : g.outputs()) out->setOutput(n, map.at(v));
  for (auto& [k, v] : map) max_id = std::max(max_id, v->id);
  out->reserveIds(max_id + 1);
  return out;
}

} // namespace descent
