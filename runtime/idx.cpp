// IDX reading: a small byte-source abstraction (raw file or streaming zlib
// inflate) lets the header be parsed first and the body then be decompressed
// directly into its final vector, which keeps peak memory at one copy.
#include "runtime/idx.h"

#include "runtime/errors.h"
#include "runtime/input_file.h"

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>
#include <sys/stat.h>
#include <zlib.h>

namespace descent {
namespace {

/// Refuse absurd headers before allocating: 4 GiB is far beyond any IDX data
/// set this tool is meant for and keeps size arithmetic overflow-free.
constexpr uint64_t kMaxIdxBytes = uint64_t(1) << 32;

/// deflate cannot expand data more than 1032:1 (a 258-byte match per 2 bits),
/// so a gzip file of N bytes decompresses to less than kMaxDeflateRatio * N.
constexpr uint64_t kMaxDeflateRatio = 1032;

/// The decompressed body is read in steps of this size, so memory is only
/// touched as data really arrives.
constexpr size_t kReadStep = size_t(16) << 20;

/// Sequential reader over either raw bytes or a gzip stream. Like gzip(1) and
/// Python's gzip module, a gzip stream may be several concatenated members
/// (`cat a.gz b.gz`) followed by zero padding; anything else after the last
/// member is an error.
class ByteSource {
public:
  ByteSource(std::string path, FilePtr file, bool gzip)
      : path_(std::move(path)), file_(std::move(file)), gzip_(gzip) {
    if (gzip_) {
      std::memset(&z_, 0, sizeof z_);
      // 15+32: max window, and auto-detect gzip or zlib headers.
      if (inflateInit2(&z_, 15 + 32) != Z_OK) throw DataError(path_ + ": cannot initialize zlib");
      z_init_ = true;
    }
  }
  ~ByteSource() {
    if (z_init_) inflateEnd(&z_);
  }
  ByteSource(const ByteSource&) = delete;
  ByteSource& operator=(const ByteSource&) = delete;

  bool gzip() const { return gzip_; }

  /// Reads up to n bytes into dst; returns fewer only at the end of the data.
  size_t read(uint8_t* dst, size_t n) { return gzip_ ? inflateInto(dst, n) : readRaw(dst, n); }

private:
  size_t readRaw(uint8_t* dst, size_t n) {
    size_t got = std::fread(dst, 1, n, file_.get());
    if (got < n && std::ferror(file_.get()))
      throw DataError(fmt::format("{}: read error: {}", path_, std::strerror(errno)));
    return got;
  }

  /// Refills the input buffer when it is empty; false at the end of the file.
  bool fillInput() {
    if (z_.avail_in > 0) return true;
    size_t got = std::fread(in_.data(), 1, in_.size(), file_.get());
    if (got == 0) {
      if (std::ferror(file_.get()))
        throw DataError(fmt::format("{}: read error: {}", path_, std::strerror(errno)));
      return false;
    }
    file_offset_ += got;
    z_.next_in = in_.data();
    z_.avail_in = static_cast<uInt>(got);
    return true;
  }

  /// Called at the end of a member: skips zero padding, then either starts
  /// the next member (gzip magic 1f 8b) or ends the stream at the end of the file.
  void nextMember() {
    for (;;) {
      if (!fillInput()) {
        stream_end_ = true;
        return;
      }
      while (z_.avail_in > 0 && *z_.next_in == 0) {
        ++z_.next_in;
        --z_.avail_in;
      }
      if (z_.avail_in > 0) break;
    }
    const uint64_t offset = file_offset_ - z_.avail_in;
    // The second magic byte may be in the next buffer: keep the first aside.
    const uint8_t first = *z_.next_in;
    uint8_t second = 0;
    bool have_second = z_.avail_in > 1;
    if (have_second) {
      second = z_.next_in[1];
    } else {
      ++z_.next_in;
      --z_.avail_in;
      have_second = fillInput();
      if (have_second) second = *z_.next_in;
      // Put the first byte back in front of the refilled buffer for inflate.
      if (first == 0x1f && have_second && second == 0x8b) {
        std::memmove(in_.data() + 1, z_.next_in, z_.avail_in);
        in_[0] = first;
        z_.next_in = in_.data();
        ++z_.avail_in;
      }
    }
    if (first != 0x1f || !have_second || second != 0x8b)
      throw DataError(fmt::format("{}: trailing garbage after the gzip data at byte {} (expected "
                                  "the end of the file or another gzip member)",
                                  path_, offset));
    if (inflateReset(&z_) != Z_OK) throw DataError(path_ + ": cannot reset zlib");
  }

  size_t inflateInto(uint8_t* dst, size_t n) {
    size_t done = 0;
    while (done < n && !stream_end_) {
      if (!fillInput()) throw DataError(path_ + ": truncated gzip stream");
      // Chunk the output so avail_out (uInt) cannot overflow for huge reads.
      size_t want = std::min<size_t>(n - done, size_t(1) << 30);
      z_.next_out = dst + done;
      z_.avail_out = static_cast<uInt>(want);
      int rc = inflate(&z_, Z_NO_FLUSH);
      done += want - z_.avail_out;
      if (rc == Z_STREAM_END) {
        nextMember();
      } else if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT) {
        throw DataError(fmt::format("{}: corrupt gzip stream ({})", path_,
                                    z_.msg ? z_.msg : "invalid data"));
      } else if (rc == Z_MEM_ERROR) {
        throw DataError(path_ + ": out of memory while decompressing");
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        throw DataError(fmt::format("{}: gzip error {}", path_, rc));
      }
    }
    return done;
  }

  std::string path_;
  FilePtr file_;
  bool gzip_;
  z_stream z_{};
  bool z_init_ = false;
  bool stream_end_ = false;
  uint64_t file_offset_ = 0; ///< compressed bytes read from the file so far
  std::array<uint8_t, 1 << 16> in_{};
};

uint32_t bigEndian32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

bool endsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string dimsText(const std::vector<int64_t>& dims) {
  std::string s;
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? "x" : "") + std::to_string(dims[i]);
  return s;
}

/// Anything but a directory: readIdx then refuses a FIFO or device by name
/// instead of the search reporting the data as missing.
bool isFileEntry(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && !S_ISDIR(st.st_mode);
}

bool isDirectory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

} // namespace

IdxArray readIdx(const std::string& path, int ndims) {
  InputFile in = openInputFile(path);
  FilePtr file = std::move(in.file);
  const uint64_t file_size = in.size;

  // Sniff the gzip magic instead of trusting the extension; a ".gz" name on a
  // non-gzip file is reported since it usually means a broken download.
  uint8_t sniff[2] = {0, 0};
  size_t sniffed = std::fread(sniff, 1, 2, file.get());
  std::rewind(file.get());
  bool gzip = sniffed == 2 && sniff[0] == 0x1f && sniff[1] == 0x8b;
  if (!gzip && endsWith(path, ".gz"))
    throw DataError(path + ": not a gzip file (the name ends in .gz but the gzip header is missing)");

  ByteSource src(path, std::move(file), gzip);
  const char* what = ndims == 3 ? "images" : ndims == 1 ? "labels" : "data";
  const uint32_t want_magic = 0x00000800u | static_cast<uint32_t>(ndims);

  uint8_t head[4];
  size_t got = src.read(head, 4);
  if (got < 4)
    throw DataError(fmt::format("{}: truncated file: expected at least 4 bytes (IDX magic), got {}",
                                path, got));
  uint32_t magic = bigEndian32(head);
  if (head[0] != 0 || head[1] != 0)
    throw DataError(fmt::format("{}: not an IDX file (magic 0x{:08X}, expected 0x{:08X} for {})",
                                path, magic, want_magic, what));
  if (head[2] != 0x08)
    throw DataError(fmt::format(
        "{}: unsupported IDX element type 0x{:02X} (only unsigned byte, 0x08, is supported)", path,
        head[2]));
  if (head[3] != ndims)
    throw DataError(fmt::format("{}: wrong IDX magic 0x{:08X}: expected 0x{:08X} ({} with {} "
                                "dimension{}), but the file has {} dimension{}",
                                path, magic, want_magic, what, ndims, ndims == 1 ? "" : "s",
                                head[3], head[3] == 1 ? "" : "s"));

  const size_t header_bytes = 4 + 4 * static_cast<size_t>(ndims);
  std::vector<uint8_t> dimbuf(4 * static_cast<size_t>(ndims));
  got = src.read(dimbuf.data(), dimbuf.size());
  if (got < dimbuf.size())
    throw DataError(fmt::format("{}: truncated file: expected a {}-byte header, got {} bytes", path,
                                header_bytes, 4 + got));

  IdxArray out;
  out.path = path;
  uint64_t elements = 1;
  for (int i = 0; i < ndims; ++i) {
    uint32_t d = bigEndian32(dimbuf.data() + 4 * i);
    if (d == 0)
      throw DataError(fmt::format("{}: dimension {} is 0 (no {})", path, i, i == 0 ? what : "data"));
    out.dims.push_back(d);
    elements *= d;
    if (elements > kMaxIdxBytes)
      throw DataError(fmt::format("{}: dimensions too large ({} elements and more)", path, elements));
  }
  const uint64_t expected_total = header_bytes + elements;
  const std::string layout =
      fmt::format("{}-byte header + {} {}", header_bytes, dimsText(out.dims), what);

  // A raw file's size is known up front: report truncation before allocating.
  if (!gzip && file_size != expected_total)
    throw DataError(fmt::format("{}: {}: expected {} bytes ({}), got {}", path,
                                file_size < expected_total ? "truncated file" : "trailing bytes",
                                expected_total, layout, file_size));

  // A gzip header's dimensions are only a claim: grow the buffer in steps as
  // data arrives so a tiny file declaring 4 GiB fails after reading what it
  // has. Reserving up to what the compressed size can hold keeps a valid
  // file to one allocation (raw files were checked against their size above).
  const bool can_hold = !gzip || elements / kMaxDeflateRatio <= file_size;
  out.data.reserve(static_cast<size_t>(can_hold ? elements : file_size * kMaxDeflateRatio));
  size_t have = 0;
  while (have < elements) {
    const size_t step = static_cast<size_t>(std::min<uint64_t>(elements - have, kReadStep));
    out.data.resize(have + step);
    got = src.read(out.data.data() + have, step);
    have += got;
    if (got < step)
      throw DataError(fmt::format("{}: truncated file: expected {} bytes ({}) after "
                                  "decompression, got {}",
                                  path, expected_total, layout, header_bytes + have));
  }
  // Drive the stream to its end: this verifies the gzip CRC and length
  // trailer and catches extra data after the declared elements.
  uint8_t extra[4096];
  uint64_t extra_bytes = 0;
  while (size_t n = src.read(extra, sizeof extra)) extra_bytes += n;
  if (extra_bytes)
    throw DataError(fmt::format("{}: trailing bytes: expected {} bytes ({}), got {}", path,
                                expected_total, layout, expected_total + extra_bytes));
  return out;
}

IdxFiles findIdxFiles(const std::string& dir) {
  if (!isDirectory(dir)) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0)
      throw DataError(fmt::format("{}: {}", dir, std::strerror(errno)));
    throw DataError(dir + ": not a directory (expected a directory of IDX files)");
  }
  std::string base = dir;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  const std::array<std::string, 3> places = {base, base + "/MNIST/raw", base + "/raw"};

  // Uncompressed first: torchvision keeps both, and raw loads faster.
  auto find = [](const std::string& place, const std::string& name) -> std::string {
    for (const char* ext : {"", ".gz"}) {
      std::string p = place + "/" + name + ext;
      if (isFileEntry(p)) return p;
    }
    return {};
  };

  const std::string kTrainImages = "train-images-idx3-ubyte";
  const std::string kTrainLabels = "train-labels-idx1-ubyte";
  const std::string kTestImages = "t10k-images-idx3-ubyte";
  const std::string kTestLabels = "t10k-labels-idx1-ubyte";

  for (const auto& place : places) {
    IdxFiles f;
    f.train_images = find(place, kTrainImages);
    if (f.train_images.empty()) continue;
    f.train_labels = find(place, kTrainLabels);
    if (f.train_labels.empty())
      throw DataError(fmt::format("{}: found {} but not its labels ({}/{}[.gz])", dir,
                                  f.train_images, place, kTrainLabels));
    f.test_images = find(place, kTestImages);
    f.test_labels = find(place, kTestLabels);
    if (f.test_images.empty() != f.test_labels.empty())
      throw DataError(fmt::format("{}: found {} but not {}/{}[.gz]", dir,
                                  f.test_images.empty() ? f.test_labels : f.test_images, place,
                                  f.test_images.empty() ? kTestImages : kTestLabels));
    return f;
  }
  throw DataError(fmt::format("{}: no IDX training data found: looked for {}[.gz] and {}[.gz] in "
                              "{}, {} and {}",
                              dir, kTrainImages, kTrainLabels, places[0] + "/", places[1] + "/",
                              places[2] + "/"));
}

} // namespace descent
