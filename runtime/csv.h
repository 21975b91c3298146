// CSV parsing for numeric data sets: a header row then rows of numbers. Kept
// separate from Dataset so the parser can be tested and reused on its own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace descent {

/// A parsed numeric CSV table. Values are float32, parsed with std::from_chars
/// (correctly rounded, locale independent).
struct CsvTable {
  std::string path;
  std::vector<std::string> header;   ///< column names (surrounding quotes removed)
  int64_t rows = 0;                  ///< data rows (header excluded)
  std::vector<float> values;         ///< rows*header.size(), row-major
  std::vector<int64_t> line_of_row;  ///< 1-based file line of each data row (header is line 1)
};

/// Parses `path`. Every data row must have `expected_columns` columns; the
/// header too. Empty lines are skipped (but still counted for row numbers).
/// `describe_columns` (e.g. "4 features + 1 label") is appended to column-count
/// messages. Throws DataError: "path: empty file ...", "path: no data rows
/// after the header", "path:ROW: expected N columns (...), got M",
/// "path:ROW: column C ('name'): 'abc' is not a number".
CsvTable parseCsv(const std::string& path, int64_t expected_columns,
                  const std::string& describe_columns);

} // namespace descent
