// Fuzz target "checkpoint": loadCheckpoint (the model file, then the optimizer
// file beside it) into the interpreter engine of a tiny Adam model. The input
// is the model file, optionally followed by kSeparator and the optimizer file.
#include "compiler/frontend/frontend.h"
#include "fuzz/fuzz_support.h"
#include "runtime/checkpoint.h"
#include "runtime/engine.h"

#include <cstdio>
#include <memory>
#include <string_view>

namespace descent::fuzz {

namespace {

// Adam keeps two state tensors per parameter, so the optimizer file has
// something to load; the shapes are tiny so that seeds stay small.
constexpr const char* kModel = R"(input  x: f32[3]
target y: class[2]
model = Sequential(Linear(3, 2), LogSoftmax(dim=1))
loss      = NLLLoss()
optimizer = Adam(lr=0.01)
batch     = 2
epochs    = 1
)";

constexpr std::string_view kSeparator = "\n--descent-fuzz-optimizer-file--\n";

struct Fixture {
  ModelSpec spec;
  std::unique_ptr<Engine> engine;
};

const Fixture& fixture() {
  // Built once per process: the engine is only written by loadCheckpoint.
  static const Fixture f = [] {
    Diagnostics diags("fuzz.nn", kModel);
    std::optional<ModelSpec> spec = analyzeSource("fuzz.nn", kModel, diags);
    if (!spec) fail("the checkpoint target's model does not compile: " + diags.render());
    Fixture f;
    f.spec = *spec;
    EngineOptions opts;
    opts.batch = f.spec.batch;
    opts.threads = 1;
    f.engine = makeInterpEngine(f.spec, opts);
    return f;
  }();
  return f;
}

} // namespace

void checkpoint(const uint8_t* data, size_t size) {
  const Fixture& f = fixture();
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t sep = in.find(kSeparator);
  const std::string path = writeScratch("ck.safetensors", in.substr(0, sep));
  const std::string opath = optimizerStatePath(path);
  if (sep == std::string_view::npos)
    std::remove(opath.c_str());
  else
    writeScratch(opath.substr(opath.rfind('/') + 1), in.substr(sep + kSeparator.size()));
  readsOrRejects([&] { loadCheckpoint(path, *f.engine, f.spec); });
}

} // namespace descent::fuzz
