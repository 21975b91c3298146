// Measures this machine's fp32 FMA peak on the spot, with a JIT-compiled loop
// of independent vector FMA chains, so `descent bench` can report its speed as
// a fraction of what the cores can do (design.md §8).
#pragma once

namespace descent {

struct FmaPeak {
  int vector_width = 0;   ///< floats per vector (16 with AVX-512, 8 with AVX2)
  double gflops_1 = 0;    ///< one thread
  double gflops_all = 0;  ///< `threads` threads at once
  int threads = 1;
};

/// Runs the peak loop for about `seconds` per measurement on 1 and on
/// `threads` threads. Throws std::runtime_error when the JIT fails.
FmaPeak measureFmaPeak(int threads, double seconds = 0.2);

} // namespace descent
