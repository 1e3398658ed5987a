// libFuzzer target for the GGUF reader: any input must either parse or throw h1bkv::Error —
// never crash, hang, allocate hugely or read out of bounds (ASan/UBSan watch the reads).
// When it parses, every metadata value is formatted and every tensor's first and last byte is
// read, so a wrong data pointer or size shows up as an out-of-bounds read here.
// Build and run: scripts/fuzz.sh
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "io/gguf.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Copy into an exactly-sized heap block: libFuzzer's own buffer is exact too, but this keeps
  // the property explicit should the harness change.
  std::unique_ptr<uint8_t[]> buf(new uint8_t[size ? size : 1]);
  if (size) std::memcpy(buf.get(), data, size);
  try {
    auto g = h1bkv::GgufFile::from_memory(buf.get(), size, "fuzz.gguf");
    volatile size_t sink = 0;
    for (const auto& [key, v] : g->metadata()) {
      sink = sink + key.size() + v.to_string().size();
      if (v.type == h1bkv::GgufType::ARRAY)
        sink = sink + v.arr_str.size() + v.arr_int.size() + v.arr_float.size();
    }
    // The typed getters must agree with find() and throw only Error.
    try { sink = sink + g->get_string("general.architecture", "").size(); } catch (const h1bkv::Error&) {}
    try { sink = sink + static_cast<size_t>(g->get_int("general.alignment", 0)); } catch (const h1bkv::Error&) {}
    for (const h1bkv::GgufTensor& t : g->tensors()) {
      if (t.n_bytes == 0) __builtin_trap();  // every valid tensor has at least one element
      if (g->find_tensor(t.name) != &t) __builtin_trap();
      // The data must lie inside the input: checked without forming out-of-range pointers.
      const uintptr_t lo = reinterpret_cast<uintptr_t>(buf.get());
      const uintptr_t p = reinterpret_cast<uintptr_t>(t.data);
      if (p < lo || p - lo > size || t.n_bytes > size - (p - lo)) __builtin_trap();
      sink = sink + t.data[0] + t.data[t.n_bytes - 1];
    }
    (void)sink;
  } catch (const h1bkv::Error&) {
    // expected for bad input
  }
  return 0;
}
