#include "store/usage_writer.h"

#include <algorithm>
#include <chrono>
#include <iterator>

#include "core/background_thread.h"

namespace enclave::store {

UsageWriter::UsageWriter(Store& store, UsageWriterOptions options)
    : store_(store), options_(std::move(options)) {
  options_.interval_ms = std::max<uint32_t>(options_.interval_ms, 1);
  options_.wake_at_rows = std::max<size_t>(options_.wake_at_rows, 1);
  options_.backstop_at_rows = std::max<size_t>(options_.backstop_at_rows, 1);
  options_.max_queued_rows = std::max<size_t>(options_.max_queued_rows, 1);
  queue_.reserve(std::min(options_.wake_at_rows, options_.max_queued_rows));
  thread_ = std::thread([this] { loop(); });
}

UsageWriter::~UsageWriter() {
  stop();
}

void UsageWriter::push(UsageRecord row) {
  bool wake = false;
  bool wake_backstop = false;
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= options_.max_queued_rows) {
      ++dropped_;
      ++dropped_unreported_;
      return;
    }
    queue_.push_back(std::move(row));
    // Exactly at the mark: one notify per batch however many rows follow before the writer runs.
    if ((queue_.size() == options_.wake_at_rows || asleep_) && !wake_) wake = wake_ = true;
    // The writer did not keep up (starved in SCHED_IDLE): once per crossing, as above.
    wake_backstop = queue_.size() == options_.backstop_at_rows;
  }
  if (wake) cv_.notify_one();
  if (wake_backstop) backstop_.wake();
}

Status UsageWriter::write_queued() {
  // The two vectors trade places every batch, so neither allocates once both have grown.
  std::vector<UsageRecord> batch = std::move(spare_);
  batch.clear();
  size_t dropped = 0;
  {
    std::lock_guard lock(mu_);
    batch.swap(queue_);
    queue_.reserve(std::min(options_.wake_at_rows, options_.max_queued_rows));
    dropped = std::exchange(dropped_unreported_, 0);
  }
  if (dropped > 0 && options_.on_error) {
    options_.on_error(
        Error(ErrorCode::kUnavailable, "usage queue full (the database is failing); rows dropped"),
        0, dropped);
  }
  if (batch.empty()) {
    spare_ = std::move(batch);
    return Status::ok();
  }
  Status st = store_.record_usage_batch(batch);
  if (st) {
    {
      std::lock_guard lock(mu_);
      written_ += batch.size();
    }
    batch.clear();
    spare_ = std::move(batch);
    return st;
  }
  if (options_.on_error) options_.on_error(st.error(), batch.size(), 0);
  // Back to the front, ahead of rows pushed meanwhile, within the cap (oldest rows kept).
  std::lock_guard lock(mu_);
  size_t room =
      options_.max_queued_rows > queue_.size() ? options_.max_queued_rows - queue_.size() : 0;
  size_t keep = std::min(room, batch.size());
  dropped_ += batch.size() - keep;
  dropped_unreported_ += batch.size() - keep;
  queue_.insert(queue_.begin(), std::make_move_iterator(batch.begin()),
                std::make_move_iterator(batch.begin() + static_cast<std::ptrdiff_t>(keep)));
  return st;
}

Status UsageWriter::flush() {
  std::lock_guard write_lock(write_mu_);
  return write_queued();
}

void UsageWriter::loop() {
  mark_background_thread("usage-writer");  // SCHED_IDLE: accounting never delays an io thread
  IdlePasses idle(options_.idle_sleep_after_ms, options_.interval_ms);
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (idle.sleep_due() && queue_.empty()) {
      asleep_ = true;  // set and waited on under mu_: push() cannot miss it
      cv_.wait(lock, [this] { return stopping_ || wake_; });
      asleep_ = false;
      idle.record(false);
    } else {
      cv_.wait_for(lock, std::chrono::milliseconds(options_.interval_ms),
                   [this] { return stopping_ || wake_; });
    }
    wake_ = false;
    if (stopping_) break;
    const bool nothing_to_write = queue_.empty() && dropped_unreported_ == 0;
    idle.record(nothing_to_write);
    if (nothing_to_write) continue;
    lock.unlock();
    {
      std::lock_guard write_lock(write_mu_);
      (void)write_queued();  // reported through on_error; the rows stay queued
    }
    lock.lock();
  }
}

void UsageWriter::stop() {
  bool running;
  {
    std::lock_guard lock(mu_);
    running = !stopping_;
    stopping_ = true;
  }
  if (running) {
    cv_.notify_one();
    thread_.join();
  }
  backstop_.stop();
  (void)flush();
}

uint64_t UsageWriter::rows_written() const {
  std::lock_guard lock(mu_);
  return written_;
}

uint64_t UsageWriter::rows_dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

size_t UsageWriter::rows_queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

}  // namespace enclave::store
