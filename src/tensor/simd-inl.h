// Internal: small x86 helpers shared by the dot kernels (patterns as in ggml-cpu/arch/x86),
// compiled once per Highway target: include after <hwy/highway.h> in a foreach_target file.
// Defined for the AVX2 and AVX3_DL targets only (their code paths use raw intrinsics).
#if defined(H1BKV_TENSOR_SIMD_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef H1BKV_TENSOR_SIMD_INL_H_
#undef H1BKV_TENSOR_SIMD_INL_H_
#else
#define H1BKV_TENSOR_SIMD_INL_H_
#endif

#if HWY_ARCH_X86
#include <immintrin.h>
#elif HWY_ARCH_ARM_A64
#include <arm_neon.h>
#endif

#include <cstdint>

// Highway's AVX3_DL target string enables AVX-VNNI (VEX) but not AVX512_VNNI (EVEX), which Ice
// Lake has without AVX-VNNI: with GCC, kernels of that target enable avx512vnni and disable
// avxvnni, so only the EVEX encoding can be emitted. Clang merges target attributes and would
// still emit the VEX form, so with clang the target uses maddubs + madd (fuzz builds only).
// Put H1BKV_VNNI_BEGIN / _END just inside HWY_BEFORE_NAMESPACE / HWY_AFTER_NAMESPACE.
#undef H1BKV_HAVE_VNNI
#if HWY_TARGET == HWY_AVX3_DL && !defined(__clang__)
#define H1BKV_HAVE_VNNI 1
#else
#define H1BKV_HAVE_VNNI 0
#endif
#undef H1BKV_VNNI_BEGIN
#undef H1BKV_VNNI_END
#if H1BKV_HAVE_VNNI
#define H1BKV_VNNI_BEGIN _Pragma("GCC target(\"avx512vnni,no-avxvnni\")")
#define H1BKV_VNNI_END
#else
#define H1BKV_VNNI_BEGIN
#define H1BKV_VNNI_END
#endif

HWY_BEFORE_NAMESPACE();
H1BKV_VNNI_BEGIN
namespace h1bkv::detail::HWY_NAMESPACE {
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3_DL

inline float half_to_float(uint16_t h) { return _cvtsh_ss(h); }

#include "tensor/simd-body.h"

#endif
#if HWY_TARGET == HWY_NEON
// acc + the dot of 16 int8 pairs, in 4 int32 lanes: sdot where the build has Armv8.2-A dotprod,
// else widening multiplies + pairwise widening adds (exact either way)
inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
  return vdotq_s32(acc, a, b);
#else
  const int16x8_t p0 = vmull_s8(vget_low_s8(a), vget_low_s8(b)), p1 = vmull_high_s8(a, b);
  return vaddq_s32(acc, vaddq_s32(vpaddlq_s16(p0), vpaddlq_s16(p1)));
#endif
}
#endif
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_NEON
// kernels.h KernelSet entry over row kernels for 1..N tokens: K[nt - 1], the last for nt >= N
using TileKernel = void (*)(const uint8_t*, const uint8_t*, size_t, int64_t, float*);
template <TileKernel... K>
void tile_dispatch(const uint8_t* w, const uint8_t* act, size_t st, int nt, int64_t cols, float* out) {
  constexpr int n = sizeof...(K);
  static constexpr TileKernel f[] = {K...};
  f[nt >= 1 && nt < n ? nt - 1 : n - 1](w, act, st, cols, out);
}
#endif
}  // namespace h1bkv::detail::HWY_NAMESPACE
H1BKV_VNNI_END
HWY_AFTER_NAMESPACE();

#endif  // H1BKV_TENSOR_SIMD_INL_H_
