#include "kv/calib/h1b_kl_fit.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "util/error.h"

namespace h1bkv {

namespace {

template <class T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ConstMap = Eigen::Map<const Mat<T>>;

constexpr double kPi = 3.14159265358979323846;

}  // namespace

KlHeadSeq kl_head_seq(const KlCapture& c, int hk, int nkv, int nh, int d, const float* mu) {
  const int G = nh / nkv;
  KlHeadSeq s;
  s.n = c.n(), s.m = (int64_t)c.rows.size();
  check(c.k.size() == (size_t)s.n * nkv * d && c.q.size() == (size_t)s.m * nh * d,
        "KL fit: captured sequence has inconsistent sizes");
  s.pos = c.pos, s.rows = c.rows;
  s.k.resize((size_t)s.n * d), s.u.resize((size_t)s.n * d), s.nrm.resize(s.n);
  for (int64_t t = 0; t < s.n; ++t) {
    const float* kt = &c.k[((size_t)t * nkv + hk) * d];
    double ss = 0;
    for (int j = 0; j < d; ++j) {
      s.k[t * d + j] = kt[j];
      const double r = (double)kt[j] - mu[j];
      ss += r * r;
    }
    s.nrm[t] = (float)std::sqrt(ss);
    const double inv = ss > 1e-30 ? 1.0 / std::sqrt(ss) : 0.0;
    for (int j = 0; j < d; ++j) s.u[t * d + j] = (float)(((double)kt[j] - mu[j]) * inv);
  }
  s.q.resize((size_t)s.m * G * d), s.qmu.resize((size_t)s.m * G);
  for (int64_t r = 0; r < s.m; ++r)
    for (int gi = 0; gi < G; ++gi) {
      const float* qr = &c.q[((size_t)r * nh + hk * G + gi) * d];
      double qm = 0;
      for (int j = 0; j < d; ++j) s.q[(r * G + gi) * d + j] = qr[j], qm += (double)qr[j] * mu[j];
      s.qmu[r * G + gi] = (float)qm;
    }
  return s;
}

template <class T>
double kl_loss_grad(const KlGeom& g, const KlHeadSeq& s, const std::vector<int64_t>& rows_in, const T* R,
                    const T* A, const T* mult, KlRelax relax, T* dR, T* dA, T* dmult, int64_t* count) {
  const int d = g.d, b = g.b, G = g.G;
  std::vector<int64_t> rows = rows_in;
  if (rows.empty()) {
    rows.resize(s.m);
    std::iota(rows.begin(), rows.end(), 0);
  }
  if (count) *count = 0;
  if (rows.empty()) return 0;
  int64_t nk = 0;  // keys any chosen row sees
  for (int64_t r : rows) nk = std::max(nk, s.rows[r] + 1);
  const int64_t mr = (int64_t)rows.size();
  const Mat<T> U = ConstMap<float>(s.u.data(), nk, d).cast<T>(), K = ConstMap<float>(s.k.data(), nk, d).cast<T>();
  const ConstMap<T> Rm(R, b, d);
  const Mat<T> Y = U * Rm.transpose();  // [nk][b]
  const T beta = T(relax.beta);
  const Mat<T> S = Y.unaryExpr([&](T y) { return relax.ste ? (y >= 0 ? T(1) : T(-1)) : std::tanh(beta * y); });
  const bool grad = dR != nullptr;
  Mat<T> dS = Mat<T>::Zero(grad ? nk : 0, grad ? b : 0);
  Mat<T> Qg(mr, d);
  std::vector<double> z(nk), lp(nk);
  double total = 0;
  for (int gi = 0; gi < G; ++gi) {
    for (int64_t r = 0; r < mr; ++r)
      for (int j = 0; j < d; ++j) Qg(r, j) = (T)s.q[(rows[r] * G + gi) * d + j];
    const Mat<T> E = T(g.scale) * Qg * K.transpose();  // [mr][nk] teacher logits
    const size_t a_off = g.a_per_head ? (size_t)gi * b * d : 0;  // this head's decoder
    const Mat<T> QA = Qg * ConstMap<T>(A + a_off, b, d).transpose();  // [mr][b]
    const Mat<T> C = QA * S.transpose();                // [mr][nk] <A q, s_t>
    Mat<T> Gz = Mat<T>::Zero(grad ? mr : 0, grad ? nk : 0);  // dKL/dz * scale |k - mu| (compressed)
    for (int64_t r = 0; r < mr; ++r) {
      const int64_t i = s.rows[rows[r]], n = i + 1;
      const double qmu = s.qmu[rows[r] * G + gi];
      double emax = -INFINITY, zmax = -INFINITY;
      for (int64_t t = 0; t < n; ++t) {
        const bool exact = t < g.sink || (g.window > 0 && s.pos[t] > (int64_t)s.pos[i] - g.window);
        z[t] = exact ? (double)E(r, t) : g.scale * ((double)mult[gi] * s.nrm[t] * (double)C(r, t) + qmu);
        emax = std::max(emax, (double)E(r, t)), zmax = std::max(zmax, z[t]);
      }
      double se = 0, sz = 0;
      for (int64_t t = 0; t < n; ++t) se += std::exp((double)E(r, t) - emax), sz += std::exp(z[t] - zmax);
      const double lse = emax + std::log(se), lsz = zmax + std::log(sz);
      double kl = 0;
      for (int64_t t = 0; t < n; ++t) {
        const double lpt = (double)E(r, t) - lse, p = std::exp(lpt);
        kl += p * (lpt - (z[t] - lsz));
        const bool exact = t < g.sink || (g.window > 0 && s.pos[t] > (int64_t)s.pos[i] - g.window);
        if (grad && !exact) Gz(r, t) = (T)((std::exp(z[t] - lsz) - p) * g.scale * s.nrm[t]);
      }
      total += kl;
    }
    if (!grad) continue;
    dmult[gi] += Gz.cwiseProduct(C).sum();
    const Mat<T> dC = mult[gi] * Gz;  // [mr][nk]
    Eigen::Map<Mat<T>>(dA + a_off, b, d).noalias() += (dC * S).transpose() * Qg;
    dS.noalias() += dC.transpose() * QA;
  }
  if (count) *count = mr * G;
  if (grad) {
    // tanh(beta y)' = beta (1 - tanh^2); in the straight-through phase S is sign(y), so recompute
    const Mat<T> dY = dS.cwiseProduct(Y.unaryExpr([&](T y) {
      const T th = std::tanh(beta * y);
      return beta * (T(1) - th * th);
    }));
    Eigen::Map<Mat<T>>(dR, b, d).noalias() += dY.transpose() * U;
  }
  return total;
}

template double kl_loss_grad<float>(const KlGeom&, const KlHeadSeq&, const std::vector<int64_t>&, const float*,
                                    const float*, const float*, KlRelax, float*, float*, float*, int64_t*);
template double kl_loss_grad<double>(const KlGeom&, const KlHeadSeq&, const std::vector<int64_t>&, const double*,
                                     const double*, const double*, KlRelax, double*, double*, double*, int64_t*);

double kl_eval(const KlGeom& g, const std::vector<KlHeadSeq>& seqs, const float* R, const float* A, const float* mult) {
  // A: as kl_loss_grad
  double sum = 0;
  int64_t n = 0;
  for (const KlHeadSeq& s : seqs) {
    // rows in slices of 128: bounded temporaries
    for (int64_t r0 = 0; r0 < s.m; r0 += 128) {
      std::vector<int64_t> rows(std::min<int64_t>(128, s.m - r0));
      std::iota(rows.begin(), rows.end(), r0);
      int64_t c = 0;
      sum += kl_loss_grad<float>(g, s, rows, R, A, mult, KlRelax{}, nullptr, nullptr, nullptr, &c);
      n += c;
    }
  }
  return n > 0 ? sum / (double)n : 0.0;
}

KlFitResult kl_fit_head(const KlGeom& g, const std::vector<KlHeadSeq>& train, const std::vector<KlHeadSeq>& held,
                        std::vector<float>& R, std::vector<float>& A, std::vector<float>& mult, const KlFitOptions& o) {
  const size_t nb = (size_t)g.b * g.d, na = nb * (g.a_per_head ? g.G : 1);
  check(R.size() == nb && A.size() == na && mult.size() == (size_t)g.G, "KL fit: parameter shapes");
  KlFitResult res;
  res.train_before = res.train_after = kl_eval(g, train, R.data(), A.data(), mult.data());
  res.held_before = res.held_after = kl_eval(g, held, R.data(), A.data(), mult.data());
  std::vector<size_t> usable;  // training sequences with rows
  for (size_t i = 0; i < train.size(); ++i)
    if (train[i].m > 0) usable.push_back(i);
  if (o.steps <= 0 || usable.empty()) return res;
  // parameter vector [R | A | mult], Adam state beside it; lr per tensor = lr x its initial rms
  const size_t np = nb + na + g.G;
  std::vector<float> P(R), grad(np), m(np, 0.0f), v(np, 0.0f);
  P.insert(P.end(), A.begin(), A.end());
  P.insert(P.end(), mult.begin(), mult.end());
  const std::vector<float> start = P;
  auto rms = [](const std::vector<float>& x) {
    double s = 0;
    for (float e : x) s += (double)e * e;
    return x.empty() ? 1.0 : std::max(1e-8, std::sqrt(s / x.size()));
  };
  const double lr_scale[3] = {rms(R), rms(A), 1.0};
  std::mt19937_64 rng(o.seed);
  constexpr double b1 = 0.9, b2 = 0.999, eps = 1e-12;
  for (int step = 0; step < o.steps; ++step) {
    const KlHeadSeq& s = train[usable[step % usable.size()]];
    std::vector<int64_t> idx(s.m);
    std::iota(idx.begin(), idx.end(), 0);
    const int64_t take = std::min<int64_t>(s.m, o.rows_per_step);
    for (int64_t i = 0; i < take; ++i)  // partial Fisher-Yates
      std::swap(idx[i], idx[i + (int64_t)(rng() % (uint64_t)(s.m - i))]);
    idx.resize(take);
    const double frac = (step + 0.5) / o.steps;
    KlRelax relax{o.beta1, true};
    if (frac < o.anneal) relax = {o.beta0 * std::pow(o.beta1 / o.beta0, frac / o.anneal), false};
    std::fill(grad.begin(), grad.end(), 0.0f);
    int64_t cnt = 0;
    kl_loss_grad<float>(g, s, idx, P.data(), P.data() + nb, P.data() + nb + na, relax, grad.data(), grad.data() + nb,
                        grad.data() + nb + na, &cnt);
    if (cnt == 0) continue;
    const double lr_t = o.lr * 0.5 * (1 + std::cos(kPi * step / o.steps));
    const double c1 = 1 - std::pow(b1, step + 1), c2 = 1 - std::pow(b2, step + 1);
    for (size_t j = 0; j < P.size(); ++j) {
      const double gj = grad[j] / (double)cnt;
      m[j] = (float)(b1 * m[j] + (1 - b1) * gj);
      v[j] = (float)(b2 * v[j] + (1 - b2) * gj * gj);
      const double sc = lr_scale[j < nb ? 0 : j < nb + na ? 1 : 2];
      P[j] -= (float)(lr_t * sc * (m[j] / c1) / (std::sqrt(v[j] / c2) + eps));
    }
    for (int h = 0; h < g.G; ++h) P[nb + na + h] = std::max(P[nb + na + h], 1e-3f);  // the adapter needs > 0
  }
  const double after = kl_eval(g, train, P.data(), P.data() + nb, P.data() + nb + na);
  if (!(after < res.train_before)) {
    res.kept_start = true;
    return res;
  }
  res.train_after = after;
  res.held_after = kl_eval(g, held, P.data(), P.data() + nb, P.data() + nb + na);
  std::copy(P.begin(), P.begin() + nb, R.begin());
  std::copy(P.begin() + nb, P.begin() + nb + na, A.begin());
  std::copy(P.begin() + nb + na, P.end(), mult.begin());
  return res;
}

}  // namespace h1bkv
