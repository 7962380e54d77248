// SIEM payload formats and the spool/position logic (file transport; no network).
#include "audit/siem.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <regex>

#include "audit/audit_log.h"
#include "audit_test_util.h"

namespace enclave::audit {
namespace {
namespace fs = std::filesystem;
using testing::read_lines;
using testing::temp_dir;
using testing::test_key;

std::unique_ptr<AuditLog> open_log(const fs::path& dir, uint64_t max_bytes = 64ull << 20) {
  AuditOptions opt;
  opt.dir = dir;
  opt.max_file_bytes = max_bytes;
  opt.now_ms = [] { return int64_t{1'750'000'000'000}; };
  auto log = AuditLog::open(opt, test_key());
  EXPECT_TRUE(log);
  return log ? std::move(log).value() : nullptr;
}

std::string one_line(const fs::path& dir, const RequestAudit& r) {
  auto log = open_log(dir);
  EXPECT_TRUE(log->append_request(r));
  log.reset();
  return read_lines(list_audit_files(dir).at(0)).at(0);
}

TEST(SiemFormat, Rfc5424Header) {
  auto dir = temp_dir("siemfmt");
  std::string line = one_line(dir, {.key_name = "k", .tenant = "acme", .outcome = "ok"});
  SyslogContext ctx;
  ctx.hostname = "host1";
  std::string msg = format_rfc5424(line, ctx);
  // <PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG ; facility 13 * 8 + info(6) = 110.
  std::regex re(
      R"(^<110>1 2025-06-15T15:06:40\.000Z host1 enclave \d+ request \[enclave@32473 seq="1"\] \{.*\}$)");
  EXPECT_TRUE(std::regex_match(msg, re)) << msg;
  EXPECT_EQ(msg.substr(msg.size() - line.size()), line);
  EXPECT_EQ(frame_octet_counted("abc"), "3 abc");
  std::string denied = one_line(temp_dir("siemfmt2"), {.outcome = "denied"});
  EXPECT_EQ(format_rfc5424(denied, ctx).rfind("<108>1 ", 0), 0u);  // warning
  fs::remove_all(dir);
}

TEST(SiemFormat, CefEscapingAndFields) {
  auto dir = temp_dir("siemcef");
  std::string line = one_line(dir, {.key_name = "a=b\\c",
                                    .tenant = "t|1",
                                    .route = "local",
                                    .sensitivity = {{"email", 3}},
                                    .outcome = "ok"});
  SyslogContext ctx;
  ctx.version = "1|2";
  std::string cef = format_cef(line, ctx);
  EXPECT_EQ(cef.rfind("CEF:0|Enclave|Enclave|1\\|2|request:ok|Inference request ok|3|", 0), 0u)
      << cef;
  EXPECT_NE(cef.find("suser=a\\=b\\\\c"), std::string::npos) << cef;
  EXPECT_NE(cef.find("cs1=t|1"), std::string::npos) << cef;  // '|' needs no escape in extensions
  EXPECT_NE(cef.find("externalId=1 "), std::string::npos);
  EXPECT_NE(cef.find("rt=1750000000000"), std::string::npos);
  EXPECT_NE(cef.find("cs4={\"email\":3}"), std::string::npos) << cef;
  EXPECT_EQ(cef.find('\n'), std::string::npos);
  fs::remove_all(dir);
}

TEST(SiemParse, Names) {
  EXPECT_EQ(*parse_siem_format("json"), SiemFormat::kJsonLines);
  EXPECT_EQ(*parse_siem_format("syslog"), SiemFormat::kSyslog5424);
  EXPECT_EQ(*parse_siem_format("cef"), SiemFormat::kCef);
  EXPECT_FALSE(parse_siem_format("xml"));
  EXPECT_EQ(*parse_siem_transport("tls"), SiemTransport::kTls);
  EXPECT_FALSE(parse_siem_transport("carrier-pigeon"));
}

TEST(SiemExport, FileTransportResumesFromPersistedOffsetAcrossRotation) {
  auto dir = temp_dir("siemfile");
  auto audit_dir = dir / "audit";
  auto out = dir / "siem.jsonl";
  auto log = open_log(audit_dir, 2048);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(log->append_admin({"policy_changed", "op", "acme", {}}));

  SiemOptions opt;
  opt.transport = SiemTransport::kFile;
  opt.format = SiemFormat::kJsonLines;
  opt.output_file = out;
  opt.audit_dir = audit_dir;
  opt.max_batch = 3;
  {
    auto exp = SiemExporter::create(opt);
    ASSERT_TRUE(exp) << exp.error().message;
    ASSERT_TRUE((*exp)->drain(5000));
    EXPECT_EQ((*exp)->stats().lines_committed, 10u);
  }
  // More entries (a rotation happens), a torn partial line, and a fresh exporter "process".
  for (int i = 0; i < 15; ++i) ASSERT_TRUE(log->append_admin({"model_switched", "op", "", {}}));
  ASSERT_GE(list_audit_files(audit_dir).size(), 2u);
  {
    std::ofstream torn(list_audit_files(audit_dir).back(), std::ios::app);
    torn << "{\"partial";
  }
  {
    auto exp = SiemExporter::create(opt);
    ASSERT_TRUE(exp);
    for (int i = 0; i < 20; ++i) ASSERT_TRUE((*exp)->pump());
    EXPECT_EQ((*exp)->stats().lines_committed, 15u);  // only the new ones, torn one held back
  }
  auto lines = read_lines(out);
  ASSERT_EQ(lines.size(), 25u);
  for (size_t i = 0; i < lines.size(); ++i) {
    auto obj = boost::json::parse(lines[i]).as_object();
    EXPECT_EQ(obj["seq"].as_int64(), static_cast<int64_t>(i + 1));  // in order, no duplicates
  }
  fs::remove_all(dir);
}

TEST(SiemExport, UnreachableReceiverKeepsEntriesSpooled) {
  auto dir = temp_dir("siemdown");
  auto log = open_log(dir);
  ASSERT_TRUE(log->append_admin({"key_created", "op", "acme", {}}));
  SiemOptions opt;
  opt.transport = SiemTransport::kTcp;
  opt.port = 1;  // nothing listens on port 1
  opt.audit_dir = dir;
  opt.connect_timeout_ms = 200;
  auto exp = SiemExporter::create(opt);
  ASSERT_TRUE(exp);
  auto sent = (*exp)->pump();
  ASSERT_TRUE(sent);  // a down receiver is not a local error
  EXPECT_EQ(*sent, 0u);
  EXPECT_EQ((*exp)->stats().failures, 1u);
  EXPECT_EQ((*exp)->committed().offset, 0u);
  EXPECT_FALSE((*exp)->drain(300));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace enclave::audit
