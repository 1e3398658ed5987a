// Stage 1(c) of issue 10: per (layer, KV head), R, the qjl query decoder A and the per-head
// multipliers trained by gradient descent on KL(p_f16 || p_h1b) of each captured query's
// attention, over the cache's mixed softmax, with the model frozen. In kv/calib (not src/train)
// because `calibrate`'s h1b hook (kv/caches/h1b.cpp) fits adapters inside the kv layer, which
// cannot use src/train; the trainer needs only Eigen, and its Adam is the few lines below.
//
// For query head h (KV head g = h / G), row i and key t <= i, with u_t = (k_t - mu)/|k_t - mu|:
//   y_t = R u_t [b], s_t = tanh(beta y_t) (relaxed) or sign(y_t) (cache; +1 for y >= 0)
//   teacher  e_t = scale q.k_t,                     p = softmax(e)
//   student  z_t = e_t                              t exact (t < sink or pos_t > pos_i - window)
//            z_t = scale (m_h |k_t - mu| <A q, s_t> + q.mu)   otherwise (kv/codecs/sketch.h, qjl)
//   A: one decoder for the KV head, or one per query head (A_h; the sketch is the KV head's, so
//   per-query-head decoders cost no bytes per token)
//   loss = sum over rows and heads of KL(p || softmax(z)); dKL/dz_t = softmax(z)_t - p_t.
// sign's backward (straight-through phase) is tanh(beta_end y)'s derivative. mu stays fixed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace h1bkv {

// One captured calibration sequence of one layer (h1b_record.h).
struct KlCapture {
  std::vector<float> k;        // [n][n_kv_head][d] post-RoPE keys
  std::vector<int32_t> pos;    // [n]
  std::vector<int64_t> rows;   // [m] token index of each kept query row
  std::vector<float> q;        // [m][n_head][d] post-RoPE queries (unscaled)
  float scale = 0;             // the attention's logit scale
  int64_t n() const { return (int64_t)pos.size(); }
};

struct KlGeom {
  int d = 0, b = 0, G = 1;  // head_dim, sketch bits, query heads per KV head
  float scale = 0;          // 1 / sqrt(d)
  int64_t sink = 0, window = 0;
  bool a_per_head = false;  // A is [G][b][d] (one per query head) instead of [b][d]
};

// One sequence as one (layer, KV head) sees it.
struct KlHeadSeq {
  int64_t n = 0, m = 0;
  std::vector<float> k, u, nrm;  // [n][d] keys, [n][d] unit centred keys (0 rows for k = mu), [n] |k - mu|
  std::vector<int32_t> pos;      // [n]
  std::vector<int64_t> rows;     // [m]
  std::vector<float> q, qmu;     // [m][G][d] queries of the group's heads, [m][G] q.mu
};
KlHeadSeq kl_head_seq(const KlCapture& c, int kv_head, int n_kv_head, int n_head, int d, const float* mu);

// Relaxation of sign: beta > 0: tanh(beta y) in forward and backward; ste = true: sign(y)
// forward, tanh(beta y)'s derivative backward.
struct KlRelax {
  double beta = 0;
  bool ste = true;
};

// Sum over the chosen rows (indices into s.rows; empty = all) and the G heads of the KL above,
// for R [b][d], A ([b][d], or [G][b][d] with g.a_per_head) and mult [G]; adds the sum's gradients to dR, dA, dmult when dR != nullptr.
// *count (optional) receives the number of (row, head) terms.
template <class T>
double kl_loss_grad(const KlGeom& g, const KlHeadSeq& s, const std::vector<int64_t>& rows, const T* R,
                    const T* A, const T* mult, KlRelax relax, T* dR, T* dA, T* dmult, int64_t* count = nullptr);

// Mean KL with sign (the cache's forward) over every row of seqs; 0 without rows.
double kl_eval(const KlGeom& g, const std::vector<KlHeadSeq>& seqs, const float* R, const float* A, const float* mult);

struct KlFitOptions {
  int steps = 0;
  double lr = 0.01;          // Adam step relative to each tensor's initial rms (mult: absolute)
  int rows_per_step = 64;    // query rows per step, drawn from one training sequence
  double beta0 = 2, beta1 = 16;  // tanh(beta y): beta grows geometrically from beta0 to beta1 ...
  double anneal = 0.7;       // ... over this fraction of the steps; sign + straight-through after
  uint64_t seed = 42;
};

struct KlFitResult {
  double train_before = 0, train_after = 0;  // kl_eval on the training sequences
  double held_before = 0, held_after = 0;    // on the held-out ones (0 when none)
  bool kept_start = false;                   // training did not lower train KL: start returned
};

// Trains R, A (shapes as above) and mult [G] in place (Adam, cosine decay, fixed seed); returns the start
// values when the training KL did not go down.
KlFitResult kl_fit_head(const KlGeom& g, const std::vector<KlHeadSeq>& train, const std::vector<KlHeadSeq>& held,
                        std::vector<float>& R, std::vector<float>& A, std::vector<float>& mult,
                        const KlFitOptions& o);

}  // namespace h1bkv
