// Lexer for model files: turns the source text into tokens with 1-based
// locations. Bad bytes and malformed numbers or strings are reported through
// Diagnostics and never stop lexing, so the parser can report more errors.
#pragma once

#include "compiler/support/diagnostics.h"
#include "compiler/support/source_loc.h"

#include <cstdint>
#include <string>
#include <vector>

namespace descent {

enum class TokKind {
  Ident,    ///< Linear, x, model, ...
  Int,      ///< 784
  Float,    ///< 0.003, 1e-8, .5, 3.
  String,   ///< "mean" or 'mean' (text holds the contents, without quotes)
  True,     ///< true or True
  False,    ///< false or False
  LParen,   ///< (
  RParen,   ///< )
  LBracket, ///< [
  RBracket, ///< ]
  Comma,    ///< ,
  Equal,    ///< =
  Colon,    ///< :
  Minus,    ///< - (only as a sign: dim=-1, negative_slope=-0.1)
  Dot,      ///< . (only to diagnose 'nn.Linear')
  Newline,  ///< end of a line (the parser ignores it inside brackets)
  Error,    ///< a malformed token, already reported; the parser stays quiet about it
  End,      ///< end of file
};

/// One token. `text` is the exact source spelling (string contents for String).
struct Token {
  TokKind kind = TokKind::End;
  std::string text;
  SourceLoc loc;
  int64_t int_value = 0;  ///< Int
  double float_value = 0; ///< Int and Float (the Int value converted)
};

/// A short name of a token kind for messages ("')'", "a number", "end of file").
std::string describeToken(const Token& t);

/// Splits `source` into tokens ending with one End token. Errors (bad bytes,
/// unterminated strings, numbers out of range) go to `diags`; a malformed token
/// becomes an Error token so the parser does not report it a second time.
std::vector<Token> lex(const std::string& source, Diagnostics& diags);

} // namespace descent
