// The counter-based random generator behind `dropout_mask`: a pure function of
// (seed, step, salt, element index), so the reference interpreter and the JIT
// produce the same mask bit for bit, for any thread count and element order.
//
// Exact formula (all arithmetic on uint64_t, wrapping; `>>` logical):
//
//   mix(z):  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
//            z = (z ^ (z >> 27)) * 0x94D049BB133111EB
//            return z ^ (z >> 31)                       (splitmix64's finalizer)
//   k1 = (uint64(uint32(seed)) << 32) + uint64(step)   (= `|` for steps below 2^32)
//   k2 = (uint64(uint32(salt)) << 32) | uint32(index)  (index = row*cols + col)
//   h  = mix(mix(k1 ^ 0x9E3779B97F4A7C15) ^ k2)
//   r  = uint32(h >> 40)                               (24 random bits, u = r / 2^24 in [0,1))
//   keep  <=>  r >= threshold(p),  threshold(p) = uint32(ceil(p * 2^24))
//
// `u >= p` is decided on integers (u is exactly r/2^24), so the JIT needs no
// floating point to reproduce the mask. A kept element is scaled by 1/(1-p)
// (computed in the element type as T(1)/T(1-p), like PyTorch's noise.div_(1-p)).
#pragma once

#include <cmath>
#include <cstdint>

namespace descent {

/// splitmix64's finalizer: a bijective 64-bit mix.
constexpr uint64_t dropoutMix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// The 24 random bits of element `index` (see the formula above).
constexpr uint32_t dropoutBits(int32_t seed, int64_t step, int64_t salt, uint64_t index) {
  uint64_t k1 = (uint64_t(uint32_t(seed)) << 32) + uint64_t(step);
  uint64_t k2 = (uint64_t(uint32_t(salt)) << 32) | uint64_t(uint32_t(index));
  uint64_t h = dropoutMix(dropoutMix(k1 ^ 0x9E3779B97F4A7C15ull) ^ k2);
  return uint32_t(h >> 40);
}

/// The integer threshold for drop probability p in [0, 1): keep iff bits >= threshold.
inline uint32_t dropoutThreshold(double p) { return uint32_t(std::ceil(p * 16777216.0)); }

/// True when element `index` is kept.
inline bool dropoutKeep(int32_t seed, int64_t step, int64_t salt, uint64_t index, double p) {
  return dropoutBits(seed, step, salt, index) >= dropoutThreshold(p);
}

} // namespace descent
