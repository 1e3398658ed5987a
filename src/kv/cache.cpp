#include "kv/cache.h"

#include <climits>

#include "util/error.h"

namespace h1bkv {

namespace {

[[noreturn]] void fail(const std::string& msg) { throw Error(msg); }

}  // namespace

void check_cache_geometry(const CacheGeometry& g) {
  if (!(g.n_kv_head > 0 && g.n_head > 0 && g.n_head % g.n_kv_head == 0 && g.head_dim > 0 && g.n_ctx > 0))
    fail("invalid cache geometry: " + std::to_string(g.n_head) + " query heads, " +
         std::to_string(g.n_kv_head) + " KV heads (must divide them), head_dim " +
         std::to_string(g.head_dim) + ", n_ctx " + std::to_string(g.n_ctx));
}

LayerCache::LayerCache(const CacheGeometry& g) : g_(g) { check_cache_geometry(g); }

void LayerCache::append(int64_t n, const int32_t* pos, const float* k, const float* v) {
  const int64_t held = n_tokens();
  if (n < 0) [[unlikely]]
    fail("cache append: negative token count " + std::to_string(n));
  if (n > g_.n_ctx - held) [[unlikely]]
    fail("context overflow: " + std::to_string(held + n) + " tokens exceed the context size " +
         std::to_string(g_.n_ctx));
  if (n == 0) return;
  if (!pos || !k || !v) [[unlikely]]
    fail("cache append: null buffer");
  int64_t last = held > 0 ? pos_.back() : (int64_t)INT32_MIN - 1;
  for (int64_t i = 0; i < n; ++i) {
    if (pos[i] <= last) [[unlikely]]
      fail("cache append: position " + std::to_string(pos[i]) + " does not follow position " +
           std::to_string(last) + " (positions must increase)");
    last = pos[i];
  }
  do_append(n, pos, k, v);
  pos_.insert(pos_.end(), pos, pos + n);
}

void LayerCache::attend(int64_t n_q, const int32_t* q_pos, const float* q, float scale, float* out) {
  if (n_q < 0) [[unlikely]]
    fail("cache attend: negative query count " + std::to_string(n_q));
  if (n_q > 0 && (!q_pos || !q || !out)) [[unlikely]]
    fail("cache attend: null buffer");
  do_attend(n_q, q_pos, q, scale, out);
}

void LayerCache::truncate(int64_t n) {
  if (n < 0) [[unlikely]]
    fail("cache truncate: negative token count " + std::to_string(n));
  if (n >= n_tokens()) return;
  do_truncate(n);
  pos_.resize(n);
}

KvCache::KvCache(std::string spec, CacheGeometry geom, double bytes_per_token,
                 std::vector<std::unique_ptr<LayerCache>> layers)
    : spec_(std::move(spec)), geom_(geom), bytes_per_token_(bytes_per_token),
      layers_(std::move(layers)) {}

size_t KvCache::bytes() const {
  size_t b = 0;
  for (const auto& l : layers_) b += l->bytes();
  return b;
}

size_t KvCache::capacity_bytes() const {
  size_t b = 0;
  for (const auto& l : layers_) b += l->capacity_bytes();
  return b;
}

void KvCache::clear() {
  for (auto& l : layers_) l->clear();
}

void KvCache::truncate(int64_t n) {
  for (auto& l : layers_) l->truncate(n);
}

void KvCache::settle() {
  for (auto& l : layers_) l->settle();
}

}  // namespace h1bkv
