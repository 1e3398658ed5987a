// Vectorised exp for softmax, and a scalar reference that computes the same polynomial one value
// at a time (bit-identical to a lane of every vector path: same FMAs, same order).
// Method (Cephes expf): n = round(x log2 e), r = x - n ln2 (two-constant Cody-Waite), e^r by a
// degree-7 polynomial 1 + r + r^2 P(r), times 2^n built in the exponent bits.
// Accuracy: relative error < 2e-7 (<= 2 ulp) for x in [-87.3, 88.7]; x < -87.34 (and -inf)
// gives +0, x > 88.73 gives +inf (overflow), NaN stays NaN. Tested against double exp in tests/kv.
// vexp, max_padded and exp_sub_sum run on the kernel path (tensor/isa.h): 16 lanes with AVX-512,
// 8 with AVX2, 4 with NEON, vexp_ref otherwise; all give the same floats.
#pragma once
#include <cstdint>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace h1bkv {

float vexp_ref(float x);
// y[i] = exp(x[i]) for i < n (any n; the tail goes through the same vector code, padded).
void vexp(const float* x, float* y, int64_t n);
// Softmax pieces over n % 8 == 0 floats: the maximum, and x[t] = exp(x[t] - m) in place
// returning the sum, added as: lanes j of 8-float blocks 0, 2, 4, ... into l[j], of blocks
// 1, 3, 5, ... into l2[j], then l + l2, then ((0+1)+(2+3))+((4+5)+(6+7)) (the same on every path).
float max_padded(const float* x, int64_t n);
float exp_sub_sum(float* x, int64_t n, float m);
float exp_sub_sum_ref(float* x, int64_t n, float m);

#if defined(__AVX2__) && defined(__FMA__)
// For code compiled for an AVX2 baseline (kv/calib/h1b_record.cpp).
#include "tensor/vexp-body.h"
#endif

}  // namespace h1bkv
