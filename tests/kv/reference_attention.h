// Reference attention for tests: naive causal GQA softmax attention in double precision.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kv/cache.h"

// Naive causal GQA attention in double. k, v: [n_tok][n_kv][d]; q: [n_q][n_head][d].
inline std::vector<float> naive_attention(const h1bkv::CacheGeometry& g, const std::vector<float>& k,
                                   const std::vector<float>& v, const std::vector<float>& q,
                                   const std::vector<int32_t>& kpos,
                                   const std::vector<int32_t>& qpos, float scale) {
  const int d = g.head_dim, group = g.n_head / g.n_kv_head;
  const size_t nq = qpos.size();
  std::vector<float> out(nq * g.n_head * d);
  for (size_t i = 0; i < nq; ++i)
    for (int h = 0; h < g.n_head; ++h) {
      const int hk = h / group;
      std::vector<double> s;
      for (size_t t = 0; t < kpos.size() && kpos[t] <= qpos[i]; ++t) {
        double dot = 0;
        for (int c = 0; c < d; ++c)
          dot += (double)q[(i * g.n_head + h) * d + c] * k[(t * g.n_kv_head + hk) * d + c];
        s.push_back(dot * scale);
      }
      double mx = -1e300, sum = 0;
      for (double x : s) mx = std::max(mx, x);
      for (double& x : s) sum += (x = std::exp(x - mx));
      for (int c = 0; c < d; ++c) {
        double acc = 0;
        for (size_t t = 0; t < s.size(); ++t) acc += s[t] / sum * v[(t * g.n_kv_head + hk) * d + c];
        out[(i * g.n_head + h) * d + c] = (float)acc;
      }
    }
  return out;
}

