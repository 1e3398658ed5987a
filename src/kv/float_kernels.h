// Dot products and weighted accumulation over f32 / f16 head vectors: AVX2 paths and the scalar
// references the tests compare them with. n is the head dimension (any n; AVX2 handles 8 at a time).
#pragma once
#include <cstdint>

namespace h1bkv {

float dot_f32(const float* a, const float* b, int n);
float dot_f32_f16(const float* a, const uint16_t* b, int n);
void axpy_f32(float w, const float* x, float* out, int n);     // out += w * x
void axpy_f16(float w, const uint16_t* x, float* out, int n);  // out += w * x

float dot_f32_ref(const float* a, const float* b, int n);
float dot_f32_f16_ref(const float* a, const uint16_t* b, int n);
void axpy_f32_ref(float w, const float* x, float* out, int n);
void axpy_f16_ref(float w, const uint16_t* x, float* out, int n);

}  // namespace h1bkv
