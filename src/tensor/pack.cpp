#include "tensor/pack.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "io/ggml_type.h"
#include "tensor/isa.h"
#include "tensor/kernels.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace h1bkv {

using namespace detail;

namespace {

const LanesLayout* layout_of(uint32_t type) {
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::Q4_1: return &kLanesQ4_1;
    case GgmlType::Q8_0: return &kLanesQ8_0;
    case GgmlType::Q4_K: return &kLanesQ4_K;
    case GgmlType::Q6_K: return &kLanesQ6_K;
    default: return nullptr;
  }
}

}  // namespace

void PackedBytes::Free::operator()(uint8_t* p) const { std::free(p); }

bool repack_wanted(uint32_t type) {
  const char* env = std::getenv("H1BKV_REPACK");
  if (env && std::strcmp(env, "0") == 0) return false;
  return layout_of(type) && tile_for(type, active_isa()).packed != nullptr;
}

size_t packed_group_bytes(uint32_t type, int64_t cols) {
  const LanesLayout* L = layout_of(type);
  const GgmlTypeInfo* ti = ggml_type_info(type);
  if (!L || !ti) return 0;
  return (size_t)(cols / ti->block_elems) * lanes_group_block_bytes(*L);
}

PackedBytes pack_lanes(const WeightView& w, const std::function<void(const uint8_t*, size_t)>& done) {
  PackedBytes out;
  const LanesLayout* L = layout_of(w.type);
  const int64_t groups = w.rows / kLanesRows;
  if (!L || groups == 0) return out;
  const GgmlTypeInfo* ti = ggml_type_info(w.type);
  const int64_t nb = w.cols / ti->block_elems;
  check((size_t)L->block_bytes == ti->block_bytes && w.row_bytes >= (size_t)nb * L->block_bytes,
        "pack_lanes: row_bytes too small for " + std::to_string(w.cols) + " " + ti->name + " values");
  const size_t gbb = lanes_group_block_bytes(*L), gb = (size_t)nb * gbb;
  out.size = (size_t)groups * gb;
  out.data.reset(static_cast<uint8_t*>(std::aligned_alloc(64, (out.size + 63) & ~size_t{63})));
  check(out.data != nullptr, "pack_lanes: out of memory for " + std::to_string(out.size) + " bytes");
  uint8_t* dst0 = out.data.get();
  parallel_for(groups, std::min<int64_t>(pool_chunk(groups, pool_threads()), 256), [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g)
      for (int64_t i = 0; i < nb; ++i) {
        uint8_t* dst = dst0 + (size_t)g * gb + (size_t)i * gbb;
        std::memset(dst, 0, gbb);
        for (int r = 0; r < kLanesRows; ++r) {
          const uint8_t* b = w.data + (size_t)(g * kLanesRows + r) * w.row_bytes + (size_t)i * L->block_bytes;
          for (int k = 0; k < L->chunks; ++k)
            for (int j = 0; j < 4; ++j) std::memcpy(dst + 256 * L->slot[k] + 64 * j + 4 * r, b + L->first + 16 * k + 4 * j, 4);
          std::memcpy(dst + 256 * L->chunks + (size_t)r * L->field_bytes, b + L->field, L->field_bytes);
        }
      }
    if (done) done(w.data + (size_t)g0 * kLanesRows * w.row_bytes, (size_t)(g1 - g0) * kLanesRows * w.row_bytes);
  });
  return out;
}

}  // namespace h1bkv
