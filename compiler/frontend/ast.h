// Syntax tree of a model file, exactly as written: names are not resolved and
// arguments not checked (that is sema's job). Every node keeps its location.
#pragma once

#include "compiler/support/source_loc.h"

#include <cstdint>
#include <string>
#include <vector>

namespace descent::ast {

struct Arg;

enum class ExprKind {
  Int,    ///< 784, -1
  Float,  ///< 0.003, 1e-8
  Bool,   ///< True / true
  String, ///< "mean"
  Name,   ///< a bare identifier (ReLU without parentheses)
  Call,   ///< Linear(784, 128), Adam(betas=(0.9, 0.999))
  Tuple,  ///< (0.9, 0.999) or [0.9, 0.999]
  Error,  ///< a part that failed to parse; already reported
};

/// An expression: a literal, a name, a call or a tuple.
struct Expr {
  ExprKind kind = ExprKind::Error;
  SourceLoc loc;
  std::string text;        ///< source spelling of literals, the name of Name/Call, String contents
  int64_t int_value = 0;   ///< Int
  double float_value = 0;  ///< Int and Float
  bool bool_value = false; ///< Bool
  std::vector<Arg> args;   ///< Call: arguments in source order
  std::vector<Expr> elements; ///< Tuple
};

/// One argument of a call; `name` is empty for a positional argument.
struct Arg {
  std::string name;
  SourceLoc name_loc;
  Expr value;
};

/// `f32[784]`, `f32[1, 28, 28]` or `class[10]` in an input or target declaration.
struct TypeRef {
  std::string elem; ///< "f32", "class" (unchecked)
  SourceLoc loc;
  int64_t size = 0; ///< the first dimension
  SourceLoc size_loc;
  std::vector<int64_t> dims{};       ///< every dimension, as written (unchecked)
  std::vector<SourceLoc> dim_locs{}; ///< where each dimension is written
};

enum class StmtKind {
  Input,  ///< input x: f32[784]
  Target, ///< target y: class[10]
  Assign, ///< model = ..., loss = ..., batch = 64 (key unchecked)
};

/// One statement. For Assign a value that failed to parse is an Error expr, so
/// sema knows the statement was present and does not report it missing.
struct Stmt {
  StmtKind kind = StmtKind::Assign;
  SourceLoc loc;
  std::string name; ///< declared name (x, y) or assigned key (model, loss, ...)
  SourceLoc name_loc;
  TypeRef type;     ///< Input, Target
  Expr value;       ///< Assign
  bool broken = false; ///< a parse error was reported inside this statement
};

/// A whole model file.
struct File {
  std::vector<Stmt> stmts;
  SourceLoc end_loc; ///< where the file ends (missing statements are reported here)
};

} // namespace descent::ast
