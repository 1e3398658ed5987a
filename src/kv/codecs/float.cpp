// f32 and f16 codecs: keys and values stored as plain floats ([head_dim] per vector).
#include <cstring>

#include "kv/codecs/float.h"
#include "kv/codecs/float_kernels.h"
#include "util/fp16.h"

namespace h1bkv {

namespace {

class F32Key : public KeyCodec {
 public:
  explicit F32Key(int d) : d_(d) {}
  std::string name() const override { return "f32"; }
  size_t bytes_per_vector() const override { return 4 * (size_t)d_; }
  void encode(const float* k, int, uint8_t* dst) const override { std::memcpy(dst, k, 4 * (size_t)d_); }
  size_t query_prep_floats() const override { return d_; }
  void prepare_query(const float* q, int, float scale, float* prep) const override {
    for (int i = 0; i < d_; ++i) prep[i] = q[i] * scale;
  }
  void score(const float* q, const uint8_t* keys, int64_t n, float* out) const override {
    const float* k = reinterpret_cast<const float*>(keys);  // [n][d]
    for (int64_t t = 0; t < n; ++t) out[t] = dot_f32(q, k + t * d_, d_);
  }
 private:
  int d_;
};

class F16Key : public KeyCodec {
 public:
  explicit F16Key(int d) : d_(d) {}
  std::string name() const override { return "f16"; }
  size_t bytes_per_vector() const override { return 2 * (size_t)d_; }
  void encode(const float* k, int, uint8_t* dst) const override {
    uint16_t* h = reinterpret_cast<uint16_t*>(dst);
    for (int i = 0; i < d_; ++i) h[i] = f32_to_fp16(k[i]);
  }
  size_t query_prep_floats() const override { return d_; }
  void prepare_query(const float* q, int, float scale, float* prep) const override {
    for (int i = 0; i < d_; ++i) prep[i] = q[i] * scale;
  }
  void score(const float* q, const uint8_t* keys, int64_t n, float* out) const override {
    const uint16_t* k = reinterpret_cast<const uint16_t*>(keys);  // [n][d] fp16
    for (int64_t t = 0; t < n; ++t) out[t] = dot_f32_f16(q, k + t * d_, d_);
  }
  // The attention loop's path: the group kernel (prep = scale * q, as prepare_query makes it).
  void score_block_group(const float* const* preps, int G, const uint8_t* block, int t0, int n,
                         float* const* out) const override {
    dot_f32_f16_group(preps, G, reinterpret_cast<const uint16_t*>(block) + (size_t)t0 * d_, d_, n, d_, out);
  }
 private:
  int d_;
};

class F32Value : public ValueCodec {
 public:
  explicit F32Value(int d) : d_(d) {}
  std::string name() const override { return "f32"; }
  size_t bytes_per_vector() const override { return 4 * (size_t)d_; }
  void encode(const float* v, uint8_t* dst) const override { std::memcpy(dst, v, 4 * (size_t)d_); }
  void accumulate(const float* w, const uint8_t* vals, int64_t n, float* out) const override {
    const float* v = reinterpret_cast<const float*>(vals);  // [n][d]
    for (int64_t t = 0; t < n; ++t) axpy_f32(w[t], v + t * d_, out, d_);
  }
 private:
  int d_;
};

class F16Value : public ValueCodec {
 public:
  explicit F16Value(int d) : d_(d) {}
  std::string name() const override { return "f16"; }
  size_t bytes_per_vector() const override { return 2 * (size_t)d_; }
  void encode(const float* v, uint8_t* dst) const override {
    uint16_t* h = reinterpret_cast<uint16_t*>(dst);
    for (int i = 0; i < d_; ++i) h[i] = f32_to_fp16(v[i]);
  }
  void accumulate(const float* w, const uint8_t* vals, int64_t n, float* out) const override {
    const uint16_t* v = reinterpret_cast<const uint16_t*>(vals);  // [n][d] fp16
    for (int64_t t = 0; t < n; ++t) axpy_f16(w[t], v + t * d_, out, d_);
  }
  void accumulate_group(const float* const* w, int G, const uint8_t* vals, int64_t n,
                        float* const* out) const override {
    axpy_f16_group(w, G, reinterpret_cast<const uint16_t*>(vals), d_, n, d_, out);
  }
 private:
  int d_;
};

}  // namespace

std::unique_ptr<KeyCodec> make_f32_key(int d) { return std::make_unique<F32Key>(d); }
std::unique_ptr<KeyCodec> make_f16_key(int d) { return std::make_unique<F16Key>(d); }
std::unique_ptr<ValueCodec> make_f32_value(int d) { return std::make_unique<F32Value>(d); }
std::unique_ptr<ValueCodec> make_f16_value(int d) { return std::make_unique<F16Value>(d); }

}  // namespace h1bkv
