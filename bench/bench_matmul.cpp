// matmul throughput: decode (n = 1) and 64-token prefill for the weight types of the test model
// (SmolLM2-135M: Q4_1 layers, Q8_0 embedding/output) and F16, at 576x1536 (ffn_down: 576 rows
// of 1536) and 49152x576 (output head), and Qwen2.5-1.5B's Q4_K / Q6_K shapes; pk:1 runs on the
// weights packed at load (tensor/pack.h; where the active path has no packed kernels it is the
// same as pk:0). Reports bytes/s of weights read (one pass per call).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstring>
#include <random>
#include <vector>

#include "io/ggml_type.h"
#include "tensor/matmul.h"
#include "tensor/pack.h"
#include "util/fp16.h"

using namespace h1bkv;

namespace {

// Random but valid weights: random quant bytes with sane fp16 scales at each block's start.
std::vector<uint8_t> make_weights(GgmlType type, int64_t rows, int64_t cols, size_t* row_bytes) {
  const GgmlTypeInfo* ti = ggml_type_info(static_cast<uint32_t>(type));
  *row_bytes = (size_t)(cols / ti->block_elems) * ti->block_bytes;
  std::vector<uint8_t> w(*row_bytes * rows);
  std::mt19937 rng(1);
  for (auto& b : w) b = (uint8_t)rng();
  if (type == GgmlType::F16) {  // fp16 values in +-1
    std::uniform_real_distribution<float> u(-1, 1);
    for (size_t i = 0; i < w.size() / 2; ++i) {
      const uint16_t h = f32_to_fp16(u(rng));
      std::memcpy(&w[2 * i], &h, 2);
    }
  } else {  // d (and m / dmin for Q4_1 / Q4_K) = 0.01; Q6_K's d is its last 2 bytes
    const uint16_t h = f32_to_fp16(0.01f);
    for (size_t off = 0; off < w.size(); off += ti->block_bytes) {
      std::memcpy(&w[type == GgmlType::Q6_K ? off + ti->block_bytes - 2 : off], &h, 2);
      if (type == GgmlType::Q4_1 || type == GgmlType::Q4_K) std::memcpy(&w[off + 2], &h, 2);
    }
  }
  return w;
}

void BM_matmul(benchmark::State& state) {
  const auto type = static_cast<GgmlType>(state.range(0));
  const int64_t rows = state.range(1), cols = state.range(2), n = state.range(3);
  const int threads = (int)state.range(4);
  size_t rb;
  const std::vector<uint8_t> data = make_weights(type, rows, cols, &rb);
  WeightView w{static_cast<uint32_t>(type), rows, cols, rb, data.data()};
  PackedBytes packed;
  if (state.range(5) && repack_wanted(w.type)) packed = pack_lanes(w);
  w.packed = packed.data.get();
  std::vector<float> x(n * cols), y(n * rows);
  std::mt19937 rng(2);
  std::normal_distribution<float> nd;
  for (auto& v : x) v = nd(rng);
  omp_set_num_threads(threads);
  for (auto _ : state) {
    matmul(w, x.data(), y.data(), n);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed((int64_t)state.iterations() * (int64_t)data.size());
  state.SetLabel(ggml_type_name(static_cast<uint32_t>(type)));
  state.counters["tok/s"] = benchmark::Counter((double)state.iterations() * n, benchmark::Counter::kIsRate);
}

void args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"type", "rows", "cols", "n", "thr", "pk"});
  for (GgmlType t : {GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::F16})
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{576, 1536}, {49152, 576}})
      for (int64_t n : {1, 64})
        for (int thr : {1, 2})
          for (int pk : {0, 1})
            if (pk == 0 || t != GgmlType::F16) b->Args({(int64_t)t, rows, cols, n, thr, pk});
  // Qwen2.5-1.5B's K-quant shapes: a 1536 x 1536 projection (in L3) and the Q6_K output head
  for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K})
    for (int64_t rows : {1536, 151936})
      for (int64_t n : {1, 64})
        for (int thr : {1, 2})
          for (int pk : {0, 1}) b->Args({(int64_t)t, rows, 1536, n, thr, pk});
  b->UseRealTime();
}

}  // namespace

BENCHMARK(BM_matmul)->Apply(args);
BENCHMARK_MAIN();
