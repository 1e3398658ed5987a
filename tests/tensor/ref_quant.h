// Test-side reference quantizers: float rows -> GGUF blocks (simple round-to-nearest versions of
// ggml's quantize_row_*_ref; the block layouts are restated here from ggml-common.h, so the
// dequantizer under test is checked against an independent encoder).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "io/ggml_type.h"
#include "util/fp16.h"

namespace h1bkv::testing {

inline void put_f16(uint8_t* p, float v) {
  const uint16_t h = f32_to_fp16(v);
  std::memcpy(p, &h, 2);
}
inline float f16_round(float v) { return fp16_to_f32(f32_to_fp16(v)); }
inline int clampi(int v, int lo, int hi) { return std::min(hi, std::max(lo, v)); }

// Q4_0 {f16 d; u8 qs[16]}: x = (q-8)*d, element j in low nibble of qs[j], j+16 in high nibble.
inline void quantize_q4_0(const float* x, uint8_t* b) {
  float amax = 0;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = f16_round(amax / 7.0f), id = d ? 1.0f / d : 0.0f;
  put_f16(b, d);
  for (int j = 0; j < 16; ++j) {
    const int q0 = clampi((int)std::lround(x[j] * id) + 8, 0, 15);
    const int q1 = clampi((int)std::lround(x[j + 16] * id) + 8, 0, 15);
    b[2 + j] = (uint8_t)(q0 | (q1 << 4));
  }
}

// Q4_1 {f16 d, m; u8 qs[16]}: x = q*d + m.
inline void quantize_q4_1(const float* x, uint8_t* b) {
  float mn = x[0], mx = x[0];
  for (int j = 0; j < 32; ++j) mn = std::min(mn, x[j]), mx = std::max(mx, x[j]);
  const float d = f16_round((mx - mn) / 15.0f), m = f16_round(mn), id = d ? 1.0f / d : 0.0f;
  put_f16(b, d);
  put_f16(b + 2, m);
  for (int j = 0; j < 16; ++j) {
    const int q0 = clampi((int)std::lround((x[j] - m) * id), 0, 15);
    const int q1 = clampi((int)std::lround((x[j + 16] - m) * id), 0, 15);
    b[4 + j] = (uint8_t)(q0 | (q1 << 4));
  }
}

// Q5_0 {f16 d; u8 qh[4]; u8 qs[16]}: x = (q-16)*d, bit 4 of element j = bit j of qh (LE u32).
inline void quantize_q5_0(const float* x, uint8_t* b) {
  float amax = 0;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = f16_round(amax / 15.0f), id = d ? 1.0f / d : 0.0f;
  put_f16(b, d);
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const int q0 = clampi((int)std::lround(x[j] * id) + 16, 0, 31);
    const int q1 = clampi((int)std::lround(x[j + 16] * id) + 16, 0, 31);
    b[6 + j] = (uint8_t)((q0 & 15) | ((q1 & 15) << 4));
    qh |= (uint32_t)(q0 >> 4) << j;
    qh |= (uint32_t)(q1 >> 4) << (j + 16);
  }
  std::memcpy(b + 2, &qh, 4);
}

// Q5_1 {f16 d, m; u8 qh[4]; u8 qs[16]}: x = q*d + m.
inline void quantize_q5_1(const float* x, uint8_t* b) {
  float mn = x[0], mx = x[0];
  for (int j = 0; j < 32; ++j) mn = std::min(mn, x[j]), mx = std::max(mx, x[j]);
  const float d = f16_round((mx - mn) / 31.0f), m = f16_round(mn), id = d ? 1.0f / d : 0.0f;
  put_f16(b, d);
  put_f16(b + 2, m);
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const int q0 = clampi((int)std::lround((x[j] - m) * id), 0, 31);
    const int q1 = clampi((int)std::lround((x[j + 16] - m) * id), 0, 31);
    b[8 + j] = (uint8_t)((q0 & 15) | ((q1 & 15) << 4));
    qh |= (uint32_t)(q0 >> 4) << j;
    qh |= (uint32_t)(q1 >> 4) << (j + 16);
  }
  std::memcpy(b + 4, &qh, 4);
}

// Q8_0 {f16 d; i8 qs[32]}: x = q*d.
inline void quantize_q8_0(const float* x, uint8_t* b) {
  float amax = 0;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = f16_round(amax / 127.0f), id = d ? 1.0f / d : 0.0f;
  put_f16(b, d);
  for (int j = 0; j < 32; ++j) b[2 + j] = (uint8_t)(int8_t)clampi((int)std::lround(x[j] * id), -127, 127);
}

// Q4_K scales[12] from 8 six-bit scales and mins (inverse of ggml get_scale_min_k4).
inline void pack_q4k_scales(const int* sc, const int* mn, uint8_t* s) {
  for (int j = 0; j < 4; ++j) {
    s[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    s[j + 4] = (uint8_t)((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
    s[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
  }
}

// Q4_K {f16 d, dmin; u8 scales[12]; u8 qs[128]}: sub-block j (32 values) = d*sc[j]*q - dmin*mn[j];
// qs[32c + l] holds value 64c+l (low nibble) and 64c+32+l (high nibble).
inline void quantize_q4_k(const float* x, uint8_t* b) {
  float scale[8], minv[8], smax = 0, mmax = 0;
  for (int j = 0; j < 8; ++j) {
    float lo = 0, hi = 0;  // min clamped to <= 0 as in ggml
    for (int l = 0; l < 32; ++l) lo = std::min(lo, x[32 * j + l]), hi = std::max(hi, x[32 * j + l]);
    scale[j] = (hi - lo) / 15.0f;
    minv[j] = -lo;
    smax = std::max(smax, scale[j]);
    mmax = std::max(mmax, minv[j]);
  }
  const float d = f16_round(smax / 63.0f), dmin = f16_round(mmax / 63.0f);
  int sc[8], mn[8];
  for (int j = 0; j < 8; ++j) {
    sc[j] = d ? clampi((int)std::lround(scale[j] / d), 0, 63) : 0;
    mn[j] = dmin ? clampi((int)std::lround(minv[j] / dmin), 0, 63) : 0;
  }
  put_f16(b, d);
  put_f16(b + 2, dmin);
  pack_q4k_scales(sc, mn, b + 4);
  uint8_t* qs = b + 16;
  std::memset(qs, 0, 128);
  for (int e = 0; e < 256; ++e) {
    const int j = e / 32;
    const float de = d * sc[j], me = dmin * mn[j];
    const int q = de ? clampi((int)std::lround((x[e] + me) / de), 0, 15) : 0;
    const int c = e / 64, half = (e % 64) / 32, l = e % 32;
    qs[32 * c + l] |= (uint8_t)(q << (4 * half));
  }
}

// Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}: value e = d*scales[e/16]*(q-32), q 6 bits.
// For e = 128h + 32k + l: low 4 bits in ql[64h + 32(k&1) + l] (low nibble for k<2, high for k>=2),
// high 2 bits in qh[32h + l] at bit 2k.
inline void pack_q6_k(const int* q, uint8_t* b) {  // q[256] in 0..63
  uint8_t* ql = b;
  uint8_t* qh = b + 128;
  std::memset(b, 0, 192);
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    ql[64 * h + 32 * (k & 1) + l] |= (uint8_t)((q[e] & 15) << (k >= 2 ? 4 : 0));
    qh[32 * h + l] |= (uint8_t)((q[e] >> 4) << (2 * k));
  }
}

inline void quantize_q6_k(const float* x, uint8_t* b) {
  float scale[16], smax = 0;
  for (int j = 0; j < 16; ++j) {
    float amax = 0;
    for (int l = 0; l < 16; ++l) amax = std::max(amax, std::fabs(x[16 * j + l]));
    scale[j] = amax / 31.0f;
    smax = std::max(smax, scale[j]);
  }
  const float d = f16_round(smax / 127.0f);
  int q[256];
  for (int j = 0; j < 16; ++j) {
    const int sc = d ? clampi((int)std::lround(scale[j] / d), -128, 127) : 0;
    b[192 + j] = (uint8_t)(int8_t)sc;
    for (int l = 0; l < 16; ++l) {
      const float de = d * sc;
      q[16 * j + l] = (de ? clampi((int)std::lround(x[16 * j + l] / de), -32, 31) : 0) + 32;
    }
  }
  pack_q6_k(q, b);
  put_f16(b + 208, d);
}

// Quantizes a [rows][cols] float matrix into GGUF rows of `type`.
inline std::vector<uint8_t> quantize_matrix(uint32_t type, const std::vector<float>& x, int64_t rows,
                                            int64_t cols, size_t* row_bytes) {
  const GgmlTypeInfo* ti = ggml_type_info(type);
  const size_t rb = (size_t)(cols / ti->block_elems) * ti->block_bytes;
  *row_bytes = rb;
  std::vector<uint8_t> out(rb * rows);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x.data() + r * cols;
    uint8_t* o = out.data() + r * rb;
    for (int64_t i = 0; i < cols / ti->block_elems; ++i) {
      const float* xb = xr + i * ti->block_elems;
      uint8_t* ob = o + i * ti->block_bytes;
      switch (static_cast<GgmlType>(type)) {
        case GgmlType::F32: std::memcpy(ob, xb, 4); break;
        case GgmlType::F16: put_f16(ob, *xb); break;
        case GgmlType::BF16: {  // round to nearest even on the top 16 bits
          uint32_t u;
          std::memcpy(&u, xb, 4);
          const uint16_t h = (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
          std::memcpy(ob, &h, 2);
          break;
        }
        case GgmlType::Q4_0: quantize_q4_0(xb, ob); break;
        case GgmlType::Q4_1: quantize_q4_1(xb, ob); break;
        case GgmlType::Q5_0: quantize_q5_0(xb, ob); break;
        case GgmlType::Q5_1: quantize_q5_1(xb, ob); break;
        case GgmlType::Q8_0: quantize_q8_0(xb, ob); break;
        case GgmlType::Q4_K: quantize_q4_k(xb, ob); break;
        case GgmlType::Q6_K: quantize_q6_k(xb, ob); break;
        default: break;
      }
    }
  }
  return out;
}

inline std::vector<float> random_normal(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& f : v) f = dist(rng);
  return v;
}

}  // namespace h1bkv::testing
