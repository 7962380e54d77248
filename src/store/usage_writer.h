// UsageWriter: usage rows off the request path. push() appends the row to an in-memory queue
// (a mutex and a vector push: no wake-up, no system call); one writer thread wakes every
// interval_ms, or early when the queue reaches wake_at_rows (one notify per batch, never per
// row), and writes everything queued in one SQLite transaction (Store::record_usage_batch).
// Rows keep their push order. flush() writes what is queued now on the caller's thread; the
// destructor flushes before it returns, so a clean shutdown loses no row.
//
// The writer runs in SCHED_IDLE so that it never delays an io thread (core/background_thread.h).
// Since that class gets almost no CPU while every core is busy, a backstop thread (nice 19,
// SCHED_OTHER, asleep otherwise) is woken when the queue reaches backstop_at_rows and writes the
// queue exactly as the writer does; one batch at a time either way, so the order holds.
//
// Usage is accounting, not the audit trail (that is audit::AuditLog, written before the answer
// when it must be durable). A batch that fails is reported through on_error and stays queued,
// ahead of newer rows, for the next attempt; while the database keeps failing the queue is capped
// at max_queued_rows and rows beyond it are dropped and counted (rows_dropped(), reported too).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "core/background_thread.h"
#include "core/result.h"
#include "store/store.h"

namespace enclave::store {

struct UsageWriterOptions {
  // The writer's period. Each batch costs a commit (~25k instructions whatever its size), so
  // a longer period makes rows cheaper; wake_at_rows bounds a batch under load.
  uint32_t interval_ms = 100;
  size_t wake_at_rows = 512;  // a push reaching this queue size wakes it early
  // A push reaching this queue size wakes the backstop: the writer has fallen behind (starved in
  // SCHED_IDLE). Eight batches' worth: far above wake_at_rows, so the backstop stays asleep while
  // the writer keeps up, and far below max_queued_rows, so no row is dropped while it catches up.
  size_t backstop_at_rows = 4096;
  size_t max_queued_rows = size_t{1} << 16;  // cap while the database fails
  // After this long with nothing to write the writer stops waking every interval_ms and sleeps
  // until the next push wakes it (an idle server makes no wake-ups; only the first push after
  // such a pause pays a notify).
  uint32_t idle_sleep_after_ms = 1000;
  // A failed write of `rows` rows (still queued) or `dropped` rows lost to the cap. Runs on the
  // thread that wrote (writer, backstop or flush()'s caller; one at a time); the error names the
  // database problem, never a row's content.
  std::function<void(const Error& error, size_t rows, size_t dropped)> on_error;
};

class UsageWriter {
 public:
  explicit UsageWriter(Store& store, UsageWriterOptions options = {});
  ~UsageWriter();
  UsageWriter(const UsageWriter&) = delete;
  UsageWriter& operator=(const UsageWriter&) = delete;

  // Queues one row (moved). Never blocks on the database.
  void push(UsageRecord row);
  // Writes every row queued before the call, in order, on the caller's thread.
  Status flush();
  // Stops the writer thread and flushes; later pushes wait for flush() or the destructor.
  void stop();

  uint64_t rows_written() const;
  uint64_t rows_dropped() const;
  size_t rows_queued() const;

 private:
  void loop();
  // Takes the queue and writes it; a failed batch goes back to the front. Holds write_mu_.
  Status write_queued();

  Store& store_;
  UsageWriterOptions options_;
  std::mutex write_mu_;  // one batch at a time, so batches reach the database in order
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<UsageRecord> queue_;
  std::vector<UsageRecord> spare_;  // the previous batch's storage, reused; guarded by write_mu_
  bool wake_ = false;
  bool asleep_ = false;  // the writer waits for a push, no timeout
  bool stopping_ = false;
  uint64_t written_ = 0;
  uint64_t dropped_ = 0;
  size_t dropped_unreported_ = 0;
  std::thread thread_;
  // Declared last: its thread may flush as soon as it starts, so everything it uses exists.
  BackstopThread backstop_{"usage-backstop", [this] { (void)flush(); }};
};

}  // namespace enclave::store
