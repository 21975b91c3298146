// Tensor type helpers (see types.h).
#include "compiler/ir/types.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace descent {

const char* dtypeName(DType t) {
  switch (t) {
  case DType::F32: return "f32";
  case DType::I32: return "i32";
  case DType::U8: return "u8";
  }
  return "?";
}

std::optional<DType> parseDType(std::string_view s) {
  if (s == "f32") return DType::F32;
  if (s == "i32") return DType::I32;
  if (s == "u8") return DType::U8;
  return std::nullopt;
}

int dtypeSize(DType t) { return t == DType::U8 ? 1 : 4; }

int64_t TensorType::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorType::str() const {
  return fmt::format("{}[{}]", dtypeName(dtype), fmt::join(shape, ","));
}

} // namespace descent
