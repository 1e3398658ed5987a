// Layer-local fits of the h1b sketch (kv/calib/h1b_fit.h) on synthetic data with known answers:
// ridge recovers a planted decoder, ITQ never increases its objective and strictly lowers it where
// the data sit near a rotated hypercube, the key mean skips the sinks, orth gives orthogonal
// blocks of norm sqrt(d), and the centred / decoded qjl logit is the documented formula.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "kv/calib/adapter.h"
#include "kv/calib/h1b_fit.h"
#include "kv/calib/h1b_record.h"
#include "kv/caches/h1b.h"
#include "kv/codecs/sketch.h"
#include "kv/random.h"
#include "kv/registry.h"

using namespace h1bkv;

namespace {

std::vector<float> unit_rows(std::vector<float> x, int d) {
  for (size_t i = 0; i < x.size(); i += d) {
    double s = 0;
    for (int j = 0; j < d; ++j) s += (double)x[i + j] * x[i + j];
    for (int j = 0; j < d; ++j) x[i + j] = (float)(x[i + j] / std::sqrt(s));
  }
  return x;
}

}  // namespace

// u = D* s exactly (s random signs): the ridge solution with a tiny lambda is D*^T.
TEST(H1bFit, RidgeRecoversPlantedDecoder) {
  const int N = 2000, b = 32, d = 8;
  std::vector<float> s = randn((size_t)N * b, 1);
  for (float& x : s) x = x >= 0 ? 1.0f : -1.0f;
  const std::vector<float> At = randn((size_t)b * d, 2);  // planted A = D*^T, [b][d]
  std::vector<float> u((size_t)N * d, 0.0f);
  for (int i = 0; i < N; ++i)
    for (int j = 0; j < d; ++j)
      for (int r = 0; r < b; ++r) u[(size_t)i * d + j] += s[(size_t)i * b + r] * At[(size_t)r * d + j];
  const std::vector<float> A = ridge_solve(s.data(), u.data(), N, b, d, 1e-7);
  for (size_t i = 0; i < A.size(); ++i) EXPECT_NEAR(A[i], At[i], 2e-3) << i;
  // a large lambda shrinks it towards 0
  const std::vector<float> A2 = ridge_solve(s.data(), u.data(), N, b, d, 10.0);
  double n1 = 0, n2 = 0;
  for (size_t i = 0; i < A.size(); ++i) n1 += A[i] * A[i], n2 += A2[i] * A2[i];
  EXPECT_LT(n2, 0.2 * n1);
}

// On isotropic keys ITQ has nothing to find but must not get worse, iteration by iteration.
TEST(H1bFit, ItqNeverIncreasesSignError) {
  const int N = 1000, d = 16, b = 32;  // two blocks
  const std::vector<float> u = unit_rows(randn((size_t)N * d, 3), d);
  SketchOptions o;
  o.bits = b;
  std::vector<float> R = sketch_projection(o, 0, 0, d);
  double prev = sign_quant_error(R.data(), b, d, u.data(), N);
  for (int it = 0; it < 6; ++it) {
    itq_refine(R.data(), b, d, u.data(), N, 1);
    const double e = sign_quant_error(R.data(), b, d, u.data(), N);
    EXPECT_LE(e, prev * (1 + 1e-5)) << "iteration " << it;
    prev = e;
  }
}

// Keys near the vertices of a rotated hypercube: ITQ finds the rotation back (error drops by >4x).
TEST(H1bFit, ItqStrictlyLowersErrorOnPlantedRotation) {
  const int N = 2000, d = 8, b = 8;
  SketchOptions o;
  o.bits = b;
  o.orth = true;
  o.seed = 7;
  const std::vector<float> R0 = sketch_projection(o, 0, 0, d);  // sqrt(d) x orthogonal
  // u = R0^T (sign vector + noise) / |.|: R0 u = sqrt(d) (c + noise) / |.| sits near a vertex,
  // then a second random rotation hides it
  SketchOptions o2 = o;
  o2.seed = 99;
  const std::vector<float> Q = sketch_projection(o2, 0, 0, d);
  std::vector<float> c = randn((size_t)N * d, 4), noise = randn((size_t)N * d, 5), u((size_t)N * d, 0.0f);
  for (int i = 0; i < N; ++i) {
    float v[8], w[8] = {};
    for (int j = 0; j < d; ++j) v[j] = (c[i * d + j] >= 0 ? 1.0f : -1.0f) + 0.05f * noise[i * d + j];
    for (int j = 0; j < d; ++j)  // w = Q^T v / sqrt(d): a hidden rotation
      for (int r = 0; r < d; ++r) w[j] += Q[r * d + j] * v[r] / std::sqrt((float)d);
    for (int j = 0; j < d; ++j)
      for (int r = 0; r < d; ++r) u[i * d + j] += R0[r * d + j] * w[r] / std::sqrt((float)d);
  }
  u = unit_rows(u, d);
  std::vector<float> R = R0;
  const double before = sign_quant_error(R.data(), b, d, u.data(), N);
  itq_refine(R.data(), b, d, u.data(), N, 50);
  const double after = sign_quant_error(R.data(), b, d, u.data(), N);
  EXPECT_LT(after, before / 4) << before << " -> " << after;
  // R stays sqrt(d) x orthogonal
  for (int r = 0; r < b; ++r)
    for (int s = 0; s < b; ++s) {
      double dot = 0;
      for (int j = 0; j < d; ++j) dot += (double)R[r * d + j] * R[s * d + j];
      EXPECT_NEAR(dot, r == s ? d : 0.0, 1e-3);
    }
}

TEST(H1bFit, OrthBlocksAreOrthogonalWithNormSqrtD) {
  for (int b : {64, 128, 256}) {
    const int d = b == 64 ? 128 : 64;  // b < d: one block of b orthonormal rows
    SketchOptions o;
    o.bits = b;
    o.orth = true;
    const std::vector<float> R = sketch_projection(o, 3, 0, d);
    EXPECT_EQ(R, sketch_projection(o, 3, 0, d));  // deterministic
    for (int r = 0; r < b; ++r)
      for (int s = r; s < b; ++s) {
        if (r / d != s / d) continue;  // blocks are independent
        double dot = 0;
        for (int j = 0; j < d; ++j) dot += (double)R[r * d + j] * R[s * d + j];
        EXPECT_NEAR(dot, r == s ? d : 0.0, 1e-3) << b << " " << r << " " << s;
      }
  }
}

// The recorder keeps keys past max(1, sink) of each sequence; the fitted mean is theirs.
TEST(H1bFit, KeyMeanSkipsSinks) {
  const CacheGeometry g{1, 2, 1, 64, 64, "m"};
  const CacheSpec spec = parse_cache_spec("h1b:bits=64,est=qjl,center=1,sink=3");
  auto rec = make_recording_cache(spec, g, 4);
  const int n = 40;
  std::vector<float> k = randn((size_t)n * 64, 8), v = randn((size_t)n * 64, 9), q = randn((size_t)n * 128, 10);
  for (int t = 0; t < 3; ++t)
    for (int j = 0; j < 64; ++j) k[t * 64 + j] = 1000.0f;  // sinks: would dominate a mean
  std::vector<int32_t> pos(n);
  for (int i = 0; i < n; ++i) pos[i] = i;
  std::vector<float> out((size_t)n * 128);
  for (int rep = 0; rep < 2; ++rep) {  // two sequences, cleared between
    rec->clear();
    rec->layer(0).append(n, pos.data(), k.data(), v.data());
    rec->layer(0).attend(n, pos.data(), q.data(), 0.125f, out.data());
  }
  const Adapter a = fit_h1b_adapter(spec, g, recorded_keys(*rec));
  ASSERT_TRUE(a.layers[0].k_mean.present());
  for (int j = 0; j < 64; ++j) {
    double m = 0;
    for (int t = 3; t < n; ++t) m += k[t * 64 + j];
    EXPECT_NEAR(a.layers[0].k_mean.data[j], m / (n - 3), 1e-5);
  }
  EXPECT_EQ(a.stage, "0");
}

// score_block of a centred qjl codec with a decoder A = the formula scale |k - mu| <A q, s> + scale q.mu,
// with s = sign(R (k - mu)) from sketch_projection, computed here in double.
TEST(H1bFit, CentredDecodedQjlLogitIsTheFormula) {
  const CacheGeometry g{1, 2, 1, 64, 64, ""};
  SketchOptions o;
  o.bits = 128;
  o.est = SketchEst::qjl;
  o.orth = true;
  SketchKeyCodec c(g, 0, o);
  const std::vector<float> mu = randn(64, 11), A = randn(128 * 64, 12), R = sketch_projection(o, 0, 0, 64);
  c.set_mean(mu);
  c.set_decoder(A);
  const int n = 64;
  const std::vector<float> k = randn((size_t)n * 64, 13), q = randn(64, 14);
  std::vector<uint8_t> block((size_t)kBlockTokens * c.bytes_per_vector(), 0);
  for (int t = 0; t < n; ++t) c.encode_slot(&k[t * 64], 0, block.data(), t);
  std::vector<float> prep(c.query_prep_floats()), out(n);
  const float scale = 0.125f;
  c.prepare_query(q.data(), 1, scale, prep.data());
  c.score_block(prep.data(), block.data(), 0, n, out.data());
  double Aq[128] = {}, qmu = 0, range = 0;
  for (int i = 0; i < 128; ++i)
    for (int j = 0; j < 64; ++j) Aq[i] += (double)A[i * 64 + j] * q[j];
  for (int j = 0; j < 64; ++j) qmu += (double)q[j] * mu[j];
  std::vector<double> ref(n);
  for (int t = 0; t < n; ++t) {
    double kc[64], nrm = 0, dot = 0;
    for (int j = 0; j < 64; ++j) kc[j] = k[t * 64 + j] - mu[j], nrm += kc[j] * kc[j];
    for (int i = 0; i < 128; ++i) {
      double y = 0;
      for (int j = 0; j < 64; ++j) y += R[i * 64 + j] * kc[j];
      dot += y >= 0 ? Aq[i] : -Aq[i];
    }
    ref[t] = scale * std::sqrt(nrm) * dot + scale * qmu;
    range = std::max(range, std::fabs(scale * std::sqrt(nrm) * dot));
  }
  // the kernel quantizes A q to 7 bits per nibble table and |k - mu| to fp16
  for (int t = 0; t < n; ++t) EXPECT_NEAR(out[t], ref[t], 0.03 * range) << t;
  EXPECT_TRUE(c.centered());
}

// kl > 0: the summary lists each layer's held-out attention KL (the calibration-only measure that
// exact=LIST is chosen by) and the layers ranked by it; their mean is the summary's overall
// held-out KL. Layer 1's keys are 8x larger (peakier attention), so its sketch costs more KL.
TEST(H1bFit, SummaryRanksLayersByHeldOutKl) {
  const CacheGeometry g{2, 2, 1, 64, 64, "m"};
  const CacheSpec spec = parse_cache_spec("h1b:bits=64,est=qjl,center=1,kl=4,sink=1,window=4");
  auto rec = make_recording_cache(spec, g, 2);
  const int n = 48;
  std::vector<int32_t> pos(n);
  for (int i = 0; i < n; ++i) pos[i] = i;
  std::vector<float> out((size_t)n * 128);
  for (int seq = 0; seq < 3; ++seq) {
    rec->clear();
    for (int il = 0; il < 2; ++il) {
      std::vector<float> k = randn((size_t)n * 64, 20 + seq * 4 + il), v = randn((size_t)n * 64, 40 + seq),
                         q = randn((size_t)n * 128, 60 + seq * 4 + il);
      if (il == 1)
        for (float& x : k) x *= 8;
      rec->layer(il).append(n, pos.data(), k.data(), v.data());
      rec->layer(il).attend(n, pos.data(), q.data(), 0.125f, out.data());
    }
  }
  std::string summary;
  const auto seqs = recorded_sequences(*rec);
  fit_h1b_adapter(spec, g, recorded_keys(*rec), &summary, &seqs);
  double before = 0, overall = 0, kl0 = -1, kl1 = -1;
  const size_t at = summary.find("held-out sequence ");
  ASSERT_NE(at, std::string::npos) << summary;
  ASSERT_EQ(std::sscanf(summary.c_str() + at, "held-out sequence %lf -> %lf", &before, &overall), 2) << summary;
  const size_t per = summary.find("\nheld-out attention KL per layer: ");
  ASSERT_NE(per, std::string::npos) << summary;
  ASSERT_EQ(std::sscanf(summary.c_str() + per, "\nheld-out attention KL per layer: 0:%lf 1:%lf", &kl0, &kl1), 2) << summary;
  EXPECT_GT(kl0, 0.0);
  EXPECT_GT(kl1, kl0) << summary;
  EXPECT_NEAR((kl0 + kl1) / 2, overall, 1e-5) << summary;
  EXPECT_NE(summary.find("\nlayers by that KL, largest first: 1 0"), std::string::npos) << summary;
}
