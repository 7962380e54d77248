// Store: sealing with row-bound AAD, plaintext absent from db/WAL, opt-in history, erasure by
// crypto-shredding (also for copies taken before), retention with an injected clock, API keys.
#include "store/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "../common/eventually.h"
#include "../common/thread_nice.h"
#include "crypto/file_util.h"
#include "store/retention.h"
#include "store_test_util.h"

namespace enclave::store {
namespace {
namespace fs = std::filesystem;

constexpr int64_t kDayMs = 24LL * 3600 * 1000;
constexpr int64_t kT0 = 1'750'000'000'000;  // a fixed "now"

class StoreTest : public testing::KeyedDirTest {
 protected:
  void SetUp() override {
    KeyedDirTest::SetUp();
    if (HasFatalFailure()) return;
    store_ = open_store(dir_ / "enclave.db");
    ASSERT_TRUE(store_);
  }
  void TearDown() override {
    store_.reset();
    KeyedDirTest::TearDown();
  }
  std::unique_ptr<Store> open_store(const fs::path& db) {
    StoreOptions opt;
    opt.db_path = db;
    opt.now_ms = [this] { return now_.load(); };
    auto s = Store::open(opt, *keys_);
    EXPECT_TRUE(s) << (s ? "" : s.error().message);
    if (!s) return nullptr;
    (*s)->set_event_sink([this](const AdminEvent& e) {
      events_.push_back(e);
      return Status::ok();
    });
    return std::move(s).value();
  }
  static bool file_contains(const fs::path& p, std::string_view needle) {
    auto text = crypto::read_file(p);
    return text && text->find(needle) != std::string::npos;
  }
  int exec_count(const fs::path& db, const std::string& sql) {
    sqlite3* h = nullptr;
    sqlite3_open(db.c_str(), &h);
    char* err = nullptr;
    int rc = sqlite3_exec(h, sql.c_str(), nullptr, nullptr, &err);
    sqlite3_free(err);
    int changes = sqlite3_changes(h);
    sqlite3_close(h);
    return rc == SQLITE_OK ? changes : -1;
  }

  std::unique_ptr<Store> store_;
  std::atomic<int64_t> now_{kT0};
  std::vector<AdminEvent> events_;
};

TEST_F(StoreTest, MigrationsAppliedAndReopenIsIdempotent) {
  auto v = store_->schema_version();
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, Store::schema_version_supported());
  EXPECT_GE(*v, 1);
  store_.reset();
  store_ = open_store(dir_ / "enclave.db");
  ASSERT_TRUE(store_);
  EXPECT_EQ(*store_->schema_version(), Store::schema_version_supported());
  // A database from a newer binary is refused with a clear message.
  store_.reset();
  ASSERT_EQ(exec_count(dir_ / "enclave.db", "PRAGMA user_version=999"), 0);
  StoreOptions opt;
  opt.db_path = dir_ / "enclave.db";
  auto newer = Store::open(opt, *keys_);
  ASSERT_FALSE(newer);
  EXPECT_NE(newer.error().message.find("newer"), std::string::npos);
}

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return 07777;  // no such file: matches no expected mode
  return st.st_mode & 0777;
}

// SQLite alone creates the database 0644 (less the umask) and gives -wal/-shm the database's mode:
// the store creates the file 0600 first, and a missing directory 0700.
TEST_F(StoreTest, DatabaseFilesArePrivateWhateverTheUmask) {
  const mode_t old_umask = ::umask(022);
  const fs::path fresh_dir = dir_ / "fresh" / "data";
  {
    auto s = open_store(fresh_dir / "enclave.db");
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->create_tenant("acme"));
    EXPECT_EQ(mode_of(dir_ / "fresh"), 0700u);
    EXPECT_EQ(mode_of(fresh_dir), 0700u);
    for (const char* name : {"enclave.db", "enclave.db-wal", "enclave.db-shm"}) {
      EXPECT_EQ(mode_of(fresh_dir / name), 0600u) << name;
    }
  }
  // A directory the operator made keeps its mode; the database in it is still private.
  const fs::path operator_dir = dir_ / "operator";
  fs::create_directories(operator_dir);
  fs::permissions(operator_dir,
                  fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec,
                  fs::perm_options::replace);
  {
    auto s = open_store(operator_dir / "enclave.db");
    ASSERT_TRUE(s);
    EXPECT_EQ(mode_of(operator_dir), 0750u);
    EXPECT_EQ(mode_of(operator_dir / "enclave.db"), 0600u);
  }
  ::umask(old_umask);
}

TEST_F(StoreTest, HistoryIsOptInPerTenant) {
  ASSERT_TRUE(store_->create_tenant("off"));
  ASSERT_TRUE(store_->create_tenant("on", {.history_enabled = true}));
  auto denied = store_->append_message("off", "c1", "user", "hello");
  ASSERT_FALSE(denied);
  EXPECT_EQ(denied.error().code, ErrorCode::kPermissionDenied);
  EXPECT_TRUE(store_->append_message("on", "c1", "user", "hello"));
  ASSERT_TRUE(store_->update_tenant("off", {.history_enabled = true}));
  EXPECT_TRUE(store_->append_message("off", "c1", "user", "hello"));
  EXPECT_FALSE(store_->append_message("nobody", "c1", "user", "hello"));
}

TEST_F(StoreTest, ConversationRoundTrip) {
  ASSERT_TRUE(store_->create_tenant("acme", {.history_enabled = true}));
  ASSERT_TRUE(store_->append_message("acme", "conv", "user", "What is 2+2?", kT0));
  ASSERT_TRUE(store_->append_message("acme", "conv", "assistant", "4", kT0 + 1));
  ASSERT_TRUE(store_->append_message("acme", "other", "user", "unrelated", kT0));
  auto msgs = store_->conversation("acme", "conv");
  ASSERT_TRUE(msgs) << msgs.error().message;
  ASSERT_EQ(msgs->size(), 2u);
  EXPECT_EQ((*msgs)[0].content, "What is 2+2?");
  EXPECT_EQ((*msgs)[0].role, "user");
  EXPECT_EQ((*msgs)[1].content, "4");
}

TEST_F(StoreTest, PlaintextAbsentFromDatabaseAndWal) {
  ASSERT_TRUE(store_->create_tenant("acme", {.history_enabled = true}));
  const std::string marker = "PLAINTEXT-CANARY-7f3a9c-card-4111111111111111";
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(store_->append_message("acme", "c", "user", marker + " #" + std::to_string(i)));
  }
  fs::path db = dir_ / "enclave.db", wal = dir_ / "enclave.db-wal";
  ASSERT_TRUE(fs::exists(wal));
  EXPECT_GT(fs::file_size(wal), 0u);
  // Before a checkpoint the rows live in the WAL; after it, in the main file. Neither holds it.
  EXPECT_FALSE(file_contains(db, "PLAINTEXT-CANARY"));
  EXPECT_FALSE(file_contains(wal, "PLAINTEXT-CANARY"));
  ASSERT_TRUE(store_->checkpoint());
  EXPECT_FALSE(file_contains(db, "PLAINTEXT-CANARY"));
  // Sanity: the scan would find an unsealed string (tenant names are stored in clear).
  EXPECT_TRUE(file_contains(db, "acme"));
  auto msgs = store_->conversation("acme", "c");
  ASSERT_TRUE(msgs);
  EXPECT_EQ(msgs->size(), 50u);
}

TEST_F(StoreTest, CiphertextMovedToAnotherRowFailsToOpen) {
  ASSERT_TRUE(store_->create_tenant("acme", {.history_enabled = true}));
  ASSERT_TRUE(store_->create_tenant("beta", {.history_enabled = true}));
  auto a = store_->append_message("acme", "c", "user", "acme secret", kT0);
  auto b = store_->append_message("acme", "c", "user", "acme other", kT0 + 1);
  auto c = store_->append_message("beta", "c", "user", "beta message", kT0);
  ASSERT_TRUE(a && b && c);
  fs::path db = dir_ / "enclave.db";
  // Same tenant, another row.
  ASSERT_EQ(exec_count(db,
                       "UPDATE messages SET content_sealed=(SELECT content_sealed FROM "
                       "messages WHERE id='" +
                           *a + "') WHERE id='" + *b + "'"),
            1);
  auto moved = store_->conversation("acme", "c");
  ASSERT_FALSE(moved);
  EXPECT_EQ(moved.error().code, ErrorCode::kCorruptData);
  EXPECT_EQ(moved.error().message.find("acme secret"), std::string::npos);
  // Across tenants: move the row itself into tenant beta.
  ASSERT_EQ(exec_count(db, "DELETE FROM messages WHERE id='" + *b + "'"), 1);
  ASSERT_EQ(exec_count(db, "UPDATE messages SET tenant='beta' WHERE id='" + *a + "'"), 1);
  auto cross = store_->conversation("beta", "c");
  ASSERT_FALSE(cross);
  EXPECT_EQ(cross.error().code, ErrorCode::kCorruptData);
}

TEST_F(StoreTest, ErasureMakesCopiesTakenBeforeUnreadable) {
  ASSERT_TRUE(store_->create_tenant("acme", {.history_enabled = true}));
  ASSERT_TRUE(store_->create_tenant("keep", {.history_enabled = true}));
  ASSERT_TRUE(store_->append_message("acme", "c", "user", "to be forgotten"));
  ASSERT_TRUE(store_->append_message("keep", "c", "user", "to be kept"));
  ASSERT_TRUE(store_->record_usage({.tenant = "acme",
                                    .api_key_name = "k",
                                    .request_id = "r1",
                                    .backend = "local",
                                    .model = "m",
                                    .model_version = "1"}));
  ASSERT_TRUE(store_->create_api_key("acme-key", "acme"));
  // Backup taken before erasure (db + WAL, as a file-level copy would).
  fs::path backup = dir_ / "backup";
  fs::create_directories(backup);
  fs::copy_file(dir_ / "enclave.db", backup / "enclave.db");
  if (fs::exists(dir_ / "enclave.db-wal")) {
    fs::copy_file(dir_ / "enclave.db-wal", backup / "enclave.db-wal");
  }
  events_.clear();
  auto report = store_->erase_tenant("acme", "admin@test");
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_TRUE(report->key_destroyed);
  EXPECT_EQ(report->messages_deleted, 1);
  EXPECT_EQ(report->usage_deleted, 1);
  EXPECT_EQ(report->api_keys_deleted, 1);
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].action, "tenant_erased");
  EXPECT_EQ(events_[0].tenant, "acme");

  EXPECT_FALSE(keys_->has_tenant_key("acme"));
  EXPECT_FALSE(store_->conversation("acme", "c"));
  auto tenants = store_->list_tenants();
  ASSERT_TRUE(tenants);
  ASSERT_EQ(tenants->size(), 1u);
  EXPECT_EQ((*tenants)[0].name, "keep");
  // The old copy still holds the sealed row, but nothing can open it any more.
  auto old = open_store(backup / "enclave.db");
  ASSERT_TRUE(old);
  auto from_backup = old->conversation("acme", "c");
  ASSERT_FALSE(from_backup);
  EXPECT_EQ(from_backup.error().code, ErrorCode::kNotFound);
  auto kept = old->conversation("keep", "c");
  ASSERT_TRUE(kept);
  EXPECT_EQ((*kept)[0].content, "to be kept");
  // Erasing again is a clear not-found.
  EXPECT_FALSE(store_->erase_tenant("acme"));
}

TEST_F(StoreTest, RetentionWithInjectedClock) {
  ASSERT_TRUE(store_->create_tenant("short", {.history_enabled = true, .retention_days = 7}));
  ASSERT_TRUE(store_->create_tenant("forever", {.history_enabled = true}));
  ASSERT_TRUE(store_->append_message("short", "c", "user", "old", kT0 - 10 * kDayMs));
  ASSERT_TRUE(store_->append_message("short", "c", "user", "recent", kT0 - 1 * kDayMs));
  ASSERT_TRUE(store_->append_message("forever", "c", "user", "ancient", kT0 - 900 * kDayMs));
  events_.clear();
  auto r = store_->apply_retention(kT0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->total_deleted, 1);
  auto left = store_->conversation("short", "c");
  ASSERT_TRUE(left);
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].content, "recent");
  EXPECT_EQ(store_->conversation("forever", "c")->size(), 1u);
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].action, "retention_applied");
  // Seven more days later the recent one goes too.
  auto r2 = store_->apply_retention(kT0 + 7 * kDayMs);
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->total_deleted, 1);
  EXPECT_TRUE(store_->conversation("short", "c")->empty());
}

TEST_F(StoreTest, RetentionSchedulerRunsInBackground) {
  ASSERT_TRUE(store_->create_tenant("short", {.history_enabled = true, .retention_days = 1}));
  ASSERT_TRUE(store_->append_message("short", "c", "user", "expires", kT0));
  std::atomic<int64_t> fake_now{kT0};
  RetentionScheduler sched(*store_, std::chrono::milliseconds(5), [&] { return fake_now.load(); });
  sched.start();
  // Passes at kT0 delete nothing; jump the injected clock two days ahead.
  while (sched.passes() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(store_->conversation("short", "c")->size(), 1u);
  fake_now = kT0 + 2 * kDayMs;
  uint64_t seen = sched.passes();
  while (sched.passes() < seen + 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  sched.stop();
  EXPECT_TRUE(store_->conversation("short", "c")->empty());
  EXPECT_TRUE(sched.last_error());
}

TEST_F(StoreTest, ApiKeysHashedAndConstantTimeChecked) {
  ASSERT_TRUE(store_->create_tenant("acme"));
  auto created = store_->create_api_key("ci", "acme");
  ASSERT_TRUE(created) << created.error().message;
  std::string key(created->key.view());
  ASSERT_FALSE(events_.empty());
  EXPECT_EQ(events_.back().action, "api_key_created");
  for (const auto& [k, v] : events_.back().fields) EXPECT_EQ(v.find(key), std::string::npos);

  auto who = store_->authenticate_api_key(key);
  ASSERT_TRUE(who);
  EXPECT_EQ(who->name, "ci");
  EXPECT_EQ(who->tenant, "acme");
  auto bad = store_->authenticate_api_key(key.substr(0, key.size() - 1) + "x");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kUnauthenticated);
  EXPECT_FALSE(store_->create_api_key("ci", "acme"));   // duplicate name
  EXPECT_FALSE(store_->create_api_key("x", "nobody"));  // unknown tenant

  ASSERT_TRUE(store_->checkpoint());
  EXPECT_FALSE(file_contains(dir_ / "enclave.db", key));
  EXPECT_FALSE(file_contains(dir_ / "enclave.db", key.substr(3)));

  ASSERT_TRUE(store_->revoke_api_key("ci"));
  EXPECT_FALSE(store_->authenticate_api_key(key));
  auto list = store_->list_api_keys();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_TRUE((*list)[0].revoked);
}

TEST_F(StoreTest, UsageRecords) {
  ASSERT_TRUE(store_->create_tenant("acme"));
  UsageRecord r{.tenant = "acme",
                .api_key_name = "ci",
                .request_id = "req-1",
                .backend = "local",
                .model = "deepseek-v2-lite",
                .model_version = "q4_0@abc",
                .prompt_tokens = 12,
                .completion_tokens = 34,
                .latency_ms = 56.5,
                .cost_micros = 78};
  ASSERT_TRUE(store_->record_usage(r));
  now_ = kT0 + 1000;
  r.request_id = "req-2";
  ASSERT_TRUE(store_->record_usage(r));
  auto all = store_->usage("acme");
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].completion_tokens, 34u);
  EXPECT_EQ((*all)[0].created_at_ms, kT0);
  EXPECT_DOUBLE_EQ((*all)[1].latency_ms, 56.5);
  EXPECT_EQ(store_->usage("acme", kT0 + 1)->size(), 1u);
}

// The batch-mode checkpoint thread is background work: named, SCHED_OTHER at nice 19.
TEST_F(StoreTest, BatchCheckpointThreadRunsAtNice19) {
  StoreOptions opt;
  opt.db_path = dir_ / "checkpoint.db";
  opt.sync = SyncPolicy::kBatch;
  auto s = Store::open(opt, *keys_);
  ASSERT_TRUE(s) << s.error().message;
  enclave::testing::NamedThreadScheduling t =
      enclave::testing::scheduling_of_thread_named("db-checkpoint", SCHED_OTHER);
  EXPECT_EQ(t.policy, SCHED_OTHER);
  EXPECT_EQ(t.nice, 19);
}

// With nothing committed the checkpoint thread stops waking after a second; a commit wakes it.
TEST_F(StoreTest, IdleCheckpointThreadSleepsUntilACommit) {
  StoreOptions opt;
  opt.db_path = dir_ / "idle.db";
  opt.sync = SyncPolicy::kBatch;
  opt.batch_interval_ms = 5;
  auto s = Store::open(opt, *keys_);
  ASSERT_TRUE(s) << s.error().message;
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));  // idle past 1 s
  // Awake it would wake ~60 times in 300 ms (every 5 ms).
  EXPECT_LE(enclave::testing::wakeups_of_thread_named_during("db-checkpoint",
                                                             std::chrono::milliseconds(300)),
            2);
  const long before = enclave::testing::voluntary_switches_of_thread_named("db-checkpoint");
  ASSERT_TRUE((*s)->record_usage({.tenant = "t", .api_key_name = "k", .request_id = "1"}));
  EXPECT_TRUE(enclave::testing::eventually(
      [&] {
        return enclave::testing::voluntary_switches_of_thread_named("db-checkpoint") > before;
      },
      std::chrono::seconds(2), std::chrono::milliseconds(5)));
}

TEST_F(StoreTest, EverySyncPolicyPersistsAcrossReopen) {
  for (SyncPolicy policy : {SyncPolicy::kAlways, SyncPolicy::kBatch, SyncPolicy::kNever}) {
    fs::path db = dir_ / ("policy" + std::to_string(static_cast<int>(policy)) + ".db");
    {
      StoreOptions opt;
      opt.db_path = db;
      opt.sync = policy;
      opt.batch_interval_ms = 2;
      auto s = Store::open(opt, *keys_);
      ASSERT_TRUE(s) << s.error().message;
      for (int i = 0; i < 20; ++i) {
        ASSERT_TRUE((*s)->record_usage({.tenant = "t",
                                        .api_key_name = "k",
                                        .request_id = std::to_string(i),
                                        .backend = "local",
                                        .model = "m",
                                        .model_version = "v"}));
      }
    }
    StoreOptions opt;
    opt.db_path = db;
    auto s = Store::open(opt, *keys_);
    ASSERT_TRUE(s);
    EXPECT_EQ((*s)->usage("t")->size(), 20u);
  }
}

}  // namespace
}  // namespace enclave::store
