// Tensor types of the graph IR: a dtype and a static shape, printed `f32[64,784]`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace descent {

enum class DType { F32, I32, U8 };

/// "f32", "i32", "u8".
const char* dtypeName(DType t);
std::optional<DType> parseDType(std::string_view s);
/// Size of one element in bytes.
int dtypeSize(DType t);

using Shape = std::vector<int64_t>;

/// A static tensor type. Rank 0 (`f32[]`) is a scalar.
struct TensorType {
  DType dtype = DType::F32;
  Shape shape;

  int64_t numel() const;
  int rank() const { return int(shape.size()); }
  bool operator==(const TensorType&) const = default;
  /// "f32[64,784]".
  std::string str() const;
};

inline TensorType f32(Shape s) { return {DType::F32, std::move(s)}; }
inline TensorType i32(Shape s) { return {DType::I32, std::move(s)}; }

} // namespace descent
