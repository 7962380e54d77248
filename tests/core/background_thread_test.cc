// Background writer scheduling: mark_background_thread puts the calling thread in SCHED_IDLE
// (nice 19 as well), mark_low_priority_thread in SCHED_OTHER at nice 19, both name it; a
// BackstopThread runs its flush on its own nice-19 SCHED_OTHER thread, once per wake() (wake-ups
// during a flush merged into one more), never on its own.
#include "core/background_thread.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <future>
#include <string>
#include <thread>

namespace enclave {
namespace {

// How the calling thread is scheduled, as the kernel reports it.
struct ThreadScheduling {
  int policy = -1;   // sched_getscheduler
  int nice = 100;    // getpriority for this thread
  std::string name;  // pthread_getname_np
  int pthread_policy = -1;
};

ThreadScheduling scheduling_of_this_thread() {
  ThreadScheduling s;
  s.policy = sched_getscheduler(0);  // 0: the calling thread
  errno = 0;
  int nice = getpriority(PRIO_PROCESS, static_cast<id_t>(gettid()));
  if (errno == 0) s.nice = nice;
  char name[16] = {};
  if (pthread_getname_np(pthread_self(), name, sizeof(name)) == 0) s.name = name;
  sched_param param{};
  if (pthread_getschedparam(pthread_self(), &s.pthread_policy, &param) != 0) s.pthread_policy = -1;
  return s;
}

// Runs `mark` on a fresh thread and reports that thread's scheduling afterwards.
template <typename Mark>
ThreadScheduling scheduling_after(Mark mark) {
  ThreadScheduling s;
  std::thread t([&] {
    mark();
    s = scheduling_of_this_thread();
  });
  t.join();
  return s;
}

template <typename Pred>
bool wait_until(Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

TEST(BackgroundThreadTest, BackgroundThreadRunsInSchedIdleAtNice19) {
  ThreadScheduling s = scheduling_after([] { mark_background_thread("bg-idle-test"); });
  EXPECT_EQ(s.policy, SCHED_IDLE);
  EXPECT_EQ(s.pthread_policy, SCHED_IDLE);
  EXPECT_EQ(s.nice, 19);  // kept in SCHED_IDLE; the fallback if SCHED_IDLE were refused
  EXPECT_EQ(s.name, "bg-idle-test");
}

TEST(BackgroundThreadTest, LowPriorityThreadRunsInSchedOtherAtNice19) {
  ThreadScheduling s = scheduling_after([] { mark_low_priority_thread("bg-nice-test"); });
  EXPECT_EQ(s.policy, SCHED_OTHER);
  EXPECT_EQ(s.pthread_policy, SCHED_OTHER);
  EXPECT_EQ(s.nice, 19);
  EXPECT_EQ(s.name, "bg-nice-test");
}

TEST(BackgroundThreadTest, MarkingOneThreadLeavesTheCallerAlone) {
  ThreadScheduling before = scheduling_of_this_thread();
  (void)scheduling_after([] { mark_background_thread("bg-other"); });
  ThreadScheduling after = scheduling_of_this_thread();
  EXPECT_EQ(after.policy, before.policy);
  EXPECT_NE(after.policy, SCHED_IDLE);
  EXPECT_EQ(after.nice, before.nice);
  EXPECT_EQ(after.name, before.name);
}

TEST(BackstopThreadTest, FlushRunsOnItsOwnNice19ThreadOncePerWake) {
  std::atomic<int> flushes{0};
  ThreadScheduling seen;
  std::thread::id flush_thread;
  {
    BackstopThread backstop("bg-backstop", [&] {
      seen = scheduling_of_this_thread();
      flush_thread = std::this_thread::get_id();
      flushes.fetch_add(1);
    });
    backstop.wake();
    ASSERT_TRUE(wait_until([&] { return flushes.load() == 1; }));
    backstop.wake();
    ASSERT_TRUE(wait_until([&] { return flushes.load() == 2; }));
    backstop.stop();
  }
  EXPECT_EQ(flushes.load(), 2);  // no flush without a wake-up
  EXPECT_NE(flush_thread, std::this_thread::get_id());
  EXPECT_EQ(seen.policy, SCHED_OTHER);
  EXPECT_EQ(seen.nice, 19);
  EXPECT_EQ(seen.name, "bg-backstop");
}

TEST(BackstopThreadTest, WakeUpsDuringAFlushMergeIntoOneMore) {
  std::atomic<int> flushes{0};
  std::promise<void> first_started;
  std::promise<void> release_first;
  std::shared_future<void> released = release_first.get_future().share();
  BackstopThread backstop("bg-merge", [&] {
    if (flushes.fetch_add(1) == 0) {
      first_started.set_value();
      released.wait();
    }
  });
  backstop.wake();
  first_started.get_future().wait();
  for (int i = 0; i < 5; ++i) backstop.wake();  // all while the first flush runs
  release_first.set_value();
  ASSERT_TRUE(wait_until([&] { return flushes.load() == 2; }));
  backstop.stop();
  EXPECT_EQ(flushes.load(), 2);
}

TEST(BackstopThreadTest, NeverFlushesWithoutAWakeUpAndIgnoresWakeUpsAfterStop) {
  std::atomic<int> flushes{0};
  BackstopThread backstop("bg-asleep", [&] { flushes.fetch_add(1); });
  backstop.stop();
  backstop.wake();
  backstop.stop();  // idempotent
  EXPECT_EQ(flushes.load(), 0);
}

}  // namespace
}  // namespace enclave
