// CSV parsing for numeric data sets: a header row then rows of numbers. Rows
// are streamed to a callback so a loader can write them straight into its
// final arrays (a large CSV is never held as text and as numbers at once).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace descent {

/// Called for each data row: its values (exactly the expected column count),
/// its 1-based line number (the header is line 1) and the header names.
using CsvRowFn = std::function<void(std::span<const float> values, int64_t line,
                                    const std::vector<std::string>& header)>;

/// Streams `path` (a regular file: devices and FIFOs are refused): checks the
/// header and every data row have `expected_columns` columns, parses each
/// value with std::from_chars (correctly rounded, locale independent; values
/// below float32's range become subnormals or 0 as in numpy) and calls `row`.
/// Empty lines are skipped (but still counted). `describe_columns` (e.g. "4
/// features + 1 label") goes into column-count messages. Returns the number of
/// data rows. Throws DataError: "path: empty file ...", "path: no data rows
/// after the header", "path:ROW: expected N columns (...), got M",
/// "path:ROW: column C ('name'): 'abc' is not a number", and
/// "path:ROW: the first row (...) is numbers, not column names: ..." when the
/// header row is missing (a first row of numbers is refused rather than
/// dropped; only pandas' unnamed header 0,1,...,N-1 is taken as names).
int64_t forEachCsvRow(const std::string& path, int64_t expected_columns,
                      const std::string& describe_columns, const CsvRowFn& row);

/// The number of fields in the first non-blank line (the header row) of
/// `path`, 0 for an empty file. Throws DataError when the file cannot be read.
int64_t csvHeaderColumns(const std::string& path);

/// Like CsvRowFn, with the row's fields as written in the file (trimmed), for
/// messages that quote a value exactly or values that need more than float32.
using CsvRowFieldsFn =
    std::function<void(std::span<const float> values, std::span<const std::string_view> fields,
                       int64_t line, const std::vector<std::string>& header)>;

/// forEachCsvRow passing the fields' text as well.
int64_t forEachCsvRowFields(const std::string& path, int64_t expected_columns,
                            const std::string& describe_columns, const CsvRowFieldsFn& row);

/// Number of lines in the file. Throws DataError if unreadable.
int64_t countLines(const std::string& path);

/// Number of non-blank lines with exactly `expected_columns` fields: an upper
/// bound on the data rows + 1 (the header) for reserving memory before
/// forEachCsvRow, bounded by the file's real content (blank or short lines
/// reserve nothing). Throws DataError if unreadable.
int64_t countCsvRows(const std::string& path, int64_t expected_columns);

/// A whole parsed numeric CSV table (for small files and tests).
struct CsvTable {
  std::string path;
  std::vector<std::string> header;   ///< column names (surrounding quotes removed)
  int64_t rows = 0;                  ///< data rows (header excluded)
  std::vector<float> values;         ///< rows*header.size(), row-major
  std::vector<int64_t> line_of_row;  ///< 1-based file line of each data row
};

/// forEachCsvRow collected into a CsvTable.
CsvTable parseCsv(const std::string& path, int64_t expected_columns,
                  const std::string& describe_columns);

} // namespace descent
