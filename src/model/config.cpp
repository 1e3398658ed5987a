#include "model/config.h"

#include <cmath>
#include <cstdlib>

#include "io/gguf.h"
#include "util/error.h"

namespace h1bkv {

ModelConfig ModelConfig::from_gguf(const GgufFile& g) {
  ModelConfig c;
  c.arch = g.get_string("general.architecture");
  check(c.arch == "llama" || c.arch == "qwen2",
        g.path() + ": unsupported architecture '" + c.arch + "' (supported: llama, qwen2)");
  const std::string a = c.arch + ".";
  c.name = g.get_string("general.name", "");
  auto pos_int = [&](const std::string& key, int64_t v) {
    check(v > 0 && v <= (int64_t{1} << 24), g.path() + ": metadata '" + key + "' = " +
                                                std::to_string(v) + " is out of range");
    return (int)v;
  };
  c.n_layer = pos_int(a + "block_count", g.get_int(a + "block_count"));
  c.n_embd = pos_int(a + "embedding_length", g.get_int(a + "embedding_length"));
  c.n_head = pos_int(a + "attention.head_count", g.get_int(a + "attention.head_count"));
  c.n_kv_head = pos_int(a + "attention.head_count_kv",
                        g.get_int(a + "attention.head_count_kv", c.n_head));
  c.n_ff = pos_int(a + "feed_forward_length", g.get_int(a + "feed_forward_length"));
  c.n_ctx_train = pos_int(a + "context_length", g.get_int(a + "context_length", 2048));
  check(c.n_embd % c.n_head == 0, g.path() + ": embedding length is not a multiple of head count");
  c.head_dim = pos_int(a + "attention.key_length",
                       g.get_int(a + "attention.key_length", c.n_embd / c.n_head));
  check(g.get_int(a + "attention.value_length", c.head_dim) == c.head_dim,
        g.path() + ": key and value head sizes differ (unsupported)");
  check(c.n_head % c.n_kv_head == 0, g.path() + ": head count " + std::to_string(c.n_head) +
                                         " is not a multiple of KV head count " +
                                         std::to_string(c.n_kv_head));
  c.n_rot = pos_int(a + "rope.dimension_count", g.get_int(a + "rope.dimension_count", c.head_dim));
  check(c.n_rot <= c.head_dim && c.n_rot % 2 == 0,
        g.path() + ": rope.dimension_count must be even and <= head size");
  // ranges as doubles before the float casts (a NaN fails every comparison)
  const double rope_base = g.get_float(a + "rope.freq_base", 10000.0);
  check(rope_base > 1.0 && rope_base <= 1e12,
        g.path() + ": rope.freq_base = " + std::to_string(rope_base) + " is out of range (1, 1e12]");
  c.rope_base = (float)rope_base;
  const double rms_eps = g.get_float(a + "attention.layer_norm_rms_epsilon", 1e-5);
  check(rms_eps > 0 && rms_eps < 1, g.path() + ": rms epsilon = " + std::to_string(rms_eps) +
                                        " is out of range (0, 1)");
  c.rms_eps = (float)rms_eps;
  // Rope scaling (linear, yarn, llama3) is not implemented: refuse rather than compute wrong.
  const std::string scaling = g.get_string(a + "rope.scaling.type", "none");
  check(scaling == "none" || g.get_float(a + "rope.scaling.factor", 1.0) == 1.0,
        g.path() + ": rope scaling '" + scaling + "' is not supported");
  c.rope_neox = c.arch == "qwen2";
  c.qkv_bias = c.arch == "qwen2";
  const GgufTensor* emb = g.find_tensor("token_embd.weight");
  check(emb != nullptr, g.path() + ": missing tensor 'token_embd.weight'");
  c.n_vocab = pos_int("vocab size", emb->ne[1]);
  c.tied_embeddings = g.find_tensor("output.weight") == nullptr;
  // Cross-checks: each field can be valid alone and the file still disagree with itself.
  if (const GgufValue* toks = g.find("tokenizer.ggml.tokens"))
    check(toks->arr_len == (uint64_t)c.n_vocab,
          g.path() + ": the tokenizer has " + std::to_string(toks->arr_len) +
              " tokens but token_embd.weight has " + std::to_string(c.n_vocab) + " rows");
  for (const auto& t : g.tensors()) {
    if (t.name.rfind("blk.", 0) != 0) continue;
    const long long il = std::strtoll(t.name.c_str() + 4, nullptr, 10);
    check(il >= 0 && il < c.n_layer,
          g.path() + ": tensor '" + t.name + "' belongs to block " + std::to_string(il) +
              " but " + a + "block_count is " + std::to_string(c.n_layer));
  }
  return c;
}

}  // namespace h1bkv
