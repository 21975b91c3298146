// CSV parsing: one streaming pass over the file, splitting on newlines and
// commas; numbers go through std::from_chars so "0.1" gives the same float as
// PyTorch's float32 parse and nothing depends on the C locale.
#include "runtime/csv.h"

#include "runtime/errors.h"

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

/// Reads a file line by line with POSIX getline (no whole-file buffer).
class LineReader {
public:
  explicit LineReader(const std::string& path) : path_(path), f_(std::fopen(path.c_str(), "rb")) {
    if (!f_) throw DataError(path + ": " + std::strerror(errno));
  }
  ~LineReader() {
    std::free(buf_);
    std::fclose(f_);
  }
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  /// The next line without its '\n'; false at the end of the file.
  bool next(std::string_view& line) {
    errno = 0;
    ssize_t n = ::getline(&buf_, &cap_, f_);
    if (n < 0) {
      // A directory opens fine but fails on read (EISDIR): report it like readFile.
      if (std::ferror(f_)) throw DataError(path_ + ": " + std::strerror(errno ? errno : EIO));
      return false;
    }
    line = std::string_view(buf_, static_cast<size_t>(n));
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    return true;
  }

private:
  std::string path_;
  std::FILE* f_;
  char* buf_ = nullptr;
  size_t cap_ = 0;
};

} // namespace

int64_t forEachCsvRow(const std::string& path, int64_t expected_columns,
                      const std::string& describe_columns, const CsvRowFn& row) {
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
    row(values, line_no, header);
    ++rows;
  }
  if (header.empty()) throw DataError(path + ": empty file (expected a header row and data rows)");
  if (rows == 0) throw DataError(path + ": no data rows after the header");
  return rows;
}

int64_t countLines(const std::string& path) {
  LineReader in(path);
  int64_t n = 0;
  std::string_view line;
  while (in.next(line)) ++n;
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
