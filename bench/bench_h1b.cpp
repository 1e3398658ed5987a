// Decode attention of one layer, SmolLM2-135M geometry (9 query heads, 3 KV heads, d = 64):
// one query against 2048 / 8192 / 32768 held tokens, f16 cache vs h1b (b = 256, each estimator),
// 1 and 2 threads, with the layer's codes in cache (hot: the same layer attended again and
// again) or evicted before every call (cold: a 64 MiB buffer is read between iterations, outside
// the timing, as when the other 29 layers ran in between).
// Counters: B/tok = bytes held per token of the layer (all KV heads); read_MB = the layer's
// held bytes (each attend reads them all once); GB/s = read_MB / time (implied bandwidth).
//
// BM_ScoreOnly: the scoring kernel alone (sketch_score_group, 3 query heads per KV head) over
// the b = 256 key sketches of 30 layers x 3 KV heads x 32768 tokens (94 MB, far larger than the
// caches), against BM_StreamRead (the same machine's streaming read of 1 GiB, as in
// bench_bandwidth); frac_of_stream = scoring GB/s / streaming GB/s, same thread count.
//
// BM_Int4Values: the int4 value pass alone (int4_accumulate_group, 3 query heads per KV head,
// d = 64, one fp16 {scale, min} per vector) over 4096 tokens whose codes stay in L2: compute,
// not memory. Counter ns/tok = nanoseconds per token for all 3 heads; H1BKV_ISA picks the path.
#include <benchmark/benchmark.h>

#include "stream_sum.h"
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "kv/cache.h"
#include "kv/codecs/int4.h"
#include "kv/codecs/sketch.h"
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


struct Buffer {
  float* p;
  size_t n;
};
Buffer big_buffer(size_t bytes) {
  auto* p = static_cast<float*>(::operator new(bytes, std::align_val_t(64)));
  const size_t n = bytes / 4;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) p[i] = (float)(i & 1023) * 1e-3f;
  return {p, n};
}

float read_all(const Buffer& b, int threads) {
  const size_t per = b.n / threads / 64 * 64;
  float total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
  total += stream_sum(b.p + (size_t)omp_get_thread_num() * per, per);
  return total;
}

void evict_caches() {
  static Buffer b = big_buffer(size_t(64) << 20);
  benchmark::DoNotOptimize(read_all(b, 1));
}

void BM_DecodeAttention(benchmark::State& state) {
  const int spec = (int)state.range(0);
  const int64_t depth = state.range(1);
  const int threads = (int)state.range(2);
  const bool cold = state.range(3) != 0;
  KvCache& c = filled_cache(spec, depth);
  auto q = randn(9 * 64, 3);
  std::vector<float> out(9 * 64);
  const int32_t qp = (int32_t)(depth - 1);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  for (auto _ : state) {
    if (cold) {
      state.PauseTiming();
      evict_caches();
      state.ResumeTiming();
    }
    c.layer(0).attend(1, &qp, q.data(), 0.125f, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  omp_set_num_threads(saved);
  const size_t bytes = c.layer(0).bytes();
  state.SetLabel(std::string(kSpecs[spec]) + (cold ? " cold" : " hot"));
  state.counters["B/tok"] = (double)bytes / depth;
  state.counters["read_MB"] = (double)bytes * 1e-6;
  state.counters["GB/s"] = benchmark::Counter((double)bytes * 1e-9 * (double)state.iterations(),
                                              benchmark::Counter::kIsRate);
}

// 1 GiB streaming read, best of 3 (cached per thread count): the reference for frac_of_stream.
double stream_gbps(int threads) {
  static Buffer b = big_buffer(size_t(1) << 30);
  static std::map<int, double> memo;
  auto& r = memo[threads];
  if (r == 0)
    for (int rep = 0; rep < 3; ++rep) {
      const double t0 = omp_get_wtime();
      benchmark::DoNotOptimize(read_all(b, threads));
      r = std::max(r, (double)(b.n / threads / 64 * 64 * threads) * 4 * 1e-9 / (omp_get_wtime() - t0));
    }
  return r;
}

void BM_StreamRead(benchmark::State& state) {
  const int threads = (int)state.range(0);
  static Buffer b = big_buffer(size_t(1) << 30);
  for (auto _ : state) benchmark::DoNotOptimize(read_all(b, threads));
  const double bytes = (double)(b.n / threads / 64 * 64 * threads) * 4;
  state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9 * (double)state.iterations(), benchmark::Counter::kIsRate);
}

void BM_ScoreOnly(benchmark::State& state) {
  const int est = (int)state.range(0), threads = (int)state.range(1);
  constexpr int kLayers = 30, kKv = 3, kG = 3;
  constexpr int64_t kDepth = 32768, kBlocks = kDepth / kBlockTokens;
  const CacheGeometry g{1, 9, 3, 64, kDepth};
  SketchOptions o;
  o.est = (SketchEst)est;
  SketchKeyCodec codec(g, 0, o);
  const size_t bb = kBlockTokens * codec.bytes_per_vector();
  // blocks of all layers and KV heads, random sketch bytes (the kernel does not care)
  std::vector<uint8_t> keys((size_t)kLayers * kKv * kBlocks * bb);
  std::mt19937 rng(5);
  for (size_t i = 0; i < keys.size(); i += 4) {
    const uint32_t r = rng();
    std::memcpy(&keys[i], &r, std::min<size_t>(4, keys.size() - i));
  }
  const size_t pf = codec.query_prep_floats();
  std::vector<float> prep(kG * pf);
  auto q = randn(kG * 64, 4);
  const float* pp[kG];
  for (int h = 0; h < kG; ++h) codec.prepare_query(&q[h * 64], h, 0.125f, &prep[h * pf]), pp[h] = &prep[h * pf];
  const double gbs_stream = stream_gbps(threads);
  for (auto _ : state) {
#pragma omp parallel num_threads(threads)
    {
      std::vector<float> sc(kG * 256);  // scores of one 256-token chunk, as in the attention loop
      float* out[kG] = {&sc[0], &sc[256], &sc[512]};
#pragma omp for schedule(static)
      for (int64_t b = 0; b < (int64_t)kLayers * kKv * kBlocks; ++b) {
        float* ob[kG];
        const int off = (int)(b % 4) * kBlockTokens;
        for (int h = 0; h < kG; ++h) ob[h] = out[h] + off;
        sketch_score_group(codec, pp, kG, &keys[(size_t)b * bb], 0, kBlockTokens, ob);
      }
      benchmark::DoNotOptimize(sc.data());
    }
  }
  const double bytes = (double)keys.size();
  state.SetLabel(std::string(sketch_est_name((SketchEst)est)) + " b=256, 30 layers x 3 KV heads x 32768 tokens");
  state.counters["read_MB"] = bytes * 1e-6;
  state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9 * (double)state.iterations(), benchmark::Counter::kIsRate);
  state.counters["stream_GB/s"] = gbs_stream;
  state.counters["frac_of_stream"] = benchmark::Counter(bytes * 1e-9 / gbs_stream * (double)state.iterations(),
                                                        benchmark::Counter::kIsRate);
}

void BM_Int4Values(benchmark::State& state) {
  constexpr int kD = 64, kG = 3;
  constexpr int64_t kN = 4096;
  const size_t vb = int4_bytes(kD, 0);
  std::vector<uint8_t> vals(kN * vb);
  auto v = randn(kN * kD, 7), w = randn(kG * kN, 8);
  for (int64_t t = 0; t < kN; ++t) int4_encode(&v[t * kD], kD, 0, &vals[t * vb]);
  for (float& x : w) x = std::fabs(x) / kN;  // softmax-like: positive, small
  std::vector<float> acc(kG * kD);
  const float* wp[kG] = {&w[0], &w[kN], &w[2 * kN]};
  float* ap[kG] = {&acc[0], &acc[kD], &acc[2 * kD]};
  for (auto _ : state) {
    int4_accumulate_group(wp, kG, vals.data(), kN, kD, 0, ap);
    benchmark::DoNotOptimize(acc.data());
  }
  state.counters["ns/tok"] = benchmark::Counter((double)kN * (double)state.iterations() * 1e-9,
                                                benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

}  // namespace

BENCHMARK(BM_DecodeAttention)
    ->ArgsProduct({{0, 1, 2, 3, 4}, {2048, 8192, 32768}, {1, 2}, {0, 1}})
    ->ArgNames({"spec", "depth", "threads", "cold"})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_StreamRead)->ArgsProduct({{1, 2}})->ArgNames({"threads"})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ScoreOnly)
    ->ArgsProduct({{0, 1, 2}, {1, 2}})
    ->ArgNames({"est", "threads"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK(BM_Int4Values)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
