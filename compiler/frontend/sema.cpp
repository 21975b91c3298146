// Semantic analysis of model files (see sema.h). Names, parameter names,
// defaults and rules follow PyTorch (torch.nn, torch.optim) so that a model
// file means what the same names mean in a PyTorch notebook.
#include "compiler/frontend/sema.h"
#include "compiler/frontend/summary.h"

#include "compiler/support/window2d.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cctype>
#include <cmath>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <limits>
#include <map>
#include <type_traits>

namespace descent {

namespace {

constexpr int64_t kMaxFeatures = int64_t(1) << 24;
// Upper bounds keep every size product (activations, FLOPs) far from int64 overflow.
constexpr int64_t kMaxBatch = int64_t(1) << 20;
constexpr int64_t kMaxEpochs = 1000000;
// With these two, parameter, FLOP and activation counts (batch * width *
// layers * 4 bytes) stay below 2^62 whatever the file says.
constexpr size_t kMaxLayers = 10000;
constexpr int64_t kMaxParameters = int64_t(1) << 36;

std::string lower(const std::string& s) {
  std::string out = s;
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Optimal-string-alignment distance (Levenshtein plus adjacent swaps), so that
// "bais" is one edit away from "bias".
size_t editDistance(const std::string& a, const std::string& b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (size_t i = 1; i <= n; ++i)
    for (size_t j = 1; j <= m; ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[n][m];
}

// User text quoted in a message: non-printable bytes escaped so that a
// message never carries control characters to the terminal.
std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s.substr(0, 64)) {
    if (c < 0x20 || c >= 0x7f) out += fmt::format("\\x{:02X}", c);
    else out += char(c);
  }
  if (s.size() > 64) out += "...";
  return out;
}

// (kLayerNames follows the activation table, which it includes.)
const std::vector<std::string> kLossNames = {"NLLLoss",      "CrossEntropyLoss",  "MSELoss",
                                             "BCELoss",      "BCEWithLogitsLoss", "L1Loss",
                                             "SmoothL1Loss", "HuberLoss",         "KLDivLoss"};
const std::vector<std::string> kOptimizerNames = {"SGD",     "Adam",    "AdamW", "RMSprop",
                                                  "Adagrad", "Adadelta"}; // OptimizerKind order
const std::vector<std::string> kTransformNames = {"Normalize"};
const std::vector<std::string> kSchedulerNames = {
    "StepLR",   "MultiStepLR", "ExponentialLR",    "CosineAnnealingLR",
    "LinearLR", "OneCycleLR",  "ReduceLROnPlateau"}; // SchedulerKind order
const std::vector<std::string> kStatementKeys = {
    "model",  "loss", "optimizer",       "scheduler",     "transform",     "batch",
    "epochs", "seed", "clip_grad_value", "clip_grad_norm"};

// The type an argument must have.
enum class PType {
  Int,
  Float, // an int is accepted too, as in Python
  Bool,
  String,
  FloatPair, // betas=(0.9, 0.999)
  Channel,   // Normalize's mean/std: a number, or a tuple of one or one per channel
  Init,      // a torch.nn.init function: kaiming_uniform(nonlinearity="relu"), zeros
  IntList,   // milestones=[30, 80]
  FloatList, // weight=[1.0, 2.0] (a list or a tuple of numbers)
  IntPair,   // kernel_size=5 or (5, 3): one integer for both dimensions, or (height, width)
  Padding,   // Conv2d's padding: an IntPair, or the string 'same' or 'valid'
};

struct Param {
  const char* name;
  PType type;
  bool required = false;
  bool positional = true; // false: keyword-only
};

// --- activation layers: one table row each -----------------------------------------------------
//
// An activation layer is defined by its row alone: PyTorch's name, the IR op
// it becomes (compiler/ir/ops.def), and its arguments in PyTorch's order with
// PyTorch's defaults. Number and string arguments become the op's attributes
// under the same name; `inplace` is accepted and changes nothing (descent
// never aliases activations). `check` rejects values PyTorch rejects (or that
// would divide by zero), returning the message.

struct ActivationArg {
  Param param;
  double number = 0;            ///< default of a Float argument
  const char* text = "";        ///< default of a String argument
  std::string (*check)(double number, const std::string& text) = nullptr;
};

struct ActivationLayer {
  const char* name;
  const char* op;
  std::vector<ActivationArg> args;
};

const std::vector<ActivationLayer> kActivations = {
    // torch.nn.GELU(approximate='none'): F.gelu raises unless 'none' or 'tanh'.
    {"GELU", "gelu",
     {{{"approximate", PType::String}, 0, "none", [](double, const std::string& t) -> std::string {
         if (t == "none" || t == "tanh") return {};
         return fmt::format("approximate argument must be either none or tanh, got '{}'", t);
       }}}},
    // torch.nn.SiLU(inplace=False)
    {"SiLU", "silu", {{{"inplace", PType::Bool}}}},
    // torch.nn.ELU(alpha=1.0, inplace=False)
    {"ELU", "elu", {{{"alpha", PType::Float}, 1.0}, {{"inplace", PType::Bool}}}},
    // torch.nn.Softplus(beta=1, threshold=20)
    {"Softplus", "softplus",
     {{{"beta", PType::Float}, 1.0, "", [](double b, const std::string&) -> std::string {
         if (b != 0) return {};
         return "beta must not be 0: softplus divides by it";
       }},
      {{"threshold", PType::Float}, 20.0}}},
};

constexpr size_t kFixedLayers = 15; // LayerKind::Linear .. LayerKind::BatchNorm2d
const std::vector<std::string> kLayerNames = [] {
  std::vector<std::string> v = {
      "Linear",    "ReLU",       "Sigmoid",           "Tanh",        "LeakyReLU",
      "Softmax",   "LogSoftmax", "Dropout",           "Flatten",     "Conv2d",
      "MaxPool2d", "AvgPool2d",  "AdaptiveAvgPool2d", "BatchNorm1d", "BatchNorm2d"};
  for (const ActivationLayer& a : kActivations)
    v.push_back(a.name);
  return v;
}();

const char* typeDescription(PType t) {
  switch (t) {
  case PType::Int: return "an integer";
  case PType::Float: return "a number";
  case PType::Bool: return "True or False";
  case PType::String: return "a string";
  case PType::FloatPair: return "a pair of numbers like (0.9, 0.999)";
  case PType::FloatList:
    return "a list of numbers like [1.0, 2.0]";
  case PType::Channel:
    return "a number or a tuple like (0.5,) or (0.49, 0.48, 0.45)";
  case PType::Init:
    return "a torch.nn.init function like kaiming_uniform(nonlinearity=\"relu\")";
  case PType::IntList: return "a list of integers like [30, 80]";
  case PType::IntPair:
    return "an integer or a pair of integers like (3, 3)";
  case PType::Padding:
    return "an integer, a pair of integers like (1, 1), or 'same' or 'valid'";
  }
  return "";
}

std::string valueDescription(const ast::Expr& e) {
  switch (e.kind) {
  case ast::ExprKind::Int: return fmt::format("an integer ({})", e.text);
  case ast::ExprKind::Float: return fmt::format("a float ({})", e.text);
  case ast::ExprKind::Bool: return fmt::format("a bool ({})", e.text);
  case ast::ExprKind::String: return fmt::format("a string ('{}')", printable(e.text));
  case ast::ExprKind::Name: return fmt::format("a name ({})", e.text);
  case ast::ExprKind::Call: return fmt::format("a call ({}(...))", e.text);
  case ast::ExprKind::Tuple: return fmt::format("a tuple of {} elements", e.elements.size());
  case ast::ExprKind::Error: return "an invalid value";
  }
  return "";
}

// The arguments of one call after binding: one slot per parameter.
class BoundArgs {
public:
  BoundArgs(const ast::Expr& call, const std::vector<Param>& params, Diagnostics& diags)
      : call_(call), params_(params), diags_(diags), slots_(params.size(), nullptr) {}

  /// Binds positional and keyword arguments like Python; false if it reported errors.
  bool bind() {
    size_t maxPositional = 0;
    while (maxPositional < params_.size() && params_[maxPositional].positional) ++maxPositional;
    size_t positional = 0;
    bool sawKeyword = false;
    for (const ast::Arg& arg : call_.args) {
      if (arg.name.empty()) {
        if (sawKeyword) {
          error(arg.value.loc, "positional argument follows keyword argument");
          continue;
        }
        if (positional >= maxPositional) {
          if (positional == maxPositional) {
            size_t given = 0;
            for (const ast::Arg& a : call_.args) given += a.name.empty();
            if (maxPositional == 0)
              error(arg.value.loc,
                    fmt::format("{}() takes no positional arguments but {} {} given", call_.text,
                                given, given == 1 ? "was" : "were"),
                    params_.empty() ? std::string()
                                    : fmt::format("pass it by name, like {}={}", params_[0].name,
                                                  arg.value.kind == ast::ExprKind::Error
                                                      ? "..."
                                                      : exprText(arg.value)));
            else
              error(arg.value.loc,
                    fmt::format("{}() takes at most {} positional argument{} but {} were given",
                                call_.text, maxPositional, maxPositional == 1 ? "" : "s", given));
          }
          ++positional;
          continue;
        }
        slots_[positional] = &arg.value;
        ++positional;
        continue;
      }
      sawKeyword = true;
      auto it = std::find_if(params_.begin(), params_.end(),
                             [&](const Param& p) { return arg.name == p.name; });
      if (it == params_.end()) {
        std::vector<std::string> names;
        for (const Param& p : params_) names.push_back(p.name);
        error(arg.name_loc,
              fmt::format("{}() got an unexpected keyword argument '{}'", call_.text, arg.name),
              params_.empty() ? fmt::format("{}() takes no arguments", call_.text)
                              : didYouMean(arg.name, names));
        continue;
      }
      size_t i = size_t(it - params_.begin());
      if (slots_[i]) {
        error(arg.name_loc,
              fmt::format("{}() got multiple values for argument '{}'", call_.text, arg.name));
        continue;
      }
      slots_[i] = &arg.value;
    }
    // After a binding error the missing argument is usually the misplaced one.
    for (size_t i = 0; i < params_.size() && ok_; ++i)
      if (params_[i].required && !slots_[i])
        error(call_.loc, fmt::format("{}() missing required argument '{}'", call_.text,
                                     params_[i].name));
    return ok_;
  }

  /// The argument bound to `name`, or nullptr (the default applies).
  const ast::Expr* get(const char* name) const {
    for (size_t i = 0; i < params_.size(); ++i)
      if (std::string_view(params_[i].name) == name) return slots_[i];
    assert(false && "unknown parameter name");
    return nullptr;
  }

  // Typed accessors: return false (after reporting) when the value has the
  // wrong type; leave `out` untouched when the argument was not given.
  bool getInt(const char* name, int64_t& out) {
    const ast::Expr* e = get(name);
    if (!e || e->kind == ast::ExprKind::Error) return e == nullptr;
    if (e->kind != ast::ExprKind::Int) return typeError(name, *e, PType::Int);
    out = e->int_value;
    return true;
  }
  bool getFloat(const char* name, double& out) {
    const ast::Expr* e = get(name);
    if (!e || e->kind == ast::ExprKind::Error) return e == nullptr;
    if (e->kind != ast::ExprKind::Int && e->kind != ast::ExprKind::Float)
      return typeError(name, *e, PType::Float);
    out = e->float_value;
    return true;
  }
  bool getBool(const char* name, bool& out) {
    const ast::Expr* e = get(name);
    if (!e || e->kind == ast::ExprKind::Error) return e == nullptr;
    if (e->kind != ast::ExprKind::Bool) return typeError(name, *e, PType::Bool);
    out = e->bool_value;
    return true;
  }
  bool getString(const char* name, std::string& out) {
    const ast::Expr* e = get(name);
    if (!e || e->kind == ast::ExprKind::Error) return e == nullptr;
    if (e->kind != ast::ExprKind::String) return typeError(name, *e, PType::String);
    out = e->text;
    return true;
  }
  /// Normalize's mean or std: a number, or a tuple or list of one number or
  /// of one per channel (`channels` of the input; 1 unless it is [C, H, W]).
  bool getChannels(const char* name, std::vector<double>& out, int64_t channels,
                   const std::string& input) {
    const ast::Expr* e = get(name);
    if (!e || e->kind == ast::ExprKind::Error) return e == nullptr;
    std::vector<const ast::Expr*> vs = {e};
    if (e->kind == ast::ExprKind::Tuple) {
      vs.clear();
      for (const ast::Expr& x : e->elements)
        vs.push_back(&x);
      if (vs.size() != 1 && int64_t(vs.size()) != channels) {
        error(e->loc,
              channels == 1
                  ? fmt::format("{}(): '{}' has {} values but the input {} has one channel",
                                call_.text, name, vs.size(), input)
                  : fmt::format("{}(): '{}' has {} values but the input {} has {} channels",
                                call_.text, name, vs.size(), input, channels),
              channels == 1 ? "give one number, like 0.5 or (0.5,); one value per channel "
                              "needs an input declared f32[C, H, W]"
                            : fmt::format("give one number or {} (one per channel)", channels));
        return false;
      }
    }
    out.clear();
    for (const ast::Expr* v : vs) {
      if (v->kind == ast::ExprKind::Error) return false;
      if (v->kind != ast::ExprKind::Int && v->kind != ast::ExprKind::Float)
        return typeError(name, *v, PType::Channel);
      out.push_back(v->float_value);
    }
    return true;
  }
  /// For an IntList (integers only) or a FloatList (numbers): every element
  /// of a list or a tuple.
  template <class T> bool getList(const char* name, std::vector<T>& out) {
    constexpr bool ints = std::is_integral_v<T>;
    const PType type = ints ? PType::IntList : PType::FloatList;
    const ast::Expr* e = get(name);
    if (!e || e->kind == ast::ExprKind::Error) return e == nullptr;
    if (e->kind != ast::ExprKind::Tuple) return typeError(name, *e, type);
    std::vector<T> values;
    for (const ast::Expr& el : e->elements) {
      if (el.kind == ast::ExprKind::Error) return false;
      if (el.kind != ast::ExprKind::Int && (ints || el.kind != ast::ExprKind::Float))
        return typeError(name, el, type);
      values.push_back(ints ? T(el.int_value) : T(el.float_value));
    }
    out = std::move(values);
    return true;
  }
  /// For an IntPair (or a Padding that is not a string): one integer for
  /// both dimensions, or a tuple (height, width), as torch.nn's _pair.
  bool getIntPair(const char* name, std::array<int64_t, 2>& out, PType type = PType::IntPair) {
    const ast::Expr* e = get(name);
    if (!e || e->kind == ast::ExprKind::Error) return e == nullptr;
    if (e->kind == ast::ExprKind::Int) {
      out = {e->int_value, e->int_value};
      return true;
    }
    if (e->kind != ast::ExprKind::Tuple || e->elements.size() != 2)
      return typeError(name, *e, type);
    for (const ast::Expr& el : e->elements) {
      if (el.kind == ast::ExprKind::Error) return false;
      if (el.kind != ast::ExprKind::Int) return typeError(name, el, type);
    }
    out = {e->elements[0].int_value, e->elements[1].int_value};
    return true;
  }
  /// For a FloatPair: both elements, with their expressions (for locations).
  bool getPair(const char* name, double& a, double& b) {
    const ast::Expr* e = get(name);
    if (!e || e->kind == ast::ExprKind::Error) return e == nullptr;
    if (e->kind != ast::ExprKind::Tuple || e->elements.size() != 2)
      return typeError(name, *e, PType::FloatPair);
    for (const ast::Expr& el : e->elements) {
      if (el.kind == ast::ExprKind::Error) return false;
      if (el.kind != ast::ExprKind::Int && el.kind != ast::ExprKind::Float)
        return typeError(name, el, PType::FloatPair);
    }
    a = e->elements[0].float_value;
    b = e->elements[1].float_value;
    return true;
  }

  /// Reports `name` out of range: "{call}(): {name} must be {cond}, got {text}".
  void rangeError(const char* name, const char* cond, const ast::Expr* at = nullptr,
                  std::string hint = {}) {
    const ast::Expr* e = at ? at : get(name);
    assert(e && "a range error needs a given argument");
    error(e->loc, fmt::format("{}(): {} must be {}, got {}", call_.text, name, cond, exprText(*e)),
          std::move(hint));
  }

  bool ok() const { return ok_; }
  void error(SourceLoc loc, std::string msg, std::string hint = {}) {
    ok_ = false;
    diags_.error(loc, std::move(msg), std::move(hint));
  }

  static std::string exprText(const ast::Expr& e) {
    if (e.kind == ast::ExprKind::String) return fmt::format("'{}'", printable(e.text));
    if (e.kind == ast::ExprKind::Tuple) {
      std::string s = "(";
      for (size_t i = 0; i < e.elements.size(); ++i)
        s += (i ? ", " : "") + exprText(e.elements[i]);
      return s + (e.elements.size() == 1 ? ",)" : ")");
    }
    if (e.kind == ast::ExprKind::Call) return e.text + "(...)";
    return printable(e.text);
  }

private:
  bool typeError(const char* name, const ast::Expr& e, PType want) {
    error(e.loc, fmt::format("{}(): argument '{}' must be {}, got {}", call_.text, name,
                             typeDescription(want), valueDescription(e)));
    return false;
  }

  const ast::Expr& call_;
  const std::vector<Param>& params_;
  Diagnostics& diags_;
  std::vector<const ast::Expr*> slots_;
  bool ok_ = true;
};

// What a name is, when it is used in the wrong place (a loss in the model...).
std::string categoryOf(const std::string& name) {
  auto in = [&](const std::vector<std::string>& v) {
    return std::find(v.begin(), v.end(), name) != v.end();
  };
  if (in(kLayerNames)) return "a layer";
  if (in(kLossNames)) return "a loss";
  if (in(kOptimizerNames)) return "an optimizer";
  if (in(kTransformNames)) return "a transform";
  if (in(kSchedulerNames)) return "a scheduler";
  if (name == "Sequential") return "a model";
  return {};
}

const char* statementFor(const std::string& category) {
  if (category == "a layer") return "model = Sequential(...)";
  if (category == "a loss") return "loss = ...";
  if (category == "an optimizer") return "optimizer = ...";
  if (category == "a transform") return "transform = ...";
  if (category == "a scheduler") return "scheduler = ...";
  return "model = ...";
}

class Sema {
public:
  Sema(const ast::File& file, Diagnostics& diags) : file_(file), diags_(diags) {}

  std::optional<ModelSpec> run() {
    collect();
    if (input_) checkInput(*input_);
    if (target_) checkTarget(*target_);
    if (input_ && target_ && !input_->broken && !target_->broken &&
        input_->name == target_->name)
      error(target_->name_loc,
            fmt::format("the target cannot be named '{}' like the input", target_->name));
    if (const ast::Stmt* s = find("model")) checkModel(*s);
    if (const ast::Stmt* s = find("loss")) checkLoss(*s);
    if (const ast::Stmt* s = find("optimizer")) checkOptimizer(*s);
    if (const ast::Stmt* s = find("transform")) checkTransform(*s);
    if (const ast::Stmt* s = find("scheduler")) checkScheduler(*s);
    if (const ast::Stmt* s = find("batch")) checkCount(*s, spec_.batch, kMaxBatch);
    if (const ast::Stmt* s = find("epochs")) checkCount(*s, spec_.epochs, kMaxEpochs);
    if (const ast::Stmt* s = find("seed")) checkSeed(*s);
    checkClip();
    checkBatchNormBatch();
    checkTargetAgainstLoss();
    reportMissing();
    if (diags_.hasErrors()) return std::nullopt;
    return std::move(spec_);
  }

private:
  void error(SourceLoc loc, std::string msg, std::string hint = {}) {
    diags_.error(loc, std::move(msg), std::move(hint));
  }

  const ast::Stmt* find(const std::string& key) const {
    auto it = byKey_.find(key);
    return it == byKey_.end() ? nullptr : it->second;
  }

  // Sorts statements by key; reports duplicates and unknown keys.
  void collect() {
    // Names people bring from PyTorch scripts.
    static const std::map<std::string, std::string> aliases = {
        {"criterion", "loss"},
        {"batch_size", "batch"},
        {"net", "model"},
        {"n_epochs", "epochs"},
        {"num_epochs", "epochs"},
        {"optim", "optimizer"},
        {"clip_grad_norm_", "clip_grad_norm"},
        {"max_norm", "clip_grad_norm"},
        {"clip_grad_value_", "clip_grad_value"},
        {"clip_value", "clip_grad_value"}};
    for (const ast::Stmt& s : file_.stmts) {
      if (s.kind != ast::StmtKind::Assign) {
        const ast::Stmt*& slot = s.kind == ast::StmtKind::Input ? input_ : target_;
        const char* what = s.kind == ast::StmtKind::Input ? "input" : "target";
        if (slot) {
          error(s.loc, fmt::format("duplicate '{}' declaration", what),
                fmt::format("the first '{}' is at line {}", what, slot->loc.line));
          continue;
        }
        slot = &s;
        continue;
      }
      if (std::find(kStatementKeys.begin(), kStatementKeys.end(), s.name) == kStatementKeys.end()) {
        if (s.broken) continue; // its syntax error says enough
        std::string hint;
        if (auto a = aliases.find(s.name); a != aliases.end())
          hint = fmt::format("did you mean '{}'?", a->second);
        else if (s.name == "lr" || s.name == "learning_rate")
          hint = "the learning rate is an optimizer argument: optimizer = SGD(lr=0.003)";
        else if (s.name == "input" || s.name == "target")
          hint = fmt::format("declare it like '{} {}: f32[10]'", s.name,
                             s.name == "input" ? "x" : "y");
        else
          hint = didYouMean(s.name, kStatementKeys);
        if (hint.empty())
          hint = "statements are input, target, model, loss, optimizer, scheduler, transform, "
                 "batch, epochs, seed, clip_grad_value, clip_grad_norm";
        error(s.name_loc, fmt::format("unknown statement '{}'", printable(s.name)), hint);
        continue;
      }
      auto [it, inserted] = byKey_.emplace(s.name, &s);
      if (!inserted)
        error(s.loc, fmt::format("duplicate '{}' statement", s.name),
              fmt::format("the first '{}' is at line {}", s.name, it->second->loc.line));
    }
  }

  void reportMissing() {
    SourceLoc at = file_.end_loc;
    if (!input_)
      error(at, "missing 'input' declaration", "declare the features per sample, like 'input x: f32[784]'");
    if (!target_)
      error(at, "missing 'target' declaration",
            "declare the labels, like 'target y: class[10]' (or 'target y: f32[1]' for regression)");
    if (!find("model"))
      error(at, "missing 'model' statement", "like 'model = Sequential(Linear(784, 10), LogSoftmax(dim=1))'");
    if (!find("loss")) error(at, "missing 'loss' statement", "like 'loss = NLLLoss()'");
    if (!find("optimizer"))
      error(at, "missing 'optimizer' statement", "like 'optimizer = SGD(lr=0.003)'");
  }

  // The sizes of an input or target declaration: each dimension and their
  // product (the elements per sample) within the limit.
  bool checkSize(const ast::TypeRef& t, const char* what) {
    int64_t elements = 1;
    for (size_t i = 0; i < t.dims.size(); ++i) {
      if (t.dims[i] < 1 || t.dims[i] > kMaxFeatures) {
        error(t.dim_locs[i], fmt::format("the size of the {} must be between 1 and {}, got {}",
                                         what, kMaxFeatures, t.dims[i]));
        return false;
      }
      elements *= t.dims[i]; // both factors <= 2^24 and the running product is checked: no overflow
      if (elements > kMaxFeatures) {
        error(t.loc, fmt::format("the {} has {} elements per sample, more than the limit of {}",
                                 what, elements, kMaxFeatures));
        return false;
      }
    }
    return true;
  }

  void checkInput(const ast::Stmt& s) {
    if (s.broken) return;
    spec_.input_name = s.name;
    spec_.input_loc = s.loc;
    if (s.type.elem != "f32") {
      error(s.type.loc, fmt::format("the input must have type f32[N], not '{}'", printable(s.type.elem)),
            s.type.elem == "class" ? "class[N] is for targets holding integer labels"
                                   : didYouMean(s.type.elem, {"f32"}));
      return;
    }
    if (!checkSize(s.type, "input")) return;
    spec_.input_shape = s.type.dims;
    spec_.input_size = 1;
    for (int64_t d : s.type.dims)
      spec_.input_size *= d;
    inputKnown_ = true;
  }

  void checkTarget(const ast::Stmt& s) {
    if (s.broken) return;
    spec_.target_name = s.name;
    spec_.target_loc = s.loc;
    if (s.type.elem == "class") spec_.target_kind = TargetKind::Class;
    else if (s.type.elem == "f32") spec_.target_kind = TargetKind::Real;
    else {
      std::string hint = didYouMean(s.type.elem, {"class", "f32"});
      error(s.type.loc, fmt::format("unknown target type '{}'", printable(s.type.elem)),
            hint.empty() ? "use class[N] for integer labels or f32[N] for real values" : hint);
      return;
    }
    if (!checkSize(s.type, "target")) return;
    // Every model ends in a [batch, features] output (Linear's), so a target
    // is one value or class index per output feature.
    if (s.type.dims.size() > 1) {
      error(s.type.dim_locs[1],
            fmt::format("the target must have one dimension, not {}", s.type.dims.size()),
            fmt::format("the model's output is [batch, features]: declare '{}[N]'", s.type.elem));
      return;
    }
    spec_.target_size = s.type.size;
    targetKnown_ = true;
  }

  // Reports a name that is not of the expected category; returns false.
  void unknownName(const ast::Expr& e, const char* category, const std::vector<std::string>& names) {
    std::string cat = categoryOf(e.text);
    if (!cat.empty()) {
      error(e.loc, fmt::format("'{}' is {}, not {}", e.text, cat, category),
            fmt::format("write it as '{}'", statementFor(cat)));
      return;
    }
    std::string hint = didYouMean(e.text, names);
    if (hint.empty()) {
      hint = fmt::format("known: {}", fmt::join(names, ", "));
    }
    std::string kind = std::string(category).substr(std::string(category).find(' ') + 1);
    error(e.loc, fmt::format("unknown {} '{}'", kind, printable(e.text)), hint);
  }

  // Checks that `e` is a call (reports otherwise). `example` shows a call.
  bool expectCall(const ast::Expr& e, const char* what, const char* example) {
    if (e.kind == ast::ExprKind::Error) return false;
    if (e.kind == ast::ExprKind::Call) return true;
    if (e.kind == ast::ExprKind::Name)
      error(e.loc, fmt::format("'{}' must be called: write '{}()'", e.text, e.text),
            "like in PyTorch, a layer, loss or optimizer is created by calling it");
    else
      error(e.loc, fmt::format("expected {}, got {}", what, valueDescription(e)),
            fmt::format("like '{}'", example));
    return false;
  }

  void checkModel(const ast::Stmt& s) {
    const ast::Expr& v = s.value;
    if (!expectCall(v, "a Sequential(...)", "model = Sequential(Linear(784, 10))")) return;
    if (v.text != "Sequential") {
      std::string cat = categoryOf(v.text);
      if (cat == "a layer")
        error(v.loc, "the model must be a Sequential(...)",
              fmt::format("wrap the layer: model = Sequential({}(...))", v.text));
      else if (!cat.empty())
        error(v.loc, fmt::format("'{}' is {}, not a model", v.text, cat),
              fmt::format("write it as '{}'", statementFor(cat)));
      else
        error(v.loc, fmt::format("unknown model '{}'", printable(v.text)),
              lower(v.text) == "sequential" ? "did you mean 'Sequential'?"
                                            : "the model must be a Sequential(...)");
      return;
    }
    if (v.args.empty()) {
      error(v.loc, "Sequential() is empty",
            "add layers, like Sequential(Linear(784, 10), LogSoftmax(dim=1))");
      return;
    }
    if (v.args.size() > kMaxLayers) {
      error(v.loc, fmt::format("Sequential() has {} layers, more than the limit of {}",
                               v.args.size(), kMaxLayers));
      return;
    }
    int64_t features = inputKnown_ ? spec_.input_size : -1; // -1: unknown after an error
    shape_ = inputKnown_ ? spec_.input_shape : std::vector<int64_t>{};
    int64_t parameters = 0;
    bool sawLinear = false;
    bool allOk = true;
    for (size_t i = 0; i < v.args.size(); ++i) {
      const ast::Arg& arg = v.args[i];
      if (!arg.name.empty()) {
        error(arg.name_loc, "Sequential() takes layers as positional arguments",
              fmt::format("remove '{}='", arg.name));
        allOk = false;
        continue;
      }
      std::optional<Layer> layer = checkLayer(arg.value, int(i), features, sawLinear);
      if (!layer) {
        allOk = false;
        continue;
      }
      if (layer->kind == LayerKind::Linear || layer->kind == LayerKind::Conv2d) {
        sawLinear = true;
        // Each term is below 2^49 and the sum stops at the limit: no overflow.
        parameters +=
            layer->kind == LayerKind::Linear
                ? layer->in_features * layer->out_features + layer->out_features
                : int64_t(std::min(double(layer->out_channels) *
                                       double(layer->in_channels / layer->groups) *
                                       double(layer->kernel[0]) * double(layer->kernel[1]),
                                   double(kMaxParameters) + 1)) +
                      layer->out_channels;
        if (parameters > kMaxParameters) {
          error(layer->loc,
                fmt::format("the model has more than {} parameters with this layer",
                            kMaxParameters),
                "descent trains models that fit in memory");
          return;
        }
      }
      spec_.layers.push_back(*layer);
    }
    if (!sawLinear && allOk)
      error(v.loc, "the model has no Linear layer: there is nothing to train",
            "add one, like Sequential(Linear(784, 10), LogSoftmax(dim=1))");
    outputSize_ = features;
    modelOk_ = allOk;
  }

  // Checks one layer; updates `features` (the width flowing along the chain,
  // -1 once unknown) and shape_ (the shape per sample, empty once unknown).
  // `sawLinear`: a Linear came before (for the message).
  std::optional<Layer> checkLayer(const ast::Expr& e, int index, int64_t& features, bool sawLinear) {
    std::optional<Layer> layer = checkLayerArgs(e, index, features, sawLinear);
    if (features < 0) shape_.clear();
    if (layer) layer->out_shape = shape_;
    return layer;
  }

  // The layer's output shape and PyTorch's dimension rules on it: Flatten
  // merges dims, Linear and the row-wise layers need [batch, features]
  // (PyTorch would apply Linear to the last dimension; descent asks for an
  // explicit Flatten() there, the usual mistake with image inputs). Returns false if it reported an error.
  bool checkShape(const ast::Expr& e, Layer& layer, BoundArgs& args, int64_t& features) {
    if (shape_.empty()) return true; // unknown after an earlier error
    const bool rowWise = layer.kind == LayerKind::Linear || layer.kind == LayerKind::Softmax ||
                         layer.kind == LayerKind::LogSoftmax;
    if (rowWise && shape_.size() > 1) {
      std::string self = layer.kind == LayerKind::Linear
                             ? fmt::format("Linear({}, {})", layer.in_features, layer.out_features)
                             : fmt::format("{}(dim={})", e.text, layer.dim);
      args.error(e.loc,
                 fmt::format("{} needs a [batch, features] input but its input is {}", self,
                             batched(shape_)),
                 fmt::format("add Flatten() before it (the input has {} elements per sample)",
                             product(shape_)));
      features = -1;
      return false;
    }
    if (layer.kind != LayerKind::Flatten) return true;
    // torch.flatten: dims wrap like Python indices over the rank with the batch.
    const int64_t rank = int64_t(shape_.size()) + 1;
    int64_t dims[2] = {layer.start_dim, layer.end_dim};
    const char* names[2] = {"start_dim", "end_dim"};
    for (int i = 0; i < 2; ++i) {
      if (dims[i] < -rank || dims[i] >= rank) {
        args.error(args.get(names[i]) ? args.get(names[i])->loc : e.loc,
                   fmt::format("Flatten(): Dimension out of range (expected to be in range of "
                               "[{}, {}], but got {})",
                               -rank, rank - 1, dims[i]),
                   fmt::format("its input is {}", batched(shape_)));
        features = -1;
        return false;
      }
      if (dims[i] < 0) dims[i] += rank;
    }
    if (dims[0] > dims[1]) {
      args.error(e.loc,
                 "Flatten(): flatten() has invalid args: start_dim cannot come after end_dim");
      features = -1;
      return false;
    }
    if (dims[0] == 0) {
      args.error(args.get("start_dim") ? args.get("start_dim")->loc : e.loc,
                 "Flatten(start_dim=0) would merge the batch into the features",
                 "dim 0 is the batch: use start_dim=1 (the default)");
      features = -1;
      return false;
    }
    std::vector<int64_t> out(shape_.begin(), shape_.begin() + (dims[0] - 1));
    out.push_back(
        product(std::vector<int64_t>(shape_.begin() + (dims[0] - 1), shape_.begin() + dims[1])));
    out.insert(out.end(), shape_.begin() + dims[1], shape_.end());
    shape_ = out;
    features = shape_.size() == 1 ? shape_[0] : product(shape_);
    return true;
  }

  // [N, 1, 28, 28]: a shape with the batch, as PyTorch's layers see it.
  static std::string batched(const std::vector<int64_t>& v) {
    return "[N, " + ModelSpec::shapeText(v).substr(1);
  }

  static int64_t product(const std::vector<int64_t>& v) {
    int64_t n = 1;
    for (int64_t d : v)
      n *= d;
    return n;
  }

  std::optional<Layer> checkLayerArgs(const ast::Expr& e, int index, int64_t& features,
                                      bool sawLinear) {
    if (!expectCall(e, "a layer", "Linear(784, 128)")) {
      features = -1;
      return std::nullopt;
    }
    auto it = std::find(kLayerNames.begin(), kLayerNames.end(), e.text);
    if (it == kLayerNames.end()) {
      unknownName(e, "a layer", kLayerNames);
      features = -1;
      return std::nullopt;
    }
    Layer layer;
    layer.loc = e.loc;
    layer.index = index;
    if (size_t(it - kLayerNames.begin()) >= kFixedLayers)
      return checkActivation(e, kActivations[size_t(it - kLayerNames.begin()) - kFixedLayers],
                             layer);
    layer.kind = LayerKind(it - kLayerNames.begin());
    static const std::vector<Param> linear = {{"in_features", PType::Int, true},
                                              {"out_features", PType::Int, true},
                                              {"bias", PType::Bool},
                                              {"init", PType::Init, false, false},
                                              {"bias_init", PType::Init, false, false}};
    static const std::vector<Param> inplaceOnly = {{"inplace", PType::Bool}};
    static const std::vector<Param> none = {};
    static const std::vector<Param> leaky = {{"negative_slope", PType::Float},
                                             {"inplace", PType::Bool}};
    static const std::vector<Param> softmax = {{"dim", PType::Int}};
    static const std::vector<Param> dropout = {{"p", PType::Float}, {"inplace", PType::Bool}};
    static const std::vector<Param> flatten = {{"start_dim", PType::Int}, {"end_dim", PType::Int}};
    // torch.nn.Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d: PyTorch's order.
    static const std::vector<Param> conv = {{"in_channels", PType::Int, true},
                                            {"out_channels", PType::Int, true},
                                            {"kernel_size", PType::IntPair, true},
                                            {"stride", PType::IntPair},
                                            {"padding", PType::Padding},
                                            {"dilation", PType::IntPair},
                                            {"groups", PType::Int},
                                            {"bias", PType::Bool},
                                            {"padding_mode", PType::String}};
    static const std::vector<Param> maxpool = {
        {"kernel_size", PType::IntPair, true}, {"stride", PType::IntPair},
        {"padding", PType::IntPair},           {"dilation", PType::IntPair},
        {"return_indices", PType::Bool},       {"ceil_mode", PType::Bool}};
    static const std::vector<Param> avgpool = {{"kernel_size", PType::IntPair, true},
                                               {"stride", PType::IntPair},
                                               {"padding", PType::IntPair},
                                               {"ceil_mode", PType::Bool},
                                               {"count_include_pad", PType::Bool}};
    static const std::vector<Param> adaptive = {{"output_size", PType::IntPair, true}};
    // torch.nn.BatchNorm1d/2d (_BatchNorm.__init__'s order; device/dtype not taken).
    static const std::vector<Param> batchnorm = {{"num_features", PType::Int, true},
                                                 {"eps", PType::Float},
                                                 {"momentum", PType::Float},
                                                 {"affine", PType::Bool},
                                                 {"track_running_stats", PType::Bool}};
    const std::vector<Param>* params = &none;
    switch (layer.kind) {
    case LayerKind::Linear: params = &linear; break;
    case LayerKind::ReLU: params = &inplaceOnly; break;
    case LayerKind::Sigmoid:
    case LayerKind::Tanh: params = &none; break;
    case LayerKind::LeakyReLU: params = &leaky; break;
    case LayerKind::Softmax:
    case LayerKind::LogSoftmax: params = &softmax; break;
    case LayerKind::Dropout: params = &dropout; break;
    case LayerKind::Flatten: params = &flatten; break;
    case LayerKind::Conv2d:
      params = &conv;
      break;
    case LayerKind::MaxPool2d:
      params = &maxpool;
      break;
    case LayerKind::AvgPool2d:
      params = &avgpool;
      break;
    case LayerKind::AdaptiveAvgPool2d:
      params = &adaptive;
      break;
    case LayerKind::BatchNorm1d:
    case LayerKind::BatchNorm2d:
      params = &batchnorm;
      break;
    case LayerKind::Activation: break; // checkActivation
    }
    BoundArgs args(e, *params, diags_);
    if (!args.bind()) {
      if (layer.kind != LayerKind::ReLU && layer.kind != LayerKind::Sigmoid &&
          layer.kind != LayerKind::Tanh && layer.kind != LayerKind::LeakyReLU &&
          layer.kind != LayerKind::Dropout && layer.kind != LayerKind::Softmax &&
          layer.kind != LayerKind::LogSoftmax)
        features = -1;
      return std::nullopt;
    }
    if (layer.kind == LayerKind::Conv2d) {
      if (!checkConv(e, layer, args, features)) features = -1;
      lastFlatten_.clear();
      return args.ok() ? std::optional<Layer>(layer) : std::nullopt;
    }
    if (layer.kind == LayerKind::MaxPool2d || layer.kind == LayerKind::AvgPool2d ||
        layer.kind == LayerKind::AdaptiveAvgPool2d) {
      if (!checkPool(e, layer, args, features)) features = -1;
      lastFlatten_.clear();
      return args.ok() ? std::optional<Layer>(layer) : std::nullopt;
    }
    if (layer.kind == LayerKind::BatchNorm1d || layer.kind == LayerKind::BatchNorm2d) {
      if (!checkBatchNorm(e, layer, args)) features = -1;
      return args.ok() ? std::optional<Layer>(layer) : std::nullopt;
    }
    bool inplace = false;
    switch (layer.kind) {
    case LayerKind::Linear: {
      bool okIn = args.getInt("in_features", layer.in_features);
      bool okOut = args.getInt("out_features", layer.out_features);
      args.getBool("bias", layer.bias);
      if (okIn && (layer.in_features < 1 || layer.in_features > kMaxFeatures)) {
        args.rangeError("in_features", "between 1 and 16777216");
        okIn = false;
      }
      if (okOut && (layer.out_features < 1 || layer.out_features > kMaxFeatures)) {
        args.rangeError("out_features", "between 1 and 16777216");
        okOut = false;
      }
      if (okIn && okOut && !checkShape(e, layer, args, features)) return std::nullopt;
      if (okIn && okOut && features >= 0 && layer.in_features != features) {
        std::string self = fmt::format("Linear({}, {})", layer.in_features, layer.out_features);
        const ast::Expr* at = args.get("in_features");
        if (lastFlatten_.size() > 1)
          args.error(at->loc,
                     fmt::format("{} expects {} inputs but Flatten() gives {} ({})", self,
                                 layer.in_features, features, fmt::join(lastFlatten_, " x ")),
                     fmt::format("use Linear({}, {})", features, layer.out_features));
        else if (!sawLinear)
          args.error(at->loc,
                     fmt::format("{} expects {} inputs but the input '{}' has {} features", self,
                                 layer.in_features, spec_.input_name, features),
                     fmt::format("the input is declared f32[{}] at line {}", features,
                                 spec_.input_loc.line));
        else
          args.error(at->loc,
                     fmt::format("{} expects {} inputs but the previous layer gives {}", self,
                                 layer.in_features, features),
                     fmt::format("the previous Linear has out_features={}", features));
      }
      features = okOut ? layer.out_features : -1;
      shape_ = {layer.out_features};
      lastFlatten_.clear();
      if (okIn && okOut) checkLinearInit(args, layer);
      break;
    }
    case LayerKind::ReLU: args.getBool("inplace", inplace); break;
    case LayerKind::Sigmoid:
    case LayerKind::Tanh: break;
    case LayerKind::LeakyReLU:
      args.getFloat("negative_slope", layer.negative_slope);
      args.getBool("inplace", inplace);
      break;
    case LayerKind::Softmax:
    case LayerKind::LogSoftmax:
      // PyTorch only warns when dim is omitted and then picks dim=1 for 2-D input.
      if (args.getInt("dim", layer.dim) && args.get("dim")) {
        if (layer.dim == 0 || layer.dim == -2)
          args.error(args.get("dim")->loc,
                     fmt::format("{}(dim={}) would normalize over the batch", e.text, layer.dim),
                     "dim 0 is the batch: the probabilities would mix samples; use dim=1 (the "
                     "features)");
        else if (layer.dim != 1 && layer.dim != -1)
          args.error(args.get("dim")->loc,
                     fmt::format("{}(): dim out of range (expected to be in range of [-2, 1], "
                                 "but got {})",
                                 e.text, layer.dim),
                     "the tensor is [batch, features]: use dim=1 (or dim=-1)");
        layer.dim = 1; // -1 and 1 are the same axis of a [batch, features] tensor
      }
      break;
    case LayerKind::Dropout:
      if (args.getFloat("p", layer.p) && args.get("p") && !(layer.p >= 0 && layer.p < 1))
        args.rangeError("p", "in [0, 1)");
      args.getBool("inplace", inplace);
      break;
    case LayerKind::Flatten: {
      std::vector<int64_t> before = shape_;
      if (args.getInt("start_dim", layer.start_dim) && args.getInt("end_dim", layer.end_dim) &&
          checkShape(e, layer, args, features))
        lastFlatten_ = shape_.size() == 1 ? before : std::vector<int64_t>{};
      else
        features = -1;
      break;
    }
    case LayerKind::Conv2d:
    case LayerKind::MaxPool2d:
    case LayerKind::AvgPool2d:
    case LayerKind::AdaptiveAvgPool2d:
    case LayerKind::BatchNorm1d:
    case LayerKind::BatchNorm2d:
    case LayerKind::Activation:
      break; // checkConv, checkPool, checkBatchNorm, checkActivation
    }
    if ((layer.kind == LayerKind::Softmax || layer.kind == LayerKind::LogSoftmax) && args.ok())
      checkShape(e, layer, args, features);
    if (!args.ok()) return std::nullopt;
    return layer;
  }

  // "(5, 3)" as PyTorch's Conv2d prints its pairs; with `square`, "5" for
  // (5, 5), as the pooling layers print an int they were given.
  static std::string pairText(const std::array<int64_t, 2>& p, bool square = false) {
    return square && p[0] == p[1] ? std::to_string(p[0]) : fmt::format("({}, {})", p[0], p[1]);
  }

  // The [C, H, W] per sample a Conv2d or pooling layer needs; false (after
  // reporting) when the input is not 3-D. `self` is the layer as written.
  bool needImage(const ast::Expr& e, BoundArgs& args, const std::string& self) {
    if (shape_.size() == 3) return true;
    args.error(
        e.loc,
        fmt::format("{} needs a [N, C, H, W] input but its input is {}", self, batched(shape_)),
        shape_.size() == 1 && spec_.layers.empty()
            ? fmt::format("declare the input with its channels, height and width, like "
                          "f32[1, 28, 28] ({} elements)",
                          shape_[0])
            : "convolution and pooling take images: [channels, height, width] per sample");
    return false;
  }

  // torch.nn.Conv2d: arguments, PyTorch's validation (_ConvNd.__init__ and
  // F.conv2d's shape checks) and the output shape. False if the shape is unknown.
  bool checkConv(const ast::Expr& e, Layer& layer, BoundArgs& args, int64_t& features) {
    bool ok = args.getInt("in_channels", layer.in_channels) &&
              args.getInt("out_channels", layer.out_channels) &&
              args.getIntPair("kernel_size", layer.kernel) &&
              args.getIntPair("stride", layer.stride) &&
              args.getIntPair("dilation", layer.dilation) && args.getInt("groups", layer.groups);
    args.getBool("bias", layer.bias);
    std::string mode = "zeros", padText;
    std::array<int64_t, 2> pad{0, 0};
    const ast::Expr* padArg = args.get("padding");
    if (padArg && padArg->kind == ast::ExprKind::String)
      padText = padArg->text;
    else
      ok = args.getIntPair("padding", pad, PType::Padding) && ok;
    ok = args.getString("padding_mode", mode) && ok;
    if (!ok) return false;
    const std::string self = fmt::format("Conv2d({}, {}, kernel_size={})", layer.in_channels,
                                         layer.out_channels, pairText(layer.kernel));
    auto positive = [&](const char* name, int64_t v, int64_t max) {
      if (v >= 1 && v <= max) return true;
      args.rangeError(name, max == kMaxFeatures ? "between 1 and 16777216" : "positive");
      return false;
    };
    if (!positive("in_channels", layer.in_channels, kMaxFeatures) ||
        !positive("out_channels", layer.out_channels, kMaxFeatures))
      return false;
    for (const char* name : {"kernel_size", "stride", "dilation"}) {
      const auto& v = std::string(name) == "kernel_size" ? layer.kernel
                      : std::string(name) == "stride"    ? layer.stride
                                                         : layer.dilation;
      if (v[0] < 1 || v[1] < 1 || v[0] > kMaxFeatures || v[1] > kMaxFeatures) {
        args.rangeError(name, "positive");
        return false;
      }
    }
    // _ConvNd.__init__'s checks, in its order and with its messages.
    if (layer.groups < 1) {
      args.error(args.get("groups")->loc, "Conv2d(): groups must be a positive integer");
      return false;
    }
    if (layer.in_channels % layer.groups != 0) {
      args.error(args.get("groups")->loc, "Conv2d(): in_channels must be divisible by groups",
                 fmt::format("in_channels={} and groups={}", layer.in_channels, layer.groups));
      return false;
    }
    if (layer.out_channels % layer.groups != 0) {
      args.error(args.get("groups")->loc, "Conv2d(): out_channels must be divisible by groups",
                 fmt::format("out_channels={} and groups={}", layer.out_channels, layer.groups));
      return false;
    }
    if (!padText.empty()) {
      if (padText != "same" && padText != "valid") {
        args.error(padArg->loc,
                   fmt::format("Conv2d(): Invalid padding string '{}', should be one of "
                               "{{'valid', 'same'}}",
                               printable(padText)));
        return false;
      }
      if (padText == "same" && (layer.stride[0] != 1 || layer.stride[1] != 1)) {
        args.error(padArg->loc,
                   "Conv2d(): padding='same' is not supported for strided convolutions",
                   "use stride=1, or give the padding as numbers");
        return false;
      }
    } else if (pad[0] < 0 || pad[1] < 0 || pad[0] > kMaxFeatures || pad[1] > kMaxFeatures) {
      args.rangeError("padding", "non-negative", padArg);
      return false;
    }
    if (mode != "zeros") {
      const ast::Expr* at = args.get("padding_mode");
      if (mode == "reflect" || mode == "replicate" || mode == "circular")
        args.error(at->loc, fmt::format("Conv2d(): padding_mode='{}' is not supported yet", mode),
                   "descent pads with zeros: use padding_mode='zeros' (the default)");
      else
        args.error(at->loc,
                   fmt::format("Conv2d(): padding_mode must be one of ['zeros', 'reflect', "
                               "'replicate', 'circular'], but got padding_mode='{}'",
                               printable(mode)));
      return false;
    }
    // padding="same": total d·(k-1), the extra one at the bottom/right (PyTorch's rule).
    for (int i = 0; i < 2; ++i) {
      int64_t total = padText == "same" ? layer.dilation[size_t(i)] * (layer.kernel[size_t(i)] - 1)
                                        : 2 * pad[size_t(i)];
      int64_t begin = padText == "same" ? total / 2 : pad[size_t(i)];
      layer.padding[size_t(2 * i)] = begin;
      layer.padding[size_t(2 * i + 1)] = total - begin;
    }
    // PyTorch's repr: non-default arguments only.
    std::string r = fmt::format("Conv2d({}, {}, kernel_size={}, stride={}", layer.in_channels,
                                layer.out_channels, pairText(layer.kernel), pairText(layer.stride));
    if (!padText.empty())
      r += fmt::format(", padding={}", padText);
    else if (pad[0] || pad[1])
      r += fmt::format(", padding={}", pairText(pad));
    if (layer.dilation != std::array<int64_t, 2>{1, 1})
      r += fmt::format(", dilation={}", pairText(layer.dilation));
    if (layer.groups != 1) r += fmt::format(", groups={}", layer.groups);
    if (!layer.bias) r += ", bias=False";
    layer.repr = r + ")";
    if (shape_.empty()) return false;
    if (!needImage(e, args, self)) return false;
    if (shape_[0] != layer.in_channels) {
      args.error(args.get("in_channels")->loc,
                 fmt::format("Conv2d({}, ...) expects {} channels but the input has {}",
                             layer.in_channels, layer.in_channels, shape_[0]),
                 fmt::format("its input is {}", batched(shape_)));
      return false;
    }
    int64_t out[2];
    for (int i = 0; i < 2; ++i) {
      const size_t d = size_t(i);
      out[i] = convOutSize(shape_[d + 1], layer.kernel[d], layer.stride[d], layer.padding[2 * d],
                           layer.padding[2 * d + 1], layer.dilation[d]);
    }
    if (out[0] < 1 || out[1] < 1) {
      args.error(e.loc,
                 fmt::format("{}: Calculated padded input size per channel: ({} x {}). Kernel "
                             "size: ({} x {}). Kernel size can't be greater than actual input "
                             "size",
                             self, shape_[1] + layer.padding[0] + layer.padding[1],
                             shape_[2] + layer.padding[2] + layer.padding[3],
                             layer.dilation[0] * (layer.kernel[0] - 1) + 1,
                             layer.dilation[1] * (layer.kernel[1] - 1) + 1),
                 fmt::format("its input is {}", batched(shape_)));
      return false;
    }
    shape_ = {layer.out_channels, out[0], out[1]};
    features = product(shape_);
    return true;
  }

  // batch = 1 with a BatchNorm that sees one value per channel: PyTorch's
  // ValueError on every training step. (`descent train` checks the data's
  // last partial batch too: ModelSpec::batchNormBatchError.)
  void checkBatchNormBatch() {
    if (spec_.batch != 1) return;
    for (const Layer& l : spec_.layers) {
      if (l.kind != LayerKind::BatchNorm1d && l.kind != LayerKind::BatchNorm2d) continue;
      if (l.out_shape.empty() || product(l.out_shape) != l.out_shape[0]) continue;
      error(l.loc,
            fmt::format("{}({}): Expected more than 1 value per channel when training, got input "
                        "size torch.Size([1, {}])",
                        layerName(l.kind), l.in_channels, fmt::join(l.out_shape, ", ")),
            "batch = 1 gives each channel one value per batch: use a larger batch");
    }
  }

  // torch.nn.BatchNorm1d/2d: arguments, the input's rank (_check_input_dim's
  // messages) and its channels. The shape is unchanged. False if the shape is
  // unknown or wrong.
  bool checkBatchNorm(const ast::Expr& e, Layer& layer, BoundArgs& args) {
    bool ok = args.getInt("num_features", layer.in_channels) && args.getFloat("eps", layer.eps) &&
              args.getBool("affine", layer.affine) &&
              args.getBool("track_running_stats", layer.track_running_stats);
    const ast::Expr* m = args.get("momentum");
    if (m && m->kind == ast::ExprKind::Name && m->text == "None")
      layer.momentum = std::nullopt; // a cumulative moving average, as PyTorch does
    else if (double v = 0.1; args.getFloat("momentum", v))
      layer.momentum = v;
    else
      ok = false;
    if (!ok) return false;
    if (layer.in_channels < 1 || layer.in_channels > kMaxFeatures) {
      args.rangeError("num_features", "between 1 and 16777216");
      return false;
    }
    if (!(layer.eps >= 0) || !std::isfinite(layer.eps)) {
      args.rangeError("eps", "a finite number >= 0");
      return false;
    }
    const bool is2d = layer.kind == LayerKind::BatchNorm2d;
    std::string r = fmt::format(
        "{}({}, eps={}, momentum={}, affine={}, track_running_stats={})", e.text, layer.in_channels,
        layer.eps, layer.momentum ? fmt::format("{}", *layer.momentum) : "None",
        layer.affine ? "True" : "False", layer.track_running_stats ? "True" : "False");
    layer.repr = r;
    if (shape_.empty()) return false;
    const size_t rank = shape_.size() + 1; // with the batch
    if (is2d ? rank != 4 : (rank != 2 && rank != 3)) {
      args.error(e.loc,
                 fmt::format("{}: expected {} input (got {}D input)", e.text,
                             is2d ? "4D" : "2D or 3D", rank),
                 fmt::format("its input is {}", batched(shape_)));
      return false;
    }
    if (shape_[0] != layer.in_channels) {
      std::string prev = spec_.layers.empty() ? fmt::format("the input '{}'", spec_.input_name)
                                              : layerRepr(spec_.layers.back());
      args.error(args.get("num_features")->loc,
                 fmt::format("{}({}) expects {} channels but {} {} {}", e.text, layer.in_channels,
                             layer.in_channels, prev, spec_.layers.empty() ? "has" : "gives",
                             shape_[0]),
                 fmt::format("its input is {}: use {}({})", batched(shape_), e.text, shape_[0]));
      return false;
    }
    return true;
  }

  // torch.nn.MaxPool2d, AvgPool2d (pool2d_shape_check's rules and messages)
  // and AdaptiveAvgPool2d. False if the shape is unknown.
  bool checkPool(const ast::Expr& e, Layer& layer, BoundArgs& args, int64_t& features) {
    const LayerKind k = layer.kind;
    if (k == LayerKind::AdaptiveAvgPool2d) {
      if (!args.getIntPair("output_size", layer.kernel)) return false;
      if (layer.kernel[0] < 1 || layer.kernel[1] < 1 || layer.kernel[0] > kMaxFeatures ||
          layer.kernel[1] > kMaxFeatures) {
        args.rangeError("output_size", "positive");
        return false;
      }
      layer.repr = fmt::format("AdaptiveAvgPool2d(output_size={})", pairText(layer.kernel, true));
      if (shape_.empty() || !needImage(e, args, layer.repr)) return false;
      shape_ = {shape_[0], layer.kernel[0], layer.kernel[1]};
      features = product(shape_);
      return true;
    }
    std::array<int64_t, 2> pad{0, 0};
    bool returnIndices = false;
    bool ok = args.getIntPair("kernel_size", layer.kernel) && args.getIntPair("padding", pad) &&
              args.getBool("ceil_mode", layer.ceil_mode);
    layer.stride = layer.kernel; // stride=None: the kernel size
    ok = args.getIntPair("stride", layer.stride) && ok;
    if (k == LayerKind::MaxPool2d)
      ok = args.getIntPair("dilation", layer.dilation) &&
           args.getBool("return_indices", returnIndices) && ok;
    else
      ok = args.getBool("count_include_pad", layer.count_include_pad) && ok;
    if (!ok) return false;
    const char* name = layerName(k);
    for (const char* arg : {"kernel_size", "stride", "dilation"}) {
      if (k != LayerKind::MaxPool2d && std::string(arg) == "dilation") continue;
      const auto& v = std::string(arg) == "kernel_size" ? layer.kernel
                      : std::string(arg) == "stride"    ? layer.stride
                                                        : layer.dilation;
      if (v[0] < 1 || v[1] < 1 || v[0] > kMaxFeatures || v[1] > kMaxFeatures) {
        args.error(args.get(arg)->loc, fmt::format("{}(): {} must be greater than zero, but got {}",
                                                   name, arg, pairText(v, true)));
        return false;
      }
    }
    if (pad[0] < 0 || pad[1] < 0) {
      args.rangeError("padding", "non-negative");
      return false;
    }
    if (returnIndices) {
      args.error(args.get("return_indices")->loc,
                 "MaxPool2d(): return_indices=True is not supported",
                 "a layer of a Sequential passes one tensor on: leave return_indices=False");
      return false;
    }
    if (layer.kernel[1] / 2 < pad[1] || layer.kernel[0] / 2 < pad[0]) {
      args.error(args.get("padding")->loc,
                 fmt::format("{}(): pad should be smaller than or equal to half of kernel size, "
                             "but got padW = {}, padH = {}, kW = {}, kH = {}",
                             name, pad[1], pad[0], layer.kernel[1], layer.kernel[0]));
      return false;
    }
    layer.padding = {pad[0], pad[0], pad[1], pad[1]};
    if (k == LayerKind::MaxPool2d)
      layer.repr = fmt::format("MaxPool2d(kernel_size={}, stride={}, padding={}, dilation={}, "
                               "ceil_mode={})",
                               pairText(layer.kernel, true), pairText(layer.stride, true),
                               pairText(pad, true), pairText(layer.dilation, true),
                               layer.ceil_mode ? "True" : "False");
    else
      layer.repr = fmt::format("AvgPool2d(kernel_size={}, stride={}, padding={}{}{})",
                               pairText(layer.kernel, true), pairText(layer.stride, true),
                               pairText(pad, true), layer.ceil_mode ? ", ceil_mode=True" : "",
                               layer.count_include_pad ? "" : ", count_include_pad=False");
    if (shape_.empty() || !needImage(e, args, layer.repr)) return false;
    int64_t out[2];
    for (size_t d = 0; d < 2; ++d)
      out[d] = poolOutSize(shape_[d + 1], layer.kernel[d], layer.stride[d], pad[d],
                           layer.dilation[d], layer.ceil_mode);
    if (out[0] < 1 || out[1] < 1) {
      args.error(e.loc,
                 fmt::format("{}: Given input size: ({}x{}x{}). Calculated output size: "
                             "({}x{}x{}). Output size is too small",
                             layer.repr, shape_[0], shape_[1], shape_[2], shape_[0], out[0],
                             out[1]),
                 fmt::format("its input is {}", batched(shape_)));
      return false;
    }
    shape_ = {shape_[0], out[0], out[1]};
    features = product(shape_);
    return true;
  }

  // An activation layer of the table: binds its arguments, checks them and
  // records them as the op's attributes.
  std::optional<Layer> checkActivation(const ast::Expr& e, const ActivationLayer& def,
                                       Layer layer) {
    layer.kind = LayerKind::Activation;
    layer.name = def.name;
    layer.op = def.op;
    std::vector<Param> params;
    for (const ActivationArg& a : def.args) params.push_back(a.param);
    BoundArgs args(e, params, diags_);
    if (!args.bind()) return std::nullopt;
    std::string shown;
    for (const ActivationArg& a : def.args) {
      double number = a.number;
      std::string text = a.text;
      bool ignored = false;
      switch (a.param.type) {
      case PType::Float: args.getFloat(a.param.name, number); break;
      case PType::String: args.getString(a.param.name, text); break;
      case PType::Bool: args.getBool(a.param.name, ignored); continue;
      default: continue;
      }
      if (a.check && args.get(a.param.name)) {
        std::string why = a.check(number, text);
        if (!why.empty())
          args.error(args.get(a.param.name)->loc, fmt::format("{}(): {}", def.name, why));
      }
      if (a.param.type == PType::Float) {
        layer.attrs.push_back({a.param.name, number});
        shown += fmt::format("{}{}={}", shown.empty() ? "" : ", ", a.param.name, number);
      } else {
        layer.attrs.push_back({a.param.name, text});
        shown += fmt::format("{}{}='{}'", shown.empty() ? "" : ", ", a.param.name, printable(text));
      }
    }
    layer.repr = fmt::format("{}({})", def.name, shown);
    if (!args.ok()) return std::nullopt;
    return layer;
  }

  void checkLoss(const ast::Stmt& s) {
    const ast::Expr& v = s.value;
    if (!expectCall(v, "a loss", "loss = NLLLoss()")) return;
    auto it = std::find(kLossNames.begin(), kLossNames.end(), v.text);
    if (it == kLossNames.end()) {
      unknownName(v, "a loss", kLossNames);
      return;
    }
    spec_.loss.kind = LossKind(it - kLossNames.begin());
    spec_.loss.loc = v.loc;
    // PyTorch's first positional parameter is `weight`; passing a reduction
    // positionally would mean something else there, so it is keyword-only here.
    static const std::vector<Param> params = {{"reduction", PType::String, false, false}};
    static const std::vector<Param> smooth = {{"reduction", PType::String, false, false},
                                              {"beta", PType::Float, false, false}};
    static const std::vector<Param> huber = {{"reduction", PType::String, false, false},
                                             {"delta", PType::Float, false, false}};
    // weight is PyTorch's first positional parameter of the class losses.
    static const std::vector<Param> ce = {{"weight", PType::FloatList, false, true},
                                          {"ignore_index", PType::Int, false, false},
                                          {"reduction", PType::String, false, false},
                                          {"label_smoothing", PType::Float, false, false}};
    static const std::vector<Param> nll = {{"weight", PType::FloatList, false, true},
                                           {"ignore_index", PType::Int, false, false},
                                           {"reduction", PType::String, false, false}};
    static const std::vector<Param> bceLogits = {{"weight", PType::FloatList, false, false},
                                                 {"reduction", PType::String, false, false},
                                                 {"pos_weight", PType::FloatList, false, false}};
    static const std::vector<Param> kl = {{"reduction", PType::String, false, false},
                                          {"log_target", PType::Bool, false, false}};
    const LossKind kind = spec_.loss.kind;
    BoundArgs args(v,
                   kind == LossKind::SmoothL1Loss        ? smooth
                   : kind == LossKind::HuberLoss         ? huber
                   : kind == LossKind::CrossEntropyLoss  ? ce
                   : kind == LossKind::NLLLoss           ? nll
                   : kind == LossKind::BCEWithLogitsLoss ? bceLogits
                   : kind == LossKind::KLDivLoss         ? kl
                                                         : params,
                   diags_);
    if (!args.bind()) return;
    std::string reduction = "mean";
    if (!args.getString("reduction", reduction)) return;
    // CrossEntropyLoss/NLLLoss: weight's length is checked against the
    // classes in checkTargetAgainstLoss; BCEWithLogitsLoss's pos_weight too.
    if (kind == LossKind::CrossEntropyLoss || kind == LossKind::NLLLoss) {
      const ast::Expr* w = args.get("weight");
      if (w && w->kind == ast::ExprKind::String)
        // NLLLoss("sum"): PyTorch's first positional parameter is weight.
        args.error(w->loc,
                   fmt::format("{}(): argument 'weight' must be a list of numbers like [1.0, 2.0], "
                               "got a string ('{}')",
                               v.text, printable(w->text)),
                   fmt::format("the first positional argument is weight: pass the reduction by "
                               "name, like reduction=\"{}\"",
                               printable(w->text)));
      else if (args.getList("weight", spec_.loss.weight) && w)
        spec_.loss.weight_loc = w->loc;
      int64_t ignore = 0;
      if (args.getInt("ignore_index", ignore) && args.get("ignore_index")) {
        if (ignore < std::numeric_limits<int32_t>::min() ||
            ignore > std::numeric_limits<int32_t>::max())
          args.rangeError("ignore_index", "a 32-bit integer (labels are int32)");
        else
          spec_.loss.ignore_index = ignore;
      }
    }
    if (kind == LossKind::BCEWithLogitsLoss) {
      if (args.get("weight"))
        args.error(args.get("weight")->loc,
                   "BCEWithLogitsLoss(): weight (a per-element rescaling) is not supported",
                   "pos_weight=[...] weighs the positive examples of each output");
      if (args.getList("pos_weight", spec_.loss.pos_weight) && args.get("pos_weight"))
        spec_.loss.pos_weight_loc = args.get("pos_weight")->loc;
    }
    // torch.nn.functional's checks, with its messages.
    if (kind == LossKind::SmoothL1Loss && args.getFloat("beta", spec_.loss.beta) &&
        spec_.loss.beta < 0)
      args.error(args.get("beta")->loc, "smooth_l1_loss does not support negative values for beta.",
                 "beta = 0 is L1Loss; a positive beta is the width of the quadratic zone");
    if (kind == LossKind::CrossEntropyLoss &&
        args.getFloat("label_smoothing", spec_.loss.label_smoothing) &&
        (spec_.loss.label_smoothing < 0 || spec_.loss.label_smoothing > 1))
      args.error(args.get("label_smoothing")->loc,
                 fmt::format("label_smoothing must be between 0.0 and 1.0. Got: {}",
                             spec_.loss.label_smoothing));
    if (kind == LossKind::HuberLoss && args.getFloat("delta", spec_.loss.delta) &&
        spec_.loss.delta <= 0)
      args.error(args.get("delta")->loc,
                 "huber_loss does not support non-positive values for delta.");
    if (kind == LossKind::KLDivLoss) args.getBool("log_target", spec_.loss.log_target);
    // PyTorch's KLDivLoss defaults to "mean" (with a warning that
    // "batchmean" is the true KL divergence); both are accepted.
    if (reduction == "mean") spec_.loss.reduction = Reduction::Mean;
    else if (reduction == "sum") spec_.loss.reduction = Reduction::Sum;
    else if (reduction == "batchmean" && kind == LossKind::KLDivLoss)
      spec_.loss.reduction = Reduction::BatchMean;
    else if (kind == LossKind::KLDivLoss && reduction != "none")
      args.rangeError("reduction", "'mean', 'sum' or 'batchmean'");
    else if (reduction == "none")
      args.error(args.get("reduction")->loc,
                 fmt::format("{}(): reduction 'none' is not supported", v.text),
                 "training needs one number per batch: use 'mean' or 'sum'");
    else
      args.rangeError("reduction", "'mean' or 'sum'");
    if (args.ok()) lossOk_ = true;
  }

  void checkOptimizer(const ast::Stmt& s) {
    const ast::Expr& v = s.value;
    if (!expectCall(v, "an optimizer", "optimizer = SGD(lr=0.003)")) return;
    auto it = std::find(kOptimizerNames.begin(), kOptimizerNames.end(), v.text);
    if (it == kOptimizerNames.end()) {
      unknownName(v, "an optimizer", kOptimizerNames);
      return;
    }
    OptimizerSpec& o = spec_.optimizer;
    o.kind = OptimizerKind(it - kOptimizerNames.begin());
    o.loc = v.loc;
    static const std::vector<Param> sgd = {{"lr", PType::Float, true},
                                           {"momentum", PType::Float},
                                           {"dampening", PType::Float},
                                           {"weight_decay", PType::Float},
                                           {"nesterov", PType::Bool},
                                           {"maximize", PType::Bool, false, false}};
    static const std::vector<Param> adam = {{"lr", PType::Float},
                                            {"betas", PType::FloatPair},
                                            {"eps", PType::Float},
                                            {"weight_decay", PType::Float},
                                            {"amsgrad", PType::Bool},
                                            {"maximize", PType::Bool, false, false}};
    // torch.optim.RMSprop's signature order
    static const std::vector<Param> rmsprop = {{"lr", PType::Float},
                                               {"alpha", PType::Float},
                                               {"eps", PType::Float},
                                               {"weight_decay", PType::Float},
                                               {"momentum", PType::Float},
                                               {"centered", PType::Bool},
                                               {"maximize", PType::Bool, false, false}};
    // torch.optim.Adagrad's and Adadelta's signature orders (foreach is not taken)
    static const std::vector<Param> adagrad = {{"lr", PType::Float},
                                               {"lr_decay", PType::Float},
                                               {"weight_decay", PType::Float},
                                               {"initial_accumulator_value", PType::Float},
                                               {"eps", PType::Float},
                                               {"maximize", PType::Bool, false, false}};
    static const std::vector<Param> adadelta = {{"lr", PType::Float},
                                                {"rho", PType::Float},
                                                {"eps", PType::Float},
                                                {"weight_decay", PType::Float},
                                                {"maximize", PType::Bool, false, false}};
    BoundArgs args(v,
                   o.kind == OptimizerKind::SGD        ? sgd
                   : o.kind == OptimizerKind::RMSprop  ? rmsprop
                   : o.kind == OptimizerKind::Adagrad  ? adagrad
                   : o.kind == OptimizerKind::Adadelta ? adadelta
                                                       : adam,
                   diags_);
    if (!args.bind()) return;
    // torch.optim's defaults
    o.lr = o.kind == OptimizerKind::SGD        ? 0.0
           : o.kind == OptimizerKind::RMSprop  ? 0.01
           : o.kind == OptimizerKind::Adagrad  ? 0.01
           : o.kind == OptimizerKind::Adadelta ? 1.0
                                               : 0.001;
    if (o.kind == OptimizerKind::Adagrad) o.eps = 1e-10;
    if (o.kind == OptimizerKind::Adadelta) o.eps = 1e-6;
    // The optimizers' own ValueErrors, in PyTorch's words ("Invalid rho value: 1.5").
    auto invalid = [&](const char* name, const char* what, bool ok, const char* cond) {
      if (!ok)
        args.error(
            args.get(name)->loc,
            fmt::format("{}(): Invalid {}: {}", v.text, what, BoundArgs::exprText(*args.get(name))),
            fmt::format("{} must be {}", name, cond));
    };
    o.weight_decay = o.kind == OptimizerKind::AdamW ? 0.01 : 0.0; // torch.optim.AdamW's default
    args.getBool("maximize", o.maximize);
    if (args.getFloat("lr", o.lr) && args.get("lr") && !(o.lr > 0))
      args.rangeError("lr", "> 0");
    if (args.getFloat("weight_decay", o.weight_decay) && args.get("weight_decay") &&
        !(o.weight_decay >= 0))
      args.rangeError("weight_decay", ">= 0");
    if (o.kind == OptimizerKind::Adagrad) {
      if (args.getFloat("lr_decay", o.lr_decay) && args.get("lr_decay"))
        invalid("lr_decay", "lr_decay value", o.lr_decay >= 0, ">= 0");
      if (args.getFloat("initial_accumulator_value", o.initial_accumulator_value) &&
          args.get("initial_accumulator_value"))
        invalid("initial_accumulator_value", "initial_accumulator_value value",
                o.initial_accumulator_value >= 0, ">= 0");
      if (args.getFloat("eps", o.eps) && args.get("eps"))
        invalid("eps", "epsilon value", o.eps >= 0, ">= 0");
    } else if (o.kind == OptimizerKind::Adadelta) {
      if (args.getFloat("rho", o.rho) && args.get("rho"))
        invalid("rho", "rho value", o.rho >= 0 && o.rho <= 1, "in [0, 1]");
      if (args.getFloat("eps", o.eps) && args.get("eps"))
        invalid("eps", "epsilon value", o.eps >= 0, ">= 0");
    } else if (o.kind == OptimizerKind::RMSprop) {
      // RMSprop.__init__'s ValueErrors (eps, momentum, alpha must be >= 0)
      if (args.getFloat("eps", o.eps) && args.get("eps") && !(o.eps >= 0))
        args.rangeError("eps", ">= 0");
      if (args.getFloat("momentum", o.momentum) && args.get("momentum") && !(o.momentum >= 0))
        args.rangeError("momentum", ">= 0");
      if (args.getFloat("alpha", o.alpha) && args.get("alpha") && !(o.alpha >= 0))
        args.rangeError("alpha", ">= 0");
      args.getBool("centered", o.centered);
    } else if (o.kind == OptimizerKind::SGD) {
      bool okM = args.getFloat("momentum", o.momentum);
      if (okM && args.get("momentum") && !(o.momentum >= 0)) {
        args.rangeError("momentum", ">= 0");
        okM = false;
      }
      bool okD = args.getFloat("dampening", o.dampening);
      if (okD && args.get("dampening") && !(o.dampening >= 0)) {
        args.rangeError("dampening", ">= 0");
        okD = false;
      }
      if (args.getBool("nesterov", o.nesterov) && o.nesterov && okM && okD &&
          (o.momentum <= 0 || o.dampening != 0))
        args.error(args.get("nesterov")->loc,
                   "Nesterov momentum requires a momentum and zero dampening",
                   fmt::format("SGD has momentum={} and dampening={} here", o.momentum,
                               o.dampening));
    } else {
      if (args.getPair("betas", o.beta1, o.beta2) && args.get("betas")) {
        const ast::Expr* betas = args.get("betas");
        const char* names[2] = {"betas[0]", "betas[1]"};
        double values[2] = {o.beta1, o.beta2};
        for (int i = 0; i < 2; ++i)
          if (!(values[i] >= 0 && values[i] < 1))
            args.rangeError(names[i], "in [0, 1)", &betas->elements[size_t(i)]);
      }
      if (args.getFloat("eps", o.eps) && args.get("eps") && !(o.eps > 0))
        args.rangeError("eps", "> 0");
      args.getBool("amsgrad", o.amsgrad);
    }
  }

  // scheduler = StepLR(step_size=30): torch.optim.lr_scheduler's classes with
  // their argument order (the optimizer argument may be written first, as in
  // a PyTorch script), defaults and ValueErrors. Runs after checkOptimizer:
  // OneCycleLR writes the optimizer's momentum like its constructor does.
  void checkScheduler(const ast::Stmt& s) {
    ast::Expr v = s.value;
    if (!expectCall(v, "a scheduler", "scheduler = StepLR(step_size=30, gamma=0.1)")) return;
    auto it = std::find(kSchedulerNames.begin(), kSchedulerNames.end(), v.text);
    if (it == kSchedulerNames.end()) {
      unknownName(v, "a scheduler", kSchedulerNames);
      return;
    }
    if (!v.args.empty() && v.args[0].name.empty() && v.args[0].value.kind == ast::ExprKind::Name &&
        v.args[0].value.text == "optimizer")
      v.args.erase(v.args.begin()); // StepLR(optimizer, ...): the model's optimizer
    SchedulerSpec sc;
    sc.kind = SchedulerKind(it - kSchedulerNames.begin());
    sc.loc = v.loc;
    using K = SchedulerKind;
    static const std::map<K, std::vector<Param>> params = {
        {K::StepLR, {{"step_size", PType::Int, true}, {"gamma", PType::Float}}},
        {K::MultiStepLR, {{"milestones", PType::IntList, true}, {"gamma", PType::Float}}},
        {K::ExponentialLR, {{"gamma", PType::Float, true}}},
        {K::CosineAnnealingLR, {{"T_max", PType::Int, true}, {"eta_min", PType::Float}}},
        {K::LinearLR,
         {{"start_factor", PType::Float}, {"end_factor", PType::Float}, {"total_iters", PType::Int}}},
        {K::OneCycleLR,
         {{"max_lr", PType::Float, true},
          {"total_steps", PType::Int},
          {"epochs", PType::Int},
          {"steps_per_epoch", PType::Int},
          {"pct_start", PType::Float},
          {"anneal_strategy", PType::String},
          {"cycle_momentum", PType::Bool},
          {"base_momentum", PType::Float},
          {"max_momentum", PType::Float},
          {"div_factor", PType::Float},
          {"final_div_factor", PType::Float},
          {"three_phase", PType::Bool}}},
        {K::ReduceLROnPlateau,
         {{"mode", PType::String},
          {"factor", PType::Float},
          {"patience", PType::Int},
          {"threshold", PType::Float},
          {"threshold_mode", PType::String},
          {"cooldown", PType::Int},
          {"min_lr", PType::Float},
          {"eps", PType::Float}}}};
    BoundArgs args(v, params.at(sc.kind), diags_);
    if (!args.bind()) return;
    auto positive = [&](const char* name, int64_t& out) {
      if (args.getInt(name, out) && args.get(name) && out <= 0) args.rangeError(name, "> 0");
    };
    switch (sc.kind) {
    case K::StepLR:
      positive("step_size", sc.step_size); // 0: Python's ZeroDivisionError at the first step
      args.getFloat("gamma", sc.gamma);
      break;
    case K::MultiStepLR:
      args.getList("milestones", sc.milestones);
      args.getFloat("gamma", sc.gamma);
      break;
    case K::ExponentialLR:
      args.getFloat("gamma", sc.gamma);
      break;
    case K::CosineAnnealingLR:
      positive("T_max", sc.T_max); // 0: a division by zero in torch
      args.getFloat("eta_min", sc.eta_min);
      break;
    case K::LinearLR:
      if (args.getFloat("start_factor", sc.start_factor) && args.get("start_factor") &&
          (sc.start_factor > 1.0 || sc.start_factor <= 0))
        args.error(args.get("start_factor")->loc,
                   "LinearLR(): Starting multiplicative factor expected to be greater than 0 and "
                   "less or equal to 1.");
      if (args.getFloat("end_factor", sc.end_factor) && args.get("end_factor") &&
          (sc.end_factor > 1.0 || sc.end_factor < 0))
        args.error(args.get("end_factor")->loc,
                   "LinearLR(): Ending multiplicative factor expected to be between 0 and 1.");
      if (args.getInt("total_iters", sc.total_iters) && args.get("total_iters") &&
          sc.total_iters < 0)
        args.rangeError("total_iters", ">= 0");
      break;
    case K::OneCycleLR: {
      args.getFloat("max_lr", sc.max_lr);
      if (args.get("max_lr") && !(sc.max_lr > 0)) args.rangeError("max_lr", "> 0");
      auto count = [&](const char* name, int64_t& out) {
        if (args.getInt(name, out) && args.get(name) && out <= 0)
          args.error(args.get(name)->loc, fmt::format("OneCycleLR(): Expected positive integer {}, "
                                                      "but got {}",
                                                      name, out));
      };
      count("total_steps", sc.total_steps);
      count("epochs", sc.epochs);
      count("steps_per_epoch", sc.steps_per_epoch);
      if (args.getFloat("pct_start", sc.pct_start) && args.get("pct_start") &&
          !(sc.pct_start >= 0 && sc.pct_start <= 1))
        args.error(args.get("pct_start")->loc,
                   fmt::format("OneCycleLR(): Expected float between 0 and 1 pct_start, but got {}",
                               sc.pct_start));
      std::string anneal = "cos";
      if (args.getString("anneal_strategy", anneal) && anneal != "cos" && anneal != "linear")
        args.error(args.get("anneal_strategy")->loc,
                   fmt::format("OneCycleLR(): anneal_strategy must by one of 'cos' or 'linear', "
                               "instead got {}",
                               printable(anneal)));
      sc.anneal_cos = anneal == "cos";
      args.getBool("cycle_momentum", sc.cycle_momentum);
      args.getFloat("base_momentum", sc.base_momentum);
      args.getFloat("max_momentum", sc.max_momentum);
      args.getFloat("div_factor", sc.div_factor);
      args.getFloat("final_div_factor", sc.final_div_factor);
      if (args.get("div_factor") && !(sc.div_factor > 0)) args.rangeError("div_factor", "> 0");
      if (args.get("final_div_factor") && !(sc.final_div_factor > 0))
        args.rangeError("final_div_factor", "> 0");
      args.getBool("three_phase", sc.three_phase);
      // __init__ sets group['momentum'] (SGD, RMSprop) or betas[0] (Adam) to max_momentum.
      OptimizerSpec& o = spec_.optimizer;
      if (sc.cycle_momentum &&
          (o.kind == OptimizerKind::Adagrad || o.kind == OptimizerKind::Adadelta)) {
        // torch: neither 'momentum' nor 'betas' in the optimizer's defaults
        const ast::Expr* cm = args.get("cycle_momentum");
        args.error(
            cm ? cm->loc : v.loc,
            "OneCycleLR(): optimizer must support momentum with `cycle_momentum` option "
            "enabled",
            fmt::format("{} has no momentum: write cycle_momentum=False", optimizerName(o.kind)));
      } else if (sc.cycle_momentum) {
        bool has_momentum = o.kind == OptimizerKind::SGD || o.kind == OptimizerKind::RMSprop;
        (has_momentum ? o.momentum : o.beta1) = sc.max_momentum;
        if (has_momentum && args.get("max_momentum") && !(sc.max_momentum > 0))
          args.error(args.get("max_momentum")->loc,
                     fmt::format("OneCycleLR(): cycle_momentum on {} needs max_momentum > 0",
                                 optimizerName(o.kind)),
                     "or cycle_momentum=False");
      }
      break;
    }
    case K::ReduceLROnPlateau: {
      std::string mode = "min", tmode = "rel";
      if (args.getString("mode", mode) && mode != "min" && mode != "max")
        args.error(args.get("mode")->loc,
                   fmt::format("ReduceLROnPlateau(): mode {} is unknown!", printable(mode)));
      sc.mode_max = mode == "max";
      if (args.getFloat("factor", sc.factor) && args.get("factor") && sc.factor >= 1.0)
        args.error(args.get("factor")->loc, "ReduceLROnPlateau(): Factor should be < 1.0.");
      if (args.getInt("patience", sc.patience) && args.get("patience") && sc.patience < 0)
        args.rangeError("patience", ">= 0");
      args.getFloat("threshold", sc.threshold);
      if (args.getString("threshold_mode", tmode) && tmode != "rel" && tmode != "abs")
        args.error(args.get("threshold_mode")->loc,
                   fmt::format("ReduceLROnPlateau(): threshold mode {} is unknown!", printable(tmode)));
      sc.threshold_abs = tmode == "abs";
      if (args.getInt("cooldown", sc.cooldown) && args.get("cooldown") && sc.cooldown < 0)
        args.rangeError("cooldown", ">= 0");
      if (args.getFloat("min_lr", sc.min_lr) && args.get("min_lr") && !(sc.min_lr >= 0))
        args.rangeError("min_lr", ">= 0");
      args.getFloat("eps", sc.eps);
      break;
    }
    }
    if (args.ok()) spec_.scheduler = sc;
  }

  void checkTransform(const ast::Stmt& s) {
    const ast::Expr& v = s.value;
    if (!expectCall(v, "a transform", "transform = Normalize(0.5, 0.5)")) return;
    if (v.text != "Normalize") {
      unknownName(v, "a transform", kTransformNames);
      return;
    }
    static const std::vector<Param> params = {{"mean", PType::Channel, true},
                                              {"std", PType::Channel, true},
                                              {"inplace", PType::Bool}};
    BoundArgs args(v, params, diags_);
    if (!args.bind()) return;
    TransformSpec t;
    t.loc = v.loc;
    bool inplace = false;
    // torchvision's Normalize broadcasts mean and std over [C, H, W]: one
    // value, or one per channel.
    const auto& shape = spec_.input_shape;
    const int64_t channels = inputKnown_ && shape.size() == 3 ? shape[0] : 1;
    const std::string input =
        inputKnown_ ? fmt::format("f32[{}]", fmt::join(shape, ", ")) : std::string("x");
    bool ok = args.getChannels("mean", t.mean, channels, input);
    if (args.getChannels("std", t.std, channels, input)) {
      for (double v : t.std)
        if (v == 0) {
          args.error(args.get("std")->loc, "Normalize(): std must not be 0",
                     "Normalize computes (x - mean) / std");
          ok = false;
          break;
        }
    } else {
      ok = false;
    }
    if (ok && t.mean.size() != t.std.size()) { // one of them broadcast to every channel
      if (t.mean.size() == 1) t.mean.assign(t.std.size(), t.mean[0]);
      if (t.std.size() == 1) t.std.assign(t.mean.size(), t.std[0]);
    }
    args.getBool("inplace", inplace);
    if (args.ok()) spec_.transform = t;
  }

  void checkCount(const ast::Stmt& s, int64_t& out, int64_t max) {
    const ast::Expr& v = s.value;
    if (v.kind == ast::ExprKind::Error) return;
    if (v.kind != ast::ExprKind::Int) {
      error(v.loc, fmt::format("'{}' must be an integer, got {}", s.name, valueDescription(v)));
      return;
    }
    if (v.int_value < 1 || v.int_value > max) {
      error(v.loc, fmt::format("'{}' must be between 1 and {}, got {}", s.name, max, v.text));
      return;
    }
    out = v.int_value;
  }

  /// Linear's `init=` (the weight, fans in/out) and `bias_init=`.
  void checkLinearInit(BoundArgs& args, Layer& layer) {
    if (const ast::Expr* e = args.get("init"))
      if (auto d = checkInit(*e, layer.in_features, layer.out_features)) layer.weight_init = *d;
    if (const ast::Expr* e = args.get("bias_init")) {
      if (!layer.bias) {
        error(e->loc, "bias_init is given but the layer has bias=False",
              "remove bias_init, or the bias=False");
        return;
      }
      if (auto d = checkInit(*e, 0, 0)) layer.bias_init = *d;
    }
  }

  /// `seed = N`: an integer, negative ones taken modulo 2^64 as
  /// torch.manual_seed does (the lexer already refuses numbers beyond 64 bits).
  void checkSeed(const ast::Stmt& s) {
    const ast::Expr& v = s.value;
    if (v.kind == ast::ExprKind::Error) return;
    if (v.kind != ast::ExprKind::Int) {
      error(v.loc, fmt::format("'seed' must be an integer, got {}", valueDescription(v)),
            "like 'seed = 42' (the CLI's --seed overrides it)");
      return;
    }
    spec_.seed = uint64_t(v.int_value);
  }

  /// `clip_grad_value = V` and `clip_grad_norm = MAX`: a number >= 0
  /// (torch.nn.utils takes any float; a negative one would flip or zero the
  /// gradients, never what was meant). At most one of the two.
  void checkClip() {
    auto number = [&](const ast::Stmt& s, std::optional<double>& out, SourceLoc& loc,
                      const char* example) {
      const ast::Expr& v = s.value;
      if (v.kind == ast::ExprKind::Error) return;
      if (v.kind != ast::ExprKind::Int && v.kind != ast::ExprKind::Float) {
        error(v.loc, fmt::format("'{}' must be a number, got {}", s.name, valueDescription(v)),
              fmt::format("like '{}'", example));
        return;
      }
      if (!(v.float_value >= 0) || !std::isfinite(v.float_value)) {
        error(v.loc, fmt::format("'{}' must be a finite number >= 0, got {}", s.name, v.text));
        return;
      }
      out = v.float_value;
      loc = v.loc;
    };
    const ast::Stmt* value = find("clip_grad_value");
    const ast::Stmt* norm = find("clip_grad_norm");
    if (value) number(*value, spec_.clip.value, spec_.clip.value_loc, "clip_grad_value = 0.5");
    if (norm) number(*norm, spec_.clip.norm, spec_.clip.norm_loc, "clip_grad_norm = 1.0");
    if (value && norm)
      error(norm->loc, "give one of 'clip_grad_value' and 'clip_grad_norm', not both",
            fmt::format("'clip_grad_value' is at line {}; a training loop calling both could "
                        "call them in either order",
                        value->loc.line));
  }

  /// `init=` / `bias_init=` of a layer: a torch.nn.init function, called
  /// (`kaiming_uniform(nonlinearity="relu")`) or named (`xavier_uniform`, its
  /// defaults), with or without the trailing underscore, resolved with the
  /// tensor's fans to the distribution it draws (torch/nn/init.py, 1.13).
  /// `fan_in` 0: a 1-D tensor, for which xavier/kaiming are PyTorch's error.
  std::optional<InitDist> checkInit(const ast::Expr& e, int64_t fan_in, int64_t fan_out) {
    if (e.kind == ast::ExprKind::Error) return std::nullopt;
    static const std::vector<std::string> names = {
        "uniform",        "normal",        "constant",        "ones",          "zeros",
        "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal"};
    if (e.kind != ast::ExprKind::Call && e.kind != ast::ExprKind::Name) {
      error(e.loc,
            fmt::format("an init must be a torch.nn.init function, got {}", valueDescription(e)),
            "like init=kaiming_uniform(nonlinearity=\"relu\") or init=zeros");
      return std::nullopt;
    }
    ast::Expr call = e;
    call.kind = ast::ExprKind::Call;
    if (!call.text.empty() && call.text.back() == '_') call.text.pop_back(); // kaiming_uniform_
    auto it = std::find(names.begin(), names.end(), call.text);
    if (it == names.end()) {
      unknownName(e, "an init function", names);
      return std::nullopt;
    }
    const std::string& fn = *it;
    static const std::vector<Param> uniform = {{"a", PType::Float}, {"b", PType::Float}};
    static const std::vector<Param> normal = {{"mean", PType::Float}, {"std", PType::Float}};
    static const std::vector<Param> constant = {{"val", PType::Float, true}};
    static const std::vector<Param> none = {};
    static const std::vector<Param> xavier = {{"gain", PType::Float}};
    static const std::vector<Param> kaiming = {
        {"a", PType::Float}, {"mode", PType::String}, {"nonlinearity", PType::String}};
    const std::vector<Param>* params = &none;
    if (fn == "uniform")
      params = &uniform;
    else if (fn == "normal")
      params = &normal;
    else if (fn == "constant")
      params = &constant;
    else if (fn.starts_with("xavier"))
      params = &xavier;
    else if (fn.starts_with("kaiming"))
      params = &kaiming;
    BoundArgs args(call, *params, diags_);
    if (!args.bind()) return std::nullopt;
    InitDist d;
    if (fn == "zeros" || fn == "ones" || fn == "constant") {
      d.kind = InitDist::Kind::Constant;
      d.a = fn == "ones" ? 1.0 : 0.0;
      if (fn == "constant" && !args.getFloat("val", d.a)) return std::nullopt;
      return d;
    }
    if (fn == "uniform") {
      d.kind = InitDist::Kind::Uniform;
      d.b = 1.0;
      if (!args.getFloat("a", d.a) || !args.getFloat("b", d.b)) return std::nullopt;
      if (d.a > d.b) {
        args.error(e.loc, fmt::format("uniform_ expects to return a [from, to) range, but found "
                                      "from={} > to={}",
                                      d.a, d.b));
        return std::nullopt;
      }
      return d;
    }
    if (fn == "normal") {
      d.kind = InitDist::Kind::Normal;
      d.b = 1.0;
      if (!args.getFloat("mean", d.a) || !args.getFloat("std", d.b)) return std::nullopt;
      if (d.b < 0) {
        args.rangeError("std", ">= 0.0");
        return std::nullopt;
      }
      return d;
    }
    // xavier_* and kaiming_*: torch.nn.init._calculate_fan_in_and_fan_out.
    if (fan_in == 0) {
      error(e.loc, "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions",
            "a bias takes zeros, ones, constant(val), uniform(a, b) or normal(mean, std)");
      return std::nullopt;
    }
    const bool isUniform = fn.ends_with("uniform");
    double stdev = 0;
    if (fn.starts_with("xavier")) {
      double gain = 1.0;
      if (!args.getFloat("gain", gain)) return std::nullopt;
      stdev = gain * std::sqrt(2.0 / double(fan_in + fan_out));
    } else {
      double a = 0;
      std::string mode = "fan_in", nonlinearity = "leaky_relu";
      if (!args.getFloat("a", a) || !args.getString("mode", mode) ||
          !args.getString("nonlinearity", nonlinearity))
        return std::nullopt;
      if (mode != "fan_in" && mode != "fan_out") {
        args.error(args.get("mode")->loc,
                   fmt::format("Mode {} not supported, please use one of fan_in, fan_out", mode));
        return std::nullopt;
      }
      // torch.nn.init.calculate_gain(nonlinearity, a)
      static const std::vector<std::string> gains = {
          "linear",           "conv1d",  "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
          "conv_transpose3d", "sigmoid", "tanh",   "relu",   "leaky_relu",       "selu"};
      double gain = 1.0;
      if (nonlinearity == "tanh")
        gain = 5.0 / 3;
      else if (nonlinearity == "relu")
        gain = std::sqrt(2.0);
      else if (nonlinearity == "leaky_relu")
        gain = std::sqrt(2.0 / (1 + a * a));
      else if (nonlinearity == "selu")
        gain = 3.0 / 4;
      else if (std::find(gains.begin(), gains.end(), nonlinearity) == gains.end()) {
        std::string hint = didYouMean(nonlinearity, gains);
        args.error(args.get("nonlinearity")->loc,
                   fmt::format("Unsupported nonlinearity {}", nonlinearity),
                   hint.empty() ? "one of " + fmt::format("{}", fmt::join(gains, ", ")) : hint);
        return std::nullopt;
      }
      stdev = gain / std::sqrt(double(mode == "fan_in" ? fan_in : fan_out));
    }
    if (isUniform) {
      const double bound = std::sqrt(3.0) * stdev;
      d.kind = InitDist::Kind::Uniform;
      d.a = -bound;
      d.b = bound;
    } else {
      d.kind = InitDist::Kind::Normal;
      d.b = stdev;
    }
    return d;
  }

  void checkTargetAgainstLoss() {
    if (!lossOk_ || !targetKnown_) return;
    const ast::Stmt& t = *target_;
    const char* loss = lossName(spec_.loss.kind);
    bool wantsClasses =
        spec_.loss.kind == LossKind::NLLLoss || spec_.loss.kind == LossKind::CrossEntropyLoss;
    int64_t n = outputSize_ >= 0 ? outputSize_ : spec_.target_size;
    if (wantsClasses && spec_.target_kind != TargetKind::Class) {
      error(spec_.loss.loc,
            fmt::format("{} needs class labels but target '{}' is f32[{}]", loss, t.name,
                        spec_.target_size),
            fmt::format("declare the target as 'target {}: class[{}]' (integer labels)", t.name, n));
      return;
    }
    if (!wantsClasses && spec_.target_kind != TargetKind::Real) {
      error(spec_.loss.loc,
            fmt::format("{} needs real-valued targets but target '{}' is class[{}]", loss, t.name,
                        spec_.target_size),
            fmt::format("declare the target as 'target {}: f32[{}]', or use NLLLoss or "
                        "CrossEntropyLoss for class labels",
                        t.name, n));
      return;
    }
    // torch.nn.functional.nll_loss's check, with its message.
    if (wantsClasses && !spec_.loss.weight.empty() &&
        int64_t(spec_.loss.weight.size()) != spec_.target_size) {
      error(spec_.loss.weight_loc,
            fmt::format("weight tensor should be defined either for all {} classes or no classes "
                        "but got weight tensor of shape: [{}]",
                        spec_.target_size, spec_.loss.weight.size()),
            fmt::format("target '{}' is class[{}]: give one weight per class", t.name,
                        spec_.target_size));
      return;
    }
    // pos_weight broadcasts against the targets: one per output, or one.
    if (!spec_.loss.pos_weight.empty() && spec_.loss.pos_weight.size() != 1 &&
        int64_t(spec_.loss.pos_weight.size()) != spec_.target_size) {
      error(spec_.loss.pos_weight_loc,
            fmt::format("The size of tensor a ({}) must match the size of tensor b ({}) at "
                        "non-singleton dimension 1",
                        spec_.loss.pos_weight.size(), spec_.target_size),
            fmt::format("target '{}' is f32[{}]: give one pos_weight per output (or one for all)",
                        t.name, spec_.target_size));
      return;
    }
    // PyTorch's BCELoss raises at run time on values outside [0, 1]; here the
    // last layer tells statically whether the outputs are probabilities.
    if (spec_.loss.kind == LossKind::BCELoss && modelOk_ && !spec_.layers.empty()) {
      const Layer& last = spec_.layers.back();
      if (last.kind != LayerKind::Sigmoid && last.kind != LayerKind::Softmax) {
        error(spec_.loss.loc,
              fmt::format("BCELoss expects probabilities in [0, 1] but the model ends with {}",
                          layerName(last.kind)),
              "end the model with Sigmoid(), or use BCEWithLogitsLoss on raw outputs");
        return;
      }
    }
    if (outputSize_ < 0 || !modelOk_ || outputSize_ == spec_.target_size) return;
    if (wantsClasses)
      error(t.type.size_loc,
            fmt::format("target '{}' has {} class{} but the model gives {} output{}", t.name,
                        spec_.target_size, spec_.target_size == 1 ? "" : "es", outputSize_,
                        outputSize_ == 1 ? "" : "s"),
            fmt::format("{} needs one output per class: make the last Linear's out_features {}",
                        loss, spec_.target_size));
    else
      error(t.type.size_loc,
            fmt::format("target '{}' has {} value{} but the model gives {} output{}", t.name,
                        spec_.target_size, spec_.target_size == 1 ? "" : "s", outputSize_,
                        outputSize_ == 1 ? "" : "s"),
            fmt::format("{} compares outputs and targets element by element", loss));
  }

  const ast::File& file_;
  Diagnostics& diags_;
  ModelSpec spec_;
  const ast::Stmt* input_ = nullptr;
  const ast::Stmt* target_ = nullptr;
  std::map<std::string, const ast::Stmt*> byKey_;
  bool inputKnown_ = false, targetKnown_ = false, lossOk_ = false, modelOk_ = false;
  int64_t outputSize_ = -1; // the model's output width, -1 if unknown
  std::vector<int64_t> shape_; // checkModel: the shape per sample so far, empty if unknown
  /// The shape a Flatten() merged, while no layer has changed the shape since
  /// (for "Linear(9000, 128) expects 9000 inputs but Flatten() gives 9216 (64 x 12 x 12)").
  std::vector<int64_t> lastFlatten_;
};

} // namespace

std::string didYouMean(const std::string& name, const std::vector<std::string>& candidates) {
  std::string lname = lower(name);
  size_t best = SIZE_MAX;
  std::string bestName;
  for (const std::string& c : candidates) {
    size_t d = editDistance(lname, lower(c));
    if (d < best) {
      best = d;
      bestName = c;
    }
  }
  // Short names tolerate one edit, longer ones two; never suggest a rewrite
  // of the whole name.
  size_t limit = lname.size() >= 4 ? 2 : 1;
  if (!bestName.empty() && best <= limit && best < lname.size())
    return fmt::format("did you mean '{}'?", bestName);
  // A prefix of a longer name ("CrossEntropy" for "CrossEntropyLoss").
  if (lname.size() >= 3)
    for (const std::string& c : candidates)
      if (lower(c).rfind(lname, 0) == 0) return fmt::format("did you mean '{}'?", c);
  return {};
}

std::optional<ModelSpec> analyze(const ast::File& file, Diagnostics& diags) {
  return Sema(file, diags).run();
}

} // namespace descent
