// CSV parsing: one pass over the file contents, splitting on newlines and
// commas; numbers go through std::from_chars so "0.1" gives the same float as
// PyTorch's float32 parse and nothing depends on the C locale.
#include "runtime/csv.h"

#include "runtime/atomic_file.h"
#include "runtime/errors.h"

#include <charconv>
#include <cmath>
#include <fmt/format.h>
#include <string_view>

namespace descent {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::string_view unquote(std::string_view s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') return s.substr(1, s.size() - 2);
  return s;
}

/// Splits one line on commas (no quoted commas: numeric files do not need them).
void splitFields(std::string_view line, std::vector<std::string_view>& out) {
  out.clear();
  size_t start = 0;
  for (;;) {
    size_t comma = line.find(',', start);
    if (comma == std::string_view::npos) {
      out.push_back(trim(line.substr(start)));
      return;
    }
    out.push_back(trim(line.substr(start, comma - start)));
    start = comma + 1;
  }
}

enum class Parsed { Ok, NotANumber, NotFinite };

/// Parses a whole field as a finite float (the entire field must be consumed).
Parsed parseFloat(std::string_view s, float& v) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1); // from_chars rejects '+'
  if (s.empty()) return Parsed::NotANumber;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  // Out-of-range values (1e999) are not numbers a float32 model can use either.
  if (ptr != s.data() + s.size() || (ec != std::errc() && ec != std::errc::result_out_of_range))
    return Parsed::NotANumber;
  if (ec == std::errc::result_out_of_range) return Parsed::NotFinite;
  return std::isfinite(v) ? Parsed::Ok : Parsed::NotFinite;
}

} // namespace

CsvTable parseCsv(const std::string& path, int64_t expected_columns,
                  const std::string& describe_columns) {
  const std::string text = readFile(path);
  CsvTable t;
  t.path = path;
  const std::string_view all(text);
  std::vector<std::string_view> fields;
  int64_t line_no = 0;
  bool have_header = false;
  size_t pos = 0;
  while (pos < all.size()) {
    size_t nl = all.find('\n', pos);
    std::string_view line = all.substr(pos, nl == std::string_view::npos ? all.size() - pos : nl - pos);
    pos = nl == std::string_view::npos ? all.size() : nl + 1;
    ++line_no;
    if (trim(line).empty()) continue;
    splitFields(line, fields);
    if (static_cast<int64_t>(fields.size()) != expected_columns)
      throw DataError(fmt::format("{}:{}: expected {} columns ({}), got {}", path, line_no,
                                  expected_columns, describe_columns, fields.size()));
    if (!have_header) {
      // The header is only names; a header of numbers usually means it is missing.
      for (auto f : fields) t.header.emplace_back(unquote(f));
      have_header = true;
      continue;
    }
    for (size_t c = 0; c < fields.size(); ++c) {
      float v;
      Parsed r = parseFloat(fields[c], v);
      if (r != Parsed::Ok)
        throw DataError(fmt::format("{}:{}: column {} ('{}'): '{}' is not a {}number", path, line_no,
                                    c + 1, t.header[c], fields[c],
                                    r == Parsed::NotFinite ? "finite " : ""));
      t.values.push_back(v);
    }
    t.line_of_row.push_back(line_no);
    ++t.rows;
  }
  if (!have_header)
    throw DataError(path + ": empty file (expected a header row and data rows)");
  if (t.rows == 0) throw DataError(path + ": no data rows after the header");
  return t;
}

} // namespace descent
