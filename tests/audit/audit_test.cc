// AuditLog + verify: chain, HMAC, tamper kinds by line, rotation, torn tail, fsync policies.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <boost/json.hpp>
#include <thread>

#include "audit/audit_log.h"
#include "audit/entry.h"
#include "audit/verify.h"
#include "audit_test_util.h"

namespace enclave::audit {
namespace {
namespace fs = std::filesystem;
using testing::read_lines;
using testing::sample_request;
using testing::temp_dir;
using testing::test_key;
using testing::write_lines;

class AuditTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = temp_dir("audit"); }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<AuditLog> open_log(uint64_t max_file_bytes = 64ull << 20,
                                     FsyncPolicy policy = FsyncPolicy::kAlways) {
    AuditOptions opt;
    opt.dir = dir_;
    opt.max_file_bytes = max_file_bytes;
    opt.fsync = policy;
    opt.now_ms = [] { return int64_t{1'750'000'000'123}; };
    auto log = AuditLog::open(opt, test_key());
    EXPECT_TRUE(log) << (log ? "" : log.error().message);
    return log ? std::move(log).value() : nullptr;
  }
  void write_entries(int n, uint64_t max_file_bytes = 64ull << 20) {
    auto log = open_log(max_file_bytes);
    ASSERT_TRUE(log);
    for (int i = 1; i <= n; ++i) {
      if (i % 5 == 0) {
        ASSERT_TRUE(log->append_admin({"tenant_erased", "admin", "acme", {{"rows", "3"}}}));
      } else {
        ASSERT_TRUE(log->append_request(sample_request(i)));
      }
    }
  }
  VerifyReport verify(const crypto::SecretBytes* key_override = nullptr, bool chain_only = false) {
    auto key = test_key();
    auto r = verify_audit_files(list_audit_files(dir_),
                                chain_only ? nullptr : (key_override ? key_override : &key));
    EXPECT_TRUE(r);
    return r ? std::move(r).value() : VerifyReport{};
  }
  fs::path first_file() { return list_audit_files(dir_).at(0); }

  fs::path dir_;
};

// The audit directory (and any missing parent) is created 0700 and the files 0600, whatever the
// umask: entries name tenants and keys.
TEST_F(AuditTest, DirectoryAndFilesArePrivateWhateverTheUmask) {
  const mode_t old_umask = ::umask(022);
  AuditOptions opt;
  opt.dir = dir_ / "data" / "audit";
  opt.max_file_bytes = 512;  // rotates: more than one file
  auto log = AuditLog::open(opt, test_key());
  ASSERT_TRUE(log) << log.error().message;
  for (int i = 1; i <= 4; ++i) ASSERT_TRUE((*log)->append_request(sample_request(i)));
  auto mode_of = [](const fs::path& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 ? st.st_mode & 0777 : 07777;
  };
  EXPECT_EQ(mode_of(dir_ / "data"), 0700u);
  EXPECT_EQ(mode_of(opt.dir), 0700u);
  const auto files = list_audit_files(opt.dir);
  ASSERT_GE(files.size(), 2u);
  for (const fs::path& f : files) EXPECT_EQ(mode_of(f), 0600u) << f;
  ::umask(old_umask);
}

TEST_F(AuditTest, EntriesChainAndVerifyClean) {
  write_entries(20);
  auto files = list_audit_files(dir_);
  ASSERT_EQ(files.size(), 1u);
  auto lines = read_lines(files[0]);
  ASSERT_EQ(lines.size(), 20u);
  auto first = boost::json::parse(lines[0]).as_object();
  EXPECT_EQ(first["seq"].as_int64(), 1);
  EXPECT_EQ(first["prev"].as_string(), kGenesisHash);
  EXPECT_EQ(first["type"].as_string(), "request");
  EXPECT_EQ(first["key_name"].as_string(), "ci-key");
  EXPECT_EQ(first["sensitivity"].as_object()["email"].as_int64(), 2);
  EXPECT_EQ(first["ts"].as_string(), "2025-06-15T15:06:40.123Z");
  auto second = boost::json::parse(lines[1]).as_object();
  EXPECT_EQ(second["prev"].as_string(), line_hash(lines[0]));
  auto r = verify();
  EXPECT_TRUE(r.clean()) << format_issue(*r.tamper);
  EXPECT_FALSE(r.truncated);
  EXPECT_EQ(r.entries_ok, 20u);
  EXPECT_EQ(r.first_seq, 1u);
  EXPECT_EQ(r.last_seq, 20u);
}

TEST_F(AuditTest, ReopenContinuesChain) {
  write_entries(3);
  write_entries(4);
  auto r = verify();
  EXPECT_TRUE(r.clean());
  EXPECT_EQ(r.last_seq, 7u);
}

TEST_F(AuditTest, EditOneByteDetectedAsModifiedAtThatLine) {
  write_entries(10);
  auto lines = read_lines(first_file());
  size_t pos = lines[4].find("\"acme\"");
  ASSERT_NE(pos, std::string::npos);
  lines[4][pos + 1] = 'b';  // "bcme"
  write_lines(first_file(), lines);
  auto r = verify();
  ASSERT_FALSE(r.clean());
  EXPECT_EQ(r.tamper->kind, IssueKind::kModified);
  EXPECT_EQ(r.tamper->line, 5u);
  EXPECT_EQ(r.tamper->file, first_file());
  // Chain-only verification (no key) still pins the same line.
  auto c = verify(nullptr, true);
  ASSERT_FALSE(c.clean());
  EXPECT_EQ(c.tamper->kind, IssueKind::kModified);
  EXPECT_EQ(c.tamper->line, 5u);
}

TEST_F(AuditTest, EditingNumbersOrHmacIsDetected) {
  write_entries(6);
  auto lines = read_lines(first_file());
  auto pos = lines[2].find("\"prompt_tokens\":103");
  ASSERT_NE(pos, std::string::npos);
  lines[2].replace(pos, 19, "\"prompt_tokens\":104");
  write_lines(first_file(), lines);
  auto r = verify();
  ASSERT_FALSE(r.clean());
  EXPECT_EQ(r.tamper->line, 3u);
  EXPECT_EQ(r.tamper->kind, IssueKind::kModified);
}

TEST_F(AuditTest, DroppedLineDetectedAsRemoved) {
  write_entries(10);
  auto lines = read_lines(first_file());
  lines.erase(lines.begin() + 6);  // seq 7
  write_lines(first_file(), lines);
  auto r = verify();
  ASSERT_FALSE(r.clean());
  EXPECT_EQ(r.tamper->kind, IssueKind::kRemoved);
  EXPECT_EQ(r.tamper->line, 7u);
  EXPECT_NE(r.tamper->detail.find("seq 7"), std::string::npos);
}

TEST_F(AuditTest, SwappedLinesDetectedAsReordered) {
  write_entries(10);
  auto lines = read_lines(first_file());
  std::swap(lines[3], lines[4]);
  write_lines(first_file(), lines);
  auto r = verify();
  ASSERT_FALSE(r.clean());
  EXPECT_EQ(r.tamper->kind, IssueKind::kReordered);
  EXPECT_EQ(r.tamper->line, 4u);
}

TEST_F(AuditTest, InsertedForgedLineDetected) {
  write_entries(10);
  auto lines = read_lines(first_file());
  // A forged entry copying the shape of a real one but with an invented HMAC.
  std::string forged = lines[3];
  forged.replace(forged.find("\"ok\""), 4, "\"no\"");
  lines.insert(lines.begin() + 5, forged);
  write_lines(first_file(), lines);
  auto r = verify();
  ASSERT_FALSE(r.clean());
  EXPECT_EQ(r.tamper->kind, IssueKind::kInserted);
  EXPECT_EQ(r.tamper->line, 6u);
}

TEST_F(AuditTest, InsertedReplayOfValidLineDetected) {
  write_entries(10);
  auto lines = read_lines(first_file());
  lines.insert(lines.begin() + 7, lines[1]);  // replay seq 2 after seq 7
  write_lines(first_file(), lines);
  auto r = verify();
  ASSERT_FALSE(r.clean());
  EXPECT_EQ(r.tamper->kind, IssueKind::kInserted);
  EXPECT_EQ(r.tamper->line, 8u);
}

TEST_F(AuditTest, WrongKeyFailsAtFirstLine) {
  write_entries(3);
  auto other = test_key(0x10);
  auto r = verify(&other);
  ASSERT_FALSE(r.clean());
  EXPECT_EQ(r.tamper->line, 1u);
  EXPECT_EQ(r.tamper->kind, IssueKind::kModified);
}

TEST_F(AuditTest, RotationKeepsChainAcrossFiles) {
  write_entries(40, /*max_file_bytes=*/4096);
  auto files = list_audit_files(dir_);
  ASSERT_GE(files.size(), 3u);
  for (size_t i = 1; i < files.size(); ++i) {
    auto prev_lines = read_lines(files[i - 1]);
    auto cur = read_lines(files[i]);
    ASSERT_FALSE(cur.empty());
    auto obj = boost::json::parse(cur[0]).as_object();
    EXPECT_EQ(obj["prev"].as_string(), line_hash(prev_lines.back())) << files[i];
  }
  auto r = verify();
  EXPECT_TRUE(r.clean()) << format_issue(*r.tamper);
  EXPECT_EQ(r.entries_ok, 40u);

  // Verifying from a later file only: allowed, noted.
  auto partial = verify_audit_files({files[1], files[2]}, nullptr);
  ASSERT_TRUE(partial);
  EXPECT_TRUE(partial->clean());
  EXPECT_FALSE(partial->notes.empty());

  // A whole middle file removed: reported at the next file's first line.
  auto gap = verify_audit_files({files[0], files[2]}, nullptr);
  ASSERT_TRUE(gap);
  ASSERT_FALSE(gap->clean());
  EXPECT_EQ(gap->tamper->kind, IssueKind::kRemoved);
  EXPECT_EQ(gap->tamper->file, files[2]);
  EXPECT_EQ(gap->tamper->line, 1u);

  // Files given out of order: reordered.
  auto swapped = verify_audit_files({files[1], files[0]}, nullptr);
  ASSERT_TRUE(swapped);
  ASSERT_FALSE(swapped->clean());
}

TEST_F(AuditTest, TornTailIsTruncatedNotTamperingAndRecoveredOnReopen) {
  write_entries(5);
  auto full = testing::slurp(first_file());
  {
    std::ofstream out(first_file(), std::ios::binary | std::ios::app);
    out << R"({"v":1,"seq":6,"ts":"2025-06-15T15:06:40.123Z","type":"requ)";
  }
  auto r = verify();
  EXPECT_TRUE(r.clean());
  ASSERT_TRUE(r.truncated);
  EXPECT_EQ(r.truncated->kind, IssueKind::kTruncated);
  EXPECT_EQ(r.truncated->line, 6u);
  EXPECT_EQ(r.entries_ok, 5u);

  // The writer cuts the torn bytes, records that it did, and continues the chain.
  auto log = open_log();
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->append_request(sample_request(7)));
  log.reset();
  auto after = verify();
  EXPECT_TRUE(after.clean()) << format_issue(*after.tamper);
  EXPECT_FALSE(after.truncated);
  EXPECT_EQ(after.entries_ok, 7u);
  auto lines = read_lines(first_file());
  EXPECT_NE(lines[5].find("torn_tail_recovered"), std::string::npos);
}

TEST_F(AuditTest, TornLineInTheMiddleIsTampering) {
  write_entries(5);
  auto lines = read_lines(first_file());
  lines[2] = lines[2].substr(0, 40);
  write_lines(first_file(), lines);
  auto r = verify();
  ASSERT_FALSE(r.clean());
  EXPECT_EQ(r.tamper->line, 3u);
}

TEST_F(AuditTest, ConcurrentAppendsUnderEveryPolicy) {
  for (FsyncPolicy policy : {FsyncPolicy::kAlways, FsyncPolicy::kBatch, FsyncPolicy::kNever}) {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto log = open_log(16 << 10, policy);
    ASSERT_TRUE(log);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 100; ++i)
          EXPECT_TRUE(log->append_request(sample_request(t * 1000 + i)));
      });
    }
    for (auto& th : threads) th.join();
    ASSERT_TRUE(log->sync());
    EXPECT_EQ(log->last_seq(), 400u);
    log.reset();
    auto r = verify();
    EXPECT_TRUE(r.clean()) << fsync_policy_name(policy);
    EXPECT_EQ(r.entries_ok, 400u) << fsync_policy_name(policy);
  }
}

TEST_F(AuditTest, RefusesToContinueAfterTamperedLastEntry) {
  write_entries(3);
  auto lines = read_lines(first_file());
  lines[2][lines[2].find("acme") + 1] = 'x';
  write_lines(first_file(), lines);
  AuditOptions opt;
  opt.dir = dir_;
  auto log = AuditLog::open(opt, test_key());
  ASSERT_FALSE(log);
  EXPECT_EQ(log.error().code, ErrorCode::kCorruptData);
}

TEST(AuditPolicy, Parse) {
  EXPECT_EQ(*parse_fsync_policy("always"), FsyncPolicy::kAlways);
  EXPECT_EQ(*parse_fsync_policy("batch"), FsyncPolicy::kBatch);
  EXPECT_EQ(*parse_fsync_policy("never"), FsyncPolicy::kNever);
  EXPECT_FALSE(parse_fsync_policy("sometimes"));
  EXPECT_EQ(AuditOptions{}.fsync, FsyncPolicy::kAlways);  // the default is durable
}

}  // namespace
}  // namespace enclave::audit
