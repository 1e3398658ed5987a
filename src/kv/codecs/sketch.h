// Key codec "sketch" (H1B-KV keys, arXiv 2510.05529 sec. 3): s_k = sign(R k), R in R^{b x d}
// with N(0,1) entries, b bits per key and KV head; angle/qjl also keep ||k|| as fp16.
// Estimators of the logit of query q against key k (h = popcount(s_q xor s_k)):
//   hamming  the paper: a = 1 - 2h/b (= s_q.s_k / b), logit = a / T
//   angle    SimHash (Charikar 2002): angle(q,k) ~ pi h / b, logit = scale |q| |k| cos(pi h / b)
//   qjl      QJL (Zandieh et al. 2024, arXiv 2406.03482, Lemma 3.2): q stays unquantized,
//            logit = scale |k| sqrt(pi/2) / b * <R q, s_k>, unbiased for scale * q.k
// Every logit is multiplied by a per-(layer, query head) calibration multiplier (default 1).
// Learned parameters (kv/calib/adapter.h), all optional: a key mean mu per KV head (keys sketched
// as k - mu, ||k - mu|| stored; angle and qjl add the exact scale q.mu back so the sketched tier
// stays on the scale of the exact one; hamming adds nothing: its logit has no key norm, so it was
// never on that scale), R per KV head, and for qjl a decoder A per KV head replacing
// sqrt(pi/2)/b R on the query side: logit = scale |k - mu| <A q, s_k> (+ scale q.mu); A may be
// per query head (GQA: the stored sketch is the KV head's, so it costs no bytes per token).
// orth: R in blocks of d rows, each the Q of a QR of the Gaussian block, rows scaled to sqrt(d)
// (QJL's init_rot_dir); blocks of fewer rows (b < d) keep the first b orthonormal rows.
//
// Block layout (kBlockTokens = 64 tokens): [2 groups][b/8 bytes][32 tokens] u8 sketch bytes
// (sketch bit i = row i of R in byte i/8, bit i%8), then [64] fp16 norms (angle, qjl only).
// One 32-byte load holds the same sketch byte of 32 tokens; scores come from 16-entry nibble
// tables with pshufb (T-MAC style): hamming/angle table_g[m] = popcount(m ^ s_q nibble g),
// qjl table_g[m] = sum over the nibble's 4 rows of +-(R q)_i, quantized to 7 bits.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kv/cache.h"
#include "kv/codecs/codec.h"

namespace h1bkv {

// R's generator: SplitMix64 (Steele et al. 2014) from mix(seed, layer, kv_head), then
// Box-Muller on 53-bit uniforms u1 in (0,1], u2 in [0,1): z0 = sqrt(-2 ln u1) cos(2 pi u2),
// z1 = ... sin(2 pi u2), in double, stored as float row-major [b][d]. kv_head = -1: per layer.
void gaussian_matrix(uint64_t seed, int layer, int kv_head, int rows, int cols, float* out);

enum class SketchEst { hamming, angle, qjl };
SketchEst sketch_est_from_name(const std::string& name);  // throws Error listing valid names
const char* sketch_est_name(SketchEst e);

struct SketchOptions {
  int bits = 256;                     // a multiple of 64 in [64, 512]
  SketchEst est = SketchEst::hamming;
  float T = 0.1f;                     // hamming temperature (default: logits in [-10, 10])
  bool per_head = false;              // one R per (layer, KV head) instead of per layer
  bool orth = false;                  // QR-orthogonalized blocks (above)
  uint64_t seed = 0x48314221;
};

// R = the seeded Gaussian [rows][cols] with each block of `cols` rows replaced by the rows of an
// orthogonal matrix (Q of its QR, signs fixed by R's diagonal) times sqrt(cols).
void orthogonalize_blocks(int rows, int cols, float* r);

// The projection a codec of options o uses before any adapter: [b][d] row-major (the Gaussian,
// orthogonalized when o.orth). kv_head is ignored (-1 used) unless o.per_head.
std::vector<float> sketch_projection(const SketchOptions& o, int layer, int kv_head, int d);

// Bytes of one key: b/8 sketch (+ 2 fp16 norm for angle and qjl).
size_t sketch_bytes(const SketchOptions& o);

// Nibble-table scores of 32 tokens: out[t] = sum_p tab[p][0][c_pt & 15] + tab[p][1][c_pt >> 4]
// with tab: [nbytes][2][16] u8, codes: [nbytes][32] u8. chunk: byte positions summed in u8
// before widening (needs chunk * max(lo + hi) <= 255).
void lut_scores32(const uint8_t* tab, const uint8_t* codes, int nbytes, int chunk, int32_t* out);
void lut_scores32_ref(const uint8_t* tab, const uint8_t* codes, int nbytes, int32_t* out);

class SketchKeyCodec : public KeyCodec {
 public:
  SketchKeyCodec(const CacheGeometry& g, int layer, SketchOptions o);
  std::string name() const override { return "sketch"; }
  size_t bytes_per_vector() const override { return sketch_bytes(o_); }
  void encode(const float* k, int kv_head, uint8_t* dst) const override;  // token-major bytes
  size_t query_prep_floats() const override { return (size_t)o_.bits + 4 + o_.bits / 32; }
  void prepare_query(const float* q, int head, float scale, float* prep) const override;
  void score(const float* prep, const uint8_t* keys, int64_t n, float* out) const override;
  void encode_slot(const float* k, int kv_head, uint8_t* block, int slot) const override;
  void score_block(const float* prep, const uint8_t* block, int t0, int n, float* out) const override;
  void score_block_group(const float* const* preps, int G, const uint8_t* block, int t0, int n,
                         float* const* out) const override;
  bool set_logit_multipliers(const std::vector<float>& m) override {
    set_multipliers(m);
    return true;
  }
  const std::vector<float>* logit_multipliers() const override { return &mult_; }

  // Calibration hook: logit multipliers of this layer, [n_head] (query heads); 1 = none.
  void set_multipliers(const std::vector<float>& m);
  // Learned parameters (empty = default). mu: [n_kv_head][d]; R, A: [n_kv_head][b][d] (R makes
  // the projection per KV head), A also [n_head][b][d] (a decoder per query head); T > 0:
  // hamming's temperature / a divisor of angle and qjl logits.
  void set_mean(const std::vector<float>& mu);
  void set_projection(const std::vector<float>& R);
  void set_decoder(const std::vector<float>& A);
  void set_temperature(float T);
  bool centered() const { return !mu_.empty(); }
  const std::vector<float>& multipliers() const { return mult_; }
  const SketchOptions& options() const { return o_; }

  // References for tests: R x of KV head kv_head ([b] floats) and its sign bits ([b/64] words).
  void project(const float* x, int kv_head, float* y) const;
  void sign_bits(const float* x, int kv_head, uint64_t* words) const;
  static void unpack_slot(const uint8_t* block, int bits, int slot, uint64_t* words);
  // Scalar reference logits (popcount on u64 words; qjl in double), norm = ||k - mu|| as stored,
  // key_words = the stored sign bits (of R (k - mu)).
  float score_ref(const float* q, int head, float scale, const uint64_t* key_words, float norm) const;

 private:
  const float* matrix(int kv_head) const { return &R_[(per_head_ ? kv_head : 0) * (size_t)o_.bits * d_]; }
  // y = M x for a transposed [d][b] matrix Mt (b rows)
  void apply_t(const float* Mt, const float* x, float* y) const;
  bool per_head_;
  float inv_T_ = 1.0f;          // angle, qjl: 1 / adapter temperature
  std::vector<float> mu_;       // [n_kv_head][d] or empty
  std::vector<float> At_;       // [n_kv_head or n_head][d][b] (A transposed) or empty
  bool a_per_query_head_ = false;  // At_ has one decoder per query head
  CacheGeometry g_;
  int d_, layer_, group_;
  SketchOptions o_;
  std::vector<float> R_;        // [1 or n_kv_head][d][b] (R transposed)
  std::vector<float> cos_tab_;  // [b + 1] cos(pi h / b)
  std::vector<float> mult_;     // [n_head]
};

// The grouped kernel of the attention loop: the G query heads sharing one KV head scored against a
// block of keys in one pass (codes loaded and split into nibbles once). outs[g][i] = logit of
// query head g (prepared by c.prepare_query into preps[g]) against the key in slot t0 + i, i < n;
// bit-identical to c.score_block(preps[g], block, t0, n, outs[g]) and independent of G and n.
void sketch_score_group(const SketchKeyCodec& c, const float* const* preps, int G,
                        const uint8_t* block, int t0, int n, float* const* outs);

}  // namespace h1bkv
