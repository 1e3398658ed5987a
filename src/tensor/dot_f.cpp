// Dot kernels of the float weight types (F32, F16, BF16) with f32 activations. Weights are
// widened to f32 (F16C for F16, a 16-bit shift for BF16) and multiplied with x in f32.
// The AVX2 paths run 16 values per step in two accumulators per token, NEON 8 (fcvtl for F16, a
// 16-bit shift for BF16); tails are scalar.
// Compiled once per Highway target: AVX2 and AVX3_DL run the AVX2 code, NEON its own, others the
// references.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "tensor/dot_f.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "tensor/kernels.h"
#include "tensor/simd-inl.h"
#include "util/fp16.h"

#ifndef H1BKV_DOT_F_ONCE
#define H1BKV_DOT_F_ONCE
namespace h1bkv::detail {
#define ALWAYS_INLINE inline __attribute__((always_inline))
// scalar element access of each weight type (the references and the vector tails)
struct F32One {
  static ALWAYS_INLINE float one(const uint8_t* w, int64_t i) { return reinterpret_cast<const float*>(w)[i]; }
};
struct F16One {
  static ALWAYS_INLINE float one(const uint8_t* w, int64_t i) {
    return fp16_to_f32(reinterpret_cast<const uint16_t*>(w)[i]);
  }
};
struct BF16One {
  static ALWAYS_INLINE float one(const uint8_t* w, int64_t i) {
    return bf16_to_f32(reinterpret_cast<const uint16_t*>(w)[i]);
  }
};
void dot_f32_ref(const uint8_t*, const uint8_t*, size_t, int, int64_t, float*);
void dot_f16_ref(const uint8_t*, const uint8_t*, size_t, int, int64_t, float*);
void dot_bf16_ref(const uint8_t*, const uint8_t*, size_t, int, int64_t, float*);
}  // namespace h1bkv::detail
#endif

HWY_BEFORE_NAMESPACE();
namespace h1bkv::detail::HWY_NAMESPACE {
namespace {

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3_DL
struct F32W : F32One {
  static ALWAYS_INLINE __m256 load8(const uint8_t* w, int64_t i) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(w) + i);
  }
};
struct F16W : F16One {
  static ALWAYS_INLINE __m256 load8(const uint8_t* w, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * i)));
  }
};
struct BF16W : BF16One {
  static ALWAYS_INLINE __m256 load8(const uint8_t* w, int64_t i) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
};

template <class W, int NT>
void float_tile(const uint8_t* w, const uint8_t* act, size_t st, int64_t cols, float* out) {
  const float* x[NT];
  __m256 acc0[NT], acc1[NT];
  for (int t = 0; t < NT; ++t) {
    x[t] = reinterpret_cast<const float*>(act + (size_t)t * st);
    acc0[t] = acc1[t] = _mm256_setzero_ps();
  }
  int64_t i = 0;
  for (; i + 16 <= cols; i += 16) {
    const __m256 w0 = W::load8(w, i), w1 = W::load8(w, i + 8);
    for (int t = 0; t < NT; ++t) {
      acc0[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[t] + i), acc0[t]);
      acc1[t] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[t] + i + 8), acc1[t]);
    }
  }
  for (int t = 0; t < NT; ++t) {
    float s = hsum_ps(_mm256_add_ps(acc0[t], acc1[t]));
    for (int64_t j = i; j < cols; ++j) s += W::one(w, j) * x[t][j];
    out[t] = s;
  }
}

#elif HWY_TARGET == HWY_NEON
struct F32W : F32One {
  static ALWAYS_INLINE float32x4_t load4(const uint8_t* w, int64_t i) {
    return vld1q_f32(reinterpret_cast<const float*>(w) + i);
  }
};
struct F16W : F16One {
  static ALWAYS_INLINE float32x4_t load4(const uint8_t* w, int64_t i) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(w) + i)));
  }
};
struct BF16W : BF16One {
  static ALWAYS_INLINE float32x4_t load4(const uint8_t* w, int64_t i) {
    const uint16x4_t h = vld1_u16(reinterpret_cast<const uint16_t*>(w) + i);
    return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
  }
};

template <class W, int NT>
void float_tile(const uint8_t* w, const uint8_t* act, size_t st, int64_t cols, float* out) {
  const float* x[NT];
  float32x4_t acc0[NT], acc1[NT];
  for (int t = 0; t < NT; ++t) {
    x[t] = reinterpret_cast<const float*>(act + (size_t)t * st);
    acc0[t] = acc1[t] = vdupq_n_f32(0.0f);
  }
  int64_t i = 0;
  for (; i + 8 <= cols; i += 8) {
    const float32x4_t w0 = W::load4(w, i), w1 = W::load4(w, i + 4);
    for (int t = 0; t < NT; ++t) {
      acc0[t] = vfmaq_f32(acc0[t], w0, vld1q_f32(x[t] + i));
      acc1[t] = vfmaq_f32(acc1[t], w1, vld1q_f32(x[t] + i + 4));
    }
  }
  for (int t = 0; t < NT; ++t) {
    float s = vaddvq_f32(vaddq_f32(acc0[t], acc1[t]));
    for (int64_t j = i; j < cols; ++j) s += W::one(w, j) * x[t][j];
    out[t] = s;
  }
}

#endif

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_NEON
template <class W>
void float_rows(const uint8_t* w, const uint8_t* a, size_t st, int nt, int64_t c, float* o) {
  switch (nt) {
    case 1: float_tile<W, 1>(w, a, st, c, o); break;
    case 2: float_tile<W, 2>(w, a, st, c, o); break;
    case 3: float_tile<W, 3>(w, a, st, c, o); break;
    default: float_tile<W, 4>(w, a, st, c, o); break;
  }
}

void FillImpl(KernelSet& ks) {
  ks.f32 = float_rows<F32W>, ks.f16 = float_rows<F16W>, ks.bf16 = float_rows<BF16W>;
}
#else
void FillImpl(KernelSet& ks) { ks.f32 = dot_f32_ref, ks.f16 = dot_f16_ref, ks.bf16 = dot_bf16_ref; }
#endif

}  // namespace
void FillFloat(KernelSet* ks) { FillImpl(*ks); }
}  // namespace h1bkv::detail::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace h1bkv::detail {
namespace {

template <class W>
void float_ref(const uint8_t* w, const uint8_t* act, size_t st, int nt, int64_t cols, float* out) {
  for (int t = 0; t < nt; ++t) {
    const float* x = reinterpret_cast<const float*>(act + (size_t)t * st);
    float s = 0.0f;
    for (int64_t j = 0; j < cols; ++j) s += W::one(w, j) * x[j];
    out[t] = s;
  }
}

}  // namespace

HWY_EXPORT(FillFloat);

void fill_float_kernels(Isa isa, KernelSet& ks) {
  if (isa == Isa::scalar) ks.f32 = dot_f32_ref, ks.f16 = dot_f16_ref, ks.bf16 = dot_bf16_ref;
  else HWY_DYNAMIC_DISPATCH(FillFloat)(&ks);
}

void dot_f32_ref(const uint8_t* w, const uint8_t* a, size_t st, int nt, int64_t c, float* o) {
  float_ref<F32One>(w, a, st, nt, c, o);
}
void dot_f16_ref(const uint8_t* w, const uint8_t* a, size_t st, int nt, int64_t c, float* o) {
  float_ref<F16One>(w, a, st, nt, c, o);
}
void dot_bf16_ref(const uint8_t* w, const uint8_t* a, size_t st, int nt, int64_t c, float* o) {
  float_ref<BF16One>(w, a, st, nt, c, o);
}

}  // namespace h1bkv::detail
#endif  // HWY_ONCE
