// AuditLog with FsyncPolicy::kBatch / kNever: appends are queued and written by the writer
// thread (in order, many per write), destruction and sync() flush the queue, `always` has the
// entry on disk when append returns, and a failed write fails later appends until a write
// succeeds (fail closed) without losing or reordering the entries already acknowledged. The
// writer runs in SCHED_IDLE; a nice-19 backstop thread writes the queue when it reaches
// backstop_at_entries (the writer starved), with the same order and chain.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/resource.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <fstream>
#include <thread>

#include "../common/eventually.h"
#include "../common/thread_nice.h"
#include "audit/audit_log.h"
#include "audit/entry.h"
#include "audit/verify.h"
#include "audit_test_util.h"

namespace enclave::audit {
namespace {
namespace fs = std::filesystem;
using enclave::testing::NamedThreadScheduling;
using enclave::testing::scheduling_of_thread_named;
using testing::read_lines;
using testing::sample_request;
using testing::temp_dir;
using testing::test_key;

class AuditBatchTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = temp_dir("audit_batch"); }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<AuditLog> open_log(FsyncPolicy policy, uint32_t interval_ms) {
    AuditOptions opt;
    opt.dir = dir_;
    opt.fsync = policy;
    opt.batch_interval_ms = interval_ms;
    auto log = AuditLog::open(opt, test_key());
    EXPECT_TRUE(log) << (log ? "" : log.error().message);
    return log ? std::move(log).value() : nullptr;
  }
  size_t lines_on_disk() {
    size_t n = 0;
    for (const auto& f : list_audit_files(dir_)) n += read_lines(f).size();
    return n;
  }
  // Request ids of the entries on disk, in file order.
  std::vector<std::string> ids_on_disk() {
    std::vector<std::string> ids;
    for (const auto& f : list_audit_files(dir_)) {
      for (const auto& line : read_lines(f)) {
        size_t at = line.find("\"request_id\":\"");
        if (at == std::string::npos) continue;
        at += 14;
        ids.push_back(line.substr(at, line.find('"', at) - at));
      }
    }
    return ids;
  }
  VerifyReport verify() {
    auto key = test_key();
    auto r = verify_audit_files(list_audit_files(dir_), &key);
    EXPECT_TRUE(r);
    return r ? std::move(r).value() : VerifyReport{};
  }

  fs::path dir_;
};

TEST_F(AuditBatchTest, WriterThreadWritesQueuedEntriesInOrder) {
  for (FsyncPolicy policy : {FsyncPolicy::kBatch, FsyncPolicy::kNever}) {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto log = open_log(policy, 2);
    ASSERT_TRUE(log);
    for (int i = 0; i < 300; ++i) {
      auto seq = log->append_request(sample_request(i));
      ASSERT_TRUE(seq);
      EXPECT_EQ(*seq, static_cast<uint64_t>(i + 1));  // seq handed out at once, in order
    }
    EXPECT_EQ(log->last_seq(), 300u);
    // No sync(): the writer thread alone must get everything to the file.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (lines_on_disk() < 300 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_EQ(lines_on_disk(), 300u) << fsync_policy_name(policy);
    std::vector<std::string> ids = ids_on_disk();
    for (int i = 0; i < 300; ++i) ASSERT_EQ(ids[i], "req-" + std::to_string(i));
    log.reset();
    VerifyReport r = verify();
    EXPECT_TRUE(r.clean()) << fsync_policy_name(policy);
    EXPECT_EQ(r.entries_ok, 300u);
  }
}

TEST_F(AuditBatchTest, QueuedUntilSyncOrDestruction) {
  // An interval far beyond the test: only sync() and the destructor can write.
  auto log = open_log(FsyncPolicy::kBatch, 3'600'000);
  ASSERT_TRUE(log);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(log->append_request(sample_request(i)));
  EXPECT_EQ(lines_on_disk(), 0u);  // acknowledged, still queued
  ASSERT_TRUE(log->sync());
  EXPECT_EQ(lines_on_disk(), 5u);
  for (int i = 5; i < 12; ++i) ASSERT_TRUE(log->append_request(sample_request(i)));
  ASSERT_TRUE(log->append_admin({"tenant_erased", "admin", "acme", {{"rows", "3"}}}));
  log.reset();  // shutdown flushes the queue
  EXPECT_EQ(lines_on_disk(), 13u);
  VerifyReport r = verify();
  EXPECT_TRUE(r.clean());
  EXPECT_EQ(r.entries_ok, 13u);

  // Reopening continues the chain after the flushed entries.
  log = open_log(FsyncPolicy::kBatch, 3'600'000);
  ASSERT_TRUE(log);
  EXPECT_EQ(log->last_seq(), 13u);
  auto seq = log->append_request(sample_request(99));
  ASSERT_TRUE(seq);
  EXPECT_EQ(*seq, 14u);
  log.reset();
  EXPECT_TRUE(verify().clean());
}

TEST_F(AuditBatchTest, AlwaysHasTheEntryOnDiskWhenAppendReturns) {
  auto log = open_log(FsyncPolicy::kAlways, 3'600'000);
  ASSERT_TRUE(log);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(log->append_request(sample_request(i)));
    EXPECT_EQ(lines_on_disk(), static_cast<size_t>(i + 1));  // written (and fsynced) already
  }
}

TEST_F(AuditBatchTest, RotationWhileBatchingKeepsTheChain) {
  AuditOptions opt;
  opt.dir = dir_;
  opt.fsync = FsyncPolicy::kBatch;
  opt.batch_interval_ms = 3'600'000;
  opt.max_file_bytes = 4096;  // a batch spans several files
  auto log = AuditLog::open(opt, test_key());
  ASSERT_TRUE(log);
  for (int i = 0; i < 60; ++i) ASSERT_TRUE((*log)->append_request(sample_request(i)));
  ASSERT_TRUE((*log)->sync());
  EXPECT_GT(list_audit_files(dir_).size(), 3u);
  for (const auto& f : list_audit_files(dir_)) EXPECT_LE(fs::file_size(f), 4096u);
  log->reset();
  VerifyReport r = verify();
  EXPECT_TRUE(r.clean());
  EXPECT_EQ(r.entries_ok, 60u);
  std::vector<std::string> ids = ids_on_disk();
  ASSERT_EQ(ids.size(), 60u);
  for (int i = 0; i < 60; ++i) EXPECT_EQ(ids[i], "req-" + std::to_string(i));
}

// A file size limit makes the writer's write fail (EFBIG after a short write) like a full disk.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);  // get EFBIG instead of the signal
    rlimit r = saved_;
    r.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &r);
  }
  ~FileSizeLimit() { lift(); }
  void lift() {
    if (lifted_) return;
    lifted_ = true;
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit saved_{};
  void (*old_handler_)(int) = nullptr;
  bool lifted_ = false;
};

TEST_F(AuditBatchTest, FailedWriteFailsLaterAppendsUntilAWriteSucceeds) {
  auto log = open_log(FsyncPolicy::kBatch, 3'600'000);
  ASSERT_TRUE(log);
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(log->append_request(sample_request(i)));
  ASSERT_TRUE(log->sync());
  uint64_t size_before = fs::file_size(list_audit_files(dir_).back());

  FileSizeLimit limit(size_before + 40);                // room for part of one line only
  ASSERT_TRUE(log->append_request(sample_request(2)));  // accepted: queued
  ASSERT_TRUE(log->append_request(sample_request(3)));
  Status st = log->sync();
  ASSERT_FALSE(st);
  // The short write was cut back: no half line in the file.
  EXPECT_EQ(fs::file_size(list_audit_files(dir_).back()), size_before);
  // Fail closed: nothing more is acknowledged while the log cannot be written.
  auto refused = log->append_request(sample_request(4));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kUnavailable);

  limit.lift();
  ASSERT_TRUE(log->sync());  // the acknowledged entries 2 and 3 are written now, in order
  auto seq = log->append_request(sample_request(5));
  ASSERT_TRUE(seq);
  EXPECT_EQ(*seq, 5u);  // the refused append took no seq
  log.reset();
  VerifyReport r = verify();
  EXPECT_TRUE(r.clean());
  EXPECT_EQ(r.entries_ok, 5u);
  EXPECT_EQ(ids_on_disk(), (std::vector<std::string>{"req-0", "req-1", "req-2", "req-3", "req-5"}));
}

// With the batch interval far beyond the test and the writer's own wake mark (4096) not reached,
// only the backstop can write: it must do so when the queue reaches its mark, each time.
TEST_F(AuditBatchTest, BackstopWritesTheQueueAtItsMarkWhenTheWriterDoesNot) {
  AuditOptions opt;
  opt.dir = dir_;
  opt.fsync = FsyncPolicy::kBatch;
  opt.batch_interval_ms = 3'600'000;
  opt.backstop_at_entries = 100;
  auto opened = AuditLog::open(opt, test_key());
  ASSERT_TRUE(opened) << opened.error().message;
  std::unique_ptr<AuditLog> log = std::move(opened).value();
  for (int round = 1; round <= 2; ++round) {
    const int first = (round - 1) * 100;
    for (int i = first; i < first + 99; ++i) ASSERT_TRUE(log->append_request(sample_request(i)));
    EXPECT_EQ(lines_on_disk(), static_cast<size_t>(first));        // below the mark: still queued
    ASSERT_TRUE(log->append_request(sample_request(first + 99)));  // reaches the mark
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (lines_on_disk() < static_cast<size_t>(round * 100) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ASSERT_EQ(lines_on_disk(), static_cast<size_t>(round * 100)) << "round " << round;
    VerifyReport r = verify();  // chained and sealed as the writer would have
    EXPECT_TRUE(r.clean());
    EXPECT_EQ(r.entries_ok, static_cast<uint64_t>(round * 100));
  }
  EXPECT_EQ(ids_on_disk().size(), 200u);
  std::vector<std::string> ids = ids_on_disk();
  for (int i = 0; i < 200; ++i) ASSERT_EQ(ids[i], "req-" + std::to_string(i));
  ASSERT_TRUE(log->append_request(sample_request(200)));
  log.reset();  // shutdown still flushes what is queued below the mark
  VerifyReport r = verify();
  EXPECT_TRUE(r.clean());
  EXPECT_EQ(r.entries_ok, 201u);
}

// The writer runs in SCHED_IDLE (never delays an io thread), its backstop in SCHED_OTHER at
// nice 19 (makes progress when every core is busy).
TEST_F(AuditBatchTest, WriterIsSchedIdleAndBackstopIsNice19) {
  auto log = open_log(FsyncPolicy::kBatch, 3'600'000);
  ASSERT_TRUE(log);
  NamedThreadScheduling writer = scheduling_of_thread_named("audit-writer", SCHED_IDLE);
  EXPECT_EQ(writer.policy, SCHED_IDLE);
  EXPECT_EQ(writer.nice, 19);
  NamedThreadScheduling backstop = scheduling_of_thread_named("audit-backstop", SCHED_OTHER);
  EXPECT_EQ(backstop.policy, SCHED_OTHER);
  EXPECT_EQ(backstop.nice, 19);
}

// An idle writer stops waking every interval (an idle server makes no wake-ups); the next append
// wakes it and is written without a sync() from the caller.
TEST_F(AuditBatchTest, IdleWriterSleepsUntilTheNextAppend) {
  AuditOptions opt;
  opt.dir = dir_;
  opt.fsync = FsyncPolicy::kBatch;
  opt.batch_interval_ms = 5;
  opt.idle_sleep_after_ms = 20;
  auto opened = AuditLog::open(opt, test_key());
  ASSERT_TRUE(opened) << opened.error().message;
  std::unique_ptr<AuditLog> log = std::move(opened).value();
  ASSERT_TRUE(log->append_request(sample_request(1)));
  enclave::testing::eventually([&] { return lines_on_disk() >= 1; }, std::chrono::seconds(2),
                               std::chrono::milliseconds(5));
  ASSERT_EQ(lines_on_disk(), 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // idle well past 20 ms
  // Awake it would wake ~60 times in 300 ms (every 5 ms).
  EXPECT_LE(enclave::testing::wakeups_of_thread_named_during("audit-writer",
                                                             std::chrono::milliseconds(300)),
            2);
  ASSERT_TRUE(log->append_request(sample_request(2)));
  enclave::testing::eventually([&] { return lines_on_disk() >= 2; }, std::chrono::seconds(2),
                               std::chrono::milliseconds(5));
  EXPECT_EQ(ids_on_disk(), (std::vector<std::string>{"req-1", "req-2"}));
}

}  // namespace
}  // namespace enclave::audit
