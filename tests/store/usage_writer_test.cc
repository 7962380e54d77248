// UsageWriter: every pushed row reaches the database, in push order, in batches written by the
// writer thread; destruction flushes; a failing database keeps the rows queued (reported) and a
// later write stores them; the queue cap drops and counts the excess. The writer runs in
// SCHED_IDLE; a nice-19 backstop thread stores the queue when it reaches backstop_at_rows.
#include "store/usage_writer.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "../common/eventually.h"
#include "../common/thread_nice.h"
#include "store_test_util.h"

namespace enclave::store {
namespace {
namespace fs = std::filesystem;

UsageRecord row(int i) {
  return UsageRecord{.tenant = "acme",
                     .api_key_name = "team",
                     .request_id = "req-" + std::to_string(i),
                     .backend = "remote:cloud",
                     .model = "deepseek-chat",
                     .prompt_tokens = static_cast<uint32_t>(i),
                     .completion_tokens = 7,
                     .latency_ms = 0.25};
}

class UsageWriterTest : public testing::KeyedDirTest {
 protected:
  void SetUp() override {
    KeyedDirTest::SetUp();
    if (HasFatalFailure()) return;
    auto s = Store::open({.db_path = dir_ / "enclave.db", .sync = SyncPolicy::kBatch}, *keys_);
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(s).value();
  }
  void TearDown() override {
    store_.reset();
    KeyedDirTest::TearDown();
  }
  // Runs `sql` on a second connection (as another process would).
  void exec_other(const std::string& sql) {
    sqlite3* h = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "enclave.db").c_str(), &h), SQLITE_OK);
    char* err = nullptr;
    int rc = sqlite3_exec(h, sql.c_str(), nullptr, nullptr, &err);
    std::string msg = err ? err : "";
    sqlite3_free(err);
    sqlite3_close(h);
    ASSERT_EQ(rc, SQLITE_OK) << msg;
  }
  std::vector<std::string> stored_ids() {
    auto rows = store_->usage("acme");
    EXPECT_TRUE(rows);
    std::vector<std::string> ids;
    if (rows) {
      for (const auto& r : *rows) ids.push_back(r.request_id);
    }
    return ids;
  }
  static std::vector<std::string> ids(int from, int to) {
    std::vector<std::string> out;
    for (int i = from; i < to; ++i) out.push_back("req-" + std::to_string(i));
    return out;
  }

  std::unique_ptr<Store> store_;
};

TEST_F(UsageWriterTest, WriterThreadStoresEveryRowInOrder) {
  UsageWriter w(*store_, {.interval_ms = 2, .wake_at_rows = 64});
  // Two producers, each with its own ids; each producer's rows must keep their order.
  std::thread a([&] {
    for (int i = 0; i < 500; ++i) w.push(row(i));
  });
  std::thread b([&] {
    for (int i = 1000; i < 1500; ++i) w.push(row(i));
  });
  a.join();
  b.join();
  // No flush(): the writer thread alone must store everything.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (w.rows_written() < 1000 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(w.rows_written(), 1000u);
  EXPECT_EQ(w.rows_queued(), 0u);
  EXPECT_EQ(w.rows_dropped(), 0u);
  std::vector<std::string> got = stored_ids();
  ASSERT_EQ(got.size(), 1000u);
  std::vector<std::string> from_a, from_b;
  for (const auto& id : got) (std::stoi(id.substr(4)) < 1000 ? from_a : from_b).push_back(id);
  EXPECT_EQ(from_a, ids(0, 500));
  EXPECT_EQ(from_b, ids(1000, 1500));
  auto all = store_->usage("acme");
  ASSERT_TRUE(all);
  EXPECT_EQ((*all)[0].backend, "remote:cloud");
  EXPECT_EQ((*all)[0].completion_tokens, 7u);
  EXPECT_DOUBLE_EQ((*all)[0].latency_ms, 0.25);
  EXPECT_GT((*all)[0].created_at_ms, 0);
}

TEST_F(UsageWriterTest, DestructionFlushesTheQueue) {
  {
    // An interval far beyond the test: only the destructor can write.
    UsageWriter w(*store_, {.interval_ms = 3'600'000});
    for (int i = 0; i < 100; ++i) w.push(row(i));
    EXPECT_EQ(w.rows_written(), 0u);
  }
  EXPECT_EQ(stored_ids(), ids(0, 100));
}

TEST_F(UsageWriterTest, StopFlushesAndLaterRowsStillReachTheDatabase) {
  UsageWriter w(*store_, {.interval_ms = 3'600'000});
  for (int i = 0; i < 3; ++i) w.push(row(i));
  w.stop();
  EXPECT_EQ(stored_ids(), ids(0, 3));
  w.push(row(3));  // after stop: written by the next flush (here the destructor's)
  ASSERT_TRUE(w.flush());
  EXPECT_EQ(stored_ids(), ids(0, 4));
}

TEST_F(UsageWriterTest, FailedBatchStaysQueuedInOrderAndIsWrittenLater) {
  std::mutex mu;
  std::vector<std::pair<size_t, size_t>> reports;  // (rows kept, rows dropped)
  UsageWriterOptions o;
  o.interval_ms = 3'600'000;  // writes only through flush(): deterministic
  o.wake_at_rows = 1000;      // never reached: no early wake-up races the flushes below
  o.max_queued_rows = 6;
  o.on_error = [&](const Error& e, size_t rows, size_t dropped) {
    EXPECT_FALSE(e.message.empty());
    std::lock_guard lock(mu);
    reports.emplace_back(rows, dropped);
  };
  UsageWriter w(*store_, o);
  w.push(row(0));
  ASSERT_TRUE(w.flush());

  exec_other("ALTER TABLE usage RENAME TO usage_away");  // inserts now fail
  for (int i = 1; i <= 4; ++i) w.push(row(i));
  Status st = w.flush();
  ASSERT_FALSE(st);
  EXPECT_EQ(w.rows_queued(), 4u);               // kept for the next attempt
  for (int i = 5; i <= 8; ++i) w.push(row(i));  // the cap (6) drops rows 7 and 8
  EXPECT_EQ(w.rows_dropped(), 2u);
  EXPECT_EQ(w.rows_queued(), 6u);

  exec_other("ALTER TABLE usage_away RENAME TO usage");
  ASSERT_TRUE(w.flush());
  EXPECT_EQ(w.rows_queued(), 0u);
  EXPECT_EQ(stored_ids(), ids(0, 7));  // rows 1..6 after row 0, in push order
  std::lock_guard lock(mu);
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[0], std::make_pair(size_t{4}, size_t{0}));  // the failed batch, kept
  EXPECT_EQ(reports[1], std::make_pair(size_t{0}, size_t{2}));  // the dropped rows
}

TEST_F(UsageWriterTest, BatchInsertIsAllOrNothing) {
  std::vector<UsageRecord> rows = {row(0), row(1), row(2)};
  ASSERT_TRUE(store_->record_usage_batch(rows));
  EXPECT_EQ(stored_ids(), ids(0, 3));
  ASSERT_TRUE(store_->record_usage_batch({}));
  EXPECT_EQ(stored_ids().size(), 3u);
}

// A batch goes in as several multi-row INSERTs (1, 2, 4 ... rows each): every size, around and
// beyond the largest statement, stores every row once, in order, with every field intact.
TEST_F(UsageWriterTest, EveryBatchSizeStoresEveryFieldInOrder) {
  int next = 0;
  std::vector<std::string> want;
  for (int size : {1, 2, 3, 5, 7, 8, 15, 31, 32, 33, 63, 64, 65, 100, 130}) {
    std::vector<UsageRecord> rows;
    for (int i = 0; i < size; ++i) {
      UsageRecord r = row(next);
      r.model_version = "v" + std::to_string(next % 5);
      r.completion_tokens = static_cast<uint32_t>(1000 + next);
      r.latency_ms = 0.5 * next;
      r.cost_micros = 7 * next;
      r.created_at_ms = next % 3 == 0 ? 0 : 1700000000000 + next;  // 0: the store's clock
      want.push_back(r.request_id);
      rows.push_back(std::move(r));
      ++next;
    }
    ASSERT_TRUE(store_->record_usage_batch(rows)) << "batch of " << size;
  }
  auto stored = store_->usage("acme");
  ASSERT_TRUE(stored);
  ASSERT_EQ(stored->size(), want.size());
  for (int i = 0; i < next; ++i) {
    const UsageRecord& r = (*stored)[static_cast<size_t>(i)];
    EXPECT_EQ(r.request_id, want[static_cast<size_t>(i)]);
    EXPECT_EQ(r.tenant, "acme");
    EXPECT_EQ(r.api_key_name, "team");
    EXPECT_EQ(r.backend, "remote:cloud");
    EXPECT_EQ(r.model, "deepseek-chat");
    EXPECT_EQ(r.model_version, "v" + std::to_string(i % 5));
    EXPECT_EQ(r.prompt_tokens, static_cast<uint32_t>(i));
    EXPECT_EQ(r.completion_tokens, static_cast<uint32_t>(1000 + i));
    EXPECT_EQ(r.latency_ms, 0.5 * i);
    EXPECT_EQ(r.cost_micros, 7 * i);
    if (i % 3 != 0) {
      EXPECT_EQ(r.created_at_ms, 1700000000000 + i);
    } else {
      EXPECT_GT(r.created_at_ms, 0);
    }
  }
}

// The batch insert is prepared once and kept: it must keep working across many batches, across a
// batch that fails midway (nothing of it stored) and across schema changes made meanwhile.
TEST_F(UsageWriterTest, PreparedInsertSurvivesManyBatchesAndAFailedOne) {
  for (int b = 0; b < 300; ++b) {
    std::vector<UsageRecord> rows = {row(3 * b), row(3 * b + 1), row(3 * b + 2)};
    ASSERT_TRUE(store_->record_usage_batch(rows)) << "batch " << b;
  }
  ASSERT_EQ(stored_ids(), ids(0, 900));

  exec_other(
      "CREATE TRIGGER refuse_bad BEFORE INSERT ON usage WHEN NEW.request_id = 'req-bad' "
      "BEGIN SELECT RAISE(ABORT, 'refused by test'); END");
  UsageRecord bad = row(0);
  bad.request_id = "req-bad";
  std::vector<UsageRecord> failing = {row(900), bad, row(901)};
  Status st = store_->record_usage_batch(failing);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("usage"), std::string::npos) << st.error().message;
  EXPECT_EQ(stored_ids(), ids(0, 900));  // all or nothing

  std::vector<UsageRecord> next = {row(902)};
  ASSERT_TRUE(store_->record_usage_batch(next));  // the trigger is still there
  exec_other("DROP TRIGGER refuse_bad");
  std::vector<UsageRecord> last = {row(903)};
  ASSERT_TRUE(store_->record_usage_batch(last));
  std::vector<std::string> want = ids(0, 900);
  want.push_back("req-902");
  want.push_back("req-903");
  EXPECT_EQ(stored_ids(), want);
  // The single-row path still works beside the kept statement.
  ASSERT_TRUE(store_->record_usage(row(904)));
  EXPECT_EQ(stored_ids().size(), 903u);
}

// With the interval far beyond the test and wake_at_rows out of reach, only the backstop can
// store rows: it must do so when the queue reaches its mark, each time, in push order.
TEST_F(UsageWriterTest, BackstopStoresTheQueueAtItsMarkWhenTheWriterDoesNot) {
  UsageWriter w(*store_,
                {.interval_ms = 3'600'000, .wake_at_rows = 100'000, .backstop_at_rows = 50});
  for (int round = 1; round <= 2; ++round) {
    const int first = (round - 1) * 50;
    for (int i = first; i < first + 49; ++i) w.push(row(i));
    EXPECT_EQ(w.rows_written(), static_cast<uint64_t>(first));  // below the mark: still queued
    w.push(row(first + 49));                                    // reaches the mark
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (w.rows_written() < static_cast<uint64_t>(round * 50) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ASSERT_EQ(w.rows_written(), static_cast<uint64_t>(round * 50)) << "round " << round;
    EXPECT_EQ(w.rows_queued(), 0u);
    EXPECT_EQ(stored_ids(), ids(0, round * 50));
  }
  w.push(row(100));
  w.stop();  // shutdown still stores what is queued below the mark
  EXPECT_EQ(stored_ids(), ids(0, 101));
}

// The writer runs in SCHED_IDLE (never delays an io thread), its backstop in SCHED_OTHER at
// nice 19 (makes progress when every core is busy).
TEST_F(UsageWriterTest, WriterIsSchedIdleAndBackstopIsNice19) {
  UsageWriter w(*store_, {.interval_ms = 3'600'000});
  enclave::testing::NamedThreadScheduling writer =
      enclave::testing::scheduling_of_thread_named("usage-writer", SCHED_IDLE);
  EXPECT_EQ(writer.policy, SCHED_IDLE);
  EXPECT_EQ(writer.nice, 19);
  enclave::testing::NamedThreadScheduling backstop =
      enclave::testing::scheduling_of_thread_named("usage-backstop", SCHED_OTHER);
  EXPECT_EQ(backstop.policy, SCHED_OTHER);
  EXPECT_EQ(backstop.nice, 19);
}

// An idle writer stops waking every interval; the next push wakes it and is stored without a
// flush() from the caller.
TEST_F(UsageWriterTest, IdleWriterSleepsUntilTheNextPush) {
  UsageWriter w(*store_, {.interval_ms = 5, .idle_sleep_after_ms = 20});
  w.push(row(1));
  enclave::testing::eventually([&] { return w.rows_written() >= 1; }, std::chrono::seconds(2),
                               std::chrono::milliseconds(5));
  ASSERT_EQ(w.rows_written(), 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // idle well past 20 ms
  // Awake it would wake ~60 times in 300 ms (every 5 ms).
  EXPECT_LE(enclave::testing::wakeups_of_thread_named_during("usage-writer",
                                                             std::chrono::milliseconds(300)),
            2);
  w.push(row(2));
  enclave::testing::eventually([&] { return w.rows_written() >= 2; }, std::chrono::seconds(2),
                               std::chrono::milliseconds(5));
  EXPECT_EQ(w.rows_written(), 2u);
  EXPECT_EQ(stored_ids(), ids(1, 3));
}

}  // namespace
}  // namespace enclave::store
