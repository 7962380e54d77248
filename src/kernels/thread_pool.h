// ThreadPool: a fixed set of workers that run one parallel region at a time and meet at a
// spinning barrier (low overhead for the ~hundreds of regions per decoded token).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

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
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace enclave::kernels
