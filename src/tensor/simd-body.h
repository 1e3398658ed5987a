// Internal: the AVX2 helpers of the dot kernels (patterns as in ggml-cpu/arch/x86), without
// include guard: simd.h includes them in namespace h1bkv::detail for code compiled for an AVX2
// baseline, simd-inl.h once per Highway target (AVX2, AVX3_DL) in that target's namespace.
inline float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

// 16 bytes of nibbles -> 32 bytes: [0..15] = low nibbles, [16..31] = high nibbles.
inline __m256i unpack_nibbles(const uint8_t* qs) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i v = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
  return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

// 32 bits -> 32 bytes, byte i = 0xFF if bit i is set else 0.
inline __m256i bits_to_bytes(const uint8_t* p) {
  uint32_t bits;
  __builtin_memcpy(&bits, p, 4);
  const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                         0x0101010101010101, 0x0000000000000000);
  __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), shuf);  // byte i = bits byte i/8
  const __m256i sel = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe);  // all bits but bit i%8
  b = _mm256_or_si256(b, sel);
  return _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1));
}

// Sum of products of four unsigned bytes u (<= 128) and signed bytes s, as 8 int32: one
// vpdpbusd with AVX-512 VNNI (simd-inl.h's AVX3_DL target: the VL form), else maddubs + madd.
inline __m256i dot_u8s8(__m256i u, __m256i s) {
#if defined(H1BKV_HAVE_VNNI) && H1BKV_HAVE_VNNI
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

