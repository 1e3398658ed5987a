#include "kv/codecs/block_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "kv/codecs/block_quant_kernels.h"
#include "tensor/isa.h"
#include "util/error.h"
#include "util/fp16.h"

namespace h1bkv {

namespace {

const char* type_name(BlockQuant t) { return t == BlockQuant::q8_0 ? "q8_0" : "q4_0"; }

size_t block_bytes(BlockQuant t, int B) { return 2 + (t == BlockQuant::q8_0 ? (size_t)B : (size_t)B / 2); }

float block_scale(const uint8_t* blk) {
  uint16_t h;
  std::memcpy(&h, blk, 2);
  return fp16_to_f32(h);
}

// Code j of a block of B values, as the signed integer multiplying d.
int code_at(BlockQuant t, const uint8_t* blk, int B, int j) {
  const uint8_t* qs = blk + 2;
  if (t == BlockQuant::q8_0) return (int8_t)qs[j];
  return j < B / 2 ? (qs[j] & 15) - 8 : (qs[j - B / 2] >> 4) - 8;
}

// ggml's quantize_row_q8_0_ref for one block of B values.
void encode_q8_0(const float* x, int B, uint8_t* blk) {
  float amax = 0.0f;
  for (int j = 0; j < B; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const uint16_t dh = f32_to_fp16(d);
  std::memcpy(blk, &dh, 2);
  for (int j = 0; j < B; ++j) blk[2 + j] = (uint8_t)(int8_t)std::roundf(x[j] * id);
}

// ggml's quantize_row_q4_0_ref for one block of B values. The sum x*id + 8.5 is formed in double
// from the f32 product and rounded to f32: the C source's two f32 roundings, never one FMA.
void encode_q4_0(const float* x, int B, uint8_t* blk) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < B; ++j)
    if (amax < std::fabs(x[j])) amax = std::fabs(x[j]), max = x[j];
  const float d = max / -8;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const uint16_t dh = f32_to_fp16(d);
  std::memcpy(blk, &dh, 2);
  auto code = [&](float v) {
    const float p = v * id;
    return (uint8_t)std::min(15, (int)(int8_t)(float)((double)p + 8.5));
  };
  for (int j = 0; j < B / 2; ++j) blk[2 + j] = (uint8_t)(code(x[j]) | code(x[j + B / 2]) << 4);
}

}  // namespace

int block_quant_block(BlockQuant t, int d) {
  check(d > 0 && (d <= 32 || d % 32 == 0),
        std::string(type_name(t)) + ": head_dim " + std::to_string(d) +
            " must be at most 32 or a multiple of 32");
  const int B = std::min(d, 32);
  check(t != BlockQuant::q4_0 || B % 2 == 0,
        "q4_0: head_dim " + std::to_string(d) + " must be even");
  return B;
}

size_t block_quant_bytes(BlockQuant t, int d) {
  const int B = block_quant_block(t, d);
  return (size_t)(d / B) * block_bytes(t, B);
}

void block_quant_encode(BlockQuant t, const float* x, int d, uint8_t* dst) {
  const int B = std::min(d, 32);
  const size_t bb = block_bytes(t, B);
  for (int b = 0; b < d / B; ++b)
    (t == BlockQuant::q8_0 ? encode_q8_0 : encode_q4_0)(x + b * B, B, dst + b * bb);
}

void block_quant_decode(BlockQuant t, const uint8_t* src, int d, float* out) {
  const int B = std::min(d, 32);
  const size_t bb = block_bytes(t, B);
  for (int b = 0; b < d / B; ++b) {
    const uint8_t* blk = src + b * bb;
    const float s = block_scale(blk);
    for (int j = 0; j < B; ++j) out[b * B + j] = s * (float)code_at(t, blk, B, j);
  }
}

void block_quant_score_ref(BlockQuant t, const float* q, const uint8_t* keys, int64_t n, int d, float* out) {
  const int B = std::min(d, 32);
  const size_t bb = block_bytes(t, B), vb = (size_t)(d / B) * bb;
  for (int64_t i = 0; i < n; ++i) {
    float s = 0;
    for (int b = 0; b < d / B; ++b) {
      const uint8_t* blk = keys + i * vb + b * bb;
      float bs = 0;
      for (int j = 0; j < B; ++j) bs += q[b * B + j] * (float)code_at(t, blk, B, j);
      s += block_scale(blk) * bs;
    }
    out[i] = s;
  }
}

void block_quant_accumulate_ref(BlockQuant t, const float* w, const uint8_t* vals, int64_t n, int d, float* out) {
  const int B = std::min(d, 32);
  const size_t bb = block_bytes(t, B), vb = (size_t)(d / B) * bb;
  for (int64_t i = 0; i < n; ++i)
    for (int b = 0; b < d / B; ++b) {
      const uint8_t* blk = vals + i * vb + b * bb;
      const float a = w[i] * block_scale(blk);
      for (int j = 0; j < B; ++j) out[b * B + j] += a * (float)code_at(t, blk, B, j);
    }
}

// The kernel path's copy (block_quant_kernels.cpp), or the references on the scalar path.
void block_quant_score(BlockQuant t, const float* q, const uint8_t* keys, int64_t n, int d, float* out) {
  if (active_isa() == Isa::scalar) return block_quant_score_ref(t, q, keys, n, d, out);
  detail::block_quant_score_simd(t, q, keys, n, d, out);
}
void block_quant_accumulate(BlockQuant t, const float* w, const uint8_t* vals, int64_t n, int d, float* out) {
  if (active_isa() == Isa::scalar) return block_quant_accumulate_ref(t, w, vals, n, d, out);
  detail::block_quant_accumulate_simd(t, w, vals, n, d, out);
}
void block_quant_score_group(BlockQuant t, const float* const* q, int G, const uint8_t* keys, int64_t n,
                             int d, float* const* out) {
  if (active_isa() == Isa::scalar) {
    for (int g = 0; g < G; ++g) block_quant_score_ref(t, q[g], keys, n, d, out[g]);
    return;
  }
  detail::block_quant_score_group_simd(t, q, G, keys, n, d, out);
}
void block_quant_accumulate_group(BlockQuant t, const float* const* w, int G, const uint8_t* vals,
                                  int64_t n, int d, float* const* out) {
  if (active_isa() == Isa::scalar) {
    for (int g = 0; g < G; ++g) block_quant_accumulate_ref(t, w[g], vals, n, d, out[g]);
    return;
  }
  detail::block_quant_accumulate_group_simd(t, w, G, vals, n, d, out);
}

namespace {

// score = scale * q . decode(k): the query is pre-scaled once (prep: [d]).
class BlockQuantKey : public KeyCodec {
 public:
  BlockQuantKey(BlockQuant t, int d) : t_(t), d_(d), bytes_(block_quant_bytes(t, d)) {}
  std::string name() const override { return type_name(t_); }
  size_t bytes_per_vector() const override { return bytes_; }
  void encode(const float* k, int, uint8_t* dst) const override { block_quant_encode(t_, k, d_, dst); }
  size_t query_prep_floats() const override { return d_; }
  void prepare_query(const float* q, int, float scale, float* prep) const override {
    for (int i = 0; i < d_; ++i) prep[i] = q[i] * scale;
  }
  void score(const float* prep, const uint8_t* keys, int64_t n, float* out) const override {
    block_quant_score(t_, prep, keys, n, d_, out);
  }
  void score_block_group(const float* const* preps, int G, const uint8_t* block, int t0, int n,
                         float* const* out) const override {
    block_quant_score_group(t_, preps, G, block + (size_t)t0 * bytes_, n, d_, out);
  }
 private:
  BlockQuant t_;
  int d_;
  size_t bytes_;
};

class BlockQuantValue : public ValueCodec {
 public:
  BlockQuantValue(BlockQuant t, int d) : t_(t), d_(d), bytes_(block_quant_bytes(t, d)) {}
  std::string name() const override { return type_name(t_); }
  size_t bytes_per_vector() const override { return bytes_; }
  void encode(const float* v, uint8_t* dst) const override { block_quant_encode(t_, v, d_, dst); }
  void accumulate(const float* w, const uint8_t* vals, int64_t n, float* out) const override {
    block_quant_accumulate(t_, w, vals, n, d_, out);
  }
  void accumulate_group(const float* const* w, int G, const uint8_t* vals, int64_t n,
                        float* const* out) const override {
    block_quant_accumulate_group(t_, w, G, vals, n, d_, out);
  }
 private:
  BlockQuant t_;
  int d_;
  size_t bytes_;
};

}  // namespace

std::unique_ptr<KeyCodec> make_block_quant_key(BlockQuant t, int d) {
  return std::make_unique<BlockQuantKey>(t, d);
}
std::unique_ptr<ValueCodec> make_block_quant_value(BlockQuant t, int d) {
  return std::make_unique<BlockQuantValue>(t, d);
}

}  // namespace h1bkv
