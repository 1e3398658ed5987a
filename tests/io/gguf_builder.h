// A small GGUF writer for tests: builds valid v2/v3 images in memory with chosen metadata and
// tensors, and lets a test override any header field to build a deliberately bad file.
// Independent of the reader: it serialises by hand and has its own table of block sizes.
#pragma once
#include <cstdint>
#include <cstring>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace h1bkv::test {

using Bytes = std::vector<uint8_t>;

// Little-endian serialisation of single fields.
template <typename T>
inline void put(Bytes& b, T v) {
  uint8_t tmp[sizeof(T)];
  std::memcpy(tmp, &v, sizeof(T));
  b.insert(b.end(), tmp, tmp + sizeof(T));
}
inline void put_str(Bytes& b, const std::string& s) {
  put<uint64_t>(b, s.size());
  b.insert(b.end(), s.begin(), s.end());
}
inline void put_bytes(Bytes& b, const Bytes& more) { b.insert(b.end(), more.begin(), more.end()); }

// GGUF value type ids (spec: gguf_type).
enum : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8,
  kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};
// A few ggml tensor type ids and their geometry (ggml.h / ggml-common.h).
enum : uint32_t { kTF32 = 0, kTF16 = 1, kTQ4_0 = 2, kTQ8_0 = 8, kTQ4_K = 12 };
inline uint64_t tensor_bytes(uint32_t type, const std::vector<uint64_t>& dims) {
  uint64_t block = 1, bytes = 0;
  switch (type) {
    case kTF32: block = 1; bytes = 4; break;
    case kTF16: block = 1; bytes = 2; break;
    case kTQ4_0: block = 32; bytes = 18; break;
    case kTQ8_0: block = 32; bytes = 34; break;
    case kTQ4_K: block = 256; bytes = 144; break;
    default: return 0;  // unknown to the builder: no data written
  }
  if (dims.empty()) return 0;
  uint64_t n = 1;
  for (uint64_t d : dims) {
    if (d == 0 || __builtin_mul_overflow(n, d, &n)) return 0;
  }
  if (n > (uint64_t{1} << 32)) return 0;  // the bad-dims tests: write no data
  return n / block * bytes;
}

class GgufBuilder {
 public:
  struct Tensor {
    std::string name;
    std::vector<uint64_t> dims;  // written as n_dims = dims.size(), then each dim
    uint32_t type = kTF32;
    std::optional<uint64_t> offset;  // default: next aligned offset after the previous tensor
    uint64_t n_bytes = 0;            // data bytes written for it (from the type and dims)
    uint64_t placed_offset = 0;      // the offset actually written (filled by build())
    Bytes data;                      // written instead of pattern() when not empty
  };

  explicit GgufBuilder(uint32_t version = 3) : version_(version) {}

  // Header overrides for bad files.
  GgufBuilder& magic(uint32_t m) { magic_ = m; return *this; }
  GgufBuilder& version(uint32_t v) { version_ = v; return *this; }
  GgufBuilder& tensor_count(uint64_t n) { n_tensors_ = n; return *this; }
  GgufBuilder& kv_count(uint64_t n) { n_kv_ = n; return *this; }
  // Bytes to drop from the end of the finished image (tensor data past EOF).
  GgufBuilder& chop(size_t n) { chop_ = n; return *this; }

  // Metadata. Each call appends one key/value pair in file order.
  GgufBuilder& kv_raw(const std::string& key, uint32_t type, const Bytes& payload) {
    Bytes b;
    put_str(b, key);
    put<uint32_t>(b, type);
    put_bytes(b, payload);
    kv_.push_back(std::move(b));
    return *this;
  }
  // A pair given entirely as raw bytes (key length and all), e.g. a huge key length.
  GgufBuilder& kv_bytes(const Bytes& raw) { kv_.push_back(raw); return *this; }
  template <typename T>
  GgufBuilder& kv(const std::string& key, uint32_t type, T v) {
    Bytes p;
    put<T>(p, v);
    return kv_raw(key, type, p);
  }
  GgufBuilder& kv_u8(const std::string& k, uint8_t v) { return kv(k, kU8, v); }
  GgufBuilder& kv_i8(const std::string& k, int8_t v) { return kv(k, kI8, v); }
  GgufBuilder& kv_u16(const std::string& k, uint16_t v) { return kv(k, kU16, v); }
  GgufBuilder& kv_i16(const std::string& k, int16_t v) { return kv(k, kI16, v); }
  GgufBuilder& kv_u32(const std::string& k, uint32_t v) { return kv(k, kU32, v); }
  GgufBuilder& kv_i32(const std::string& k, int32_t v) { return kv(k, kI32, v); }
  GgufBuilder& kv_u64(const std::string& k, uint64_t v) { return kv(k, kU64, v); }
  GgufBuilder& kv_i64(const std::string& k, int64_t v) { return kv(k, kI64, v); }
  GgufBuilder& kv_f32(const std::string& k, float v) { return kv(k, kF32, v); }
  GgufBuilder& kv_f64(const std::string& k, double v) { return kv(k, kF64, v); }
  GgufBuilder& kv_bool(const std::string& k, bool v) { return kv<uint8_t>(k, kBool, v ? 1 : 0); }
  GgufBuilder& kv_str(const std::string& k, const std::string& v) {
    Bytes p;
    put_str(p, v);
    return kv_raw(k, kString, p);
  }
  template <typename T>
  GgufBuilder& kv_arr(const std::string& k, uint32_t elem_type, const std::vector<T>& v) {
    Bytes p;
    put<uint32_t>(p, elem_type);
    put<uint64_t>(p, v.size());
    for (const T& x : v) put<T>(p, x);
    return kv_raw(k, kArray, p);
  }
  GgufBuilder& kv_arr_str(const std::string& k, const std::vector<std::string>& v) {
    Bytes p;
    put<uint32_t>(p, kString);
    put<uint64_t>(p, v.size());
    for (const auto& s : v) put_str(p, s);
    return kv_raw(k, kArray, p);
  }
  // Sets general.alignment (as u32, as the spec says) and uses it for the layout.
  GgufBuilder& alignment(uint32_t a) {
    alignment_ = a;
    return kv_u32("general.alignment", a);
  }

  // Tensors. Data is a deterministic byte pattern (see pattern()).
  GgufBuilder& tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type = kTF32,
                      std::optional<uint64_t> offset = std::nullopt) {
    Tensor t;
    t.name = name;
    t.dims = std::move(dims);
    t.type = type;
    t.offset = offset;
    t.n_bytes = tensor_bytes(type, t.dims);
    tensors_.push_back(std::move(t));
    return *this;
  }

  // An F32 tensor with the given values (dims[0] contiguous, as GGUF orders them).
  GgufBuilder& tensor_f32(const std::string& name, std::vector<uint64_t> dims,
                          const std::vector<float>& values) {
    tensor(name, std::move(dims), kTF32);
    Bytes& d = tensors_.back().data;
    d.resize(values.size() * sizeof(float));
    std::memcpy(d.data(), values.data(), d.size());
    tensors_.back().n_bytes = d.size();
    return *this;
  }

  static uint8_t pattern(size_t tensor_index, uint64_t byte) {
    return static_cast<uint8_t>(tensor_index * 37 + byte * 7 + 1);
  }

  // Layout facts of the last build().
  uint64_t data_offset() const { return data_offset_; }
  uint64_t header_size() const { return header_size_; }
  const std::vector<Tensor>& tensors() const { return tensors_; }

  Bytes build() {
    Bytes b;
    put<uint32_t>(b, magic_);
    put<uint32_t>(b, version_);
    put<uint64_t>(b, n_tensors_.value_or(tensors_.size()));
    put<uint64_t>(b, n_kv_.value_or(kv_.size()));
    for (const Bytes& kv : kv_) put_bytes(b, kv);
    const uint64_t align = alignment_ ? alignment_ : 32;
    uint64_t next = 0;
    for (Tensor& t : tensors_) {
      put_str(b, t.name);
      put<uint32_t>(b, static_cast<uint32_t>(t.dims.size()));
      for (uint64_t d : t.dims) put<uint64_t>(b, d);
      put<uint32_t>(b, t.type);
      t.placed_offset = t.offset.value_or(next);
      put<uint64_t>(b, t.placed_offset);
      if (!t.offset) next = (t.placed_offset + t.n_bytes + align - 1) / align * align;
    }
    header_size_ = b.size();
    data_offset_ = (b.size() + align - 1) / align * align;
    if (!tensors_.empty()) {
      b.resize(data_offset_, 0);
      for (size_t k = 0; k < tensors_.size(); ++k) {
        const Tensor& t = tensors_[k];
        if (t.placed_offset > (uint64_t{1} << 24) || t.n_bytes > (uint64_t{1} << 24)) continue;
        const uint64_t begin = data_offset_ + t.placed_offset;
        if (b.size() < begin + t.n_bytes) b.resize(begin + t.n_bytes, 0);
        if (!t.data.empty()) std::memcpy(b.data() + begin, t.data.data(), t.data.size());
        else for (uint64_t j = 0; j < t.n_bytes; ++j) b[begin + j] = pattern(k, j);
      }
    }
    b.resize(b.size() - std::min(chop_, b.size()));
    return b;
  }

 private:
  uint32_t magic_ = 0x46554747;  // "GGUF"
  uint32_t version_;
  std::optional<uint64_t> n_tensors_, n_kv_;
  size_t chop_ = 0;
  uint32_t alignment_ = 0;
  std::vector<Bytes> kv_;
  std::vector<Tensor> tensors_;
  uint64_t data_offset_ = 0, header_size_ = 0;
};

inline void write_file(const std::string& path, const Bytes& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

}  // namespace h1bkv::test
