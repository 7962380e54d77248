// ThreadPool: a fixed set of workers that run one parallel region at a time and meet at a
// spinning barrier (low overhead for the ~hundreds of regions per decoded token).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <type_traits>

namespace enclave::kernels {

class ThreadPool {
 public:
  // n_threads includes the calling thread (n_threads - 1 workers are started).
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const;

  // Runs fn(thread_index, n_threads) on every thread (the caller is thread 0) and waits for all.
  void run(const std::function<void(int thread_index, int n_threads)>& fn);

  // Splits [0, n) into contiguous chunks (multiples of `grain`) and runs fn(begin, end) on them.
  void parallel_for(int64_t n, int64_t grain,
                    const std::function<void(int64_t begin, int64_t end)>& fn);

  // Allocation-free forms for hot loops: `fn` is called by reference, never copied.
  template <typename F>
  void run_ref(F&& fn) {
    run_raw([](void* ctx, int i, int n) { (*static_cast<std::remove_reference_t<F>*>(ctx))(i, n); },
            const_cast<void*>(static_cast<const void*>(&fn)));
  }
  template <typename F>
  void parallel_for_ref(int64_t n, int64_t grain, F&& fn) {
    run_ref([&](int i, int nt) {
      const Range r = chunk(n, grain, i, nt);
      if (r.begin < r.end) fn(r.begin, r.end);
    });
  }

  // The contiguous, grain-aligned share of [0, n) that thread i of nt gets in parallel_for.
  struct Range {
    int64_t begin, end;
  };
  static Range chunk(int64_t n, int64_t grain, int i, int nt);

  // Runs call(ctx, thread_index, n_threads) on every thread; the caller is thread 0.
  void run_raw(void (*call)(void* ctx, int thread_index, int n_threads), void* ctx);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace enclave::kernels
