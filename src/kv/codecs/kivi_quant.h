// KIVI's asymmetric quantization (Liu et al. 2024, "KIVI: A Tuning-Free Asymmetric 2bit
// Quantization for KV Cache", sec. 3-4): keys per channel over a group of G tokens, values per
// token over groups of vg channels; each group has an fp16 scale s and fp16 minimum m, codes
// q = round((x - m) / s) in [0, 2^bits - 1], x^ = m + s q. m is rounded down and s up to fp16 so
// the range [m, m + (2^bits - 1) s] covers the group: |x - x^| <= s / 2, s ~ range / (2^bits - 1).
// bits = 16: no quantization, the group is stored as f16.
//
// Values may use their own width vbits (2, 4, 8; = bits by default).
// One KV head's quantized group of G tokens (bits < 16), packed codes c bits per channel, channel
// j of a row at bit j*c (low bits first), c = bits for keys and vbits for values:
//   [G][d*bits/8]        key codes, token-major
//   [d] {fp16 s, fp16 m} key parameters, per channel
//   [G][d*vbits/8]       value codes
//   [G][d/vg] {s, m}     value parameters, per token and channel group
// bits = 16: [G][d] f16 keys, then [G][d] f16 values.
#pragma once
#include <cstddef>
#include <cstdint>

namespace h1bkv {

struct KiviLayout {
  int d = 0, bits = 2, G = 32, vg = 32, vbits = 2;
  size_t row_bytes() const;   // bytes of one token's key codes: d*bits/8 (2d when bits = 16)
  size_t vrow_bytes() const;  // bytes of one token's value codes: d*vbits/8 (2d when bits = 16)
  size_t key_bytes() const;   // keys of the group: G rows + parameters
  size_t head_bytes() const;  // keys + values of the group, one KV head
};

// Throws Error naming the option when the layout cannot hold (bits, d*bits % 8, vg | d).
// vbits = 0: the same as bits; bits = 16 needs vbits 0 or 16.
KiviLayout kivi_layout(int d, int bits, int G, int vg, int vbits = 0);

// k, v: [G][d] f32 -> dst: head_bytes() bytes.
void kivi_quantize_group(const KiviLayout& L, const float* k, const float* v, uint8_t* dst);
// Keys of a group, decoded: out [G][d].
void kivi_decode_keys(const KiviLayout& L, const uint8_t* src, float* out);
// Value of token t (0 <= t < G) of a group, decoded: out [d].
void kivi_decode_value(const KiviLayout& L, const uint8_t* src, int t, float* out);

// One affine group: fp16 scale and minimum of n values at stride (as the encoder picks them).
void kivi_affine_params(const float* x, int n, size_t stride, int bits, uint16_t* scale, uint16_t* min);

}  // namespace h1bkv
