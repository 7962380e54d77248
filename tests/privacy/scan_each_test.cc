// SensitivityScanner::scan_each: several texts in one database pass must give, text by text,
// exactly what scan() gives for each alone (types, spans, levels, code points); nothing found
// across two texts; errors name the failing text.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "privacy/scanner.h"
#include "scanner_test_util.h"
#include "synthetic.h"

namespace enclave::privacy {
namespace {

namespace td = testdata;

using testing::make_scanner;

// scan_each(texts) must equal scan(t) for every t; returns the per-text findings.
std::vector<std::vector<Finding>> expect_same_as_scan(const SensitivityScanner& s,
                                                      const std::vector<std::string>& texts) {
  std::vector<std::string_view> views(texts.begin(), texts.end());
  auto each = s.scan_each(views);
  EXPECT_TRUE(each) << (each ? "" : each.error().message);
  if (!each) return {};
  EXPECT_EQ(each->size(), texts.size());
  if (each->size() != texts.size()) return {};
  for (size_t i = 0; i < texts.size(); ++i) {
    auto alone = s.scan(texts[i]);
    EXPECT_TRUE(alone);
    if (alone) {
      EXPECT_EQ((*each)[i], *alone) << "text " << i << ": " << texts[i];
    }
  }
  return *each;
}

// Texts whose findings touch their start or end, and halves of findings split over two texts.
std::vector<std::string> boundary_texts() {
  const std::string id = td::cn_id("110101", "19900307", "123");
  const std::string key = "sk-" + td::token_chars(30, td::kAlnum, 1);
  const std::string jwt = td::jwt(R"({"sub":"u1"})");
  return {
      "13812345678",                             // whole text is a finding
      "手机13812345678",                         // finding at the end, CJK before
      "13912345678，请回电",                     // finding at the start
      "call 138123",                             // first half of a phone number...
      "45678 now",                               // ...second half
      "mail alice",                              // e-mail split at the '@'
      "@example.com please",                     //
      "key " + key,                              // token at the end: must not run into the next
      "abcdef more text",                        // starts with token characters
      "server 10.1.2.3",                         // IPv4 at the end
      ".4 is next",                              // would make a 5-part dotted run
      "身份证" + id.substr(0, 9),                // ID split over two texts
      id.substr(9) + "，谢谢",                   //
      "",                                        // empty texts keep their slot
      "passport number:",                        // context word at the end...
      "K1234567 follows",                        // ...number in the next text: not a passport
      td::pem("RSA PRIVATE KEY").substr(0, 80),  // truncated key body at the end
      "MIIEowIBAAKCAQEA more base64",            // base64-looking start of the next text
      "jwt " + jwt,                              //
      ".eyJhbGciOiJIUzI1NiJ9 tail",              //
      "卡号4111 1111 1111 1111",                 //
      "邮箱zs@example.cn。IP 2001:db8::1",       //
      "",                                        //
      "call +86",                                // a match from here would hide the next
      "13812345678 is the number",               // text's own (one start per end offset)
      "ip 10.1",                                 //
      "10.1.2.3 here",                           //
  };
}

TEST(ScanEach, SameFindingsAsScanningEachTextAlone) {
  auto s = make_scanner();
  const auto texts = boundary_texts();
  auto each = expect_same_as_scan(*s, texts);
  ASSERT_EQ(each.size(), texts.size());
  // Spot checks that the comparison is not vacuous.
  ASSERT_EQ(each[0].size(), 1u);
  EXPECT_EQ(each[0][0].type, "phone_cn");
  ASSERT_EQ(each[1].size(), 1u);
  EXPECT_EQ(each[1][0].cp_start, 2u);
  EXPECT_EQ(each[1][0].start, 6u);
  ASSERT_EQ(each[2].size(), 1u);
  EXPECT_EQ(each[2][0].start, 0u);
  ASSERT_EQ(each[7].size(), 1u);
  EXPECT_EQ(each[7][0].type, "api_key");
  EXPECT_EQ(each[7][0].end, texts[7].size());
  EXPECT_TRUE(each[13].empty());
  ASSERT_EQ(each[16].size(), 1u);
  EXPECT_EQ(each[16][0].type, "private_key");
  EXPECT_EQ(each[16][0].level, Level::kSecret);
  ASSERT_EQ(each[24].size(), 1u);
  EXPECT_EQ(each[24][0].type, "phone_cn");
  EXPECT_EQ(each[24][0].start, 0u);
  ASSERT_EQ(each[26].size(), 1u);
  EXPECT_EQ(each[26][0].type, "ipv4");
}

TEST(ScanEach, NothingIsFoundAcrossTwoTexts) {
  auto s = make_scanner();
  const std::string id = td::cn_id("110101", "19900307", "123");
  const std::vector<std::pair<std::string, std::string>> halves = {
      {"call 138123", "45678 now"},
      {"mail alice", "@example.com"},
      {"身份证" + id.substr(0, 9), id.substr(9) + "，谢谢"},
      {"card 4111 1111", " 1111 1111"},
      {"passport number:", " K1234567"},
      {"ssn 078-05", "-1120"},
  };
  for (const auto& [a, b] : halves) {
    auto joined = s->scan(a + b);
    ASSERT_TRUE(joined);
    EXPECT_FALSE(joined->empty()) << "the whole is a finding: " << a << b;
    std::vector<std::string_view> texts = {a, b};
    auto each = s->scan_each(texts);
    ASSERT_TRUE(each) << each.error().message;
    ASSERT_EQ(each->size(), 2u);
    EXPECT_TRUE((*each)[0].empty()) << a;
    EXPECT_TRUE((*each)[1].empty()) << b;
  }
}

TEST(ScanEach, OperatorKeywordsAndRegexesStayPerText) {
  ScanRules rules;
  rules.terms.push_back({"codename", Level::kSecret, {"Phoenix", "凤凰计划"}, {}});
  // PCRE2 only (lookahead): the Hyperscan pass still joins the texts.
  rules.terms.push_back({"record", Level::kConfidential, {}, {R"(REC(?=\d{6}\b)\d{6})"}});
  const std::vector<std::string> texts = {
      "Phoenix", "about phoenix", "es and 凤凰", "计划 REC123", "456 and REC654321", "凤凰计划。",
  };
  auto each = expect_same_as_scan(*make_scanner(rules), texts);
  ASSERT_EQ(each.size(), texts.size());
  EXPECT_EQ(each[0].size(), 1u);
  EXPECT_EQ(each[1].size(), 1u);
  EXPECT_TRUE(each[2].empty());  // "phoenix" + "es" across texts is no match either way
  EXPECT_TRUE(each[3].empty());
  ASSERT_EQ(each[4].size(), 1u);
  EXPECT_EQ(each[4][0].type, "record");
  ASSERT_EQ(each[5].size(), 1u);
  EXPECT_EQ(each[5][0].type, "codename");

  // Hyperscan operator regexes could match the separator: scanned one text at a time.
  rules.terms.push_back({"any", Level::kInternal, {}, {R"(X[^a]Y)"}});
  auto each2 =
      expect_same_as_scan(*make_scanner(rules), {"ends with X", "Y starts", "X-Y", "Phoenix"});
  ASSERT_EQ(each2.size(), 4u);
  EXPECT_TRUE(each2[0].empty());
  EXPECT_TRUE(each2[1].empty());
  EXPECT_EQ(each2[2].size(), 1u);
  EXPECT_EQ(each2[3].size(), 1u);
}

TEST(ScanEach, RandomSplitsOfMixedTextMatchScan) {
  auto s = make_scanner();
  const std::string id = td::cn_id("330106", "19880512", "031");
  const std::string text = "张三，身份证" + id + "，手机13912345678，邮箱zs@example.cn。" +
                           "Card 4111111111111111 exp 12/29, server 10.1.2.3, key " +
                           "AKIAIOSFODNN7EXAMPLE; call +44 20 7946 0958 或 138-1234-5678。" +
                           "IBAN GB82 WEST 1234 5698 7654 32, ssn 078-05-1120, 护照E12345678。";
  // Code-point boundaries: texts must be valid UTF-8 on their own.
  std::vector<size_t> cuts;
  for (size_t i = 1; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) cuts.push_back(i);
  }
  std::mt19937 rng(12345);
  size_t total_findings = 0;
  for (int round = 0; round < 200; ++round) {
    std::vector<size_t> at;
    const int n_cuts = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < n_cuts; ++k) at.push_back(cuts[rng() % cuts.size()]);
    std::sort(at.begin(), at.end());
    at.erase(std::unique(at.begin(), at.end()), at.end());
    std::vector<std::string> texts;
    size_t prev = 0;
    for (size_t c : at) {
      texts.push_back(text.substr(prev, c - prev));
      prev = c;
    }
    texts.push_back(text.substr(prev));
    for (const auto& f : expect_same_as_scan(*s, texts)) total_findings += f.size();
    if (HasFailure()) return;
  }
  EXPECT_GT(total_findings, 200u);
}

TEST(ScanEach, ErrorsNameTheFirstBadText) {
  auto s = make_scanner();
  const std::string bad = "ok \xe4\xb8";
  std::vector<std::string_view> texts = {"", "13812345678", bad, "\xff"};
  size_t failed = 99;
  auto each = s->scan_each(texts, &failed);
  ASSERT_FALSE(each);
  EXPECT_EQ(failed, 2u);
  auto alone = s->scan(bad);
  ASSERT_FALSE(alone);
  EXPECT_EQ(each.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(each.error().message, alone.error().message);

  auto none = s->scan_each({});
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  std::vector<std::string_view> empties = {"", ""};
  auto two = s->scan_each(empties);
  ASSERT_TRUE(two);
  ASSERT_EQ(two->size(), 2u);
  EXPECT_TRUE((*two)[0].empty() && (*two)[1].empty());
}

}  // namespace
}  // namespace enclave::privacy
