// AST printer (see ast_printer.h).
#include "compiler/frontend/ast_printer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace descent {

namespace {

std::string at(SourceLoc loc) { return fmt::format("<{}:{}>", loc.line, loc.col); }

void printExpr(std::string& out, const ast::Expr& e, int indent, const std::string& label) {
  std::string pad(size_t(indent) * 2, ' ');
  switch (e.kind) {
  case ast::ExprKind::Int: out += fmt::format("{}{}Int {} {}\n", pad, label, e.text, at(e.loc)); break;
  case ast::ExprKind::Float:
    out += fmt::format("{}{}Float {} {}\n", pad, label, e.text, at(e.loc));
    break;
  case ast::ExprKind::Bool:
    out += fmt::format("{}{}Bool {} {}\n", pad, label, e.bool_value ? "True" : "False", at(e.loc));
    break;
  case ast::ExprKind::String:
    out += fmt::format("{}{}String \"{}\" {}\n", pad, label, e.text, at(e.loc));
    break;
  case ast::ExprKind::Name: out += fmt::format("{}{}Name {} {}\n", pad, label, e.text, at(e.loc)); break;
  case ast::ExprKind::Call:
    out += fmt::format("{}{}Call {} {}\n", pad, label, e.text, at(e.loc));
    for (const ast::Arg& a : e.args)
      printExpr(out, a.value, indent + 1, a.name.empty() ? "" : a.name + "=");
    break;
  case ast::ExprKind::Tuple:
    out += fmt::format("{}{}Tuple {}\n", pad, label, at(e.loc));
    for (const ast::Expr& el : e.elements) printExpr(out, el, indent + 1, "");
    break;
  case ast::ExprKind::Error: out += fmt::format("{}{}<error> {}\n", pad, label, at(e.loc)); break;
  }
}

} // namespace

std::string printAst(const ast::File& file) {
  std::string out = "File\n";
  for (const ast::Stmt& s : file.stmts) {
    switch (s.kind) {
    case ast::StmtKind::Input:
    case ast::StmtKind::Target:
      out +=
          fmt::format("  {} {}: {}[{}] {}\n", s.kind == ast::StmtKind::Input ? "Input" : "Target",
                      s.name, s.type.elem, fmt::join(s.type.dims, ", "), at(s.loc));
      break;
    case ast::StmtKind::Assign:
      out += fmt::format("  Assign {} {}\n", s.name, at(s.loc));
      printExpr(out, s.value, 2, "");
      break;
    }
  }
  return out;
}

} // namespace descent
