#include "kernels/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ENCLAVE_CPU_RELAX() _mm_pause()
#else
#define ENCLAVE_CPU_RELAX() ((void)0)
#endif

namespace enclave::kernels {
namespace {
// Spin this many rounds before sleeping in the kernel (futex via std::atomic::wait): long enough
// to bridge the gap between the back-to-back regions of a forward pass, short enough not to
// steal a shared core for long.
constexpr int kSpinRounds = 2000;

template <typename T, typename Pred>
void spin_then_wait(const std::atomic<T>& a, Pred done) {
  for (int i = 0; i < kSpinRounds; ++i) {
    if (done(a.load(std::memory_order_acquire))) return;
    ENCLAVE_CPU_RELAX();
  }
  for (;;) {
    const T v = a.load(std::memory_order_acquire);
    if (done(v)) return;
    a.wait(v, std::memory_order_acquire);
  }
}
}  // namespace

struct ThreadPool::State {
  int n_threads = 1;
  std::vector<std::thread> workers;
  alignas(64) std::atomic<uint32_t> generation{0};
  alignas(64) std::atomic<int> pending{0};
  void (*call)(void*, int, int) = nullptr;
  void* ctx = nullptr;
  bool stop = false;  // written before a generation bump, read after it

  void worker(int index) {
    uint32_t seen = 0;
    for (;;) {
      spin_then_wait(generation, [seen](uint32_t g) { return g != seen; });
      seen = generation.load(std::memory_order_acquire);
      if (stop) return;
      call(ctx, index, n_threads);
      if (pending.fetch_sub(1, std::memory_order_acq_rel) == 1) pending.notify_one();
    }
  }
};

ThreadPool::ThreadPool(int n_threads) : state_(std::make_unique<State>()) {
  state_->n_threads = std::max(1, n_threads);
  state_->workers.reserve(static_cast<size_t>(state_->n_threads - 1));
  for (int i = 1; i < state_->n_threads; ++i) {
    state_->workers.emplace_back([s = state_.get(), i] { s->worker(i); });
  }
}

ThreadPool::~ThreadPool() {
  state_->stop = true;
  state_->generation.fetch_add(1, std::memory_order_release);
  state_->generation.notify_all();
  for (auto& t : state_->workers) t.join();
}

int ThreadPool::size() const {
  return state_->n_threads;
}

void ThreadPool::run_raw(void (*call)(void*, int, int), void* ctx) {
  State& s = *state_;
  if (s.n_threads == 1) {
    call(ctx, 0, 1);
    return;
  }
  s.call = call;
  s.ctx = ctx;
  s.pending.store(s.n_threads - 1, std::memory_order_relaxed);
  s.generation.fetch_add(1, std::memory_order_release);
  s.generation.notify_all();
  call(ctx, 0, s.n_threads);
  spin_then_wait(s.pending, [](int p) { return p == 0; });
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
  run_ref(fn);
}

ThreadPool::Range ThreadPool::chunk(int64_t n, int64_t grain, int i, int nt) {
  if (grain < 1) grain = 1;
  const int64_t units = (n + grain - 1) / grain;
  const int64_t per = (units + nt - 1) / nt;
  const int64_t begin = std::min(n, static_cast<int64_t>(i) * per * grain);
  const int64_t end = std::min(n, begin + per * grain);
  return {begin, end};
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& fn) {
  parallel_for_ref(n, grain, fn);
}

}  // namespace enclave::kernels
