// Fuzz target "ir": the graph IR text parser. A rejected input must come with
// an error message; an accepted one must verify and survive print -> parse ->
// print unchanged (the round trip the golden tests rely on).
#include "compiler/ir/parser.h"
#include "compiler/ir/printer.h"
#include "compiler/ir/verifier.h"
#include "fuzz/fuzz_support.h"

#include <string_view>

namespace descent::fuzz {

void irParser(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string error;
  std::unique_ptr<Graph> g = parseGraph(text, error);
  if (!g) {
    if (error.empty()) fail("parseGraph rejected the input without a message");
    return;
  }
  if (std::string v = verifyGraph(*g); !v.empty())
    fail("parseGraph accepted a graph that does not verify: " + v);
  const std::string printed = printGraph(*g);
  std::unique_ptr<Graph> again = parseGraph(printed, error);
  if (!again)
    fail("the printed form of an accepted graph does not parse: " + error + "\n" + printed);
  if (printGraph(*again) != printed) fail("print(parse(print(g))) != print(g)");
}

} // namespace descent::fuzz
