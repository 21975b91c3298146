// Lexer for model files (see lexer.h). Works on bytes: columns count bytes, so
// a caret printed under a source line points at the reported byte.
#include "compiler/frontend/lexer.h"

#include <charconv>
#include <fmt/format.h>

namespace descent {

namespace {

// A lexer over one source text. Kept in a class so the position bookkeeping
// (line, column) lives in one place.
class Lexer {
public:
  Lexer(const std::string& src, Diagnostics& diags) : src_(src), diags_(diags) {}

  std::vector<Token> run() {
    // A UTF-8 byte-order mark (Windows editors write one) is not part of the
    // text: skip it without moving the column, as the CSV reader does.
    if (src_.compare(0, 3, "\xEF\xBB\xBF") == 0) pos_ = 3;
    while (pos_ < src_.size()) {
      if (errorCount_ >= kMaxErrors) {
        // A binary file would otherwise produce one error per byte.
        diags_.error(here(), "too many invalid characters; the rest of the file is ignored",
                     "model files are ASCII text");
        break;
      }
      lexOne();
    }
    Token end;
    end.kind = TokKind::End;
    end.loc = here();
    toks_.push_back(end);
    return std::move(toks_);
  }

private:
  static constexpr int kMaxErrors = 20;

  static bool isIdentStart(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  }
  static bool isDigit(unsigned char c) { return c >= '0' && c <= '9'; }
  static bool isIdentChar(unsigned char c) { return isIdentStart(c) || isDigit(c); }
  // Bytes that may never appear outside comments: control characters and
  // anything non-ASCII (the language is ASCII; comments may hold any text).
  static bool isBadByte(unsigned char c) {
    return (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c >= 0x7f;
  }

  SourceLoc here() const { return {line_, col_}; }
  unsigned char peek(size_t ahead = 0) const {
    return pos_ + ahead < src_.size() ? static_cast<unsigned char>(src_[pos_ + ahead]) : 0;
  }
  void advance() {
    if (src_[pos_] == '\n') {
      ++line_;
      col_ = 1;
    } else {
      ++col_;
    }
    ++pos_;
  }

  void error(SourceLoc loc, std::string msg, std::string hint = {}) {
    ++errorCount_;
    diags_.error(loc, std::move(msg), std::move(hint));
  }

  void push(TokKind kind, SourceLoc loc, size_t start) {
    Token t;
    t.kind = kind;
    t.loc = loc;
    t.text = src_.substr(start, pos_ - start);
    toks_.push_back(std::move(t));
  }

  void lexOne() {
    unsigned char c = peek();
    SourceLoc loc = here();
    size_t start = pos_;
    if (c == ' ' || c == '\t' || c == '\r') {
      advance();
      return;
    }
    if (c == '#') {
      // Comments may contain any bytes (names in other languages, for example).
      while (pos_ < src_.size() && peek() != '\n') advance();
      return;
    }
    if (c == '\n') {
      advance();
      // Blank lines produce no extra separators.
      if (!toks_.empty() && toks_.back().kind != TokKind::Newline) push(TokKind::Newline, loc, start);
      return;
    }
    if (isIdentStart(c)) {
      while (isIdentChar(peek())) advance();
      push(TokKind::Ident, loc, start);
      Token& t = toks_.back();
      // Python spells the booleans True/False; accept both spellings.
      if (t.text == "true" || t.text == "True") t.kind = TokKind::True;
      if (t.text == "false" || t.text == "False") t.kind = TokKind::False;
      return;
    }
    if (isDigit(c) || (c == '.' && isDigit(peek(1)))) {
      lexNumber();
      return;
    }
    if (c == '"' || c == '\'') {
      lexString();
      return;
    }
    TokKind kind;
    switch (c) {
    case '(': kind = TokKind::LParen; break;
    case ')': kind = TokKind::RParen; break;
    case '[': kind = TokKind::LBracket; break;
    case ']': kind = TokKind::RBracket; break;
    case ',': kind = TokKind::Comma; break;
    case '=': kind = TokKind::Equal; break;
    case ':': kind = TokKind::Colon; break;
    case '-': kind = TokKind::Minus; break;
    case '.': kind = TokKind::Dot; break;
    default:
      if (isBadByte(c)) {
        // One error for a whole run of bad bytes (a UTF-8 sequence, binary junk).
        error(loc, fmt::format("invalid byte 0x{:02X} in model file", c),
              "model files are ASCII text; non-ASCII characters may appear only in comments");
        while (pos_ < src_.size() && isBadByte(peek())) advance();
      } else {
        error(loc, fmt::format("unexpected character '{}'", char(c)));
        advance();
      }
      push(TokKind::Error, loc, start);
      return;
    }
    advance();
    push(kind, loc, start);
  }

  void lexNumber() {
    SourceLoc loc = here();
    size_t start = pos_;
    bool isFloat = false;
    while (isDigit(peek())) advance();
    if (peek() == '.') {
      isFloat = true;
      advance();
      while (isDigit(peek())) advance();
    }
    if ((peek() == 'e' || peek() == 'E') &&
        (isDigit(peek(1)) || ((peek(1) == '+' || peek(1) == '-') && isDigit(peek(2))))) {
      isFloat = true;
      advance();
      if (peek() == '+' || peek() == '-') advance();
      while (isDigit(peek())) advance();
    }
    if (isIdentChar(peek()) || peek() == '.') {
      // "784abc", "1e", "1.2.3": one malformed token, not a number and a name.
      while (isIdentChar(peek()) || peek() == '.') advance();
      error(loc, fmt::format("invalid number '{}'", src_.substr(start, pos_ - start)));
      push(TokKind::Error, loc, start);
      return;
    }
    push(isFloat ? TokKind::Float : TokKind::Int, loc, start);
    Token& t = toks_.back();
    const char* first = src_.data() + start;
    const char* last = src_.data() + pos_;
    bool ok;
    if (isFloat) {
      auto r = std::from_chars(first, last, t.float_value);
      // from_chars also reports underflow (1e-999) as out of range: such a
      // value cannot be what the user meant either.
      ok = r.ec == std::errc() && r.ptr == last;
    } else {
      auto r = std::from_chars(first, last, t.int_value);
      ok = r.ec == std::errc() && r.ptr == last;
      t.float_value = double(t.int_value);
    }
    if (!ok) {
      error(loc, "number out of range",
            isFloat ? "floats must fit in a 64-bit double"
                    : "integers must fit in a signed 64-bit integer");
      t.kind = TokKind::Error;
    }
  }

  void lexString() {
    SourceLoc loc = here();
    size_t start = pos_;
    char quote = char(peek());
    advance();
    std::string contents;
    bool bad = false;
    while (pos_ < src_.size() && peek() != '\n' && char(peek()) != quote) {
      if (isBadByte(peek()) && !bad) {
        bad = true;
        error(here(), fmt::format("invalid byte 0x{:02X} in string", peek()),
              "model files are ASCII text; non-ASCII characters may appear only in comments");
      }
      contents += char(peek());
      advance();
    }
    if (pos_ >= src_.size() || peek() == '\n') {
      error(loc, "unterminated string", fmt::format("add the closing {} on the same line", quote));
      push(TokKind::Error, loc, start);
      return;
    }
    advance(); // closing quote
    push(bad ? TokKind::Error : TokKind::String, loc, start);
    toks_.back().text = std::move(contents);
  }

  const std::string& src_;
  Diagnostics& diags_;
  std::vector<Token> toks_;
  size_t pos_ = 0;
  int line_ = 1;
  int col_ = 1;
  int errorCount_ = 0;
};

} // namespace

std::string describeToken(const Token& t) {
  switch (t.kind) {
  case TokKind::Ident: return fmt::format("'{}'", t.text);
  case TokKind::Int:
  case TokKind::Float: return fmt::format("number '{}'", t.text);
  case TokKind::String: return "a string";
  case TokKind::True:
  case TokKind::False: return fmt::format("'{}'", t.text);
  case TokKind::Newline: return "end of line";
  case TokKind::End: return "end of file";
  case TokKind::Error: return "an invalid token";
  default: return fmt::format("'{}'", t.text);
  }
}

std::vector<Token> lex(const std::string& source, Diagnostics& diags) {
  return Lexer(source, diags).run();
}

} // namespace descent
