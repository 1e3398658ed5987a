// Codecs: how one head vector (head_dim values) of keys or values is stored, scored and
// accumulated. A codec works on runs of consecutive encoded vectors, so kernels can stream a
// block of tokens. Policies (which tokens are held) are separate: see kv/caches/.
// Caches call codecs only through these interfaces: a codec with a faster kernel for the G query
// heads of a KV head overrides score_block_group / accumulate_group.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace h1bkv {

// Caches store codes in blocks of kBlockTokens tokens per KV head.
constexpr int64_t kBlockTokens = 64;

class KeyCodec {
 public:
  virtual ~KeyCodec() = default;
  virtual std::string name() const = 0;
  virtual size_t bytes_per_vector() const = 0;  // exact bytes of one encoded key
  // k: [head_dim] of KV head kv_head -> dst: bytes_per_vector() bytes
  virtual void encode(const float* k, int kv_head, uint8_t* dst) const = 0;
  // Query preparation, once per query head (pre-scaling, sketching, ...). q: [head_dim] of query
  // head `head`; scale: the model's logit scale (1/sqrt(head_dim)); prep: query_prep_floats()
  // floats of scratch the caller owns.
  virtual size_t query_prep_floats() const = 0;
  virtual void prepare_query(const float* q, int head, float scale, float* prep) const = 0;
  // out[t] = attention logit of the query against each of n consecutive encoded keys
  // (for exact codecs: scale * q . k_t; estimators may use their own scale or temperature).
  virtual void score(const float* prep, const uint8_t* keys, int64_t n, float* out) const = 0;
  // Block layout: a block holds kBlockTokens keys in kBlockTokens * bytes_per_vector() bytes.
  // By default token-major ([token][bytes_per_vector]); a codec may interleave tokens (the
  // sketch codec does) by overriding both. out[i] = logit of the key in slot t0 + i, i < n.
  virtual void encode_slot(const float* k, int kv_head, uint8_t* block, int slot) const {
    encode(k, kv_head, block + (size_t)slot * bytes_per_vector());
  }
  virtual void score_block(const float* prep, const uint8_t* block, int t0, int n, float* out) const {
    score(prep, block + (size_t)t0 * bytes_per_vector(), n, out);
  }
  // The G query heads that share a KV head against the same keys: out[g][i] for preps[g]. A codec
  // overrides it to decode each key once for the group; the default scores head by head.
  virtual void score_block_group(const float* const* preps, int G, const uint8_t* block, int t0,
                                 int n, float* const* out) const {
    for (int g = 0; g < G; ++g) score_block(preps[g], block, t0, n, out[g]);
  }
  // Calibration hook: multipliers on this codec's logits per query head ([n_head]; h1b's
  // calibration). Codecs without one return false / nullptr.
  virtual bool set_logit_multipliers(const std::vector<float>& m) { return false; }
  virtual const std::vector<float>* logit_multipliers() const { return nullptr; }
};

class ValueCodec {
 public:
  virtual ~ValueCodec() = default;
  virtual std::string name() const = 0;
  virtual size_t bytes_per_vector() const = 0;
  virtual void encode(const float* v, uint8_t* dst) const = 0;
  // out[d] += sum_t w[t] * v_t[d] for n consecutive encoded values; out: [head_dim].
  virtual void accumulate(const float* w, const uint8_t* vals, int64_t n, float* out) const = 0;
  // out[g][e] += sum_t w[g][t] * v_t[e] for G weight rows over the same values (decode once).
  virtual void accumulate_group(const float* const* w, int G, const uint8_t* vals, int64_t n,
                                float* const* out) const {
    for (int g = 0; g < G; ++g) accumulate(w[g], vals, n, out[g]);
  }
};

// Codecs by name (keys and values "f32", "f16", "q8_0", "q4_0"; values also "int4"); throws Error
// listing the valid names.
// The one factory: codec_factory.cpp.
std::unique_ptr<KeyCodec> make_key_codec(const std::string& name, int head_dim);
std::unique_ptr<ValueCodec> make_value_codec(const std::string& name, int head_dim);
std::vector<std::string> key_codec_names();
std::vector<std::string> value_codec_names();

}  // namespace h1bkv
