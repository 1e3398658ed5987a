#include "util/thread_pool.h"

#include <omp.h>

#include <atomic>
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define H1BKV_PAUSE() _mm_pause()
#else
#define H1BKV_PAUSE() std::this_thread::yield()
#endif

namespace h1bkv {
namespace {

// How long an idle worker spins before sleeping, and how long the caller spins before it yields
// its core while chunks taken by workers finish.
constexpr auto kSpin = std::chrono::microseconds(200);

thread_local bool t_in_job = false;

struct Job {
  const std::function<void(int64_t, int64_t)>* body;
  int64_t n, chunk, nchunks;
  int max_workers;                 // workers allowed to join (threads - 1)
  std::atomic<int64_t> next{0};    // next chunk to take
  std::atomic<int64_t> done{0};    // chunks finished
};

// Takes chunks until none are left.
void work(Job& j) {
  for (int64_t c; (c = j.next.fetch_add(1)) < j.nchunks;) {
    const int64_t b = c * j.chunk, e = std::min(j.n, b + j.chunk);
    (*j.body)(b, e);
    j.done.fetch_add(1);
  }
}

class Pool {
 public:
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_.store(true);
      gen_.fetch_add(1);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  void run(Job& j, int threads) {
    grow(threads - 1);
    current_.store(&j);
    gen_.fetch_add(1);
    if (sleepers_.load() > 0) {  // Dekker pair with the worker's sleepers_ / gen_ check
      std::lock_guard<std::mutex> lk(mu_);
      cv_.notify_all();
    }
    t_in_job = true;
    work(j);
    t_in_job = false;
    wait_until([&] { return j.done.load() == j.nchunks; });
    current_.store(nullptr);
    wait_until([&] { return active_.load() == 0; });  // no worker still holds &j
  }

 private:
  template <class Pred>
  static void wait_until(Pred p) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int k = 0; !p(); ++k) {
      if ((k & 63) == 63 && std::chrono::steady_clock::now() - t0 > kSpin) std::this_thread::yield();
      else H1BKV_PAUSE();
    }
  }

  void grow(int n) {
    std::lock_guard<std::mutex> lk(grow_mu_);
    while ((int)workers_.size() < n) {
      const int id = (int)workers_.size();
      // the generation before the job that grows the pool: a thread that starts late still sees
      // that job (and at exit the stop) as a change
      const uint64_t g = gen_.load();
      workers_.emplace_back([this, id, g] { loop(id, g); });
    }
  }

  void loop(int id, uint64_t seen) {
    for (;;) {
      // spin, then sleep until the generation changes
      const auto t0 = std::chrono::steady_clock::now();
      for (int k = 0; gen_.load() == seen; ++k) {
        if ((k & 63) == 63 && std::chrono::steady_clock::now() - t0 > kSpin) {
          std::unique_lock<std::mutex> lk(mu_);
          sleepers_.fetch_add(1);
          cv_.wait(lk, [&] { return gen_.load() != seen; });
          sleepers_.fetch_sub(1);
          break;
        }
        H1BKV_PAUSE();
      }
      seen = gen_.load();
      if (stop_.load()) return;
      active_.fetch_add(1);
      if (Job* j = current_.load(); j && id < j->max_workers) {
        t_in_job = true;
        work(*j);
        t_in_job = false;
      }
      active_.fetch_sub(1);
    }
  }

  std::mutex mu_, grow_mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> gen_{0};
  std::atomic<int> sleepers_{0}, active_{0};
  std::atomic<Job*> current_{nullptr};
  std::atomic<bool> stop_{false};
  std::vector<std::thread> workers_;
};

Pool& pool() {
  static Pool p;
  return p;
}
std::mutex g_run_mu;  // one job at a time; a concurrent caller runs its job by itself

}  // namespace

int pool_threads() {
  if (t_in_job || omp_in_parallel()) return 1;
  return std::max(1, omp_get_max_threads());
}

int64_t pool_chunk(int64_t n, int threads, int per_thread) {
  const int64_t parts = (int64_t)std::max(1, threads) * std::max(1, per_thread);
  return std::max<int64_t>(1, (n + parts - 1) / parts);
}

void parallel_for(int64_t n, int64_t chunk, const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  chunk = std::max<int64_t>(1, chunk);
  const int threads = pool_threads();
  Job j;
  j.body = &body, j.n = n, j.chunk = chunk, j.nchunks = (n + chunk - 1) / chunk;
  j.max_workers = (int)std::min<int64_t>(threads - 1, j.nchunks - 1);
  std::unique_lock<std::mutex> lk(g_run_mu, std::defer_lock);
  if (j.max_workers <= 0 || !lk.try_lock()) {  // one thread or chunk, or the pool is busy: inline
    const bool was = t_in_job;
    t_in_job = true;
    work(j);
    t_in_job = was;
    return;
  }
  pool().run(j, threads);
}

}  // namespace h1bkv
