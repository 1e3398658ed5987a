// matmul / matmul_ref: y[n][rows] = x[n][cols] . W^T.
// 1. x is quantized once per call to the weight type's activation format
//    (scratch: [n][act_row_bytes] bytes; the float types use x as is).
// 2. Rows are split over the OpenMP team; each weight row is combined with tiles of up to
//    kTile tokens, so a row is read from memory once per call and unpacked once per tile.
#include "tensor/matmul.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "io/ggml_type.h"
#include "tensor/kernels.h"
#include "tensor/quant.h"
#include "util/error.h"

namespace h1bkv {

using namespace detail;

namespace {

struct TypeKernels {
  ActKind act;
  RowKernel fast, ref;
};

TypeKernels kernels_for(uint32_t type) {
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::F32: return {ActKind::F32, dot_f32_avx2, dot_f32_ref};
    case GgmlType::F16: return {ActKind::F32, dot_f16_avx2, dot_f16_ref};
    case GgmlType::BF16: return {ActKind::F32, dot_bf16_avx2, dot_bf16_ref};
    case GgmlType::Q4_0: return {ActKind::Q8_0, dot_q4_0_avx2, dot_q4_0_ref};
    case GgmlType::Q4_1: return {ActKind::Q8_1, dot_q4_1_avx2, dot_q4_1_ref};
    case GgmlType::Q5_0: return {ActKind::Q8_0, dot_q5_0_avx2, dot_q5_0_ref};
    case GgmlType::Q5_1: return {ActKind::Q8_1, dot_q5_1_avx2, dot_q5_1_ref};
    case GgmlType::Q8_0: return {ActKind::Q8_0, dot_q8_0_avx2, dot_q8_0_ref};
    case GgmlType::Q4_K: return {ActKind::Q8_K, dot_q4_k_avx2, dot_q4_k_ref};
    case GgmlType::Q6_K: return {ActKind::Q8_K, dot_q6_k_avx2, dot_q6_k_ref};
    default: break;
  }
  throw Error("matmul: unsupported weight type " + ggml_type_name(type));
}

void check_view(const WeightView& w, int64_t n) {
  const GgmlTypeInfo* ti = ggml_type_info(w.type);
  check(ti && weight_type_supported(w.type), "matmul: unsupported weight type " + ggml_type_name(w.type));
  check(w.rows >= 0 && w.cols >= 0 && n >= 0, "matmul: negative shape");
  check(w.cols % ti->block_elems == 0, "matmul: " + std::to_string(w.cols) +
                                           " columns is not a multiple of the " + ti->name + " block");
  check(w.row_bytes >= (size_t)(w.cols / ti->block_elems) * ti->block_bytes,
        "matmul: row_bytes too small for " + std::to_string(w.cols) + " " + ti->name + " values");
  check(w.data != nullptr || w.rows == 0, "matmul: no weight data");
}

void run(const WeightView& w, const float* x, float* y, int64_t n, bool fast) {
  check_view(w, n);
  if (n == 0 || w.rows == 0) return;
  const TypeKernels k = kernels_for(w.type);
  const RowKernel kern = fast ? k.fast : k.ref;
  const int64_t rows = w.rows, cols = w.cols;
  const size_t stride = act_row_bytes(k.act, cols);  // bytes per activation row

  // Quantized activations [n][stride] bytes; kept per calling thread to avoid reallocations.
  thread_local std::vector<uint8_t> scratch;
  const uint8_t* act = reinterpret_cast<const uint8_t*>(x);
  if (k.act != ActKind::F32 && scratch.size() < (size_t)n * stride) scratch.resize((size_t)n * stride);
  uint8_t* buf = scratch.data();

  // Prefill: rows are taken in blocks of rb_rows (~12 KiB of weights) and each block is run
  // against one token tile after another, so both the weight rows and the activation tile
  // stay in L1 (instead of every row streaming all n activation rows from L2).
  const int64_t rb_rows = n <= kTile ? 1 : std::clamp<int64_t>(12288 / (int64_t)w.row_bytes, 1, 32);
  const int64_t nblocks = (rows + rb_rows - 1) / rb_rows;
  const bool serial_quant = n <= 2;  // one or two rows: no need for a barrier
  if (k.act != ActKind::F32 && serial_quant)
    for (int64_t t = 0; t < n; ++t) quantize_act_row(k.act, x + t * cols, buf + t * stride, cols, fast);

#pragma omp parallel
  {
    if (k.act != ActKind::F32 && !serial_quant) {
#pragma omp for schedule(static)
      for (int64_t t = 0; t < n; ++t) quantize_act_row(k.act, x + t * cols, buf + t * stride, cols, fast);
    }  // implicit barrier
    const uint8_t* a = k.act != ActKind::F32 ? buf : act;
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < nblocks; ++blk) {
      const int64_t r0 = blk * rb_rows, r1 = std::min(rows, r0 + rb_rows);
      float out[kTile];
      for (int64_t t0 = 0; t0 < n; t0 += kTile) {
        const int nt = (int)std::min<int64_t>(kTile, n - t0);
        for (int64_t r = r0; r < r1; ++r) {
          kern(w.data + (size_t)r * w.row_bytes, a + (size_t)t0 * stride, stride, nt, cols, out);
          for (int j = 0; j < nt; ++j) y[(t0 + j) * rows + r] = out[j];
        }
      }
    }
  }
}

}  // namespace

void matmul(const WeightView& w, const float* x, float* y, int64_t n) { run(w, x, y, n, true); }

void matmul_ref(const WeightView& w, const float* x, float* y, int64_t n) { run(w, x, y, n, false); }

}  // namespace h1bkv
