// Stage 1(c), the attention-KL fit of the h1b sketch (kv/calib/h1b_kl_fit.h): its gradient
// against central finite differences in double on a tiny random layer (tanh relaxation: all of
// R, A, mult; sign + straight-through: A and mult, whose gradients are then exact), the KL of a
// hand-computed case, and training that lowers the KL of planted data without ever returning
// worse parameters than its start.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kv/calib/h1b_kl_fit.h"
#include "kv/random.h"

using namespace h1bkv;

namespace {

std::vector<float> randn_sd(size_t n, uint32_t seed, float sd) {
  std::vector<float> x = randn(n, seed);
  for (float& v : x) v *= sd;
  return x;
}

// One sequence of n tokens, n_kv = 1, G query heads, queries at every row >= first_row.
KlCapture random_capture(int n, int G, int d, int first_row, uint32_t seed, float key_offset = 0) {
  KlCapture c;
  c.k = randn((size_t)n * d, seed);
  for (size_t i = 0; i < c.k.size(); ++i) c.k[i] += key_offset * (float)((i % d) % 3);
  for (int t = 0; t < n; ++t) c.pos.push_back(t);
  for (int r = first_row; r < n; ++r) c.rows.push_back(r);
  c.q = randn_sd(c.rows.size() * G * d, seed + 1, 1.5f);
  c.scale = 1.0f / std::sqrt((float)d);
  return c;
}

std::vector<double> to_d(const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); }

// P = [R | A | mult]; A is [b][d], or [G][b][d] with g.a_per_head
double rel_fd_error(const KlGeom& g, const KlHeadSeq& s, std::vector<double>& P, KlRelax relax, size_t from,
                    size_t to) {
  const size_t nb = (size_t)g.b * g.d, mo = nb + nb * (g.a_per_head ? g.G : 1);
  std::vector<double> grad(P.size(), 0.0);
  kl_loss_grad<double>(g, s, {}, P.data(), P.data() + nb, P.data() + mo, relax, grad.data(), grad.data() + nb,
                       grad.data() + mo);
  double num = 0, den = 0;
  const double h = 1e-6;
  for (size_t j = from; j < to; ++j) {
    const double x0 = P[j];
    P[j] = x0 + h;
    const double lp = kl_loss_grad<double>(g, s, {}, P.data(), P.data() + nb, P.data() + mo, relax, nullptr,
                                           nullptr, nullptr);
    P[j] = x0 - h;
    const double lm = kl_loss_grad<double>(g, s, {}, P.data(), P.data() + nb, P.data() + mo, relax, nullptr,
                                           nullptr, nullptr);
    P[j] = x0;
    const double fd = (lp - lm) / (2 * h);
    num += (grad[j] - fd) * (grad[j] - fd), den += fd * fd;
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

}  // namespace

// d = 8, b = 16, two query heads, 2 sinks and a window of 4 over 20 tokens: every part of the
// mixed softmax is present. Bound: relative error 1e-6 (central differences, h = 1e-6, double).
TEST(H1bKlFit, GradientMatchesFiniteDifferences) {
  const int n = 20, G = 2, d = 8, b = 16;
  const KlCapture c = random_capture(n, G, d, 7, 11, 0.8f);
  std::vector<float> mu(d, 0.3f);
  const KlHeadSeq s = kl_head_seq(c, 0, 1, G, d, mu.data());
  const KlGeom g{d, b, G, c.scale, 2, 4};
  std::vector<double> P = to_d(randn((size_t)b * d, 5));          // R
  const std::vector<double> A = to_d(randn_sd((size_t)b * d, 6, 0.1f));
  P.insert(P.end(), A.begin(), A.end());
  P.push_back(0.9), P.push_back(1.3);  // mult
  const size_t nb = (size_t)b * d;
  const KlRelax tanh_relax{1.5, false};
  EXPECT_LT(rel_fd_error(g, s, P, tanh_relax, 0, nb), 1e-6);           // R
  EXPECT_LT(rel_fd_error(g, s, P, tanh_relax, nb, 2 * nb), 1e-6);      // A
  EXPECT_LT(rel_fd_error(g, s, P, tanh_relax, 2 * nb, P.size()), 1e-6);  // mult
  // sign forward: the loss is piecewise constant in R, smooth in A and mult
  const KlRelax ste{4.0, true};
  EXPECT_LT(rel_fd_error(g, s, P, ste, nb, 2 * nb), 1e-6);
  EXPECT_LT(rel_fd_error(g, s, P, ste, 2 * nb, P.size()), 1e-6);
}

// A per query head (GQA: the sketch is the KV head's, the decoder the query head's): the same
// layer with G = 3 and three different decoders, same bound. With three copies of one decoder
// the loss equals the shared decoder's and each copy's gradient is that head's share of it.
TEST(H1bKlFit, PerQueryHeadDecoderGradientMatchesFiniteDifferences) {
  const int n = 20, G = 3, d = 8, b = 16;
  const KlCapture c = random_capture(n, G, d, 7, 21, 0.8f);
  std::vector<float> mu(d, 0.3f);
  const KlHeadSeq s = kl_head_seq(c, 0, 1, G, d, mu.data());
  KlGeom g{d, b, G, c.scale, 2, 4};
  g.a_per_head = true;
  const size_t nb = (size_t)b * d;
  std::vector<double> P = to_d(randn(nb, 5));  // R
  const std::vector<double> A = to_d(randn_sd(G * nb, 6, 0.1f));
  P.insert(P.end(), A.begin(), A.end());
  P.push_back(0.9), P.push_back(1.3), P.push_back(0.7);  // mult
  const size_t mo = nb + G * nb;
  const KlRelax tanh_relax{1.5, false}, ste{4.0, true};
  EXPECT_LT(rel_fd_error(g, s, P, tanh_relax, 0, nb), 1e-6);          // R
  EXPECT_LT(rel_fd_error(g, s, P, tanh_relax, nb, mo), 1e-6);         // the three A
  EXPECT_LT(rel_fd_error(g, s, P, tanh_relax, mo, P.size()), 1e-6);   // mult
  EXPECT_LT(rel_fd_error(g, s, P, ste, nb, mo), 1e-6);
  // three copies of one decoder == the shared decoder, loss and gradient
  std::vector<double> Ps(P.begin(), P.begin() + 2 * nb), Pc(P.begin(), P.begin() + nb);
  for (int gi = 0; gi < G; ++gi) Pc.insert(Pc.end(), Ps.begin() + nb, Ps.end());
  for (size_t j = mo; j < P.size(); ++j) Ps.push_back(P[j]), Pc.push_back(P[j]);
  KlGeom gs = g;
  gs.a_per_head = false;
  std::vector<double> grs(Ps.size(), 0.0), grc(Pc.size(), 0.0);
  const double ls = kl_loss_grad<double>(gs, s, {}, Ps.data(), Ps.data() + nb, Ps.data() + 2 * nb, tanh_relax,
                                         grs.data(), grs.data() + nb, grs.data() + 2 * nb);
  const double lc = kl_loss_grad<double>(g, s, {}, Pc.data(), Pc.data() + nb, Pc.data() + mo, tanh_relax, grc.data(),
                                         grc.data() + nb, grc.data() + mo);
  EXPECT_NEAR(lc, ls, 1e-12 * std::fabs(ls));
  for (size_t e = 0; e < nb; ++e) {
    EXPECT_NEAR(grc[e], grs[e], 1e-9 * (1 + std::fabs(grs[e])));  // R
    EXPECT_NEAR(grc[nb + e] + grc[2 * nb + e] + grc[3 * nb + e], grs[nb + e], 1e-9 * (1 + std::fabs(grs[nb + e])));
  }
}

// Two tokens, no exact tier, one row at t = 1: with mult = 0 the student is uniform over the
// two (z = scale q.mu for both), so KL = sum p log(2 p) with p = softmax(scale q.k).
TEST(H1bKlFit, KlOfHandComputedCase) {
  const int d = 2, b = 2;
  KlCapture c;
  c.k = {1, 0, 0, 2};
  c.pos = {0, 1};
  c.rows = {1};
  c.q = {0.5f, -1.0f};
  c.scale = 0.5f;
  const std::vector<float> mu(d, 0.0f);
  const KlHeadSeq s = kl_head_seq(c, 0, 1, 1, d, mu.data());
  const KlGeom g{d, b, 1, 0.5f, 0, 0};
  const std::vector<double> R = {1, 0, 0, 1}, A = {1, 0, 0, 1}, mult = {0};
  const double e0 = 0.5 * 0.5, e1 = 0.5 * -2.0, m = std::max(e0, e1);
  const double p0 = std::exp(e0 - m) / (std::exp(e0 - m) + std::exp(e1 - m)), p1 = 1 - p0;
  const double want = p0 * std::log(2 * p0) + p1 * std::log(2 * p1);
  EXPECT_NEAR(kl_loss_grad<double>(g, s, {}, R.data(), A.data(), mult.data(), KlRelax{}, nullptr, nullptr, nullptr),
              want, 1e-12);
}

// Keys with a strong common direction and queries that read it: the start (Gaussian R, qjl's A)
// is poor, and training lowers the KL of the training and of a held-out sequence.
TEST(H1bKlFit, TrainingLowersKlAndNeverReturnsWorse) {
  const int n = 96, G = 2, d = 8, b = 16;
  const KlGeom g{d, b, G, 1.0f / std::sqrt((float)d), 2, 8};
  std::vector<float> mu(d, 0.0f);
  std::vector<KlHeadSeq> train, held;
  for (uint32_t i = 0; i < 4; ++i) train.push_back(kl_head_seq(random_capture(n, G, d, 16, 100 + 2 * i, 1.0f), 0, 1, G, d, mu.data()));
  held.push_back(kl_head_seq(random_capture(n, G, d, 16, 200, 1.0f), 0, 1, G, d, mu.data()));
  std::vector<float> R = randn((size_t)b * d, 7), A(R.size()), mult(G, 1.0f);
  for (size_t i = 0; i < R.size(); ++i) A[i] = (float)(std::sqrt(3.14159265358979 / 2) / b) * R[i];
  KlFitOptions o;
  o.steps = 150;
  o.rows_per_step = 32;
  o.lr = 0.02;
  const KlFitResult r = kl_fit_head(g, train, held, R, A, mult, o);
  EXPECT_FALSE(r.kept_start);
  EXPECT_LT(r.train_after, 0.8 * r.train_before) << r.train_before << " -> " << r.train_after;
  EXPECT_LT(r.held_after, r.held_before) << r.held_before << " -> " << r.held_after;
  // the returned parameters are the ones measured
  EXPECT_NEAR(kl_eval(g, train, R.data(), A.data(), mult.data()), r.train_after, 1e-9);
  // starting from the result with a harmful learning rate: the start comes back unchanged
  const std::vector<float> R0 = R, A0 = A, m0 = mult;
  o.lr = 50;
  o.steps = 5;
  const KlFitResult bad = kl_fit_head(g, train, held, R, A, mult, o);
  if (bad.kept_start) {
    EXPECT_EQ(R, R0);
    EXPECT_EQ(A, A0);
    EXPECT_EQ(mult, m0);
    EXPECT_EQ(bad.train_after, bad.train_before);
  } else {
    EXPECT_LT(bad.train_after, bad.train_before);
  }
}
