#include "store/retention.h"

namespace enclave::store {

RetentionScheduler::RetentionScheduler(Store& store, std::chrono::milliseconds interval,
                                       Clock clock)
    : store_(store), interval_(interval), clock_(clock ? std::move(clock) : Clock(system_now_ms)) {}

Result<RetentionReport> RetentionScheduler::run_once() {
  auto report = store_.apply_retention(clock_());
  {
    std::lock_guard lock(mu_);
    last_error_ = report ? Status::ok() : Status(report.error());
  }
  passes_.fetch_add(1);
  return report;
}

void RetentionScheduler::start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { loop(); });
}

void RetentionScheduler::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status RetentionScheduler::last_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

void RetentionScheduler::loop() {
  while (true) {
    (void)run_once();
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, interval_, [this] { return stopping_; })) return;
  }
}

}  // namespace enclave::store
