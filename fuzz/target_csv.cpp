// Fuzz target "csv": loadCsv (line count, reservation, row parsing, labels or
// real targets) on arbitrary text. The first input byte chooses the layout:
// bits 0-2: 1..8 feature columns; bit 3: real targets instead of a class
// label; bits 4-7: 1..16 classes (or target columns). The rest is the file.
#include "fuzz/fuzz_support.h"
#include "runtime/dataset.h"

#include <cmath>

namespace descent::fuzz {

void csv(const uint8_t* data, size_t size) {
  if (size == 0) return;
  const uint8_t layout = data[0];
  const int64_t features = 1 + (layout & 7);
  const bool class_labels = (layout & 8) == 0;
  const int64_t targets = 1 + (layout >> 4);
  const std::string path =
      writeScratch("data.csv", {reinterpret_cast<const char*>(data) + 1, size - 1});
  Dataset d;
  if (!readsOrRejects([&] { d = loadCsv(path, features, targets, class_labels); })) return;
  const auto n = static_cast<size_t>(d.count);
  if (d.count <= 0 || d.f32.size() != n * static_cast<size_t>(features))
    fail("accepted CSV with no rows or features that do not match the row count");
  for (float v : d.f32)
    if (!std::isfinite(v)) fail("accepted a non-finite feature");
  if (class_labels) {
    if (d.labels.size() != n) fail("label count does not match the row count");
    for (int32_t l : d.labels)
      if (l < 0 || l >= targets) fail("accepted an out-of-range label");
  } else {
    if (d.targets.size() != n * static_cast<size_t>(targets))
      fail("target count does not match the row count");
    for (float v : d.targets)
      if (!std::isfinite(v)) fail("accepted a non-finite target");
  }
}

} // namespace descent::fuzz
