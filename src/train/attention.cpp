#include "train/attention.h"

#include <cmath>

#include "kv/codecs/block_quant.h"
#include "kv/codecs/int4.h"
#include "train/ops.h"
#include "util/error.h"
#include "util/fp16.h"

namespace h1bkv::train {

namespace {

constexpr double kSqrtHalfPi = 1.2533141373155002512;  // sqrt(pi / 2)

// x -> what the exact-key layer's compressed tier returns for it (d <= 1024)
template <class T>
void key_round_trip(AttentionConfig::ExactKeys e, const T* x, int d, T* out) {
  float f[1024];
  for (int j = 0; j < d; ++j) f[j] = (float)x[j];
  if (e == AttentionConfig::ExactKeys::q4) {
    uint8_t code[1024];
    block_quant_encode(BlockQuant::q4_0, f, d, code);
    block_quant_decode(BlockQuant::q4_0, code, d, f);
  } else {
    for (int j = 0; j < d; ++j) f[j] = fp16_to_f32(f32_to_fp16(f[j]));
  }
  for (int j = 0; j < d; ++j) out[j] = (T)f[j];
}

template <class T>
T dot(const T* a, const T* b, int n) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// y[b] = M[b][d] x[d]
template <class T>
void matvec(const T* M, const T* x, T* y, int b, int d) {
  for (int i = 0; i < b; ++i) y[i] = dot(M + (size_t)i * d, x, d);
}

}  // namespace

template <class T>
void SketchAttention<T>::forward(const AttentionTensors<T>& p, int64_t n, const int32_t* pos,
                                 const T* q, const T* k, const T* v, T* out) {
  const int H = c_.n_head, KV = c_.n_kv_head, d = c_.head_dim, b = c_.bits, G = H / KV;
  const int bs = sketched() ? b : 0;  // sketch rows of the buffers
  const bool qjl = bs > 0 && c_.est == SketchEst::qjl;
  check(d <= 1024 && KV > 0 && H % KV == 0, "SketchAttention: head_dim <= 1024 and GQA groups needed");
  n_ = n;
  pos_.assign(pos, pos + n);
  q_.assign(q, q + n * H * d);
  k_.assign(k, k + n * KV * d);
  v_.assign(v, v + n * KV * d);
  vq_ = v_;
  km_.assign(n * KV * d, 0);
  nrm_.assign(n * KV, 0);
  y_.assign(n * KV * bs, 0);
  s_.assign(n * KV * bs, 0);
  aq_.assign(n * H * bs, 0);
  yrms_.assign(n * KV, 0);
  aqrms_.assign(n * H, 0);
  sq_.assign(n * H * bs, 0);
  qmu_.assign(n * H, 0);
  kq_.clear();
  prob_.assign((size_t)H * n * n, 0);
  opre_.assign(n * H * d, 0);
  if (b > 0) {
    if (!sketched()) kq_.assign(n * KV * d, 0);
    for (int64_t t = 0; t < n; ++t)
      for (int g = 0; g < KV; ++g) {
        const int64_t o = t * KV + g;
        if (!sketched()) key_round_trip(c_.exact_keys, k + o * d, d, &kq_[o * d]);
        if (c_.quantize_values) {
          float vf[1024];
          uint8_t code[1024];
          for (int j = 0; j < d; ++j) vf[j] = (float)v[o * d + j];
          int4_encode(vf, d, c_.value_group, code);
          int4_decode(code, d, c_.value_group, vf);
          for (int j = 0; j < d; ++j) vq_[o * d + j] = (T)vf[j];
        }
        if (!sketched()) continue;
        T* km = &km_[o * d];
        for (int j = 0; j < d; ++j) km[j] = k[o * d + j] - p.k_mean[g * d + j];
        nrm_[o] = std::sqrt(dot(km, km, d));
        matvec(p.k_proj + (size_t)g * b * d, km, &y_[o * b], b, d);
        yrms_[o] = std::sqrt(dot(&y_[o * b], &y_[o * b], b) / b);
        for (int i = 0; i < b; ++i)
          s_[o * b + i] = c_.beta > 0 ? std::tanh((T)c_.beta * y_[o * b + i]) : (y_[o * b + i] >= 0 ? 1 : -1);
      }
    for (int64_t i = 0; i < n && bs > 0; ++i)
      for (int h = 0; h < H; ++h) {
        const int64_t o = i * H + h;
        matvec(p.q_proj + (size_t)(h / G) * b * d, q + o * d, &aq_[o * b], b, d);
        aqrms_[o] = std::sqrt(dot(&aq_[o * b], &aq_[o * b], b) / b);
        for (int j = 0; j < b; ++j)
          sq_[o * b + j] = c_.beta > 0 ? std::tanh((T)c_.beta * aq_[o * b + j]) : (aq_[o * b + j] >= 0 ? 1 : -1);
        if (qjl) qmu_[o] = c_.scale * dot(q + o * d, p.k_mean + (size_t)(h / G) * d, d);
      }
  }
  const T mt = b > 0 ? 1 / p.temperature[0] : 0;
  const T cq = c_.scale;
#pragma omp parallel for collapse(2) if (n * n * H * (d + b) > (1 << 20))
  for (int h = 0; h < H; ++h)
    for (int64_t i = 0; i < n; ++i) {
      const int g = h / G;
      const T m = b > 0 ? p.logit_mult[h] * mt : 0;
      const T* qi = q + (i * H + h) * d;
      T* z = &prob_[((size_t)h * n + i) * n];
      for (int64_t t = 0; t <= i; ++t) {
        const int64_t o = t * KV + g;
        if (exact(i, t)) z[t] = c_.scale * dot(qi, k + o * d, d);
        else if (!sketched()) z[t] = c_.scale * dot(qi, &kq_[o * d], d);
        else if (c_.est == SketchEst::hamming) z[t] = m * dot(&sq_[(i * H + h) * b], &s_[o * b], b) / b;
        else z[t] = m * cq * nrm_[o] * dot(&aq_[(i * H + h) * b], &s_[o * b], b) + qmu_[i * H + h];
      }
      softmax_row(z, z, i + 1);
      T* op = &opre_[(i * H + h) * d];
      for (int64_t t = 0; t <= i; ++t) {
        const T* val = &(exact(i, t) ? v_ : vq_)[(t * KV + g) * d];
        for (int j = 0; j < d; ++j) op[j] += z[t] * val[j];
      }
      T* oi = out + (i * H + h) * d;
      for (int j = 0; j < d; ++j) oi[j] = p.v_scale[h * d + j] * op[j] + p.v_bias[h * d + j];
    }
}

template <class T>
void SketchAttention<T>::backward(const AttentionTensors<T>& p, const AttentionTensors<T>& gr,
                                  const T* dout, T* dq, T* dk, T* dv) const {
  const int H = c_.n_head, KV = c_.n_kv_head, d = c_.head_dim, b = c_.bits, G = H / KV;
  const int64_t n = n_;
  const int bs = sketched() ? b : 0;
  const bool qjl = bs > 0 && c_.est == SketchEst::qjl;
  const T mt = b > 0 ? 1 / p.temperature[0] : 0;
  const T cq = c_.scale;
  // d s / d y of one entry; rms: that vector's rms (the scaled estimator's slope)
  auto ste = [&](T y, T rms) {
    if (c_.beta > 0) {
      const T t = std::tanh((T)c_.beta * y);
      return (T)c_.beta * (1 - t * t);
    }
    switch (c_.ste) {
      case AttentionConfig::Ste::none: return (T)0;
      case AttentionConfig::Ste::identity: return (T)1;
      default: return rms > 0 ? (T)(1 / kSqrtHalfPi) / rms : (T)0;  // sqrt(2/pi) / rms
    }
  };
  // Per query head: gradients of its KV head's keys, values, sketches and norms and of A, summed
  // over the group's heads afterwards (heads run in parallel; nothing shared is written).
  std::vector<std::vector<T>> hk(H), hv(H), hs(H), hn(H), hA(H), hmu(H);
  std::vector<T> dtemp(H, 0);
#pragma omp parallel for schedule(dynamic) if (n * n * G * (d + b) > (1 << 20))
  for (int h = 0; h < H; ++h) {
    const int g = h / G;
    std::vector<T>& dkh = hk[h] = std::vector<T>(n * d, 0);
    std::vector<T>& dvh = hv[h] = std::vector<T>(n * d, 0);
    std::vector<T>& ds = hs[h] = std::vector<T>(n * bs, 0);
    std::vector<T>& dnrm = hn[h] = std::vector<T>(n, 0);
    std::vector<T>& dA = hA[h] = std::vector<T>((size_t)bs * d, 0);
    std::vector<T>& dmu = hmu[h] = std::vector<T>(qjl ? d : 0, 0);
    std::vector<T> dop(d), dp(n), daq(bs), dsq(bs);
    const T m = b > 0 ? p.logit_mult[h] * mt : 0;
    for (int64_t i = 0; i < n; ++i) {
      const T* go = dout + (i * H + h) * d;
      const T* op = &opre_[(i * H + h) * d];
      for (int j = 0; j < d; ++j) {
        dop[j] = go[j] * p.v_scale[h * d + j];
        gr.v_scale[h * d + j] += go[j] * op[j];
        gr.v_bias[h * d + j] += go[j];
      }
      const T* pr = &prob_[((size_t)h * n + i) * n];
      T sum = 0;
      for (int64_t t = 0; t <= i; ++t) {
        const int64_t o = (t * KV + g) * d;
        dp[t] = dot(dop.data(), &(exact(i, t) ? v_ : vq_)[o], d);
        sum += pr[t] * dp[t];
        for (int j = 0; j < d; ++j) dvh[t * d + j] += pr[t] * dop[j];
      }
      const T* qi = &q_[(i * H + h) * d];
      T* dqi = dq + (i * H + h) * d;
      const T* aq = aq_.data() + (i * H + h) * bs;  // empty when bs = 0: no operator[]
      const T* sq = sq_.data() + (i * H + h) * bs;
      std::fill(daq.begin(), daq.end(), 0);
      std::fill(dsq.begin(), dsq.end(), 0);
      bool any = false;
      T dqmu = 0;  // d loss / d (scale q.mu): every sketched logit carries it
      for (int64_t t = 0; t <= i; ++t) {
        const T dz = pr[t] * (dp[t] - sum);
        const int64_t o = t * KV + g;
        if (exact(i, t)) {
          for (int j = 0; j < d; ++j) {
            dqi[j] += c_.scale * dz * k_[o * d + j];
            dkh[t * d + j] += c_.scale * dz * qi[j];
          }
          continue;
        }
        if (!sketched()) {  // the round trip of k is straight-through
          const T* kq = &kq_[o * d];
          for (int j = 0; j < d; ++j) {
            dqi[j] += c_.scale * dz * kq[j];
            dkh[t * d + j] += c_.scale * dz * qi[j];
          }
          continue;
        }
        any = true;
        const T* st = &s_[o * b];
        T* dst = &ds[t * b];
        if (c_.est == SketchEst::hamming) {
          const T base = dot(sq, st, b) / b;
          gr.logit_mult[h] += dz * base * mt;
          dtemp[h] -= dz * m * base * mt;
          const T f = dz * m / b;
          for (int j = 0; j < b; ++j) dsq[j] += f * st[j], dst[j] += f * sq[j];
        } else {
          const T as = dot(aq, st, b), base = cq * nrm_[o] * as;
          gr.logit_mult[h] += dz * base * mt;
          dtemp[h] -= dz * m * base * mt;
          const T f = dz * m * cq * nrm_[o];
          for (int j = 0; j < b; ++j) daq[j] += f * st[j], dst[j] += f * aq[j];
          dnrm[t] += dz * m * cq * as;
          dqmu += dz;
        }
      }
      if (!any) continue;
      if (qjl) {
        const T* mu = p.k_mean + (size_t)g * d;
        for (int j = 0; j < d; ++j) dqi[j] += c_.scale * dqmu * mu[j], dmu[j] += c_.scale * dqmu * qi[j];
      }
      if (c_.est == SketchEst::hamming)
        for (int j = 0; j < b; ++j) daq[j] = dsq[j] * ste(aq[j], aqrms_[i * H + h]);
      const T* A = p.q_proj + (size_t)g * b * d;
      for (int r = 0; r < b; ++r) {
        if (daq[r] == 0) continue;
        for (int j = 0; j < d; ++j) dqi[j] += daq[r] * A[(size_t)r * d + j], dA[(size_t)r * d + j] += daq[r] * qi[j];
      }
    }
  }
  // the group's sums, in head order (deterministic), then through y = R (k - mu) and |k - mu|
#pragma omp parallel for if (KV > 1 && n * b * d > (1 << 18))
  for (int g = 0; g < KV; ++g) {
    for (int h = g * G; h < (g + 1) * G; ++h) {
      for (int64_t t = 0; t < n; ++t)
        for (int j = 0; j < d; ++j) dk[(t * KV + g) * d + j] += hk[h][t * d + j], dv[(t * KV + g) * d + j] += hv[h][t * d + j];
      if (h == g * G) continue;
      for (size_t e = 0; e < hs[h].size(); ++e) hs[g * G][e] += hs[h][e];
      for (int64_t t = 0; t < n; ++t) hn[g * G][t] += hn[h][t];
      for (size_t e = 0; e < hA[h].size(); ++e) hA[g * G][e] += hA[h][e];
    }
    for (int h = g * G; h < (g + 1) * G && qjl; ++h)
      for (int j = 0; j < d; ++j) gr.k_mean[g * d + j] += hmu[h][j];
    if (bs == 0) continue;
    const std::vector<T>&ds = hs[g * G], &dnrm = hn[g * G];
    T* dAg = gr.q_proj + (size_t)g * b * d;
    for (size_t e = 0; e < (size_t)b * d; ++e) dAg[e] += hA[g * G][e];
    const T* R = p.k_proj + (size_t)g * b * d;
    T* dR = gr.k_proj + (size_t)g * b * d;
    std::vector<T> dy(b), dkm(d);
    for (int64_t t = 0; t < n; ++t) {
      const int64_t o = t * KV + g;
      const T* km = &km_[o * d];
      for (int r = 0; r < b; ++r) dy[r] = ds[t * b + r] * ste(y_[o * b + r], yrms_[o]);
      for (int j = 0; j < d; ++j) dkm[j] = nrm_[o] > 0 ? dnrm[t] * km[j] / nrm_[o] : 0;
      for (int r = 0; r < b; ++r) {
        if (dy[r] == 0) continue;
        for (int j = 0; j < d; ++j) dkm[j] += dy[r] * R[(size_t)r * d + j], dR[(size_t)r * d + j] += dy[r] * km[j];
      }
      for (int j = 0; j < d; ++j) dk[o * d + j] += dkm[j], gr.k_mean[g * d + j] -= dkm[j];
    }
  }
  if (bs > 0)
    for (int h = 0; h < H; ++h) gr.temperature[0] += dtemp[h];
}

template class SketchAttention<float>;
template class SketchAttention<double>;

}  // namespace h1bkv::train
