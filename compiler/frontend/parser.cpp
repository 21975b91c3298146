// Recursive-descent parser for model files (see parser.h and docs/language.md).
//
// Error recovery: a syntax error records one diagnostic and unwinds to the
// statement being parsed (a private exception), which is kept as "broken"; the
// parser then skips to the next line that starts a statement. Newlines inside
// brackets are ignored, except that a line starting in column 1 with `NAME =`
// is taken as the next statement: then the bracket was never closed.
#include "compiler/frontend/parser.h"

#include <cassert>
#include <fmt/format.h>

namespace descent {

namespace {

// Thrown after a syntax error was recorded; caught at statement level.
struct ParseAbort {};

class Parser {
public:
  Parser(const std::vector<Token>& toks, Diagnostics& diags) : toks_(toks), diags_(diags) {
    assert(!toks_.empty() && toks_.back().kind == TokKind::End);
  }

  ast::File run() {
    ast::File file;
    for (;;) {
      skipNewlines();
      if (cur().kind == TokKind::End) break;
      if (errors_ >= kMaxErrors) {
        diags_.error(cur().loc, fmt::format("too many errors; stopping after {}", kMaxErrors),
                     "is this a model file?");
        break;
      }
      size_t start = pos_;
      depth_ = 0; // a guard that threw from its constructor did not undo its increment
      ast::Stmt stmt;
      stmt.loc = cur().loc;
      try {
        parseStatement(stmt);
      } catch (const ParseAbort&) {
        stmt.broken = true;
        synchronize(start);
      }
      // A statement that broke before its kind was known carries no meaning.
      if (!stmt.name.empty()) file.stmts.push_back(std::move(stmt));
    }
    file.end_loc = cur().loc;
    return file;
  }

private:
  // Keeps recursion bounded: every bracket level goes through one guard.
  class DepthGuard {
  public:
    DepthGuard(Parser& p, SourceLoc open) : p_(p) {
      if (++p_.depth_ > kMaxNesting)
        p_.fail(open, fmt::format("too deeply nested (more than {} levels of brackets)", kMaxNesting));
    }
    ~DepthGuard() { --p_.depth_; }
    DepthGuard(const DepthGuard&) = delete;
    DepthGuard& operator=(const DepthGuard&) = delete;

  private:
    Parser& p_;
  };

  const Token& cur() const { return toks_[pos_]; }
  const Token& ahead(size_t n) const { return toks_[std::min(pos_ + n, toks_.size() - 1)]; }
  void advance() {
    if (cur().kind != TokKind::End) ++pos_;
  }
  void skipNewlines() {
    while (cur().kind == TokKind::Newline) advance();
  }

  [[noreturn]] void fail(SourceLoc loc, std::string msg, std::string hint = {}) {
    ++errors_;
    diags_.error(loc, std::move(msg), std::move(hint));
    throw ParseAbort{};
  }
  // Fails at the current token, quietly if the lexer already reported it.
  [[noreturn]] void failHere(std::string msg, std::string hint = {}) {
    if (cur().kind == TokKind::Error) throw ParseAbort{};
    fail(cur().loc, std::move(msg), std::move(hint));
  }

  // True if the current token looks like the start of a new statement: a
  // name in column 1 followed by '=' (or `input NAME`, `target NAME`).
  bool atStatementStart() const {
    const Token& t = cur();
    if (t.kind != TokKind::Ident || t.loc.col != 1) return false;
    if (ahead(1).kind == TokKind::Equal) return true;
    return (t.text == "input" || t.text == "target") && ahead(1).kind == TokKind::Ident;
  }

  // Skips to the first token of the next line that starts at column 1 with a
  // name (a `)` closing a Sequential in column 1 is not a statement start).
  void synchronize(size_t stmtStart) {
    if (pos_ == stmtStart) advance();
    while (cur().kind != TokKind::End) {
      if (toks_[pos_ - 1].kind == TokKind::Newline && cur().kind == TokKind::Ident &&
          cur().loc.col == 1)
        return;
      advance();
    }
  }

  // Inside brackets newlines are insignificant, unless the next line clearly
  // starts a new statement: then the bracket opened at `open` was never closed.
  void skipNewlinesIn(const Token& open) {
    bool sawNewline = false;
    while (cur().kind == TokKind::Newline) {
      sawNewline = true;
      advance();
    }
    if (cur().kind == TokKind::End || (sawNewline && atStatementStart()))
      fail(open.loc, fmt::format("'{}' was never closed", open.text),
           cur().kind == TokKind::End
               ? std::string("the file ends before the closing bracket")
               : fmt::format("the next statement starts at line {}", cur().loc.line));
  }

  void expectEndOfStatement() {
    if (cur().kind == TokKind::Newline || cur().kind == TokKind::End) return;
    failHere(fmt::format("unexpected {} after the end of the statement", describeToken(cur())),
             "put each statement on its own line");
  }

  void parseStatement(ast::Stmt& stmt) {
    const Token& first = cur();
    if (first.kind != TokKind::Ident)
      failHere(fmt::format("expected a statement, found {}", describeToken(first)),
               "statements are 'input NAME: TYPE', 'target NAME: TYPE' or 'KEY = VALUE'");
    if ((first.text == "input" || first.text == "target") && ahead(1).kind == TokKind::Ident) {
      stmt.kind = first.text == "input" ? ast::StmtKind::Input : ast::StmtKind::Target;
      advance();
      stmt.name = cur().text;
      stmt.name_loc = cur().loc;
      advance();
      if (cur().kind != TokKind::Colon)
        failHere(fmt::format("expected ':' after '{}', found {}", stmt.name, describeToken(cur())),
                 fmt::format("declare it like '{} {}: f32[784]'", first.text, stmt.name));
      advance();
      parseType(stmt.type);
      expectEndOfStatement();
      return;
    }
    stmt.kind = ast::StmtKind::Assign;
    stmt.name = first.text;
    stmt.name_loc = first.loc;
    advance();
    if (cur().kind != TokKind::Equal)
      failHere(fmt::format("expected '=' after '{}', found {}", stmt.name, describeToken(cur())));
    advance();
    if (cur().kind == TokKind::Newline || cur().kind == TokKind::End)
      failHere(fmt::format("expected a value after '{} ='", stmt.name));
    stmt.value = parseExpr();
    expectEndOfStatement();
  }

  void parseType(ast::TypeRef& type) {
    if (cur().kind != TokKind::Ident)
      failHere(fmt::format("expected a type like 'f32[784]', found {}", describeToken(cur())));
    type.elem = cur().text;
    type.loc = cur().loc;
    advance();
    if (cur().kind != TokKind::LBracket)
      failHere(fmt::format("expected '[' after '{}', found {}", type.elem, describeToken(cur())),
               fmt::format("give the size, like '{}[10]'", type.elem));
    advance();
    if (cur().kind != TokKind::Int)
      failHere(fmt::format("expected an integer size, found {}", describeToken(cur())));
    type.size = cur().int_value;
    type.size_loc = cur().loc;
    type.dims.push_back(cur().int_value);
    type.dim_locs.push_back(cur().loc);
    advance();
    // More dimensions: f32[1, 28, 28] (one sample, without the batch).
    while (cur().kind == TokKind::Comma) {
      advance();
      if (cur().kind != TokKind::Int)
        failHere(fmt::format("expected an integer size, found {}", describeToken(cur())));
      type.dims.push_back(cur().int_value);
      type.dim_locs.push_back(cur().loc);
      advance();
    }
    if (cur().kind != TokKind::RBracket)
      failHere(fmt::format("expected ']', found {}", describeToken(cur())));
    advance();
  }

  ast::Expr parseExpr() {
    const Token& t = cur();
    ast::Expr e;
    e.loc = t.loc;
    e.text = t.text;
    switch (t.kind) {
    case TokKind::Int:
      e.kind = ast::ExprKind::Int;
      e.int_value = t.int_value;
      e.float_value = t.float_value;
      advance();
      return e;
    case TokKind::Float:
      e.kind = ast::ExprKind::Float;
      e.float_value = t.float_value;
      advance();
      return e;
    case TokKind::Minus: {
      advance();
      const Token& n = cur();
      if (n.kind != TokKind::Int && n.kind != TokKind::Float)
        failHere(fmt::format("expected a number after '-', found {}", describeToken(n)));
      e.kind = n.kind == TokKind::Int ? ast::ExprKind::Int : ast::ExprKind::Float;
      e.text = "-" + n.text;
      // int_value is at most INT64_MAX here, so negating cannot overflow.
      e.int_value = -n.int_value;
      e.float_value = -n.float_value;
      advance();
      return e;
    }
    case TokKind::String:
      e.kind = ast::ExprKind::String;
      advance();
      return e;
    case TokKind::True:
    case TokKind::False:
      e.kind = ast::ExprKind::Bool;
      e.bool_value = t.kind == TokKind::True;
      advance();
      return e;
    case TokKind::Ident:
      if (ahead(1).kind == TokKind::Dot) {
        // PyTorch code says nn.Linear / optim.SGD; here names stand alone.
        std::string full = t.text;
        SourceLoc loc = t.loc;
        advance();
        while (cur().kind == TokKind::Dot && ahead(1).kind == TokKind::Ident) {
          advance();
          full += "." + cur().text;
          advance();
        }
        std::string last = full.substr(full.rfind('.') + 1);
        fail(loc, fmt::format("write '{}' instead of '{}'", last, full),
             "layers, losses and optimizers are named without a module prefix");
      }
      advance();
      if (cur().kind == TokKind::LParen) return parseCall(std::move(e));
      e.kind = ast::ExprKind::Name;
      return e;
    case TokKind::LParen:
    case TokKind::LBracket: return parseTuple();
    default:
      failHere(fmt::format("expected a value, found {}", describeToken(t)));
    }
  }

  ast::Expr parseCall(ast::Expr call) {
    call.kind = ast::ExprKind::Call;
    const Token& open = cur();
    DepthGuard guard(*this, open.loc);
    advance();
    for (;;) {
      skipNewlinesIn(open);
      if (cur().kind == TokKind::RParen) break;
      ast::Arg arg;
      if (cur().kind == TokKind::Ident && ahead(1).kind == TokKind::Equal) {
        arg.name = cur().text;
        arg.name_loc = cur().loc;
        advance();
        advance();
        skipNewlinesIn(open);
      }
      arg.value = parseExpr();
      if (arg.name.empty()) arg.name_loc = arg.value.loc;
      call.args.push_back(std::move(arg));
      skipNewlinesIn(open);
      if (cur().kind == TokKind::Comma) {
        advance();
        continue;
      }
      if (cur().kind == TokKind::RParen) break;
      expectSeparator(")");
    }
    advance(); // ')'
    return call;
  }

  ast::Expr parseTuple() {
    const Token& open = cur();
    bool isList = open.kind == TokKind::LBracket;
    TokKind close = isList ? TokKind::RBracket : TokKind::RParen;
    DepthGuard guard(*this, open.loc);
    ast::Expr tuple;
    tuple.kind = ast::ExprKind::Tuple;
    tuple.loc = open.loc;
    advance();
    bool sawComma = false;
    for (;;) {
      skipNewlinesIn(open);
      if (cur().kind == close) break;
      tuple.elements.push_back(parseExpr());
      skipNewlinesIn(open);
      if (cur().kind == TokKind::Comma) {
        sawComma = true;
        advance();
        continue;
      }
      if (cur().kind == close) break;
      expectSeparator(isList ? "]" : ")");
    }
    advance(); // closing bracket
    // (x) is just x in parentheses, as in Python; (x,) and [x] are sequences.
    if (!isList && !sawComma && tuple.elements.size() == 1) return std::move(tuple.elements[0]);
    return tuple;
  }

  // Reports the token found where ',' or a closing bracket was expected.
  [[noreturn]] void expectSeparator(const char* close) {
    bool startsValue = cur().kind == TokKind::Ident || cur().kind == TokKind::Int ||
                       cur().kind == TokKind::Float || cur().kind == TokKind::String ||
                       cur().kind == TokKind::LParen || cur().kind == TokKind::Minus;
    failHere(fmt::format("expected ',' or '{}', found {}", close, describeToken(cur())),
             startsValue ? "is a ',' missing between two arguments?" : "");
  }

  const std::vector<Token>& toks_;
  Diagnostics& diags_;
  size_t pos_ = 0;
  int depth_ = 0;
  size_t errors_ = 0;
};

} // namespace

ast::File parse(const std::vector<Token>& tokens, Diagnostics& diags) {
  return Parser(tokens, diags).run();
}

} // namespace descent
