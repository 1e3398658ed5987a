#include "model/lora.h"

#include "util/error.h"
#include "util/thread_pool.h"

namespace h1bkv {

void lora_add(const float* A, const float* B, int r, int in, int out, const float* x, int64_t n, float* y,
              float* ax) {
  auto rows = [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      float u[64];
      const float* xi = x + i * in;
      for (int j = 0; j < r; ++j) {
        float s = 0;
        const float* a = A + (size_t)j * in;
        for (int e = 0; e < in; ++e) s += a[e] * xi[e];
        u[j] = s;
        if (ax) ax[i * r + j] = s;
      }
      float* yi = y + i * out;
      for (int o = 0; o < out; ++o) {
        const float* b = B + (size_t)o * r;
        float s = 0;
        for (int j = 0; j < r; ++j) s += b[j] * u[j];
        yi[o] += s;
      }
    }
  };
  if (n * (int64_t)r * (in + out) > (1 << 20)) parallel_for(n, pool_chunk(n, pool_threads()), rows);
  else rows(0, n);
}

bool adapter_has_lora(const Adapter& a) {
  for (const auto& l : a.layers)
    if (l.q_lora_a.present() || l.q_lora_b.present() || l.k_lora_a.present() || l.k_lora_b.present()) return true;
  return false;
}

LoraHook::LoraHook(const ModelConfig& c, const Adapter& a, const std::string& path) : c_(c) {
  check((int)a.layers.size() <= c.n_layer, path + ": has layer " + std::to_string(a.layers.size() - 1) +
                                               "; the model has " + std::to_string(c.n_layer) + " layers");
  q_.resize(c.n_layer), k_.resize(c.n_layer);
  for (size_t L = 0; L < a.layers.size(); ++L) {
    const AdapterLayer& l = a.layers[L];
    auto take = [&](const AdapterTensor& ta, const AdapterTensor& tb, int out, const char* name, Pair& p) {
      const std::string where = path + ": blk." + std::to_string(L) + "." + name;
      check(ta.present() == tb.present(), where + ".lora_a and .lora_b come together");
      if (!ta.present()) return;
      check(ta.shape.size() == 2 && tb.shape.size() == 2 && ta.shape[0] >= 1 && ta.shape[0] <= 64 &&
                ta.shape[1] == c.n_embd && tb.shape[0] == out && tb.shape[1] == ta.shape[0],
            where + ": LoRA needs lora_a [r][" + std::to_string(c.n_embd) + "] and lora_b [" + std::to_string(out) +
                "][r], r in 1..64");
      p.r = (int)ta.shape[0], p.a = ta.data, p.b = tb.data;
    };
    take(l.q_lora_a, l.q_lora_b, c.n_head * c.head_dim, "attn_q", q_[L]);
    take(l.k_lora_a, l.k_lora_b, c.n_kv_head * c.head_dim, "attn_k", k_[L]);
  }
}

void LoraHook::project_qk(int il, int64_t n, const float* xb, float* q, float* k) {
  const Pair &pq = q_[il], &pk = k_[il];
  if (pq.r) lora_add(pq.a.data(), pq.b.data(), pq.r, c_.n_embd, c_.n_head * c_.head_dim, xb, n, q);
  if (pk.r) lora_add(pk.a.data(), pk.b.data(), pk.r, c_.n_embd, c_.n_kv_head * c_.head_dim, xb, n, k);
}

}  // namespace h1bkv
