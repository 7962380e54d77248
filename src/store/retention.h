// RetentionScheduler: runs Store::apply_retention on a fixed interval in a background thread.
// The clock is injected so tests can move time forward without sleeping for days.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "store/store.h"

namespace enclave::store {

class RetentionScheduler {
 public:
  RetentionScheduler(Store& store, std::chrono::milliseconds interval, Clock clock = {});
  ~RetentionScheduler() { stop(); }
  RetentionScheduler(const RetentionScheduler&) = delete;
  RetentionScheduler& operator=(const RetentionScheduler&) = delete;

  // One pass now, on the caller's thread.
  Result<RetentionReport> run_once();
  // Starts the background thread (first pass immediately). Idempotent.
  void start();
  // Stops and joins. Idempotent.
  void stop();
  uint64_t passes() const { return passes_.load(); }
  // The outcome of the last failed pass, if any (the thread keeps running).
  Status last_error() const;

 private:
  void loop();

  Store& store_;
  std::chrono::milliseconds interval_;
  Clock clock_;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  Status last_error_;
  std::atomic<uint64_t> passes_{0};
};

}  // namespace enclave::store
