// Safetensors checkpoints (8-byte little-endian header length, JSON header,
// raw little-endian tensor data): the format PyTorch users load with
// safetensors.torch.load_file, so descent checkpoints interoperate directly.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace descent {

/// One tensor: dtype name as in the format ("F32", "F64", "I64", "I32", "U8"),
/// shape, and its raw little-endian bytes.
struct StTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

/// A whole file: tensors by name, and the optional `__metadata__` string map.
struct SafeTensors {
  std::map<std::string, StTensor> tensors;
  std::map<std::string, std::string> metadata;
};

/// Reads and validates a safetensors file. Throws DataError naming the file
/// (and the tensor) for: a file shorter than 8 bytes, a header length beyond
/// the file, bad JSON, a non-object header, a missing/unknown dtype, a bad
/// shape, data_offsets out of range, overlapping, or not matching dtype*shape,
/// and non-string metadata.
SafeTensors readSafetensors(const std::string& path);

/// Serializes to the safetensors byte layout (header padded with spaces to a
/// multiple of 8; data ordered by dtype size then name, contiguous, like the
/// reference implementation). Throws DataError on inconsistent tensors.
std::string serializeSafetensors(const SafeTensors& st);

/// Writes serializeSafetensors(st) to `path` atomically.
void writeSafetensors(const std::string& path, const SafeTensors& st);

/// Bytes per element of a supported dtype, or 0 for an unknown one.
size_t dtypeSize(const std::string& dtype);

/// Product of the dimensions (1 for a scalar shape {}).
int64_t numel(const std::vector<int64_t>& shape);

/// An F32 tensor with the given shape; values.size() must equal numel(shape).
StTensor fromFloats(std::vector<int64_t> shape, std::span<const float> values);
/// An F64 tensor with the given shape.
StTensor fromDoubles(std::vector<int64_t> shape, std::span<const double> values);
/// An I64 tensor with the given shape (e.g. an optimizer step count).
StTensor fromInt64s(std::vector<int64_t> shape, std::span<const int64_t> values);

/// The values of an F32 or F64 tensor as float32. `name` and `path` are used
/// in the DataError for other dtypes.
std::vector<float> toFloats(const StTensor& t, const std::string& name, const std::string& path);
/// The values of an I64, I32 or U8 tensor as int64.
std::vector<int64_t> toInt64s(const StTensor& t, const std::string& name, const std::string& path);

/// Looks up a tensor, checks its shape and converts it to float32. Throws
/// DataError("path: tensor 'name' ...") when missing or the shape differs.
std::vector<float> requireFloats(const SafeTensors& st, const std::string& name,
                                 const std::vector<int64_t>& shape, const std::string& path);

} // namespace descent
