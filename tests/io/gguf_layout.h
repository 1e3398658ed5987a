// Where each field of a valid GGUF image lies, found by walking it independently of the reader,
// so tests can damage a real model (stories260K) one field at a time: a tensor's offset, type or
// dims, a metadata value, bytes of a tensor's data. Also re-emits an image with some metadata
// pairs replaced (which shifts the data section), for damage that changes a length.
#pragma once
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/gguf_builder.h"

namespace h1bkv::test {

struct KvField {
  std::string key;
  uint32_t type = 0;
  size_t begin = 0;        // first byte of the pair (its key length)
  size_t value = 0;        // first byte of the value (after the type)
  size_t end = 0;          // one past the pair
};

struct TensorField {
  std::string name;
  uint32_t n_dims = 0;
  size_t dims = 0;         // byte offset of the first u64 dim
  size_t type = 0;         // byte offset of the u32 type
  size_t offset = 0;       // byte offset of the u64 data offset
  uint64_t data_offset = 0;  // value of that field
};

struct GgufLayout {
  std::vector<KvField> kv;
  std::vector<TensorField> tensors;
  size_t infos_begin = 0;  // first tensor info
  size_t infos_end = 0;    // one past the last tensor info
  uint64_t alignment = 32;
  uint64_t data_section = 0;  // aligned start of the tensor data

  const KvField& key(const std::string& k) const {
    for (const auto& f : kv)
      if (f.key == k) return f;
    throw std::runtime_error("gguf_layout: no key " + k);
  }
  const TensorField& tensor(const std::string& n) const {
    for (const auto& t : tensors)
      if (t.name == n) return t;
    throw std::runtime_error("gguf_layout: no tensor " + n);
  }
};

inline Bytes read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

template <typename T>
T get_at(const Bytes& b, size_t pos) {
  if (pos + sizeof(T) > b.size()) throw std::runtime_error("gguf_layout: read past the end");
  T v;
  std::memcpy(&v, b.data() + pos, sizeof(T));
  return v;
}
template <typename T>
void set_at(Bytes& b, size_t pos, T v) {
  if (pos + sizeof(T) > b.size()) throw std::runtime_error("gguf_layout: write past the end");
  std::memcpy(b.data() + pos, &v, sizeof(T));
}

// Walks a valid image (throws std::runtime_error on anything unexpected).
inline GgufLayout gguf_layout(const Bytes& b) {
  GgufLayout L;
  size_t p = 8;
  const uint64_t n_tensors = get_at<uint64_t>(b, p);
  const uint64_t n_kv = get_at<uint64_t>(b, p + 8);
  p += 16;
  auto str = [&](size_t& q) {
    const uint64_t n = get_at<uint64_t>(b, q);
    if (q + 8 + n > b.size()) throw std::runtime_error("gguf_layout: bad string");
    std::string s(reinterpret_cast<const char*>(b.data() + q + 8), n);
    q += 8 + n;
    return s;
  };
  auto scalar = [](uint32_t t) -> size_t {
    static const size_t sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < 13 ? sz[t] : 0;
  };
  for (uint64_t k = 0; k < n_kv; ++k) {
    KvField f;
    f.begin = p;
    f.key = str(p);
    f.type = get_at<uint32_t>(b, p);
    p += 4;
    f.value = p;
    if (f.type == kString) {
      str(p);
    } else if (f.type == kArray) {
      const uint32_t et = get_at<uint32_t>(b, p);
      const uint64_t n = get_at<uint64_t>(b, p + 4);
      p += 12;
      if (et == kString) {
        for (uint64_t i = 0; i < n; ++i) str(p);
      } else {
        if (scalar(et) == 0) throw std::runtime_error("gguf_layout: bad array type");
        p += n * scalar(et);
      }
    } else {
      if (scalar(f.type) == 0) throw std::runtime_error("gguf_layout: bad type");
      p += scalar(f.type);
    }
    f.end = p;
    if (f.key == "general.alignment") L.alignment = get_at<uint32_t>(b, f.value);
    L.kv.push_back(f);
  }
  L.infos_begin = p;
  for (uint64_t k = 0; k < n_tensors; ++k) {
    TensorField t;
    t.name = str(p);
    t.n_dims = get_at<uint32_t>(b, p);
    p += 4;
    t.dims = p;
    p += 8 * (size_t)t.n_dims;
    t.type = p;
    p += 4;
    t.offset = p;
    t.data_offset = get_at<uint64_t>(b, p);
    p += 8;
    L.tensors.push_back(t);
  }
  L.infos_end = p;
  L.data_section = (p + L.alignment - 1) / L.alignment * L.alignment;
  return L;
}

// The image with the metadata pairs named in `replace` swapped for the given raw pairs (key
// length, key, type, value: as GgufBuilder::kv_raw lays them out), the data section re-aligned.
inline Bytes with_metadata(const Bytes& b, const std::map<std::string, Bytes>& replace) {
  const GgufLayout L = gguf_layout(b);
  Bytes out(b.begin(), b.begin() + 24);
  for (const auto& f : L.kv) {
    auto it = replace.find(f.key);
    if (it != replace.end()) put_bytes(out, it->second);
    else out.insert(out.end(), b.begin() + f.begin, b.begin() + f.end);
  }
  out.insert(out.end(), b.begin() + L.infos_begin, b.begin() + L.infos_end);
  out.resize((out.size() + L.alignment - 1) / L.alignment * L.alignment, 0);
  out.insert(out.end(), b.begin() + L.data_section, b.end());
  return out;
}

// A raw metadata pair: array of strings.
inline Bytes kv_pair_strings(const std::string& key, const std::vector<std::string>& v) {
  Bytes p;
  put_str(p, key);
  put<uint32_t>(p, kArray);
  put<uint32_t>(p, kString);
  put<uint64_t>(p, v.size());
  for (const auto& s : v) put_str(p, s);
  return p;
}

// The strings of an array-of-strings pair.
inline std::vector<std::string> strings_of(const Bytes& b, const KvField& f) {
  std::vector<std::string> v;
  size_t p = f.value + 4;
  const uint64_t n = get_at<uint64_t>(b, p);
  p += 8;
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t len = get_at<uint64_t>(b, p);
    v.emplace_back(reinterpret_cast<const char*>(b.data() + p + 8), len);
    p += 8 + len;
  }
  return v;
}

// A raw metadata pair: array of fixed-size scalars copied from f with the first n elements.
inline Bytes kv_pair_prefix(const Bytes& b, const KvField& f, uint64_t n, size_t elem_size) {
  Bytes p;
  put_str(p, f.key);
  put<uint32_t>(p, kArray);
  put<uint32_t>(p, get_at<uint32_t>(b, f.value));
  put<uint64_t>(p, n);
  p.insert(p.end(), b.begin() + f.value + 12, b.begin() + f.value + 12 + n * elem_size);
  return p;
}

// Damage used by the mutation harness and the CLI hostile-input suite.
// Every tensor's data offset set to 0: all tensors share the same bytes.
inline Bytes damage_all_offsets_zero(Bytes b) {
  for (const auto& t : gguf_layout(b).tensors) set_at<uint64_t>(b, t.offset, 0);
  return b;
}
// <arch>.block_count (a u32 in llama.cpp's files) set to n.
inline Bytes damage_block_count(Bytes b, uint32_t n, const std::string& arch = "llama") {
  const GgufLayout L = gguf_layout(b);
  const KvField& f = L.key(arch + ".block_count");
  if (f.type != kU32) throw std::runtime_error("block_count is not u32");
  set_at<uint32_t>(b, f.value, n);
  return b;
}
// One f32 element of a tensor set to NaN.
inline Bytes damage_nan(Bytes b, const std::string& tensor, uint64_t element) {
  const GgufLayout L = gguf_layout(b);
  const TensorField& t = L.tensor(tensor);
  if (get_at<uint32_t>(b, t.type) != kTF32) throw std::runtime_error(tensor + " is not f32");
  set_at<uint32_t>(b, L.data_section + t.data_offset + 4 * element, 0x7fc00000u);
  return b;
}
// The tokenizer's tokens (and scores, token types) one shorter than the embedding's rows.
inline Bytes damage_short_tokenizer(const Bytes& b) {
  const GgufLayout L = gguf_layout(b);
  std::map<std::string, Bytes> rep;
  std::vector<std::string> toks = strings_of(b, L.key("tokenizer.ggml.tokens"));
  toks.pop_back();
  rep["tokenizer.ggml.tokens"] = kv_pair_strings("tokenizer.ggml.tokens", toks);
  for (const auto& f : L.kv)
    if (f.key == "tokenizer.ggml.scores" || f.key == "tokenizer.ggml.token_type")
      rep[f.key] = kv_pair_prefix(b, f, toks.size(), 4);
  return with_metadata(b, rep);
}

}  // namespace h1bkv::test
