#include "kernels/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

namespace enclave::kernels {
namespace {

TEST(ThreadPool, RunCallsEveryThreadOnce) {
  for (int n : {1, 2, 3, 5}) {
    ThreadPool pool(n);
    EXPECT_EQ(pool.size(), n);
    for (int round = 0; round < 200; ++round) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.run([&](int i, int nt) {
        EXPECT_EQ(nt, n);
        hits[static_cast<size_t>(i)].fetch_add(1);
      });
      for (int i = 0; i < n; ++i)
        ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "thread " << i;
    }
  }
}

TEST(ThreadPool, ParallelForCoversRangeExactlyOnce) {
  ThreadPool pool(3);
  for (int64_t n : {0, 1, 7, 64, 1000, 1001}) {
    for (int64_t grain : {1, 4, 16}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.parallel_for(n, grain, [&](int64_t b, int64_t e) {
        EXPECT_EQ(b % grain, 0);
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
      });
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << n << " " << grain;
    }
  }
}

TEST(ThreadPool, RefFormsAndWorkIsVisibleAfterReturn) {
  ThreadPool pool(2);
  std::vector<int64_t> out(10000, 0);
  for (int round = 0; round < 50; ++round) {
    pool.parallel_for_ref(static_cast<int64_t>(out.size()), 8, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) out[static_cast<size_t>(i)] += i;
    });
  }
  for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], 50 * static_cast<int64_t>(i));
  int calls = 0;
  std::atomic<int> total{0};
  auto fn = [&](int i, int) {
    if (i == 0) ++calls;
    total.fetch_add(1);
  };
  pool.run_ref(fn);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(total.load(), 2);
}

TEST(ThreadPool, ChunksAreContiguousAndGrainAligned) {
  int64_t prev_end = 0;
  for (int i = 0; i < 4; ++i) {
    const auto r = ThreadPool::chunk(103, 8, i, 4);
    EXPECT_EQ(r.begin, prev_end);
    EXPECT_EQ(r.begin % 8, 0);
    prev_end = r.end;
  }
  EXPECT_EQ(prev_end, 103);
}

TEST(ThreadPool, ConstructDestroyRepeatedly) {
  for (int i = 0; i < 20; ++i) {
    ThreadPool pool(4);
    std::atomic<int> c{0};
    pool.run([&](int, int) { c.fetch_add(1); });
    EXPECT_EQ(c.load(), 4);
  }
}

}  // namespace
}  // namespace enclave::kernels
