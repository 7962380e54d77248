// Scanner behaviour beyond the corpus: operator terms, levels, overlap resolution, code-point
// offsets, invalid UTF-8, empty and large inputs, concurrent use.
#include "privacy/scanner.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "privacy/validators.h"
#include "scanner_test_util.h"
#include "synthetic.h"

namespace enclave::privacy {
namespace {

namespace td = testdata;

using testing::make_scanner;

std::vector<Finding> scan(const SensitivityScanner& s, std::string_view text) {
  auto r = s.scan(text);
  EXPECT_TRUE(r) << (r ? "" : r.error().message);
  return r ? *r : std::vector<Finding>{};
}

TEST(Level, OrderNamesAndMax) {
  EXPECT_LT(Level::kPublic, Level::kInternal);
  EXPECT_LT(Level::kInternal, Level::kConfidential);
  EXPECT_LT(Level::kConfidential, Level::kSecret);
  EXPECT_STREQ(level_name(Level::kConfidential), "confidential");
  EXPECT_EQ(parse_level("Secret"), Level::kSecret);
  EXPECT_FALSE(parse_level("top-secret"));
  EXPECT_EQ(max_level({}), Level::kPublic);
  EXPECT_EQ(max_level({{"email", Level::kInternal}, {"jwt", Level::kSecret}}), Level::kSecret);
  EXPECT_EQ(default_level("api_key"), Level::kSecret);
  EXPECT_EQ(default_level("cn_id"), Level::kConfidential);
  EXPECT_EQ(default_level("ipv4"), Level::kInternal);
  EXPECT_FALSE(default_level("nope"));
  EXPECT_EQ(builtin_types().size(), 15u);
}

TEST(Scanner, EmptyInputHasNoFindings) {
  auto s = make_scanner();
  auto r = s->scan("");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->empty());
}

TEST(Scanner, InvalidUtf8IsAnErrorNamingTheOffset) {
  auto s = make_scanner();
  for (std::string bad : {std::string("\xff"
                                      "abc"),
                          std::string("\xc3"
                                      "x"),
                          std::string("\xe4\xb8"), std::string("\xed\xa0\x80"),
                          std::string("\xc0\xaf"), std::string("\xf4\x90\x80\x80")}) {
    auto r = s->scan("ok " + bad + " 13812345678");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message.find("byte offset 3"), std::string::npos) << r.error().message;
    EXPECT_EQ(r.error().message.find("13812345678"), std::string::npos);
  }
}

TEST(Scanner, CodePointOffsetsWithCjk) {
  auto s = make_scanner();
  const std::string text = "电话：13812345678，邮箱：a@b.cn";
  auto f = scan(*s, text);
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0].type, "phone_cn");
  EXPECT_EQ(f[0].start, 9u);  // 3 CJK characters x 3 bytes
  EXPECT_EQ(f[0].end, 20u);
  EXPECT_EQ(f[0].cp_start, 3u);
  EXPECT_EQ(f[0].cp_end, 14u);
  EXPECT_EQ(f[1].type, "email");
  EXPECT_EQ(f[1].cp_start, 18u);  // 14 + "，邮箱：" (4)
  EXPECT_EQ(f[1].cp_end, 24u);
  EXPECT_EQ(text.substr(f[1].start, f[1].end - f[1].start), "a@b.cn");
}

TEST(Scanner, DefaultLevelsAndOverrides) {
  const std::string text = "key AKIAIOSFODNN7EXAMPLE mail a@example.com ip 10.0.0.1";
  auto s = make_scanner();
  auto f = scan(*s, text);
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0].level, Level::kSecret);
  EXPECT_EQ(f[1].level, Level::kConfidential);
  EXPECT_EQ(f[2].level, Level::kInternal);
  EXPECT_EQ(max_level(f), Level::kSecret);

  ScanRules rules;
  rules.builtins["email"].level = Level::kInternal;
  rules.builtins["ipv4"].enabled = false;
  auto s2 = make_scanner(rules);
  auto f2 = scan(*s2, text);
  ASSERT_EQ(f2.size(), 2u);
  EXPECT_EQ(f2[1].type, "email");
  EXPECT_EQ(f2[1].level, Level::kInternal);
}

TEST(Scanner, UnknownBuiltinIsRejected) {
  ScanRules rules;
  rules.builtins["credit"].enabled = false;
  auto s = SensitivityScanner::create(rules);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("credit"), std::string::npos);
  EXPECT_NE(s.error().message.find("bank_card"), std::string::npos);  // lists valid names
}

TEST(Scanner, OperatorKeywordsAreCaseInsensitiveAndBounded) {
  ScanRules rules;
  rules.terms.push_back({"codename", Level::kSecret, {"Phoenix", "凤凰计划", "X-Ray"}, {}});
  auto s = make_scanner(rules);
  const std::string text = "PHOENIX launch; 启动凤凰计划了; phoenixes; x-ray done; aphoenix";
  auto f = scan(*s, text);
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0].type, "codename");
  EXPECT_EQ(f[0].start, 0u);
  EXPECT_EQ(f[0].end, 7u);
  EXPECT_EQ(f[0].level, Level::kSecret);
  EXPECT_EQ(text.substr(f[1].start, f[1].end - f[1].start), "凤凰计划");
  EXPECT_EQ(text.substr(f[2].start, f[2].end - f[2].start), "x-ray");
}

TEST(Scanner, OperatorRegexesHyperscanAndPcreFallback) {
  ScanRules rules;
  rules.terms.push_back({"project", Level::kInternal, {}, {R"(PRJ-\d{4})"}});
  // Lookahead: Hyperscan rejects it, PCRE2 runs it.
  rules.terms.push_back({"record", Level::kConfidential, {}, {R"(REC(?=\d{6}\b)\d{6})"}});
  // UTF-8 mode: '.' is one code point.
  rules.terms.push_back({"cn_record", Level::kConfidential, {}, {"病历.号\\d{3}"}});
  auto s = make_scanner(rules);
  const std::string text = "see PRJ-1234 and REC123456 not REC1234567; 病历甲号123";
  auto f = scan(*s, text);
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0].type, "project");
  EXPECT_EQ(text.substr(f[0].start, f[0].end - f[0].start), "PRJ-1234");
  EXPECT_EQ(f[0].level, Level::kInternal);
  EXPECT_EQ(f[1].type, "record");
  EXPECT_EQ(text.substr(f[1].start, f[1].end - f[1].start), "REC123456");
  EXPECT_EQ(f[2].type, "cn_record");
  EXPECT_EQ(text.substr(f[2].start, f[2].end - f[2].start), "病历甲号123");
}

TEST(Scanner, InvalidTermRulesAreRejectedWithoutEchoingThem) {
  auto bad_regex = SensitivityScanner::create({{}, {{"c", Level::kSecret, {}, {"SECRET(("}}}});
  ASSERT_FALSE(bad_regex);
  EXPECT_NE(bad_regex.error().message.find("terms[0].regexes[0]"), std::string::npos);
  EXPECT_EQ(bad_regex.error().message.find("SECRET"), std::string::npos);
  EXPECT_FALSE(SensitivityScanner::create({{}, {{"", Level::kSecret, {"a"}, {}}}}));
  EXPECT_FALSE(SensitivityScanner::create({{}, {{"email", Level::kSecret, {"a"}, {}}}}));
  EXPECT_FALSE(SensitivityScanner::create({{}, {{"c", Level::kSecret, {}, {}}}}));
  EXPECT_FALSE(SensitivityScanner::create({{}, {{"c", Level::kSecret, {""}, {}}}}));
  EXPECT_FALSE(SensitivityScanner::create(
      {{}, {{"c", Level::kSecret, {"a"}, {}}, {"c", Level::kSecret, {"b"}, {}}}}));
}

TEST(Scanner, OverlapLongestWinsAndInheritsLevel) {
  ScanRules rules;
  rules.terms.push_back({"codename", Level::kSecret, {"phoenix"}, {}});
  auto s = make_scanner(rules);
  // The keyword sits inside an e-mail address: the longer e-mail wins, at the keyword's level.
  auto f = scan(*s, "write to phoenix@example.com now");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].type, "email");
  EXPECT_EQ(f[0].start, 9u);
  EXPECT_EQ(f[0].end, 28u);
  EXPECT_EQ(f[0].level, Level::kSecret);
}

TEST(Scanner, OverlapTieGoesToMoreSpecificType) {
  auto s = make_scanner();
  // "+86 ..." is both phone_cn and phone_intl with the same span: phone_cn is more specific.
  auto f = scan(*s, "call +86 13812345678");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].type, "phone_cn");
  // A PEM block swallows anything matched inside its body.
  const std::string key =
      "-----BEGIN PRIVATE KEY-----\nAKIAIOSFODNN7EXAMPLE\n-----END PRIVATE KEY-----";
  auto g = scan(*s, key);
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0].type, "private_key");
  EXPECT_EQ(g[0].end, key.size());
}

TEST(Scanner, TruncatedPemCoversItsBody) {
  auto s = make_scanner();
  const std::string text = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\nabc+/=\n\n中文";
  auto f = scan(*s, text);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].type, "private_key");
  EXPECT_EQ(text.substr(f[0].start, f[0].end - f[0].start),
            "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\nabc+/=");
}

TEST(Scanner, OneMegabyteInput) {
  auto s = make_scanner();
  std::string text;
  const std::string id = td::cn_id("320102", "19790615", "018");
  size_t n_items = 0;
  while (text.size() < (1u << 20)) {
    text += "这是一段普通的中文文本，没有任何敏感信息。Plain English filler text, nothing here. ";
    if (n_items % 4 == 0) text += "手机13812345678，";
    if (n_items % 4 == 1) text += "id " + id + " ";
    if (n_items % 4 == 2) text += "mail someone@example.org ";
    if (n_items % 4 == 3) text += "card 4111 1111 1111 1111 ";
    ++n_items;
  }
  auto f = scan(*s, text);
  ASSERT_EQ(f.size(), n_items);
  for (size_t i = 1; i < f.size(); ++i) EXPECT_LE(f[i - 1].end, f[i].start);
  EXPECT_EQ(f.back().cp_end, count_code_points(std::string_view(text).substr(0, f.back().end)));
}

TEST(Scanner, ConcurrentScansShareOneScanner) {
  auto s = make_scanner();
  const std::string text =
      "手机13812345678 mail a@example.com " + td::cn_id("110101", "19900307", "123");
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        auto r = s->scan(text);
        if (r && r->size() == 3) ++ok[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int v : ok) EXPECT_EQ(v, 200);
}

TEST(Scanner, AllBuiltinsDisabledStillScans) {
  ScanRules rules;
  for (auto name : builtin_types()) rules.builtins[std::string(name)].enabled = false;
  auto s = make_scanner(rules);
  auto f = scan(*s, "13812345678 a@example.com");
  EXPECT_TRUE(f.empty());
}

}  // namespace
}  // namespace enclave::privacy
