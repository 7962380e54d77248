// SIGKILL under load: every entry acknowledged (append returned, fsync policy "always") before
// the kill is on disk afterwards, and `verify` is clean (a torn tail is reported as truncated).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>

#include "audit/audit_log.h"
#include "audit/entry.h"
#include "audit/verify.h"
#include "audit_test_util.h"

namespace enclave::audit {
namespace {
namespace fs = std::filesystem;

std::set<uint64_t> seqs_on_disk(const fs::path& dir) {
  std::set<uint64_t> out;
  for (const auto& f : list_audit_files(dir)) {
    for (const auto& line : testing::read_lines(f)) {
      auto key = testing::test_key();
      ParsedLine p = parse_line(line, &key);
      if (p.json_ok && p.hmac_ok) out.insert(p.seq);
    }
  }
  return out;
}

TEST(AuditCrash, SigkillLosesNoAcknowledgedEntry) {
  auto dir = testing::temp_dir("auditcrash");
  for (int round = 0; round < 3; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      std::string fd = std::to_string(fds[1]);
      ::execl(AUDIT_CRASH_HELPER, AUDIT_CRASH_HELPER, dir.c_str(), fd.c_str(), nullptr);
      ::_exit(127);
    }
    ::close(fds[1]);
    std::vector<uint64_t> acked;
    uint64_t v;
    // Let it run until a few hundred entries are acknowledged, then kill it mid-write.
    size_t kill_after = 300 + 137 * round;
    while (acked.size() < kill_after && ::read(fds[0], &v, sizeof(v)) == sizeof(v))
      acked.push_back(v);
    ASSERT_EQ(acked.size(), kill_after) << "helper died early";
    ::kill(pid, SIGKILL);
    // Anything already in the pipe was acknowledged before the kill too.
    while (::read(fds[0], &v, sizeof(v)) == sizeof(v)) acked.push_back(v);
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));
    EXPECT_EQ(WTERMSIG(status), SIGKILL);

    auto on_disk = seqs_on_disk(dir);
    for (uint64_t s : acked) EXPECT_TRUE(on_disk.count(s)) << "acknowledged seq " << s << " lost";
    auto key = testing::test_key();
    auto report = verify_audit_files(list_audit_files(dir), &key);
    ASSERT_TRUE(report);
    EXPECT_TRUE(report->clean()) << format_issue(*report->tamper);
    if (report->truncated) {
      EXPECT_EQ(report->truncated->kind, IssueKind::kTruncated);
      EXPECT_EQ(report->truncated->file, list_audit_files(dir).back());
    }
    // Next round reopens the log (recovering any torn tail) and crashes again.
  }
  // Final reopen: the chain continues and verifies clean with no truncation left.
  AuditOptions opt;
  opt.dir = dir;
  auto log = AuditLog::open(opt, testing::test_key());
  ASSERT_TRUE(log) << log.error().message;
  ASSERT_TRUE((*log)->append_admin({"shutdown_check", "test", "", {}}));
  log->reset();
  auto key = testing::test_key();
  auto report = verify_audit_files(list_audit_files(dir), &key);
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->clean());
  EXPECT_FALSE(report->truncated);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace enclave::audit
