// Classifies Fashion-MNIST test images with the inference library that
// `descent compile models/mnist_mlp.nn --inference` makes (mnist_mlp.h,
// libmnist_mlp.a): loads a checkpoint `descent train --save` wrote, predicts
// the test set in batches of mnist_mlp_BATCH, prints the first N predictions
// (index, predicted class and its name, its probability, true class) and the
// accuracy.
// No LLVM and no descent at run time: the header, the library and zlib.
// Usage: classify DATA_DIR WEIGHTS.safetensors [N]
// Build: c++ -std=c++17 -O2 -I LIBDIR classify.cpp LIBDIR/libmnist_mlp.a -lpthread -lz
#include "mnist_mlp.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>
#include <zlib.h>

namespace {

const char* const kClasses[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                  "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

// An IDX file (gzipped, or plain under the name without .gz): its items of
// `item` bytes each. Empty on error (reported).
std::vector<unsigned char> readIdx(const std::string& dir, const std::string& name, int dims,
                                   int64_t& count, int64_t& item) {
  std::string path = dir + "/" + name + ".gz";
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) {
    path = dir + "/" + name;
    f = gzopen(path.c_str(), "rb");
  }
  if (!f) {
    std::fprintf(stderr, "error: %s: cannot open\n", path.c_str());
    return {};
  }
  unsigned char hdr[16];
  int hn = 4 + 4 * dims;
  std::vector<unsigned char> data;
  if (gzread(f, hdr, unsigned(hn)) != hn || hdr[2] != 8 || hdr[3] != dims) {
    std::fprintf(stderr, "error: %s: not an IDX file of %d dimension(s)\n", path.c_str(), dims);
  } else {
    auto be32 = [&](int at) {
      return int64_t(hdr[at]) << 24 | hdr[at + 1] << 16 | hdr[at + 2] << 8 | hdr[at + 3];
    };
    count = be32(4);
    item = 1;
    for (int d = 1; d < dims; ++d) item *= be32(4 + 4 * d);
    data.resize(size_t(count * item));
    if (gzread(f, data.data(), unsigned(data.size())) != int(data.size())) {
      std::fprintf(stderr, "error: %s: truncated\n", path.c_str());
      data.clear();
    }
  }
  gzclose(f);
  return data;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s DATA_DIR WEIGHTS.safetensors [N]\n", argv[0]);
    return 2;
  }
  const int show = argc > 3 ? std::atoi(argv[3]) : 10;
  int64_t n = 0, pixels = 0, labels_n = 0, one = 0;
  std::vector<unsigned char> x = readIdx(argv[1], "t10k-images-idx3-ubyte", 3, n, pixels);
  std::vector<unsigned char> y = readIdx(argv[1], "t10k-labels-idx1-ubyte", 1, labels_n, one);
  if (x.empty() || y.empty()) return 1;
  if (pixels != mnist_mlp_INPUT_FEATURES || labels_n != n) {
    std::fprintf(stderr, "error: %s: expected %d pixels per image and one label each\n", argv[1],
                 mnist_mlp_INPUT_FEATURES);
    return 1;
  }
  mnist_mlp* m = nullptr;
  int rc = mnist_mlp_create(&m);
  if (rc == 0) rc = mnist_mlp_load(m, argv[2]);
  if (rc != 0) {
    std::fprintf(stderr, "error: %s: %s\n", argv[2], mnist_mlp_strerror(rc));
    mnist_mlp_destroy(m);
    return 1;
  }
  // The model ends in LogSoftmax: each output row holds log-probabilities.
  std::vector<float> out(size_t(mnist_mlp_BATCH) * mnist_mlp_OUTPUTS);
  int64_t correct = 0;
  std::printf("index,predicted,name,probability,label\n");
  for (int64_t b = 0; b < n; b += mnist_mlp_BATCH) {
    int rows = int(std::min<int64_t>(mnist_mlp_BATCH, n - b));
    rc = mnist_mlp_predict(m, &x[size_t(b * pixels)], rows, out.data());
    if (rc != 0) {
      std::fprintf(stderr, "error: predict: %s\n", mnist_mlp_strerror(rc));
      mnist_mlp_destroy(m);
      return 1;
    }
    for (int r = 0; r < rows; ++r) {
      const float* row = &out[size_t(r) * mnist_mlp_OUTPUTS];
      int best = 0;
      for (int c = 1; c < mnist_mlp_OUTPUTS; ++c)
        if (row[c] > row[best]) best = c; // the first maximum, like torch.argmax
      int64_t i = b + r;
      correct += best == y[size_t(i)];
      if (i < show)
        std::printf("%lld,%d,%s,%.4f,%s\n", static_cast<long long>(i), best, kClasses[best],
                    std::exp(row[best]), kClasses[y[size_t(i)]]);
    }
  }
  std::printf("accuracy %.2f%% over %lld test images\n", 100.0 * double(correct) / double(n),
              static_cast<long long>(n));
  mnist_mlp_destroy(m);
  return 0;
}
