// CSV parsing: one streaming pass over the file, splitting on newlines and
// commas; numbers go through std::from_chars so "0.1" gives the same float as
// PyTorch's float32 parse and nothing depends on the C locale.
#include "runtime/csv.h"

#include "runtime/errors.h"
#include "runtime/input_file.h"

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
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

/// For a decimal number from_chars accepted but could not represent: whether
/// its magnitude is below 1 (it underflowed) rather than huge (it overflowed).
/// Decided from the position of the leading non-zero digit plus the exponent.
bool magnitudeBelowOne(std::string_view s) {
  if (!s.empty() && s.front() == '-') s.remove_prefix(1);
  const size_t e = s.find_first_of("eE");
  int64_t exp = 0;
  if (e != std::string_view::npos) {
    std::string_view x = s.substr(e + 1);
    const bool negative = !x.empty() && x.front() == '-';
    if (!x.empty() && (x.front() == '-' || x.front() == '+')) x.remove_prefix(1);
    auto [ptr, ec] = std::from_chars(x.data(), x.data() + x.size(), exp);
    if (ec == std::errc::result_out_of_range) return negative; // 1e-99999999999999999999
    if (negative) exp = -exp;
  }
  const std::string_view mantissa = s.substr(0, e);
  const size_t dot = mantissa.find('.');
  const std::string_view whole = mantissa.substr(0, dot);
  const std::string_view frac = dot == std::string_view::npos ? "" : mantissa.substr(dot + 1);
  // The power of ten of the leading non-zero digit, before the exponent.
  int64_t lead;
  if (size_t nz = whole.find_first_not_of('0'); nz != std::string_view::npos) {
    lead = static_cast<int64_t>(whole.size() - nz) - 1;
  } else {
    size_t fz = frac.find_first_not_of('0');
    if (fz == std::string_view::npos) return true; // zero
    lead = -static_cast<int64_t>(fz) - 1;
  }
  return exp < -lead;
}

/// Parses a whole field as a finite float (the entire field must be consumed),
/// correctly rounded like numpy's and PyTorch's float32 parse: a value too
/// small for float32 becomes a subnormal or (signed) 0; only a value too large
/// (1e999), inf and nan are not finite.
Parsed parseFloat(std::string_view s, float& v) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1); // from_chars rejects '+'
  if (s.empty()) return Parsed::NotANumber;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ptr != s.data() + s.size() || (ec != std::errc() && ec != std::errc::result_out_of_range))
    return Parsed::NotANumber;
  if (ec == std::errc::result_out_of_range) {
    // from_chars leaves v unchanged when the result underflows to zero.
    if (!magnitudeBelowOne(s)) return Parsed::NotFinite;
    v = s.front() == '-' ? -0.0f : 0.0f;
    return Parsed::Ok;
  }
  return std::isfinite(v) ? Parsed::Ok : Parsed::NotFinite;
}

/// A first row every field of which is a number is data, not column names...
bool allNumbers(const std::vector<std::string_view>& fields) {
  float v;
  for (auto f : fields)
    if (parseFloat(f, v) != Parsed::Ok) return false;
  return true;
}

/// ...except 0,1,...,n-1: the header pandas writes for an unnamed DataFrame
/// (`pd.DataFrame(array).to_csv(index=False)`), which pandas reads back as names.
bool isColumnIndexHeader(const std::vector<std::string_view>& fields) {
  for (size_t i = 0; i < fields.size(); ++i)
    if (unquote(fields[i]) != std::to_string(i)) return false;
  return true;
}

/// "x1,x2,y" for a hint; long rows are abbreviated ("x1,x2,...,x784,y").
std::string exampleHeader(size_t columns) {
  if (columns <= 1) return "x1";
  if (columns <= 4) {
    std::string s;
    for (size_t i = 1; i < columns; ++i) s += fmt::format("x{},", i);
    return s + "y";
  }
  return fmt::format("x1,x2,...,x{},y", columns - 1);
}

/// Reads a file line by line with POSIX getline (no whole-file buffer).
class LineReader {
public:
  // Only a regular file: /dev/zero would be one endless line, a FIFO blocks.
  explicit LineReader(const std::string& path)
      : path_(path), file_(openInputFile(path).file), f_(file_.get()) {}
  ~LineReader() { std::free(buf_); }
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  /// The next line without its '\n'; false at the end of the file.
  bool next(std::string_view& line) {
    errno = 0;
    ssize_t n = ::getline(&buf_, &cap_, f_);
    if (n < 0) {
      if (std::ferror(f_)) throw DataError(path_ + ": " + std::strerror(errno ? errno : EIO));
      return false;
    }
    line = std::string_view(buf_, static_cast<size_t>(n));
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    return true;
  }

private:
  std::string path_;
  FilePtr file_;
  std::FILE* f_;
  char* buf_ = nullptr;
  size_t cap_ = 0;
};

} // namespace

int64_t forEachCsvRowFields(const std::string& path, int64_t expected_columns,
                            const std::string& describe_columns, const CsvRowFieldsFn& row) {
  LineReader in(path);
  std::vector<std::string> header;
  std::vector<std::string_view> fields;
  std::vector<float> values(static_cast<size_t>(expected_columns));
  int64_t line_no = 0, rows = 0;
  std::string_view line;
  while (in.next(line)) {
    ++line_no;
    if (trim(line).empty()) continue;
    splitFields(line, fields);
    if (static_cast<int64_t>(fields.size()) != expected_columns)
      throw DataError(fmt::format("{}:{}: expected {} columns ({}), got {}", path, line_no,
                                  expected_columns, describe_columns, fields.size()));
    if (header.empty()) {
      // Taking a headerless file's first sample for column names would drop
      // it silently; say so instead, since a numeric header is rarely meant.
      if (allNumbers(fields) && !isColumnIndexHeader(fields)) {
        std::string_view shown = trim(line);
        if (shown.size() > 40) shown = shown.substr(0, 40);
        throw DataError(fmt::format(
            "{}:{}: the first row ('{}{}') is numbers, not column names: add a header row "
            "(e.g. '{}') so this sample is not lost",
            path, line_no, shown, shown.size() < trim(line).size() ? "..." : "",
            exampleHeader(fields.size())));
      }
      for (auto f : fields) header.emplace_back(unquote(f));
      continue;
    }
    for (size_t c = 0; c < fields.size(); ++c) {
      Parsed r = parseFloat(fields[c], values[c]);
      if (r != Parsed::Ok)
        throw DataError(fmt::format("{}:{}: column {} ('{}'): '{}' is not a {}number", path, line_no,
                                    c + 1, header[c], fields[c],
                                    r == Parsed::NotFinite ? "finite " : ""));
    }
    row(values, fields, line_no, header);
    ++rows;
  }
  if (header.empty()) throw DataError(path + ": empty file (expected a header row and data rows)");
  if (rows == 0) throw DataError(path + ": no data rows after the header");
  return rows;
}

int64_t forEachCsvRow(const std::string& path, int64_t expected_columns,
                      const std::string& describe_columns, const CsvRowFn& row) {
  return forEachCsvRowFields(
      path, expected_columns, describe_columns,
      [&](std::span<const float> values, std::span<const std::string_view>, int64_t line,
          const std::vector<std::string>& header) { row(values, line, header); });
}

int64_t countLines(const std::string& path) {
  LineReader in(path);
  int64_t n = 0;
  std::string_view line;
  while (in.next(line)) ++n;
  return n;
}

int64_t csvHeaderColumns(const std::string& path) {
  LineReader in(path);
  std::vector<std::string_view> fields;
  std::string_view line;
  while (in.next(line)) {
    if (trim(line).empty()) continue;
    splitFields(line, fields);
    return static_cast<int64_t>(fields.size());
  }
  return 0;
}

int64_t countCsvRows(const std::string& path, int64_t expected_columns) {
  LineReader in(path);
  int64_t n = 0;
  std::string_view line;
  while (in.next(line))
    if (!trim(line).empty() &&
        std::count(line.begin(), line.end(), ',') == expected_columns - 1)
      ++n;
  return n;
}

CsvTable parseCsv(const std::string& path, int64_t expected_columns,
                  const std::string& describe_columns) {
  CsvTable t;
  t.path = path;
  t.rows = forEachCsvRow(path, expected_columns, describe_columns,
                         [&](std::span<const float> v, int64_t line,
                             const std::vector<std::string>& header) {
                           if (t.header.empty()) t.header = header;
                           t.values.insert(t.values.end(), v.begin(), v.end());
                           t.line_of_row.push_back(line);
                         });
  return t;
}

} // namespace descent
