// Scheduling for background writers (the audit and usage writers) that must never delay the io
// threads, and the backstop that keeps such a writer from falling behind.
//
// Why SCHED_IDLE and not just nice 19: under EEVDF (Linux >= 6.6) with RUN_TO_PARITY, a running
// nice-19 thread is not preempted at once when a nice-0 io thread wakes on its CPU; it keeps the
// CPU until its slice (~0.75-1.5 ms) is used, so a writer's burst becomes a millisecond stall in
// the gateway's p99. A SCHED_IDLE thread is always preempted at once by a waking non-idle thread.
//
// Why a backstop: a SCHED_IDLE thread has weight 3 (nice 0 is 1024, nice 19 is 15), so when every
// core is busy (e.g. the local engine decoding) it gets almost no CPU and its queue could fill
// (audit appends then fail closed, usage rows are dropped); and an unprivileged thread cannot
// leave SCHED_IDLE again (that needs RLIMIT_NICE or CAP_SYS_NICE) to catch up. So each writer has
// a BackstopThread at nice 19, SCHED_OTHER, asleep until the producer sees its queue cross a mark
// well above the writer's own wake-up mark, which then flushes like the writer.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace enclave {

// Thread names are at most 15 characters (Linux; a longer one is refused and the thread keeps its
// old name).
// Names the calling thread (for ps/top and tests) and puts it in SCHED_IDLE, at nice 19 too (the
// fallback if SCHED_IDLE is refused; per thread on Linux). Best effort: no error.
void mark_background_thread(const char* name);

// Names the calling thread and runs it in SCHED_OTHER at nice 19: below every normal thread, yet
// with a share of the CPU under load (weight 15), and its wake-ups preempt SCHED_IDLE threads.
// Best effort: no error (a thread that inherited SCHED_IDLE may not be allowed to leave it).
void mark_low_priority_thread(const char* name);

// A background thread's passes (one per `interval_ms`) that found nothing to do: after `idle_ms`
// of them it is time to stop waking on a timer and wait until new work wakes the thread (an idle
// server makes no wake-ups). Not thread-safe: the thread's own loop keeps it.
class IdlePasses {
 public:
  IdlePasses(uint32_t idle_ms, uint32_t interval_ms)
      : before_sleep_(std::max<uint32_t>(1, idle_ms / std::max<uint32_t>(1, interval_ms))) {}
  bool sleep_due() const { return passes_ >= before_sleep_; }
  void record(bool idle) { passes_ = idle ? passes_ + 1 : 0; }

 private:
  uint32_t before_sleep_;
  uint32_t passes_ = 0;
};

// A thread that sleeps until wake() and then runs `flush` once, at nice 19 SCHED_OTHER (see
// above). Wake-ups that arrive before the flush starts are merged into it. It never wakes on its
// own. The owner calls stop() (or destroys it) before its own final flush: stop() joins the
// thread and drops a pending wake-up.
class BackstopThread {
 public:
  BackstopThread(std::string name, std::function<void()> flush);
  ~BackstopThread();
  BackstopThread(const BackstopThread&) = delete;
  BackstopThread& operator=(const BackstopThread&) = delete;

  // Asks for one flush soon, on the backstop thread. Takes a mutex and notifies: call it once
  // per crossing of the mark, not per push.
  void wake();
  void stop();

 private:
  void loop();

  std::string name_;
  std::function<void()> flush_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool pending_ = false;
  bool stopping_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace enclave
