#include "kv/calib/loki_record.h"

#include "kv/codecs/float.h"
#include "kv/caches/tiered.h"
#include "util/error.h"

namespace h1bkv {

namespace {

class KeyRecordingLayer : public LayerCache {
 public:
  explicit KeyRecordingLayer(const CacheGeometry& g)
      : LayerCache(g), g_(g),
        moments_(g.n_kv_head, KeyMoments(g.head_dim)),
        inner_(make_full_layer_cache(g, make_f16_key(g.head_dim), make_f16_value(g.head_dim))) {}

  void do_append(int64_t n, const int32_t* pos, const float* k, const float* v) override {
    inner_->append(n, pos, k, v);
    const size_t row = (size_t)g_.n_kv_head * g_.head_dim;  // k: [n][n_kv_head][d]
#pragma omp parallel for schedule(static, 1)
    for (int h = 0; h < g_.n_kv_head; ++h) moments_[h].add(k + (size_t)h * g_.head_dim, n, row);
  }
  void do_attend(int64_t n_q, const int32_t* q_pos, const float* q, float scale, float* out) override {
    inner_->attend(n_q, q_pos, q, scale, out);
  }
  size_t bytes() const override { return inner_->bytes(); }
  size_t capacity_bytes() const override { return inner_->capacity_bytes(); }
  void do_truncate(int64_t n) override { inner_->truncate(n); }  // the moments stay: they pool every chunk

  const std::vector<KeyMoments>& moments() const { return moments_; }

 private:
  CacheGeometry g_;
  std::vector<KeyMoments> moments_;  // [n_kv_head]
  std::unique_ptr<LayerCache> inner_;
};

const KeyRecordingLayer& recorder_of(KvCache& cache, int il) {
  auto* r = dynamic_cast<KeyRecordingLayer*>(&cache.layer(il));
  check(r != nullptr, "cache '" + cache.spec() + "' is not a loki key-recording cache");
  return *r;
}

}  // namespace

std::unique_ptr<KvCache> make_loki_recording_cache(const CacheGeometry& g) {
  std::vector<std::unique_ptr<LayerCache>> layers;
  for (int il = 0; il < g.n_layer; ++il) layers.push_back(std::make_unique<KeyRecordingLayer>(g));
  return std::make_unique<KvCache>("loki-record", g, (double)g.head_dim * 4 * g.n_kv_head * g.n_layer,
                                   std::move(layers));
}

std::vector<std::vector<KeyMoments>> recorded_key_moments(KvCache& cache) {
  std::vector<std::vector<KeyMoments>> m;
  for (int il = 0; il < cache.geometry().n_layer; ++il) m.push_back(recorder_of(cache, il).moments());
  return m;
}

LokiBasis loki_basis_from_recording(KvCache& cache) {
  const CacheGeometry& g = cache.geometry();
  LokiBasis b;
  b.model_id = g.model_id;
  b.n_layer = g.n_layer;
  b.n_kv_head = g.n_kv_head;
  b.head_dim = g.head_dim;
  const size_t heads = (size_t)g.n_layer * g.n_kv_head, d = g.head_dim;
  b.basis.resize(heads * d * d);
  b.mean.resize(heads * d);
  b.explained.resize(heads * d);
  for (int il = 0; il < g.n_layer; ++il) {
    const auto& mom = recorder_of(cache, il).moments();
    for (int h = 0; h < g.n_kv_head; ++h) {
      const size_t i = (size_t)il * g.n_kv_head + h;
      pca_from_moments(mom[h], &b.basis[i * d * d], &b.mean[i * d], &b.explained[i * d]);
      b.tokens = (int64_t)mom[h].n;
    }
  }
  return b;
}

}  // namespace h1bkv
