// Streaming read bandwidth of this machine: vector loads summed over a buffer much larger than the
// caches (1 GiB), with 1 and 2 threads (OpenMP, each thread its contiguous slice), plus buffers
// that fit in L2 / L3 for reference. Counter GB = 1e9 bytes read per second (shown as GB=x/s; wall time).
// This is the bandwidth the decode-attention kernels are judged against (docs/speed.md).
#include <benchmark/benchmark.h>

#include "stream_sum.h"
#include <omp.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

namespace {

constexpr size_t kMaxBytes = size_t(1) << 30;

// One buffer for all runs, every page written once (so reads hit real memory, not the zero page).
float* buffer() {
  static float* buf = [] {
    auto* p = static_cast<float*>(::operator new(kMaxBytes, std::align_val_t(64)));
    const size_t n = kMaxBytes / sizeof(float);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; ++i) p[i] = (float)(i & 1023) * 1e-3f;
    return p;
  }();
  return buf;
}


void BM_StreamRead(benchmark::State& state) {
  const size_t bytes = (size_t)state.range(0);
  const int threads = (int)state.range(1);
  const float* p = buffer();
  const size_t n = bytes / sizeof(float), per = n / threads / 64 * 64;
  for (auto _ : state) {
    float total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    total += stream_sum(p + (size_t)omp_get_thread_num() * per, per);
    benchmark::DoNotOptimize(total);
  }
  const double read = (double)per * threads * sizeof(float);
  state.SetBytesProcessed((int64_t)(read * (double)state.iterations()));
  state.counters["GB"] = benchmark::Counter(read * 1e-9 * (double)state.iterations(),
                                              benchmark::Counter::kIsRate);
  state.counters["threads"] = threads;
}

}  // namespace

// 512 KiB (L2), 8 MiB (L3), 1 GiB (DRAM); 1 and 2 threads
BENCHMARK(BM_StreamRead)
    ->ArgsProduct({{512 << 10, 8 << 20, 1 << 30}, {1, 2}})
    ->ArgNames({"bytes", "threads"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK_MAIN();
