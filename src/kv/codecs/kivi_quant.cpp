#include "kv/codecs/kivi_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "util/error.h"
#include "util/fp16.h"

namespace h1bkv {

namespace {

float h2f(uint16_t h) { return fp16_to_f32(h); }

// Largest fp16 <= x (x finite, within fp16 range).
uint16_t fp16_down(float x) {
  const uint16_t h = f32_to_fp16(x);
  if (h2f(h) <= x) return h;
  if (h == 0) return 0x8001;              // +0 > x: the smallest negative subnormal
  return (h & 0x8000) ? h + 1 : h - 1;  // one ulp toward -inf
}

// Codes of one row: n codes of `bits` bits, value j at bit j*bits of the row.
void pack_row(const uint8_t* codes, int n, int bits, uint8_t* dst) {
  std::memset(dst, 0, (size_t)n * bits / 8);
  for (int j = 0; j < n; ++j) dst[j * bits / 8] |= (uint8_t)(codes[j] << (j * bits % 8));
}

// out[j] = m[j] + s[j] * code_j for the n codes of a row (s, m: per value).
void decode_row(const uint8_t* src, int n, int bits, const float* s, const float* m, float* out) {
  float c[1024];  // the codes as floats
  if (bits == 8) {
    for (int j = 0; j < n; ++j) c[j] = (float)src[j];
  } else if (bits == 4) {
    for (int j = 0; j < n / 2; ++j) c[2 * j] = (float)(src[j] & 15), c[2 * j + 1] = (float)(src[j] >> 4);
  } else {  // 2
    for (int j = 0; j < n / 4; ++j)
      for (int r = 0; r < 4; ++r) c[4 * j + r] = (float)((src[j] >> 2 * r) & 3);
  }
  for (int j = 0; j < n; ++j) out[j] = m[j] + s[j] * c[j];
}

uint8_t code_of(float x, float m, float inv, int levels) {
  return (uint8_t)std::clamp((int)std::floor((x - m) * inv + 0.5f), 0, levels);
}

void load_params(const uint8_t* p, int n, float* s, float* m) {  // [n] {s, m} fp16
  for (int j = 0; j < n; ++j) {
    uint16_t h[2];
    std::memcpy(h, p + 4 * j, 4);
    s[j] = h2f(h[0]), m[j] = h2f(h[1]);
  }
}

}  // namespace

size_t KiviLayout::row_bytes() const { return bits == 16 ? 2 * (size_t)d : (size_t)d * bits / 8; }
size_t KiviLayout::vrow_bytes() const { return bits == 16 ? 2 * (size_t)d : (size_t)d * vbits / 8; }
size_t KiviLayout::key_bytes() const { return (size_t)G * row_bytes() + (bits == 16 ? 0 : 4 * (size_t)d); }
size_t KiviLayout::head_bytes() const {
  return key_bytes() + (size_t)G * vrow_bytes() + (bits == 16 ? 0 : (size_t)G * (d / vg) * 4);
}

KiviLayout kivi_layout(int d, int bits, int G, int vg, int vbits) {
  check(bits == 2 || bits == 4 || bits == 8 || bits == 16, "cache 'kivi' option 'bits': must be 2, 4, 8 or 16");
  if (vbits == 0) vbits = bits;
  check(bits == 16 ? vbits == 16 : (vbits == 2 || vbits == 4 || vbits == 8),
        "cache 'kivi' option 'vbits': must be 2, 4 or 8 (bits=16: the same as bits)");
  check(G >= 1, "cache 'kivi' option 'group': must be >= 1 (got " + std::to_string(G) + ")");
  check(vg >= 1, "cache 'kivi' option 'vgroup': must be >= 1 (got " + std::to_string(vg) + ")");
  check(d > 0 && d <= 1024 && d * bits % 8 == 0,
        "cache 'kivi': head_dim " + std::to_string(d) + " does not pack into bytes at " + std::to_string(bits) + " bits");
  vg = std::min(vg, d);
  check(d % vg == 0, "cache 'kivi' option 'vgroup': " + std::to_string(vg) + " does not divide head_dim " +
                         std::to_string(d));
  return KiviLayout{d, bits, G, vg, vbits};
}

void kivi_affine_params(const float* x, int n, size_t stride, int bits, uint16_t* scale, uint16_t* min) {
  float mn = x[0], mx = x[0];
  for (int i = 1; i < n; ++i) mn = std::min(mn, x[i * stride]), mx = std::max(mx, x[i * stride]);
  const int levels = (1 << bits) - 1;
  const uint16_t mh = fp16_down(mn);
  const float mf = h2f(mh);
  uint16_t sh = 0;
  if (mx > mf) {
    sh = f32_to_fp16((mx - mf) / levels);
    while (mf + levels * h2f(sh) < mx) ++sh;  // round the scale up until the range covers mx
  }
  *scale = sh, *min = mh;
}

void kivi_quantize_group(const KiviLayout& L, const float* k, const float* v, uint8_t* dst) {
  const int d = L.d, G = L.G, levels = (1 << L.bits) - 1, vlevels = (1 << L.vbits) - 1;
  const size_t rb = L.row_bytes(), vrb = L.vrow_bytes();
  if (L.bits == 16) {
    uint16_t* h = reinterpret_cast<uint16_t*>(dst);  // [2][G][d]
    for (size_t i = 0; i < (size_t)G * d; ++i) h[i] = f32_to_fp16(k[i]), h[(size_t)G * d + i] = f32_to_fp16(v[i]);
    return;
  }
  uint8_t codes[1024];
  // keys: per channel over the G tokens
  uint8_t* kp = dst + (size_t)G * rb;  // [d] {s, m}
  float ks[1024], km[1024], kinv[1024];
  for (int c = 0; c < d; ++c) {
    uint16_t sm[2];
    kivi_affine_params(k + c, G, d, L.bits, &sm[0], &sm[1]);
    std::memcpy(kp + 4 * c, sm, 4);
    ks[c] = h2f(sm[0]), km[c] = h2f(sm[1]), kinv[c] = ks[c] > 0 ? 1.0f / ks[c] : 0.0f;
  }
  for (int t = 0; t < G; ++t) {
    for (int c = 0; c < d; ++c) codes[c] = code_of(k[t * d + c], km[c], kinv[c], levels);
    pack_row(codes, d, L.bits, dst + t * rb);
  }
  // values: per token over groups of vg channels
  uint8_t* vc = dst + L.key_bytes();
  uint8_t* vp = vc + (size_t)G * vrb;  // [G][d/vg] {s, m}
  const int ng = d / L.vg;
  for (int t = 0; t < G; ++t) {
    for (int gr = 0; gr < ng; ++gr) {
      const float* x = v + t * d + gr * L.vg;
      uint16_t sm[2];
      kivi_affine_params(x, L.vg, 1, L.vbits, &sm[0], &sm[1]);
      std::memcpy(vp + ((size_t)t * ng + gr) * 4, sm, 4);
      const float s = h2f(sm[0]), m = h2f(sm[1]), inv = s > 0 ? 1.0f / s : 0.0f;
      for (int j = 0; j < L.vg; ++j) codes[gr * L.vg + j] = code_of(x[j], m, inv, vlevels);
    }
    pack_row(codes, d, L.vbits, vc + t * vrb);
  }
}

void kivi_decode_keys(const KiviLayout& L, const uint8_t* src, float* out) {
  const int d = L.d, G = L.G;
  if (L.bits == 16) {
    const uint16_t* h = reinterpret_cast<const uint16_t*>(src);
    for (size_t i = 0; i < (size_t)G * d; ++i) out[i] = h2f(h[i]);
    return;
  }
  const size_t rb = L.row_bytes();
  float s[1024], m[1024];
  load_params(src + (size_t)G * rb, d, s, m);
  for (int t = 0; t < G; ++t) decode_row(src + t * rb, d, L.bits, s, m, out + (size_t)t * d);
}

void kivi_decode_value(const KiviLayout& L, const uint8_t* src, int t, float* out) {
  const int d = L.d;
  const uint8_t* vc = src + L.key_bytes();
  if (L.bits == 16) {
    const uint16_t* h = reinterpret_cast<const uint16_t*>(vc) + (size_t)t * d;
    for (int i = 0; i < d; ++i) out[i] = h2f(h[i]);
    return;
  }
  const size_t rb = L.vrow_bytes();
  const int ng = d / L.vg;
  float gs[1024], gm[1024], s[1024], m[1024];  // per group, then per value
  load_params(vc + (size_t)L.G * rb + (size_t)t * ng * 4, ng, gs, gm);
  for (int gr = 0; gr < ng; ++gr)
    for (int j = gr * L.vg; j < (gr + 1) * L.vg; ++j) s[j] = gs[gr], m[j] = gm[gr];
  decode_row(vc + t * rb, d, L.vbits, s, m, out);
}

}  // namespace h1bkv
