// Output sizes of 2-D convolutions and pooling windows along one spatial
// dimension, with PyTorch's rules (ATen's ConvUtils.h and Pool.h). The
// frontend's shape checks and the IR's shape rules both use them, so a model
// the language accepts is one the IR accepts.
#pragma once

#include <cstdint>

namespace descent {

/// Convolution: floor((in + pad_begin + pad_end - dilation*(k-1) - 1)/stride) + 1,
/// or 0 when the dilated kernel is larger than the padded input.
inline int64_t convOutSize(int64_t in, int64_t k, int64_t stride, int64_t pad_begin,
                           int64_t pad_end, int64_t dilation) {
  const int64_t span = in + pad_begin + pad_end - dilation * (k - 1) - 1;
  return span < 0 ? 0 : span / stride + 1;
}

/// Pooling (pooling_output_shape): floor division, or with ceil_mode rounded
/// up, except that the last window must start inside the input or the left
/// padding (a window starting in the right padding is dropped). May be <= 0
/// (PyTorch's "Output size is too small").
inline int64_t poolOutSize(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dilation,
                           bool ceil_mode) {
  const int64_t num = in + 2 * pad - dilation * (k - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  int64_t out = (num >= 0 ? num / stride : -((-num + stride - 1) / stride)) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

/// AdaptiveAvgPool2d's window along one dimension for output index i:
/// [floor(i*in/out), ceil((i+1)*in/out)).
inline int64_t adaptiveStart(int64_t i, int64_t in, int64_t out) {
  return (i * in) / out;
}
inline int64_t adaptiveEnd(int64_t i, int64_t in, int64_t out) {
  return ((i + 1) * in + out - 1) / out;
}

} // namespace descent
