// The audit writer's fast path produces the same bytes as the generic one: LineSealer matches
// seal_line()/line_hash() (entry.h) call after call, append_request_fields() matches
// boost::json::serialize of the request object member for member (escapes, numbers, repeated
// categories), a whole log written through it verifies, and the batch writer thread runs at
// the lowest CPU priority.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>

#include "audit/audit_log.h"
#include "audit/entry.h"
#include "audit/line_sealer.h"
#include "audit/request_fields.h"
#include "audit/verify.h"
#include "audit_test_util.h"

namespace enclave::audit {
namespace {
namespace fs = std::filesystem;
using testing::sample_request;
using testing::temp_dir;
using testing::test_key;

// The request object as the writer built it before the fast path (boost::json, by assignment).
std::string members_via_boost(const RequestAudit& r) {
  boost::json::object o;
  o["request_id"] = r.request_id;
  o["key_name"] = r.key_name;
  o["tenant"] = r.tenant;
  o["route"] = r.route;
  o["policy"] = r.policy;
  o["model"] = r.model;
  o["model_version"] = r.model_version;
  boost::json::object sens;
  for (const auto& s : r.sensitivity) sens[s.category] = s.count;
  o["sensitivity"] = std::move(sens);
  o["prompt_tokens"] = r.prompt_tokens;
  o["completion_tokens"] = r.completion_tokens;
  o["latency_ms"] = r.latency_ms;
  o["outcome"] = r.outcome;
  o["http_status"] = r.http_status;
  std::string text = boost::json::serialize(o);
  return text.substr(1, text.size() - 2);
}

std::string fast_members(const RequestAudit& r) {
  std::string out;
  append_request_fields(out, r);
  return out;
}

TEST(LineSealer, MatchesSealLineAndLineHashOnEveryCall) {
  auto key = test_key();
  auto sealer = LineSealer::create(key);
  ASSERT_TRUE(sealer) << sealer.error().message;
  // Reuse of the keyed context must not leak state from one entry into the next.
  for (int i = 0; i < 50; ++i) {
    std::string body = "{\"v\":1,\"seq\":" + std::to_string(i) + ",\"pad\":\"" +
                       std::string(static_cast<size_t>(i * 7), 'x') + "\",\"prev\":\"" +
                       std::string(kGenesisHash) + "\"}";
    auto expected = seal_line(body, key);
    ASSERT_TRUE(expected);
    std::string line = body;
    ASSERT_TRUE(sealer->seal(line));
    EXPECT_EQ(line, *expected) << "entry " << i;
    std::string hex = "stale";
    ASSERT_TRUE(sealer->hash_hex(line, hex));
    EXPECT_EQ(hex, line_hash(line));
    ParsedLine parsed = parse_line(line, &key);
    EXPECT_TRUE(parsed.json_ok && parsed.hmac_ok);
  }
  auto other = test_key(0x10);
  std::string line = "{\"v\":1}";
  ASSERT_TRUE(sealer->seal(line));
  EXPECT_FALSE(parse_line(line, &other).hmac_ok);  // the MAC depends on the key
}

TEST(LineSealer, RejectsABodyThatIsNotAnObject) {
  auto sealer = LineSealer::create(test_key());
  ASSERT_TRUE(sealer);
  std::string body = "[1,2]";
  EXPECT_FALSE(sealer->seal(body));
  EXPECT_EQ(body, "[1,2]");
}

TEST(RequestFields, SameBytesAsBoostJson) {
  RequestAudit r = sample_request(7);
  EXPECT_EQ(fast_members(r), members_via_boost(r));

  // Every byte value in every string member: control characters, quotes, backslashes, DEL and
  // non-ASCII bytes (valid UTF-8 or not) are written as boost writes them.
  std::string all_bytes;
  for (int c = 0; c < 256; ++c) all_bytes += static_cast<char>(c);
  r.request_id = all_bytes;
  r.key_name = "\"quoted\\back\\slash\"";
  r.tenant = "租户-ü";
  r.route = "";
  r.policy = std::string("nul\0inside", 10);
  r.model = "\x7f\x80\xff";
  r.model_version = "tab\tnew\nline\r\f\b";
  r.outcome = all_bytes.substr(0, 40);
  EXPECT_EQ(fast_members(r), members_via_boost(r));

  // A repeated category keeps its first position and its last count; an empty list is {}.
  r.sensitivity = {{"email", 1}, {"iban", 2}, {"email", 3}, {"密钥\"", 4}, {"iban", 5}};
  EXPECT_EQ(fast_members(r), members_via_boost(r));
  r.sensitivity.clear();
  EXPECT_EQ(fast_members(r), members_via_boost(r));

  for (double latency :
       {0.0, -0.0, 0.25, 12.5, 1e-7, 123456.789, 1e300, 3.0,
        std::numeric_limits<double>::denorm_min(), std::numeric_limits<double>::max()}) {
    r.latency_ms = latency;
    EXPECT_EQ(fast_members(r), members_via_boost(r)) << latency;
  }
  r.prompt_tokens = std::numeric_limits<uint32_t>::max();
  r.completion_tokens = 0;
  r.http_status = -1;
  EXPECT_EQ(fast_members(r), members_via_boost(r));
}

// The escaper skips eight plain bytes at a time: a byte that needs escaping must be found at
// every position of a word and in the tail, next to plain ASCII and to non-ASCII bytes.
TEST(RequestFields, EscapesEverySpecialByteAtEveryOffset) {
  std::vector<char> specials = {'"', '\\', '\x7f', '\xff', '\x80', '!', '#', '[', ']', '\x21'};
  for (int c = 0; c < 0x20; ++c) specials.push_back(static_cast<char>(c));
  for (char filler : {'a', '\xe4'}) {
    for (size_t size : {1u, 7u, 8u, 9u, 15u, 16u, 17u, 24u, 31u}) {
      for (size_t at = 0; at < size; ++at) {
        for (char special : specials) {
          std::string text(size, filler);
          text[at] = special;
          std::string fast;
          append_json_string(fast, text);
          ASSERT_EQ(fast, boost::json::serialize(boost::json::string(text)))
              << "size " << size << " at " << at << " byte "
              << int(static_cast<unsigned char>(special));
        }
      }
    }
  }
}

// append_rfc3339_ms writes what the printf format wrote, for every field width and sign.
TEST(EntryTimestamp, SameBytesAsPrintf) {
  auto via_printf = [](int64_t unix_ms) {
    std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
    int ms = static_cast<int>(unix_ms % 1000);
    if (ms < 0) {
      ms += 1000;
      secs -= 1;
    }
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[96];
    std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    return std::string(buf);
  };
  std::vector<int64_t> cases = {0,
                                1,
                                999,
                                1000,
                                -1,
                                -999,
                                -1000,
                                -1001,
                                1738324800123,
                                253402300799999,   // 9999-12-31T23:59:59.999Z
                                253402300800000,   // year 10000: printf's wider field
                                -62167219200000,   // year 0
                                -62167219200001};  // year -1
  for (int64_t t = 946684799000; t < 946684799000 + 3 * 86400 * 1000LL; t += 3601 * 997) {
    cases.push_back(t);
  }
  for (int64_t t : cases) {
    std::string out = "x";
    append_rfc3339_ms(out, t);
    EXPECT_EQ(out, "x" + via_printf(t)) << t;
    EXPECT_EQ(format_rfc3339_ms(t), via_printf(t)) << t;
  }
}

class AuditSealerLogTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = temp_dir("audit_sealer"); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

// Lines written through the fast path (every policy, odd content) parse, verify and chain.
TEST_F(AuditSealerLogTest, FastPathLinesVerifyUnderEveryPolicy) {
  uint64_t n = 0;
  for (FsyncPolicy policy : {FsyncPolicy::kAlways, FsyncPolicy::kBatch, FsyncPolicy::kNever}) {
    auto log = AuditLog::open({.dir = dir_, .fsync = policy, .batch_interval_ms = 1}, test_key());
    ASSERT_TRUE(log) << log.error().message;
    for (int i = 0; i < 20; ++i) {
      RequestAudit r = sample_request(i);
      r.tenant = "租户\n\"" + std::to_string(i);
      r.latency_ms = 0.001 * i;
      ASSERT_TRUE((*log)->append_request(r));
      ++n;
    }
    ASSERT_TRUE((*log)->append_admin({.action = "key_created", .actor = "ci", .fields = {}}));
    ++n;
  }
  auto key = test_key();
  auto report = verify_audit_files(list_audit_files(dir_), &key);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_TRUE(report->clean());
  EXPECT_EQ(report->entries_ok, n);
  for (const auto& file : list_audit_files(dir_)) {
    for (const auto& line : testing::read_lines(file)) {
      boost::json::value v = boost::json::parse(line);
      if (v.at("type").as_string() != "request") continue;
      EXPECT_EQ(v.at("tenant").as_string().subview(0, 6), "租户");
      EXPECT_EQ(v.at("sensitivity").at("email").to_number<int64_t>(), 2);
    }
  }
}

}  // namespace
}  // namespace enclave::audit
