#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "privacy/scanner.h"

namespace enclave::privacy {
namespace {

TEST(Rules, ParsesBuiltinsAndTerms) {
  auto r = parse_rules_yaml(R"(
builtins:
  email: {level: internal}
  ipv4: false
  phone_intl: secret
terms:
  - category: codename
    level: secret
    keywords: [Phoenix, 凤凰计划]
    regexes: ['PRJ-\d{4}']
  - category: medical
    keywords: 病历
)");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->builtins.at("email").level, Level::kInternal);
  EXPECT_TRUE(r->builtins.at("email").enabled);
  EXPECT_FALSE(r->builtins.at("ipv4").enabled);
  EXPECT_EQ(r->builtins.at("phone_intl").level, Level::kSecret);
  ASSERT_EQ(r->terms.size(), 2u);
  EXPECT_EQ(r->terms[0].category, "codename");
  EXPECT_EQ(r->terms[0].level, Level::kSecret);
  EXPECT_EQ(r->terms[0].keywords, (std::vector<std::string>{"Phoenix", "凤凰计划"}));
  EXPECT_EQ(r->terms[0].regexes, (std::vector<std::string>{"PRJ-\\d{4}"}));
  EXPECT_EQ(r->terms[1].level, Level::kConfidential);  // default
  EXPECT_EQ(r->terms[1].keywords, (std::vector<std::string>{"病历"}));

  auto s = SensitivityScanner::create(*r);
  ASSERT_TRUE(s) << s.error().message;
  auto f = (*s)->scan("phoenix PRJ-0042 10.0.0.1 病历");
  ASSERT_TRUE(f);
  ASSERT_EQ(f->size(), 3u);
  EXPECT_EQ((*f)[2].type, "medical");
}

TEST(Rules, EmptyDocumentMeansDefaults) {
  auto r = parse_rules_yaml("");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->builtins.empty());
  EXPECT_TRUE(r->terms.empty());
}

TEST(Rules, ErrorsNameTheKeyPath) {
  struct Bad {
    const char* yaml;
    const char* expect;
  };
  for (const Bad& b :
       {Bad{"builtins: {credit: false}", "builtins.credit"},
        Bad{"builtins: {email: {level: ultra}}", "builtins.email.level"},
        Bad{"terms: [{level: secret, keywords: [a]}]", "terms[0]"},
        Bad{"terms: [{category: c}]", "terms[0]"},
        Bad{"terms: [{category: c, keywords: {a: 1}}]", "terms[0].keywords"},
        Bad{"other: 1", "unknown key 'other'"}, Bad{"terms: [ {category: c", "line 1"}}) {
    auto r = parse_rules_yaml(b.yaml);
    ASSERT_FALSE(r) << b.yaml;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message.find(b.expect), std::string::npos) << r.error().message;
  }
}

TEST(Rules, LoadsFromFile) {
  const std::string path = ::testing::TempDir() + "privacy_rules_test.yaml";
  {
    std::ofstream out(path);
    out << "terms:\n  - category: codename\n    keywords: [Phoenix]\n";
  }
  auto r = load_rules_yaml(path);
  std::remove(path.c_str());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->terms.size(), 1u);
  auto missing = load_rules_yaml(path + ".missing");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace enclave::privacy
