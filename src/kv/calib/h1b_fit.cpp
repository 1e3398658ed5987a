#include "kv/calib/h1b_fit.h"

#include <omp.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "kv/caches/h1b.h"
#include "kv/calib/h1b_calibration.h"
#include "kv/codecs/sketch.h"
#include "util/error.h"

namespace h1bkv {

namespace {

using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMapF = Eigen::Map<const MatF>;
using MapF = Eigen::Map<MatF>;

constexpr double kPi = 3.14159265358979323846;
constexpr int64_t kMaxItqSamples = 4096;  // ITQ runs on an even subsample of at most this many keys

float sgn(float x) { return x >= 0 ? 1.0f : -1.0f; }

}  // namespace

std::vector<float> key_mean(const float* x, int64_t n, int d) {
  std::vector<double> s(d, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j) s[j] += x[i * d + j];
  std::vector<float> m(d, 0.0f);
  for (int j = 0; j < d && n > 0; ++j) m[j] = (float)(s[j] / (double)n);
  return m;
}

double sign_quant_error(const float* R, int b, int d, const float* u, int64_t N) {
  if (N == 0) return 0;
  const MatF V = ConstMapF(R, b, d) * ConstMapF(u, N, d).transpose();  // b x N
  return (double)(V.unaryExpr([](float x) { return sgn(x); }) - V).squaredNorm() / (double)N;
}

void itq_refine(float* R, int b, int d, const float* u, int64_t N, int iters) {
  if (N == 0 || iters <= 0) return;
  const ConstMapF U(u, N, d);
  for (int i0 = 0; i0 < b; i0 += d) {
    const int n = std::min(d, b - i0);
    MapF Rb(R + (size_t)i0 * d, n, d);
    const MatF V = Rb * U.transpose();  // n x N
    Eigen::MatrixXd Q = Eigen::MatrixXd::Identity(n, n);
    for (int it = 0; it < iters; ++it) {
      const MatF B = (Q.cast<float>() * V).unaryExpr([](float x) { return sgn(x); });
      const Eigen::MatrixXd M = (B * V.transpose()).cast<double>();  // n x n
      Eigen::JacobiSVD<Eigen::MatrixXd> svd(M, Eigen::ComputeFullU | Eigen::ComputeFullV);
      Q = svd.matrixU() * svd.matrixV().transpose();  // argmax tr(Q M^T) over orthogonal Q
    }
    const MatF Rn = Q.cast<float>() * Rb;
    Rb = Rn;
  }
}

std::vector<float> ridge_decoder(const float* R, int b, int d, const float* u, int64_t N, double lambda_rel) {
  const MatF S = (ConstMapF(R, b, d) * ConstMapF(u, N, d).transpose()).unaryExpr([](float x) { return sgn(x); });
  const MatF St = S.transpose();  // N x b
  return ridge_solve(St.data(), u, N, b, d, lambda_rel);
}

std::vector<float> ridge_solve(const float* s, const float* u, int64_t N, int b, int d, double lambda_rel) {
  check(lambda_rel > 0, "ridge: lambda must be > 0");
  const ConstMapF U(u, N, d);
  const MatF S = ConstMapF(s, N, b).transpose();  // b x N
  Eigen::MatrixXd G = (S * S.transpose()).cast<double>();  // exact: sums of +-1, N < 2^24
  G.diagonal().array() += lambda_rel * (double)N;
  const Eigen::MatrixXd rhs = (S * U).cast<double>();  // b x d
  const Eigen::MatrixXd A = G.ldlt().solve(rhs);       // (S S^T + lambda I) A = S U: A = D^T
  std::vector<float> out((size_t)b * d);
  for (int i = 0; i < b; ++i)
    for (int j = 0; j < d; ++j) out[(size_t)i * d + j] = (float)A(i, j);
  return out;
}

double decode_error(const float* R, const float* A, int b, int d, const float* u, int64_t N) {
  if (N == 0) return 0;
  const ConstMapF U(u, N, d);
  const MatF S = (ConstMapF(R, b, d) * U.transpose()).unaryExpr([](float x) { return sgn(x); });  // b x N
  const MatF Uh = S.transpose() * ConstMapF(A, b, d);  // N x d
  return (double)(Uh - U).squaredNorm() / (double)N;
}

Adapter fit_h1b_adapter(const CacheSpec& spec, const CacheGeometry& g, const std::vector<const LayerKeys*>& keys,
                        std::string* summary, const std::vector<const std::vector<KlCapture>*>* seqs) {
  const H1bOptions o = h1b_options(spec);
  check((int)keys.size() == g.n_layer, "adapter fit: keys of " + std::to_string(keys.size()) + " layers, the model has " +
                                           std::to_string(g.n_layer));
  const int d = g.head_dim, b = o.sketch.bits, nkv = g.n_kv_head;
  check(d <= 512, "adapter fit: head_dim " + std::to_string(d) + " > 512");
  Adapter a;
  a.model_id = g.model_id;
  a.cache = calib_spec_string(spec);
  check(o.kl == 0 || (seqs && (int)seqs->size() == g.n_layer), "adapter fit: kl needs the captured sequences of every layer");
  if (o.kl > 0) {  // rows of the training sequences (all but the last of >= 2)
    const std::vector<KlCapture>& s0 = *(*seqs)[0];
    size_t rows = 0;
    for (size_t i = 0; i + (s0.size() >= 2 ? 1 : 0) < s0.size(); ++i) rows += s0[i].rows.size();
    check(rows > 0, "adapter fit: kl=" + std::to_string(o.kl) + " has no query to train on: no captured query sees a compressed " +
                        "token (the context -c must exceed sink + window)");
  }
  for (const char* part : {o.ridge > 0 ? "1a" : "", o.itq > 0 ? "1b" : "", o.kl > 0 ? "1c" : ""})
    if (*part) a.stage += (a.stage.empty() ? "" : "+") + std::string(part);
  if (a.stage.empty()) a.stage = "0";
  a.layers.resize(g.n_layer);
  const int pairs = g.n_layer * nkv;
  std::vector<double> itq0(pairs, 0), itq1(pairs, 0), dec0(pairs, 0), dec1(pairs, 0);
  std::vector<int64_t> used(pairs, 0);
  std::vector<std::vector<float>> mus(pairs), Rs(pairs), As(pairs), mults(pairs);
  std::vector<KlFitResult> kls(pairs);
  const int G = g.n_head / nkv;
#pragma omp parallel for schedule(dynamic, 1)
  for (int pr = 0; pr < pairs; ++pr) {
    const int il = pr / nkv, h = pr % nkv;
    const std::vector<float>& X = (*keys[il])[h];
    const int64_t n = (int64_t)X.size() / d;
    mus[pr] = o.center ? key_mean(X.data(), n, d) : std::vector<float>(d, 0.0f);
    std::vector<float> u;  // unit rows of X - mu (zero rows dropped)
    u.reserve(X.size());
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      float r[512];
      for (int j = 0; j < d; ++j) r[j] = X[i * d + j] - mus[pr][j], s += (double)r[j] * r[j];
      if (s < 1e-30) continue;
      const float inv = (float)(1.0 / std::sqrt(s));
      for (int j = 0; j < d; ++j) u.push_back(r[j] * inv);
    }
    const int64_t N = (int64_t)u.size() / d;
    used[pr] = N;
    std::vector<float> R = sketch_projection(o.sketch, il, h, d);
    if (o.itq > 0) {
      std::vector<float> us;  // an even subsample
      const int64_t step = std::max<int64_t>(1, (N + kMaxItqSamples - 1) / kMaxItqSamples);
      for (int64_t i = 0; i < N; i += step) us.insert(us.end(), u.begin() + i * d, u.begin() + (i + 1) * d);
      const int64_t Ns = (int64_t)us.size() / d;
      itq0[pr] = sign_quant_error(R.data(), b, d, us.data(), Ns) / b;
      itq_refine(R.data(), b, d, us.data(), Ns, o.itq);
      itq1[pr] = sign_quant_error(R.data(), b, d, us.data(), Ns) / b;
      Rs[pr] = R;
    }
    if (o.ridge > 0 && N > 0) {
      std::vector<float> A0(R.size());  // qjl's own decoder: sqrt(pi/2)/b R
      for (size_t i = 0; i < R.size(); ++i) A0[i] = (float)(std::sqrt(kPi / 2) / b) * R[i];
      As[pr] = ridge_decoder(R.data(), b, d, u.data(), N, o.ridge);
      dec0[pr] = decode_error(R.data(), A0.data(), b, d, u.data(), N);
      dec1[pr] = decode_error(R.data(), As[pr].data(), b, d, u.data(), N);
    }
    if (o.kl > 0) {
      if (As[pr].empty()) {  // qjl's own decoder: sqrt(pi/2)/b R
        As[pr].resize(R.size());
        for (size_t i = 0; i < R.size(); ++i) As[pr][i] = (float)(std::sqrt(kPi / 2) / b) * R[i];
      }
      const std::vector<KlCapture>& cs = *(*seqs)[il];
      std::vector<KlHeadSeq> train, held;
      for (size_t i = 0; i < cs.size(); ++i)
        (cs.size() >= 2 && i + 1 == cs.size() ? held : train).push_back(kl_head_seq(cs[i], h, nkv, g.n_head, d, mus[pr].data()));
      if (o.qhead) {  // every query head starts from the KV head's decoder
        const std::vector<float> A1 = As[pr];
        for (int gi = 1; gi < G; ++gi) As[pr].insert(As[pr].end(), A1.begin(), A1.end());
      }
      KlGeom kg{d, b, G, cs.empty() ? 0.0f : cs[0].scale, o.sink, o.window, o.qhead};
      KlFitOptions ko;
      ko.steps = o.kl;
      ko.seed = o.sketch.seed * 1000003 + (uint64_t)pr;
      mults[pr].assign(G, 1.0f);
      kls[pr] = kl_fit_head(kg, train, held, R, As[pr], mults[pr], ko);
      Rs[pr] = R;
    }
  }
  double mi0 = 0, mi1 = 0, md0 = 0, md1 = 0;
  int64_t nmin = INT64_MAX;
  for (int pr = 0; pr < pairs; ++pr) {
    mi0 += itq0[pr] / pairs, mi1 += itq1[pr] / pairs, md0 += dec0[pr] / pairs, md1 += dec1[pr] / pairs;
    nmin = std::min(nmin, used[pr]);
  }
  check(nmin > 0, "adapter fit: a (layer, KV head) saw no key (calibration text too short?)");
  a.tokens = nmin;  // keys per (layer, KV head) the fit used
  for (int il = 0; il < g.n_layer; ++il) {
    AdapterLayer& l = a.layers[il];
    auto stack = [&](std::vector<std::vector<float>>& v, AdapterTensor& t, std::vector<int64_t> shape) {
      t.shape = shape;
      for (int h = 0; h < nkv; ++h) t.data.insert(t.data.end(), v[il * nkv + h].begin(), v[il * nkv + h].end());
    };
    if (o.center) stack(mus, l.k_mean, {nkv, d});
    if (o.itq > 0 || o.kl > 0) stack(Rs, l.k_proj, {nkv, b, d});
    if (o.ridge > 0 || o.kl > 0) stack(As, l.q_proj, {o.qhead ? g.n_head : nkv, b, d});
    if (o.kl > 0) stack(mults, l.logit_mult, {g.n_head});
  }
  if (summary) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "adapter stage %s, >= %lld keys per (layer, KV head)", a.stage.c_str(), (long long)nmin);
    *summary = buf;
    if (o.itq > 0) {
      std::snprintf(buf, sizeof buf, "; ITQ sign error per bit %.4f -> %.4f", mi0, mi1);
      *summary += buf;
    }
    if (o.ridge > 0) {
      std::snprintf(buf, sizeof buf, "; unit-key decode error |u - A^T s|^2: qjl %.4f -> ridge %.4f", md0, md1);
      *summary += buf;
    }
    if (o.kl > 0) {
      double tb = 0, ta = 0, hb = 0, ha = 0;
      int kept = 0;
      for (const KlFitResult& r : kls)
        tb += r.train_before / pairs, ta += r.train_after / pairs, hb += r.held_before / pairs,
            ha += r.held_after / pairs, kept += r.kept_start;
      const bool held = (*seqs)[0]->size() >= 2;
      std::snprintf(buf, sizeof buf, "; attention KL (%d steps): train %.5f -> %.5f, ", o.kl, tb, ta);
      *summary += buf;
      if (held) std::snprintf(buf, sizeof buf, "held-out sequence %.5f -> %.5f", hb, ha);
      else std::snprintf(buf, sizeof buf, "no held-out sequence (one captured)");
      *summary += buf;
      std::snprintf(buf, sizeof buf, "; start kept in %d of %d (layer, KV head)", kept, pairs);
      *summary += buf;
      // per layer (mean over KV heads), the held-out KL or else the training one: the measure
      // `exact=` lists can be chosen by (calibration text only)
      std::vector<double> per(g.n_layer, 0);
      for (int pr = 0; pr < pairs; ++pr) per[pr / nkv] += (held ? kls[pr].held_after : kls[pr].train_after) / nkv;
      *summary += held ? "\nheld-out attention KL per layer:" : "\ntraining attention KL per layer:";
      for (int il = 0; il < g.n_layer; ++il) {
        std::snprintf(buf, sizeof buf, " %d:%.5f", il, per[il]);
        *summary += buf;
      }
      std::vector<int> order(g.n_layer);
      for (int il = 0; il < g.n_layer; ++il) order[il] = il;
      std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return per[x] > per[y]; });
      *summary += "\nlayers by that KL, largest first:";
      for (int il : order) *summary += " " + std::to_string(il);
    }
  }
  return a;
}

}  // namespace h1bkv
