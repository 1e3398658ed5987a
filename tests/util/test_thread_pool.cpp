// util/thread_pool: every index runs exactly once whatever the chunking and thread count, nested
// and concurrent callers run their jobs by themselves, workers asleep wake for the next job.
#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "util/thread_pool.h"

using namespace h1bkv;

namespace {

// Runs a job over n indices and checks each was visited once.
void expect_each_once(int64_t n, int64_t chunk) {
  std::vector<std::atomic<int>> hits(n);
  parallel_for(n, chunk, [&](int64_t b, int64_t e) {
    ASSERT_LE(0, b);
    ASSERT_LT(b, e);
    ASSERT_LE(e, n);
    ASSERT_LE(e - b, chunk);
    for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
  });
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n " << n << " chunk " << chunk << " i " << i;
}

struct Threads {  // sets the OpenMP thread count the pool follows, restores it after
  explicit Threads(int t) : prev(omp_get_max_threads()) { omp_set_num_threads(t); }
  ~Threads() { omp_set_num_threads(prev); }
  int prev;
};

}  // namespace

TEST(ThreadPool, EveryIndexOnceForAnyChunkingAndThreads) {
  for (int t : {1, 2, 3, 4}) {
    const Threads th(t);
    EXPECT_EQ(pool_threads(), t);
    for (int64_t n : {1, 2, 7, 64, 1000})
      for (int64_t chunk : {1, 3, 64, 5000}) expect_each_once(n, chunk);
  }
  parallel_for(0, 1, [](int64_t, int64_t) { FAIL() << "n = 0 runs nothing"; });
}

TEST(ThreadPool, UsesMoreThanOneThreadWhenAsked) {
  const Threads th(2);
  std::atomic<int> busy{0}, overlap{0};
  // chunks that wait for each other a little: with 2 threads two of them overlap in time
  for (int rep = 0; rep < 20 && overlap.load() == 0; ++rep)
    parallel_for(8, 1, [&](int64_t, int64_t) {
      if (busy.fetch_add(1) > 0) overlap.store(1);
      const auto t0 = std::chrono::steady_clock::now();
      while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(2)) {
      }
      busy.fetch_sub(1);
    });
  EXPECT_EQ(overlap.load(), 1);
}

TEST(ThreadPool, NestedCallsRunInlineAndComplete) {
  const Threads th(2);
  std::vector<std::atomic<int>> hits(16 * 16);
  parallel_for(16, 1, [&](int64_t b, int64_t e) {
    EXPECT_EQ(pool_threads(), 1);  // inside a job
    for (int64_t i = b; i < e; ++i)
      parallel_for(16, 4, [&](int64_t b2, int64_t e2) {
        for (int64_t j = b2; j < e2; ++j) hits[i * 16 + j].fetch_add(1);
      });
  });
  for (auto& h : hits) ASSERT_EQ(h.load(), 1);
  EXPECT_EQ(pool_threads(), 2);
}

TEST(ThreadPool, ConcurrentCallersAndSleepingWorkers) {
  const Threads th(2);
  auto caller = [] {
    for (int rep = 0; rep < 50; ++rep) expect_each_once(257, 8);
  };
  std::thread a(caller), b(caller);
  a.join();
  b.join();
  // workers go to sleep after their spin (200 us); the next job still runs every chunk
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  expect_each_once(100, 1);
}

TEST(ThreadPool, ChunkSize) {
  EXPECT_EQ(pool_chunk(100, 2, 4), 13);
  EXPECT_EQ(pool_chunk(1, 2, 4), 1);
  EXPECT_EQ(pool_chunk(0, 2, 4), 1);
  EXPECT_EQ(pool_chunk(16, 1, 1), 16);
}
