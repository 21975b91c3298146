// IDX files (the MNIST format: big-endian magic, dimensions, then uint8 data),
// raw or gzip-compressed, and finding the standard MNIST file names in a
// directory (plain layout or torchvision's MNIST/raw/).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace descent {

/// One IDX file's content: its dimensions (e.g. {60000, 28, 28}) and the
/// uint8 elements in row-major order.
struct IdxArray {
  std::string path;
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};

/// Reads an IDX file of unsigned bytes with exactly `ndims` dimensions
/// (3 for images, magic 0x00000803; 1 for labels, magic 0x00000801).
/// gzip is detected from the content (1f 8b) and decompressed straight into
/// `data` without an intermediate full copy. Throws DataError naming the file
/// for a missing file, wrong magic or type, zero or oversized dimensions, a
/// truncated file (expected vs actual bytes), trailing bytes, and truncated or
/// corrupt gzip streams.
IdxArray readIdx(const std::string& path, int ndims);

/// The four files of an MNIST-style data set. `test_*` are empty when the
/// directory has no t10k pair.
struct IdxFiles {
  std::string train_images, train_labels;
  std::string test_images, test_labels;
};

/// Finds `train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]` and the
/// optional `t10k-*` pair directly in `dir`, in `dir/MNIST/raw/` or in
/// `dir/raw/` (the first of these that holds the training images wins; an
/// uncompressed file is preferred over its `.gz`). Throws DataError listing
/// what was looked for when the training pair is missing, and naming the
/// missing half when only one of a pair exists.
IdxFiles findIdxFiles(const std::string& dir);

} // namespace descent
