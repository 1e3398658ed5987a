// A pool of worker threads for the hot loops (matmul rows, attention work items), in place of
// OpenMP there: between jobs a worker spins briefly (kSpin) and then sleeps on a condition
// variable, as ggml's threadpool does, so a process that shares the machine with another busy
// one neither burns a core waiting nor waits long for a worker that was descheduled: work is
// handed out in chunks from an atomic counter, and the calling thread takes chunks too, so a
// job finishes even if a worker never wakes up for it.
#pragma once
#include <cstdint>
#include <functional>

namespace h1bkv {

// The number of threads a job uses: omp_get_max_threads() (what -t / omp_set_num_threads set),
// 1 inside another job or an OpenMP parallel region (nested calls run on the calling thread).
int pool_threads();

// Runs body(begin, end) over [0, n) in chunks of `chunk` indices (the last one shorter), on up
// to pool_threads() threads, the caller included; returns when every chunk has run. Which
// thread runs a chunk is not fixed, so results must not depend on it. body must not throw.
void parallel_for(int64_t n, int64_t chunk, const std::function<void(int64_t, int64_t)>& body);

// Chunk size for n items that gives each of `threads` threads about `per_thread` chunks.
int64_t pool_chunk(int64_t n, int threads, int per_thread = 4);

}  // namespace h1bkv
