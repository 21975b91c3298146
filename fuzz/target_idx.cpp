// Fuzz target "idx": readIdx on raw or gzip-compressed files. The first input
// byte is a mode, the rest the payload:
//   bit 0: read as labels (1 dimension) instead of images (3 dimensions);
//   bit 1: gzip the payload here first, so the fuzzer mutates the IDX content
//          seen through the gzip path (mutating compressed bytes mostly breaks
//          the CRC); bit 2: as two gzip members (valid, like `cat a.gz b.gz`),
//          split at the payload's middle.
// Without bit 1 the payload is written as is (raw IDX, or gzip bytes).
#include "fuzz/fuzz_support.h"
#include "runtime/idx.h"

#include <cstring>
#include <zlib.h>

namespace descent::fuzz {

namespace {

/// One complete gzip member holding `bytes`.
std::string gzipMember(std::string_view bytes) {
  z_stream z;
  std::memset(&z, 0, sizeof z);
  // 15 + 16: maximum window, gzip wrapper.
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    fail("deflateInit2 failed");
  std::string out(deflateBound(&z, bytes.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = static_cast<uInt>(bytes.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) fail("deflate did not finish");
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

} // namespace

void idx(const uint8_t* data, size_t size) {
  if (size == 0) return;
  const uint8_t mode = data[0];
  std::string_view payload(reinterpret_cast<const char*>(data) + 1, size - 1);
  const int ndims = (mode & 1) ? 1 : 3;
  std::string file;
  std::string name = "data-idx-ubyte";
  if (mode & 2) {
    name += ".gz";
    if (mode & 4)
      file = gzipMember(payload.substr(0, payload.size() / 2)) +
             gzipMember(payload.substr(payload.size() / 2));
    else
      file = gzipMember(payload);
  } else {
    file = payload;
  }
  const std::string path = writeScratch(name, file);
  IdxArray a;
  if (!readsOrRejects([&] { a = readIdx(path, ndims); })) return;
  uint64_t elements = 1;
  for (int64_t d : a.dims) {
    if (d <= 0) fail("accepted a dimension <= 0");
    elements *= static_cast<uint64_t>(d);
  }
  if (a.dims.size() != static_cast<size_t>(ndims) || a.data.size() != elements)
    fail("accepted IDX whose data does not match its dimensions");
}

} // namespace descent::fuzz
