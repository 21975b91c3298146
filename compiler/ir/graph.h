// The graph IR: SSA values with static types, ops in program order, graph
// inputs (the batch), parameters (PyTorch state_dict names) and optimizer
// state. Ops are described by the table in ops.def; this file holds the data
// structure and the mutation helpers passes use.
#pragma once

#include "compiler/ir/param_desc.h"
#include "compiler/ir/types.h"
#include "compiler/support/source_loc.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace descent {

enum class OpKind {
#define OP(Enum, ...) Enum,
#include "compiler/ir/ops.def"
#undef OP
};

enum class OpCategory { Forward, Loss, Grad, Update };

/// An attribute value: integer, real, boolean, string or a list of reals
/// (a loss's per-class weights).
using Attr = std::variant<int64_t, double, bool, std::string, std::vector<double>>;

/// Attributes of one op, kept sorted by name so that printing is deterministic.
class Attrs {
public:
  void set(const std::string& name, Attr value);
  bool has(const std::string& name) const;
  const Attr* find(const std::string& name) const;
  /// Typed getters: `fallback` when absent; an int attribute reads as a double too.
  int64_t getInt(const std::string& name, int64_t fallback = 0) const;
  double getDouble(const std::string& name, double fallback = 0) const;
  bool getBool(const std::string& name, bool fallback = false) const;
  std::string getString(const std::string& name, const std::string& fallback = {}) const;
  /// A list attribute; empty when absent.
  std::vector<double> getDoubles(const std::string& name) const;
  const std::vector<std::pair<std::string, Attr>>& items() const { return items_; }
  bool operator==(const Attrs&) const = default;

private:
  std::vector<std::pair<std::string, Attr>> items_;
};

struct Op;

enum class ValueKind {
  Input, ///< a graph argument: the batch, labels, step counter, seed
  Param, ///< a trainable parameter, written only by update ops
  State, ///< optimizer state (momentum buffer, Adam moments), written only by update ops
  Result ///< the result of an op
};

/// What a graph input is for. Later stages find inputs by role, never by name:
/// the names are the user's (`input img: f32[784]` gives %img).
enum class InputRole {
  None,   ///< an input of a hand-written graph with no declared role
  Input,  ///< the model's input batch
  Target, ///< the labels or regression targets
  Step,   ///< the 1-based optimizer step counter (i32[])
  Seed    ///< the dropout seed (i32[])
};

/// The role's keyword in the IR text ("input", "target", "step", "seed"); "" for None.
const char* inputRoleName(InputRole role);
/// The role a keyword names, or nullopt.
std::optional<InputRole> parseInputRole(const std::string& word);

/// An SSA value. Params and state live across steps; results live within one.
struct Value {
  int id = 0;          ///< unique within the graph, stable under passes
  std::string name;    ///< printed as %name
  TensorType type;
  ValueKind kind = ValueKind::Result;
  Op* def = nullptr;   ///< defining op for results
  /// Params: the PyTorch state_dict name ("0.weight"). State: the param's name
  /// plus the state's name ("0.weight.momentum_buffer").
  std::string external_name;
  /// Params and state: PyTorch's shape, the layout permutation, the fan-in.
  ParamDesc desc;
  /// Inputs: what the input is for.
  InputRole role = InputRole::None;
};

/// One operation. Update ops have no result.
struct Op {
  OpKind kind;
  std::vector<Value*> operands;
  Value* result = nullptr;
  Attrs attrs;
  SourceLoc loc;
  /// For ops made by autodiff or the optimizer pass: the forward value whose
  /// gradient (or update) this op computes, printed as `from %v`.
  Value* from = nullptr;
};

/// Static description of an op kind (from ops.def).
struct OpInfo {
  OpKind kind;
  const char* name;
  int min_operands, max_operands;
  OpCategory category;
};

const OpInfo& opInfo(OpKind kind);
const char* opName(OpKind kind);
/// Looks an op up by its text name.
const OpInfo* findOp(const std::string& name);

/// Computes the result type of `op` from its operands and attributes (the shape
/// rule of its ops.def entry). Returns an error message, or "" when the
/// operands are valid; `out` is untouched for update ops.
std::string inferType(const Op& op, TensorType& out);

/// A whole graph: forward, train step or eval step.
class Graph {
public:
  explicit Graph(std::string name = "graph") : name_(std::move(name)) {}
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  const std::string& name() const { return name_; }
  void setName(std::string n) { name_ = std::move(n); }
  /// The model file the locations refer to (printed in loc(...)).
  const std::string& file() const { return file_; }
  void setFile(std::string f) { file_ = std::move(f); }

  /// Adds a graph argument. Inputs, params and state named like an existing
  /// value get a fresh suffix (uniqueName), so that internal names such as
  /// %step or %w0 never collide with the user's input and target names.
  Value* addInput(const std::string& name, TensorType type, InputRole role = InputRole::None);
  /// Params and state carry their description (param_desc.h); its IR shape
  /// must be `type`'s (asserted: the parser checks text input first).
  Value* addParam(const std::string& name, TensorType type, const std::string& external,
                  ParamDesc desc);
  Value* addState(const std::string& name, TensorType type, const std::string& external,
                  ParamDesc desc);

  /// Appends an op; its result type is inferred (asserts the op is valid:
  /// passes build only valid ops). Returns the result (nullptr for updates).
  Value* add(OpKind kind, std::vector<Value*> operands, Attrs attrs = {}, SourceLoc loc = {},
             Value* from = nullptr, std::string name = {});
  /// Appends an op whose result type is given (the IR parser checks it after).
  Op* addUnchecked(OpKind kind, std::vector<Value*> operands, Attrs attrs, SourceLoc loc,
                   std::optional<TensorType> type, std::string name);

  const std::vector<Value*>& inputs() const { return inputs_; }
  const std::vector<Value*>& params() const { return params_; }
  const std::vector<Value*>& states() const { return states_; }
  const std::vector<std::unique_ptr<Op>>& ops() const { return ops_; }
  std::vector<std::unique_ptr<Op>>& mutableOps() { return ops_; }

  /// Named results: "loss", "output", "correct".
  void setOutput(const std::string& name, Value* v);
  Value* output(const std::string& name) const;
  const std::vector<std::pair<std::string, Value*>>& outputs() const { return outputs_; }

  Value* findValue(const std::string& name) const;
  Value* input(const std::string& name) const;
  /// The input with `role`, or nullptr.
  Value* inputByRole(InputRole role) const;
  Value* paramByExternalName(const std::string& external) const;

  /// Replaces every use of `from` (operands and outputs) with `to`.
  void replaceAllUses(Value* from, Value* to);
  /// Removes ops for which `dead(op)` is true. Their results must be unused.
  template <typename F> void removeOpsIf(F dead) {
    std::erase_if(ops_, [&](const std::unique_ptr<Op>& op) { return dead(*op); });
  }
  /// Gives the next free value name ("%0", "%1", ...).
  std::string freshName();
  /// `base` if no value has that name, else the first free "base.1", "base.2", ...
  /// (the user's identifiers never contain '.').
  std::string uniqueName(const std::string& base) const;
  /// Makes new values get ids >= `min_next` (used by cloning).
  void reserveIds(int min_next) { next_id_ = std::max(next_id_, min_next); }

private:
  Value* newValue(std::string name, TensorType type, ValueKind kind);

  std::string name_;
  std::string file_;
  std::vector<std::unique_ptr<Value>> values_;
  std::vector<Value*> inputs_, params_, states_;
  std::vector<std::unique_ptr<Op>> ops_;
  std::vector<std::pair<std::string, Value*>> outputs_;
  int next_id_ = 0;
  int next_name_ = 0;
};

/// Deep copy of a graph (values keep their ids and names).
std::unique_ptr<Graph> cloneGraph(const Graph& g);

} // namespace descent
