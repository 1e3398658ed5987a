// Random tensors and gradients of one SketchAttention layer in double, for the tests.
#pragma once
#include <vector>

#include "fd.h"
#include "train/attention.h"

struct AttnFixture {
  h1bkv::train::AttentionConfig c;
  int64_t n;
  std::vector<double> q, k, v, dout;
  std::vector<double> temperature, mult, v_scale, v_bias, mu, R, A;   // tensors
  std::vector<double> gt, gm, gvs, gvb, gmu, gR, gA, dq, dk, dv;     // their gradients
  std::vector<int32_t> pos;

  AttnFixture(const h1bkv::train::AttentionConfig& cfg, int64_t n_tokens, uint32_t seed) : c(cfg), n(n_tokens) {
    const int H = c.n_head, KV = c.n_kv_head, d = c.head_dim, b = c.bits;
    q = randn_d(n * H * d, seed + 1), k = randn_d(n * KV * d, seed + 2), v = randn_d(n * KV * d, seed + 3);
    dout = randn_d(n * H * d, seed + 4);
    temperature = {0.8};
    mult = randn_d(H, seed + 5, 0.2);
    for (auto& m : mult) m += 1;
    v_scale = randn_d(H * d, seed + 6, 0.1);
    for (auto& s : v_scale) s += 1;
    v_bias = randn_d(H * d, seed + 7, 0.1);
    mu = randn_d(KV * d, seed + 8, 0.3);
    R = randn_d((size_t)KV * b * d, seed + 9);
    A = R;
    auto noise = randn_d(A.size(), seed + 10, 0.2);
    for (size_t i = 0; i < A.size(); ++i) A[i] += noise[i];
    if (c.est == h1bkv::SketchEst::qjl)  // the cache's convention: A ~ sqrt(pi/2)/b R
      for (auto& x : A) x *= 1.2533141373155 / (b > 0 ? b : 1);
    for (int64_t i = 0; i < n; ++i) pos.push_back((int32_t)i);
  }
  h1bkv::train::AttentionTensors<double> tensors() {
    return {temperature.data(), mult.data(), v_scale.data(), v_bias.data(), mu.data(), R.data(), A.data()};
  }
  // dout . out of a fresh forward
  double loss() {
    h1bkv::train::SketchAttention<double> att(c);
    std::vector<double> out(q.size());
    att.forward(tensors(), n, pos.data(), q.data(), k.data(), v.data(), out.data());
    return dotv(out, dout);
  }
  void gradients() {
    h1bkv::train::SketchAttention<double> att(c);
    std::vector<double> out(q.size());
    att.forward(tensors(), n, pos.data(), q.data(), k.data(), v.data(), out.data());
    gt.assign(1, 0), gm.assign(mult.size(), 0), gvs.assign(v_scale.size(), 0), gvb.assign(v_bias.size(), 0);
    gmu.assign(mu.size(), 0), gR.assign(R.size(), 0), gA.assign(A.size(), 0);
    dq.assign(q.size(), 0), dk.assign(k.size(), 0), dv.assign(v.size(), 0);
    h1bkv::train::AttentionTensors<double> g{gt.data(), gm.data(), gvs.data(), gvb.data(), gmu.data(), gR.data(), gA.data()};
    att.backward(tensors(), g, dout.data(), dq.data(), dk.data(), dv.data());
  }
};
