// Decode attention of one layer, SmolLM2-135M geometry (9 query heads, 3 KV heads, d = 64):
// one query against 2048 / 8192 / 32768 held tokens, f16 cache vs h1b (b = 256, each
// estimator). Counters: B/tok = bytes held per token of the layer (all KV heads), and
// bytes_per_second = the layer's held bytes read per attend call / time.
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kv/cache.h"
#include "kv/registry.h"

using namespace h1bkv;

namespace {

const char* kSpecs[] = {"f16", "h1b:bits=256,est=hamming", "h1b:bits=256,est=angle",
                        "h1b:bits=256,est=qjl", "h1b:bits=256,est=qjl,sink=4,window=128"};

std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// One filled single-layer cache per (spec, depth), built on first use.
KvCache& filled_cache(int spec, int64_t depth) {
  static std::map<std::pair<int, int64_t>, std::unique_ptr<KvCache>> caches;
  auto& c = caches[{spec, depth}];
  if (!c) {
    const CacheGeometry g{1, 9, 3, 64, depth + 1};
    c = make_cache(parse_cache_spec(kSpecs[spec]), g);
    const int64_t chunk = 512, row = 3 * 64;
    auto k = randn(chunk * row, 1), v = randn(chunk * row, 2);
    std::vector<int32_t> pos(chunk);
    for (int64_t t0 = 0; t0 < depth; t0 += chunk) {
      for (int64_t i = 0; i < chunk; ++i) pos[i] = (int32_t)(t0 + i);
      c->layer(0).append(std::min(chunk, depth - t0), pos.data(), k.data(), v.data());
    }
  }
  return *c;
}

void BM_DecodeAttention(benchmark::State& state) {
  const int spec = (int)state.range(0);
  const int64_t depth = state.range(1);
  KvCache& c = filled_cache(spec, depth);
  auto q = randn(9 * 64, 3);
  std::vector<float> out(9 * 64);
  const int32_t qp = (int32_t)(depth - 1);
  for (auto _ : state) {
    c.layer(0).attend(1, &qp, q.data(), 0.125f, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  const size_t bytes = c.layer(0).bytes();
  state.SetLabel(kSpecs[spec]);
  state.counters["B/tok"] = (double)bytes / depth;
  state.SetBytesProcessed((int64_t)state.iterations() * (int64_t)bytes);
}

}  // namespace

BENCHMARK(BM_DecodeAttention)
    ->ArgsProduct({{0, 1, 2, 3, 4}, {2048, 8192, 32768}})
    ->ArgNames({"spec", "depth"})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

BENCHMARK_MAIN();
