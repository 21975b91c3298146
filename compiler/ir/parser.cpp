// Recursive-descent parser of the graph IR text form (see parser.h, docs/ir.md).
#include "compiler/ir/parser.h"

#include "compiler/ir/verifier.h"

#include <cctype>
#include <charconv>
#include <cstdlib>
#include <fmt/format.h>
#include <optional>

namespace descent {

namespace {

struct ParseError {
  int line, col;
  std::string message;
};

class IrParser {
public:
  explicit IrParser(std::string_view text) : text_(text) {}

  std::unique_ptr<Graph> parse() {
    expectWord("graph");
    expectChar('@');
    auto g = std::make_unique<Graph>(ident());
    g_ = g.get();
    expectChar('(');
    if (!peekChar(')')) {
      do {
        auto [name, type] = arg();
        if (g_->findValue(name)) fail(fmt::format("%{} defined twice", name));
        InputRole role = InputRole::None;
        if (!peekChar(',') && !peekChar(')')) {
          size_t at = mark();
          std::string word = ident();
          auto r = parseInputRole(word);
          if (!r) failAt(at, fmt::format("unknown input role '{}' (expected input, target, step or seed)", word));
          if (g_->inputByRole(*r)) failAt(at, fmt::format("two inputs have the role '{}'", word));
          role = *r;
        }
        g_->addInput(name, type, role);
      } while (acceptChar(','));
    }
    expectChar(')');
    for (;;) {
      if (acceptWord("params")) argList(true);
      else if (acceptWord("state")) argList(false);
      else break;
    }
    expectChar('{');
    while (!acceptChar('}')) {
      if (acceptWord("return")) {
        do {
          std::string n = ident(/*allow_colon=*/true); // "grad:0.weight"
          expectChar('=');
          g_->setOutput(n, use());
        } while (acceptChar(','));
        continue;
      }
      opLine();
    }
    skipSpace();
    if (pos_ < text_.size()) fail("unexpected text after the graph");
    return g;
  }

  [[noreturn]] void fail(std::string message) { failAt(pos_, std::move(message)); }

  [[noreturn]] void failAt(size_t pos, std::string message) {
    int line = 1, col = 1;
    for (size_t i = 0; i < pos && i < text_.size(); ++i) {
      if (text_[i] == '\n') ++line, col = 1;
      else ++col;
    }
    throw ParseError{line, col, std::move(message)};
  }

private:
  void argList(bool params) {
    expectChar('(');
    do {
      auto [name, type] = arg();
      std::string external = stringLit();
      if (g_->findValue(name)) fail(fmt::format("%{} defined twice", name));
      size_t at = mark();
      ParamDesc desc = paramDesc(type.shape);
      std::string bad = checkParamDesc(desc, type.shape);
      if (!bad.empty()) failAt(at, fmt::format("%{}: {}", name, bad));
      if (params)
        g_->addParam(name, type, external, desc);
      else
        g_->addState(name, type, external, desc);
    } while (acceptChar(','));
    expectChar(')');
  }

  /// `{torch_shape=[..], perm=[..], fan_in=N}`, each part optional, or
  /// nothing: PyTorch's layout (identity), fan-in 0. A missing torch_shape
  /// follows from the IR shape and perm.
  ParamDesc paramDesc(const std::vector<int64_t>& ir_shape) {
    std::optional<std::vector<int64_t>> torch_shape;
    std::optional<std::vector<int64_t>> perm;
    int64_t fan_in = 0;
    InitDist init;
    BufferKind buffer = BufferKind::None;
    if (acceptChar('{')) {
      do {
        size_t at = mark();
        std::string key = ident();
        expectChar('=');
        if (key == "torch_shape")
          torch_shape = intList();
        else if (key == "perm")
          perm = intList();
        else if (key == "fan_in")
          fan_in = integer();
        else if (key == "init") {
          size_t value_at = mark();
          std::string text = stringLit();
          std::optional<InitDist> d = parseInitDist(text);
          if (!d)
            failAt(value_at, fmt::format("bad init '{}' (expected constant(v), uniform(a, b) with "
                                         "a <= b, or normal(mean, std) with std >= 0)",
                                         text));
          init = *d;
        } else if (key == "buffer") {
          size_t value_at = mark();
          std::string text = stringLit();
          if (text != "float" && text != "count")
            failAt(value_at,
                   fmt::format("bad buffer '{}' (expected \"float\" or \"count\")", text));
          buffer = text == "float" ? BufferKind::Float : BufferKind::Count;
        } else
          failAt(at, fmt::format("unknown param description '{}' (expected torch_shape, perm, "
                                 "fan_in, init or buffer)",
                                 key));
      } while (acceptChar(','));
      expectChar('}');
    }
    ParamDesc d;
    d.fan_in = fan_in;
    d.init = init;
    d.buffer = buffer;
    if (!perm) {
      d = identityDesc(torch_shape ? *torch_shape : ir_shape, fan_in);
      d.init = init;
      d.buffer = buffer;
      return d;
    }
    for (int64_t p : *perm)
      d.perm.push_back(p >= 0 && p < int64_t(perm->size()) ? int(p) : -1);
    if (torch_shape) {
      d.torch_shape = *torch_shape;
    } else if (d.perm.size() == ir_shape.size()) {
      d.torch_shape.assign(ir_shape.size(), 0);
      for (size_t i = 0; i < d.perm.size(); ++i)
        if (d.perm[i] >= 0) d.torch_shape[size_t(d.perm[i])] = ir_shape[i];
    }
    return d;
  }

  std::vector<int64_t> intList() {
    std::vector<int64_t> v;
    expectChar('[');
    if (!peekChar(']')) {
      do
        v.push_back(integer());
      while (acceptChar(','));
    }
    expectChar(']');
    return v;
  }

  std::pair<std::string, TensorType> arg() {
    expectChar('%');
    std::string name = ident();
    expectChar(':');
    return {name, type()};
  }

  TensorType type() {
    size_t at = mark();
    std::string dt = ident();
    auto d = parseDType(dt);
    if (!d) failAt(at, fmt::format("unknown dtype '{}'", dt));
    TensorType t{*d, {}};
    expectChar('[');
    if (!peekChar(']')) {
      do {
        int64_t v = integer();
        if (v < 1) fail("dimensions must be positive");
        t.shape.push_back(v);
      } while (acceptChar(','));
    }
    expectChar(']');
    return t;
  }

  Value* use() {
    size_t at = mark();
    expectChar('%');
    std::string name = ident();
    Value* v = g_->findValue(name);
    if (!v) failAt(at, fmt::format("use of undefined value %{}", name));
    return v;
  }

  void opLine() {
    std::string result;
    if (acceptChar('%')) {
      result = ident();
      if (g_->findValue(result)) fail(fmt::format("%{} defined twice", result));
      expectChar('=');
    }
    size_t op_pos = mark();
    std::string name = ident();
    const OpInfo* info = findOp(name);
    if (!info) failAt(op_pos, fmt::format("unknown op '{}'", name));
    std::vector<Value*> operands;
    skipSpace();
    if (peekChar('%')) {
      do operands.push_back(use());
      while (acceptChar(','));
    }
    Attrs attrs;
    if (acceptChar('{')) {
      if (!peekChar('}')) {
        do {
          std::string key = ident();
          expectChar('=');
          attrs.set(key, attrValue());
        } while (acceptChar(','));
      }
      expectChar('}');
    }
    std::optional<TensorType> rtype;
    bool has_result = info->category != OpCategory::Update;
    if (has_result) {
      if (result.empty()) fail(fmt::format("{} needs a result name", name));
      expectChar(':');
      rtype = type();
    } else if (!result.empty()) {
      fail(fmt::format("{} has no result", name));
    }
    SourceLoc loc;
    if (acceptWord("loc")) {
      expectChar('(');
      std::string file = stringLit();
      if (g_->file().empty()) g_->setFile(file);
      expectChar(':');
      loc.line = int(integer());
      expectChar(':');
      loc.col = int(integer());
      expectChar(')');
    }
    Value* from = nullptr;
    if (acceptWord("from")) from = use();
    Op* op = g_->addUnchecked(info->kind, std::move(operands), std::move(attrs), loc, rtype, result);
    op->from = from;
    TensorType inferred;
    std::string err = inferType(*op, inferred);
    if (!err.empty()) failAt(op_pos, err);
    if (has_result && inferred != *rtype)
      failAt(op_pos, fmt::format("{} gives {}, but the text says {}", name, inferred.str(), rtype->str()));
  }

  Attr attrValue() {
    skipSpace();
    if (peekChar('"')) return stringLit();
    if (acceptWord("true")) return true;
    if (acceptWord("false")) return false;
    if (acceptChar('[')) { // a list of reals (integers read as reals)
      std::vector<double> list;
      if (!peekChar(']')) {
        do {
          Attr v = attrValue();
          if (auto* d = std::get_if<double>(&v))
            list.push_back(*d);
          else if (auto* i = std::get_if<int64_t>(&v))
            list.push_back(double(*i));
          else
            fail("a list attribute holds numbers only");
        } while (acceptChar(','));
      }
      expectChar(']');
      return list;
    }
    size_t start = pos_;
    if (pos_ < text_.size() && (text_[pos_] == '-' || text_[pos_] == '+')) ++pos_;
    while (pos_ < text_.size() &&
           (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '.' ||
            ((text_[pos_] == '-' || text_[pos_] == '+') &&
             (text_[pos_ - 1] == 'e' || text_[pos_ - 1] == 'E'))))
      ++pos_;
    std::string tok(text_.substr(start, pos_ - start));
    if (tok.empty()) fail("expected an attribute value");
    bool is_real = tok.find_first_of(".eEn") != std::string::npos;
    if (!is_real) {
      int64_t v = 0;
      auto r = std::from_chars(tok.data(), tok.data() + tok.size(), v);
      if (r.ec != std::errc() || r.ptr != tok.data() + tok.size()) fail("bad integer '" + tok + "'");
      return v;
    }
    char* end = nullptr;
    double d = std::strtod(tok.c_str(), &end);
    if (end != tok.c_str() + tok.size()) fail("bad number '" + tok + "'");
    return d;
  }

  int64_t integer() {
    skipSpace();
    size_t start = pos_;
    while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    int64_t v = 0;
    auto r = std::from_chars(text_.data() + start, text_.data() + pos_, v);
    if (start == pos_ || r.ec != std::errc()) fail("expected an integer");
    return v;
  }

  std::string stringLit() {
    expectChar('"');
    std::string s;
    while (pos_ < text_.size() && text_[pos_] != '"') {
      if (text_[pos_] == '\\' && pos_ + 1 < text_.size()) ++pos_;
      s += text_[pos_++];
    }
    if (pos_ >= text_.size()) fail("unterminated string");
    ++pos_;
    return s;
  }

  std::string ident(bool allow_colon = false) {
    skipSpace();
    size_t start = pos_;
    while (pos_ < text_.size() &&
           (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_' ||
            text_[pos_] == '.' || (allow_colon && text_[pos_] == ':')))
      ++pos_;
    if (start == pos_) fail("expected a name");
    return std::string(text_.substr(start, pos_ - start));
  }

  // Position of the next token (after spaces and comments), for messages.
  size_t mark() {
    skipSpace();
    return pos_;
  }

  void skipSpace() {
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c == '/' && pos_ + 1 < text_.size() && text_[pos_ + 1] == '/') {
        while (pos_ < text_.size() && text_[pos_] != '\n') ++pos_;
      } else if (std::isspace(static_cast<unsigned char>(c))) {
        ++pos_;
      } else {
        break;
      }
    }
  }

  bool peekChar(char c) {
    skipSpace();
    return pos_ < text_.size() && text_[pos_] == c;
  }
  bool acceptChar(char c) {
    if (!peekChar(c)) return false;
    ++pos_;
    return true;
  }
  void expectChar(char c) {
    if (!acceptChar(c)) fail(fmt::format("expected '{}'", c));
  }
  bool acceptWord(std::string_view w) {
    skipSpace();
    if (text_.substr(pos_, w.size()) != w) return false;
    size_t end = pos_ + w.size();
    if (end < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[end])) || text_[end] == '_'))
      return false;
    pos_ = end;
    return true;
  }
  void expectWord(std::string_view w) {
    if (!acceptWord(w)) fail(fmt::format("expected '{}'", w));
  }

  std::string_view text_;
  size_t pos_ = 0;
  Graph* g_ = nullptr;
};

} // namespace

std::unique_ptr<Graph> parseGraph(std::string_view text, std::string& error) {
  IrParser p(text);
  try {
    auto g = p.parse();
    std::string v = verifyGraph(*g);
    if (!v.empty()) {
      error = v;
      return nullptr;
    }
    return g;
  } catch (const ParseError& e) {
    error = fmt::format("{}:{}: {}", e.line, e.col, e.message);
    return nullptr;
  }
}

} // namespace descent
