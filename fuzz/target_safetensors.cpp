// Fuzz target "safetensors": readSafetensors on arbitrary bytes. A file it
// accepts must survive serialize -> read unchanged, and its tensors must
// convert (or be refused with a DataError) without reading out of bounds.
#include "fuzz/fuzz_support.h"
#include "runtime/safetensors.h"

namespace descent::fuzz {

void safetensors(const uint8_t* data, size_t size) {
  const std::string path =
      writeScratch("in.safetensors", {reinterpret_cast<const char*>(data), size});
  SafeTensors st;
  if (!readsOrRejects([&] { st = readSafetensors(path); })) return;
  for (const auto& [name, t] : st.tensors) {
    if (t.data.size() != static_cast<size_t>(numel(t.shape)) * dtypeSize(t.dtype))
      fail("tensor '" + name + "': data size does not match dtype and shape");
    readsOrRejects([&] { toFloats(t, name, path); });
    readsOrRejects([&] { toInt64s(t, name, path); });
  }
  // What was read must write back and read identically (the save path).
  const std::string again = writeScratch("again.safetensors", serializeSafetensors(st));
  SafeTensors back = readSafetensors(again);
  if (back.metadata != st.metadata) fail("metadata changed in a write/read round trip");
  if (back.tensors.size() != st.tensors.size()) fail("tensor count changed in a round trip");
  for (const auto& [name, t] : st.tensors) {
    auto it = back.tensors.find(name);
    if (it == back.tensors.end() || it->second.dtype != t.dtype || it->second.shape != t.shape ||
        it->second.data != t.data)
      fail("tensor '" + name + "' changed in a write/read round trip");
  }
}

} // namespace descent::fuzz
