// The window of a 2-D convolution or pooling op, decoded from its attributes
// (docs/ir.md: conv2d, max_pool2d, avg_pool2d and their gradients). One
// decoder for the shape rules, the gradient rules and the interpreter.
#pragma once

#include "compiler/ir/graph.h"

namespace descent {

struct Window2d {
  int64_t kh = 1, kw = 1;                 ///< kernel height and width
  int64_t sh = 1, sw = 1;                 ///< stride
  int64_t pt = 0, pb = 0, pl = 0, pr = 0; ///< zero padding: top, bottom, left, right
  int64_t dh = 1, dw = 1;                 ///< dilation
  int64_t groups = 1;                     ///< conv2d only
  bool ceil_mode = false;                 ///< pooling only
  bool count_include_pad = true;          ///< avg_pool2d only
};

/// conv2d and its gradients: {stride_h, stride_w, pad_top, pad_bottom,
/// pad_left, pad_right, dilation_h, dilation_w, groups}; the kernel comes
/// from the weight (or kernel_h/kernel_w for the weight gradient).
inline Window2d convWindow(const Attrs& a, int64_t kh, int64_t kw) {
  Window2d w;
  w.kh = kh;
  w.kw = kw;
  w.sh = a.getInt("stride_h", 1);
  w.sw = a.getInt("stride_w", 1);
  w.pt = a.getInt("pad_top", 0);
  w.pb = a.getInt("pad_bottom", 0);
  w.pl = a.getInt("pad_left", 0);
  w.pr = a.getInt("pad_right", 0);
  w.dh = a.getInt("dilation_h", 1);
  w.dw = a.getInt("dilation_w", 1);
  w.groups = a.getInt("groups", 1);
  return w;
}

/// max_pool2d, avg_pool2d and their gradients: {kernel_h, kernel_w,
/// stride_h, stride_w, padding_h, padding_w, dilation_h, dilation_w (max
/// only), ceil_mode, count_include_pad (avg only)}; padding is symmetric.
inline Window2d poolWindow(const Attrs& a) {
  Window2d w;
  w.kh = a.getInt("kernel_h", 1);
  w.kw = a.getInt("kernel_w", 1);
  w.sh = a.getInt("stride_h", w.kh);
  w.sw = a.getInt("stride_w", w.kw);
  w.pt = w.pb = a.getInt("padding_h", 0);
  w.pl = w.pr = a.getInt("padding_w", 0);
  w.dh = a.getInt("dilation_h", 1);
  w.dw = a.getInt("dilation_w", 1);
  w.ceil_mode = a.getBool("ceil_mode", false);
  w.count_include_pad = a.getBool("count_include_pad", true);
  return w;
}

} // namespace descent
