// Layer-local fits of the h1b key sketch on keys recorded from an exact (f16) run, with the model
// frozen (issue 10, stages 0 and 1 a/b). Per (layer, KV head), on keys X [n][d] (sinks excluded):
//   center  mu = mean of X; the rest works on Xc = X - mu and u = Xc / |Xc|
//   itq     ITQ (Gong & Lazebnik 2011) per block of d rows of R (b > d: each block alone, from its
//           own start; b < d: one block of b rows): V = R_blk u (n_blk x N), alternate
//           B = sign(Q V) and the orthogonal Procrustes step Q = U W^T from the SVD
//           B V^T = U S W^T, minimising |B - Q V|_F^2; then R_blk <- Q R_blk
//   ridge   qjl decoder A = D^T, D = U S^T (S S^T + lambda I)^-1 with S = sign(R Xc) [b][N] and
//           lambda = ridge * N: least squares of u from its sign code; logit = scale |k - mu| <A q, s>
//   kl      R, A and the multipliers of the KV head's query heads trained on attention KL
//           (h1b_kl_fit.h), from the fits above (A: ridge, else qjl's sqrt(pi/2)/b R)
// Written into an adapter (adapter.h): k_mean (center), k_proj (itq, kl), q_proj (ridge, kl),
// logit_mult (kl).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kv/cache.h"
#include "kv/calib/adapter.h"
#include "kv/calib/h1b_kl_fit.h"
#include "kv/registry.h"

namespace h1bkv {

// Keys of one layer: [n_kv_head] -> [n][d] floats.
using LayerKeys = std::vector<std::vector<float>>;

// Mean row of x [n][d] (zeros for n = 0).
std::vector<float> key_mean(const float* x, int64_t n, int d);
// The ITQ objective summed over R's blocks, per sample: |B - V|_F^2 / N with V = R u^T,
// B = sign(V) (+1 for >= 0, as the codes). R: [b][d], u: [N][d] unit rows.
double sign_quant_error(const float* R, int b, int d, const float* u, int64_t N);
// ITQ on R [b][d] in place (blocks as above) for `iters` iterations on u [N][d].
void itq_refine(float* R, int b, int d, const float* u, int64_t N, int iters);
// Ridge decoder A [b][d] (row-major) for R [b][d] on u [N][d] (codes sign(R u)); lambda_rel > 0.
std::vector<float> ridge_decoder(const float* R, int b, int d, const float* u, int64_t N, double lambda_rel);
// The same from given codes s [N][b] (+-1) and targets u [N][d]: A = (S S^T + lambda N I)^-1 S U.
std::vector<float> ridge_solve(const float* s, const float* u, int64_t N, int b, int d, double lambda_rel);
// Mean |u - A^T s|^2 over u [N][d], s = sign(R u), A [b][d].
double decode_error(const float* R, const float* A, int b, int d, const float* u, int64_t N);

// The adapter of spec (center / itq / ridge / kl) fitted on keys[layer] (n_layer entries) and,
// for kl, the captured sequences seqs[layer] (the last sequence held out when there are >= 2);
// stage "0" (center only) or the fits joined by '+' ("1a" ridge, "1b" itq, "1c" kl); tokens =
// the fewest keys of a (layer, KV head) it used. summary: a line of before/after errors.
Adapter fit_h1b_adapter(const CacheSpec& spec, const CacheGeometry& g, const std::vector<const LayerKeys*>& keys,
                        std::string* summary = nullptr,
                        const std::vector<const std::vector<KlCapture>*>* seqs = nullptr);

}  // namespace h1bkv
