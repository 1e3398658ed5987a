// matmul / matmul_ref: y[n][rows] = x[n][cols] . W^T.
// 1. x is quantized once per call to the weight type's activation format
//    (scratch: [n][act_row_bytes] bytes; the float types use x as is).
// 2. Rows are split into chunks for the thread pool (util/thread_pool.h); each weight row is
//    combined with tiles of up to kTile tokens, so a row is read from memory once per call and
//    unpacked once per tile (a tile kernel, where the path has one for the type, takes
//    several rows x tokens per call; on a weight's packed copy where it has one, tensor/pack.h).
// 3. The kernels are those of the active path (tensor/isa.h).
#include "tensor/matmul.h"

#include <algorithm>
#include <vector>

#include "io/ggml_type.h"
#include "tensor/kernels.h"
#include "tensor/pack.h"
#include "tensor/quant.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace h1bkv {

using namespace detail;

namespace {

struct TypeKernels {
  ActKind act;
  RowKernel kern;
  Tile tile;  // used in place of kern where the path has one (tile.fn not null)
};

// The kernel of `type` on path `isa` (scalar = the references).
TypeKernels kernels_for(uint32_t type, Isa isa) {
  KernelSet ks{};
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::F32: fill_float_kernels(isa, ks); return {ActKind::F32, ks.f32};
    case GgmlType::F16: fill_float_kernels(isa, ks); return {ActKind::F32, ks.f16};
    case GgmlType::BF16: fill_float_kernels(isa, ks); return {ActKind::F32, ks.bf16};
    case GgmlType::Q4_0: fill_q8_kernels(isa, ks); return {ActKind::Q8_0, ks.q4_0};
    case GgmlType::Q4_1: fill_q8_kernels(isa, ks); return {ActKind::Q8_1, ks.q4_1, tile_for(type, isa)};
    case GgmlType::Q5_0: fill_q8_kernels(isa, ks); return {ActKind::Q8_0, ks.q5_0};
    case GgmlType::Q5_1: fill_q8_kernels(isa, ks); return {ActKind::Q8_1, ks.q5_1};
    case GgmlType::Q8_0: fill_q8_kernels(isa, ks); return {ActKind::Q8_0, ks.q8_0, tile_for(type, isa)};
    case GgmlType::Q4_K: fill_k_kernels(isa, ks); return {ActKind::Q8_K, ks.q4_k, tile_for(type, isa)};
    case GgmlType::Q6_K: fill_k_kernels(isa, ks); return {ActKind::Q8_K, ks.q6_k, tile_for(type, isa)};
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

// One weight matrix's share of a job: row blocks [first, first + nblocks) of the job's numbering.
struct Part {
  const WeightView* w;
  float* y;
  int64_t rb_rows, nblocks, first;
};

// y_k = x . W_k^T for `count` weights of one type and width: x is quantized once and every
// weight's row blocks are chunks of one pool job.
void run(const MatmulOut* outs, int count, const float* x, int64_t n, bool fast) {
  for (int k = 0; k < count; ++k) check_view(*outs[k].w, n);
  if (n == 0 || count == 0) return;
  const WeightView& w0 = *outs[0].w;
  for (int k = 1; k < count; ++k)
    check(outs[k].w->type == w0.type && outs[k].w->cols == w0.cols, "matmul_many: weights of different types or widths");
  const Isa isa = fast ? active_isa() : Isa::scalar;
  const TypeKernels k = kernels_for(w0.type, isa);
  const RowKernel kern = k.kern;
  const int64_t cols = w0.cols;
  const size_t stride = act_row_bytes(k.act, cols);  // bytes per activation row

  // Quantized activations [n][stride] bytes; kept per calling thread to avoid reallocations.
  thread_local std::vector<uint8_t> scratch;
  const uint8_t* act = reinterpret_cast<const uint8_t*>(x);
  if (k.act != ActKind::F32 && scratch.size() < (size_t)n * stride) scratch.resize((size_t)n * stride);
  uint8_t* buf = scratch.data();

  // Prefill: rows are taken in blocks of rb_rows (~12 KiB of weights) and each block is run
  // against one token tile after another, so both the weight rows and the activation tile
  // stay in L1 (instead of every row streaming all n activation rows from L2). A tile kernel
  // takes tile.rows rows per call, so blocks are multiples of that.
  const Tile tile = k.tile;
  const size_t group_bytes = packed_group_bytes(w0.type, cols);  // between packed 16-row groups
  const int64_t rb_min = tile.fn ? tile.rows : 1;
  const int tile_n = tile.fn ? tile.tokens : kTile;
  Part parts[kMaxMatmulMany];
  check(count <= kMaxMatmulMany, "matmul_many: more than " + std::to_string(kMaxMatmulMany) + " weights");
  int64_t nblocks = 0;
  for (int i = 0; i < count; ++i) {
    const WeightView& w = *outs[i].w;
    int64_t rb_rows = n <= tile_n ? rb_min : std::clamp<int64_t>(12288 / (int64_t)w.row_bytes, rb_min, 32);
    rb_rows -= rb_rows % rb_min;
    parts[i] = Part{&w, outs[i].y, rb_rows, (w.rows + rb_rows - 1) / rb_rows, nblocks};
    nblocks += parts[i].nblocks;
  }
  if (nblocks == 0) return;
  const bool serial_quant = n <= 2;  // one or two rows: no need for a barrier
  if (k.act != ActKind::F32 && serial_quant)
    for (int64_t t = 0; t < n; ++t) quantize_act_row(k.act, x + t * cols, buf + t * stride, cols, isa != Isa::scalar);

  const int threads = pool_threads();
  if (k.act != ActKind::F32 && !serial_quant)
    parallel_for(n, pool_chunk(n, threads, 1), [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) quantize_act_row(k.act, x + t * cols, buf + t * stride, cols, isa != Isa::scalar);
    });
  const uint8_t* a = k.act != ActKind::F32 ? buf : act;
  parallel_for(nblocks, pool_chunk(nblocks, threads), [&](int64_t b0, int64_t b1) {
    float out[kTile];
    int pi = 0;
    for (int64_t blk = b0; blk < b1; ++blk) {
      while (blk >= parts[pi].first + parts[pi].nblocks) ++pi;
      const WeightView& w = *parts[pi].w;
      float* y = parts[pi].y;
      const int64_t rows = w.rows;
      const bool packed = w.packed && tile.packed;
      const int64_t r0 = (blk - parts[pi].first) * parts[pi].rb_rows, r1 = std::min(rows, r0 + parts[pi].rb_rows);
      for (int64_t t0 = 0; t0 < n; t0 += tile_n) {
        const int nt = (int)std::min<int64_t>(tile_n, n - t0);
        if (tile.fn) {
          for (int64_t r = r0; r < r1; r += tile.rows) {
            const int nr = (int)std::min<int64_t>(tile.rows, r1 - r);
            if (packed && nr == tile.rows)  // a full group: rows r .. r + 15 = group r / 16
              tile.packed(w.packed + (size_t)(r / tile.rows) * group_bytes, t0 == 0, nr,
                          a + (size_t)t0 * stride, stride, nt, cols, y + t0 * rows + r, (size_t)rows);
            else
              tile.fn(w.data + (size_t)r * w.row_bytes, w.row_bytes, nr, a + (size_t)t0 * stride, stride, nt, cols,
                      y + t0 * rows + r, (size_t)rows);
          }
          continue;
        }
        for (int64_t r = r0; r < r1; ++r) {
          kern(w.data + (size_t)r * w.row_bytes, a + (size_t)t0 * stride, stride, nt, cols, out);
          for (int j = 0; j < nt; ++j) y[(t0 + j) * rows + r] = out[j];
        }
      }
    }
  });
}

}  // namespace

void matmul(const WeightView& w, const float* x, float* y, int64_t n) {
  const MatmulOut o{&w, y};
  run(&o, 1, x, n, true);
}

void matmul_ref(const WeightView& w, const float* x, float* y, int64_t n) {
  const MatmulOut o{&w, y};
  run(&o, 1, x, n, false);
}

void matmul_many(std::initializer_list<MatmulOut> outs, const float* x, int64_t n) {
  const MatmulOut* o = outs.begin();
  const int count = (int)outs.size();
  bool same = true;
  for (int k = 1; k < count; ++k) same = same && o[k].w->type == o[0].w->type && o[k].w->cols == o[0].w->cols;
  if (same) return run(o, count, x, n, true);
  for (int k = 0; k < count; ++k) run(o + k, 1, x, n, true);
}

}  // namespace h1bkv
