// Labelled corpus: positives (each expected finding's exact span) and near-miss negatives in
// English and Chinese sentence contexts. Prints precision/recall per category and requires both
// to be 1.0 on this corpus.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "privacy/scanner.h"
#include "privacy/validators.h"
#include "synthetic.h"

namespace enclave::privacy {
namespace {

namespace td = testdata;

struct Expect {
  std::string type;
  std::string value;  // exact matched text; located in the case text
};

struct Case {
  std::string text;
  std::vector<Expect> expected;
};

// Sentence frames; {} is replaced by the value. Edges, ASCII punctuation and CJK neighbours.
const std::vector<std::string> kFrames = {
    "{}", "Please contact me: {}. Thanks!", "我的信息是{}，请保密。", "（{}）", "Data: [{}] end",
};

std::string frame(const std::string& f, const std::string& value) {
  std::string out = f;
  out.replace(out.find("{}"), 2, value);
  return out;
}

std::vector<Expect> positives() {
  const std::string pem_rsa = td::pem("RSA PRIVATE KEY");
  return {
      {"cn_id", td::cn_id("110101", "19900307", "123")},
      {"cn_id", td::cn_id("440305", "20000229", "456")},
      {"cn_id", td::cn_id_with_x("310115", "19851120")},
      {"cn_id",
       [] {
         std::string id = td::cn_id_with_x("510104", "19721003");
         id.back() = 'x';
         return id;
       }()},
      {"phone_cn", "13812345678"},
      {"phone_cn", "138-1234-5678"},
      {"phone_cn", "139 1234 5678"},
      {"phone_cn", "+86 15012345678"},
      {"phone_cn", "+8617712345678"},
      {"phone_cn", "0086 18612345678"},
      {"phone_intl", "+1 415 555 0100"},
      {"phone_intl", "+44 20 7946 0958"},
      {"phone_intl", "+49-30-1234567"},
      {"phone_intl", "+33 (1) 23 45 67 89"},
      {"email", "alice@example.com"},
      {"email", "bob.smith+tag@mail.example.co.uk"},
      {"email", "zhang_san@sub-domain.example.cn"},
      {"bank_card", "4111111111111111"},
      {"bank_card", "4111 1111 1111 1111"},
      {"bank_card", "5555-5555-5555-4444"},
      {"bank_card", td::card("2221", 16)},
      {"bank_card", "378282246310005"},
      {"bank_card", "3782 822463 10005"},
      {"bank_card", td::group(td::card("6222", 16), {4, 4, 4, 4}, ' ')},
      {"bank_card", td::card("6212", 19)},
      {"iban", "GB82 WEST 1234 5698 7654 32"},
      {"iban", "DE89370400440532013000"},
      {"iban", td::iban("FR", "20041010050500013M02606")},
      {"iban", td::iban("NL", "ABNA0417164300")},
      {"ipv4", "192.168.1.1"},
      {"ipv4", "10.0.0.255"},
      {"ipv6", "2001:db8:85a3:0:0:8a2e:370:7334"},
      {"ipv6", "2001:db8::1"},
      {"ipv6", "fe80::1ff:fe23:4567:890a"},
      {"us_ssn", "078-05-1120"},
      {"us_ssn", "219-09-9999"},
      {"passport", "E12345678"},
      {"passport", "G87654321"},
      {"passport", "EA1234567"},
      {"api_key", "sk-" + td::token_chars(48, td::kAlnum, 1)},
      {"api_key",
       "sk-proj-" + td::token_chars(40, td::kAlnum, 2) + "_x-" + td::token_chars(8, td::kAlnum, 3)},
      {"aws_access_key", "AKIAIOSFODNN7EXAMPLE"},
      {"aws_access_key", "ASIA" + td::token_chars(16, td::kUpperAlnum, 4)},
      {"github_token", "ghp_" + td::token_chars(36, td::kAlnum, 5)},
      {"github_token", "gho_" + td::token_chars(36, td::kAlnum, 6)},
      {"github_token", "github_pat_" + td::token_chars(22, td::kAlnum, 7) + "_" +
                           td::token_chars(59, td::kAlnum, 8)},
      {"private_key", pem_rsa},
      {"private_key", td::pem("PRIVATE KEY")},
      {"private_key", td::pem("OPENSSH PRIVATE KEY")},
      {"jwt", td::jwt(R"({"sub":"test-user","iat":1700000000})")},
  };
}

// Near misses: none of these may produce a finding in any frame.
std::vector<std::string> negatives() {
  std::string bad_id = td::cn_id("110101", "19900307", "123");
  bad_id.back() = bad_id.back() == '0' ? '1' : '0';
  std::string bad_card = "4111111111111112";
  std::string short_gh = "ghp_" + td::token_chars(35, td::kAlnum, 9);
  return {
      bad_id,                                             // wrong checksum
      td::cn_id("110101", "19990230", "123"),             // 30 February
      td::cn_id("110101", "20991231", "123"),             // born in the future
      td::cn_id("190101", "19900307", "123"),             // no province 19
      td::cn_id("110101", "19900307", "123") + "5",       // 19 digits
      "12345678901",                                      // not a mobile prefix
      "1381234567",                                       // 10 digits
      "138123456789",                                     // 12 digits
      "订单号202312251234567",                            // order number
      "+1 2345",                                          // too short
      "+0 123 456 789",                                   // no country code 0
      "alice@localhost",                                  // no TLD
      "name@example.c",                                   // 1-letter TLD
      "a..b@example.com",                                 // double dot
      "foo@-bar.com",                                     // hyphen-led label
      bad_card,                                           // Luhn fails
      "4111 1111 1111 111",                               // 15-digit Visa
      "4111 1111-1111 1111",                              // mixed separators
      "41111111111111111111",                             // 20 digits
      "GB82 WEST 1234 5698 7654 33",                      // IBAN checksum
      "XX82WEST12345698765432",                           // unknown country
      "DE8937040044053201300",                            // wrong length
      "256.1.1.1",                                        // octet > 255
      "1.2.3",                                            // three octets
      "version 1.2.3.4.5",                                // dotted version
      "192.168.1.1000",                                   // 4-digit octet
      "12:30:45",                                         // time
      "00:1A:2B:3C:4D:5E",                                // MAC address
      "std::vector<int>",                                 // C++ scope
      "A::B",                                             // too short for IPv6
      "000-12-3456",                                      // SSN area 000
      "666-12-3456",                                      // SSN area 666
      "900-12-3456",                                      // SSN area 9xx
      "123-00-4567",                                      // SSN group 00
      "123-45-0000",                                      // SSN serial 0000
      "2023-12-25",                                       // date
      "E1234567",                                         // 7 digits, no context
      "E123456789",                                       // 9 digits
      "Ref K1234567",                                     // generic format, no context
      "order 123456789",                                  // 9 digits, no context
      "sk-short123",                                      // too short
      "task-" + td::token_chars(30, td::kAlnum, 10),      // "sk-" inside a word
      "AKIAIOSFODNN7EXAMPL",                              // 15 chars
      "AKIAiosfodnn7example",                             // lowercase
      short_gh,                                           // 35 chars
      "ghx_" + td::token_chars(36, td::kAlnum, 11),       // unknown prefix
      td::pem("PUBLIC KEY"),                              // not private
      "eyJhbGciOi",                                       // lone segment
      "eyJhbGciOiJIUzI1NiJ9.e30",                         // two segments
      "eyJhbGciOiJub25lIn0.e30.",                         // unsigned (alg none): no secret
      "eyJzzzzzzzz.abcdef.ghijk",                         // header is not JSON
      "The meeting is at 5pm on 2024-03-01, room 1203.",  // plain English
      "今天的会议在三楼会议室举行，请准时参加。",         // plain Chinese
      "价格为1,234,567.89元，数量12件。",                 // amounts
      "123456789012",                                     // 12 digits
  };
}

struct Counts {
  int tp = 0, fp = 0, fn = 0;
};

TEST(PrivacyCorpus, PrecisionAndRecallPerCategory) {
  auto scanner = SensitivityScanner::create();
  ASSERT_TRUE(scanner) << scanner.error().message;
  std::vector<Case> cases;
  for (const auto& p : positives()) {
    for (const auto& f : kFrames) cases.push_back({frame(f, p.value), {p}});
  }
  for (const auto& n : negatives()) {
    for (const auto& f : kFrames) cases.push_back({frame(f, n), {}});
  }
  // Several findings in one sentence, Chinese and English.
  const std::string id = td::cn_id("330106", "19880512", "031");
  cases.push_back({"张三，身份证" + id + "，手机13912345678，邮箱zs@example.cn。",
                   {{"cn_id", id}, {"phone_cn", "13912345678"}, {"email", "zs@example.cn"}}});
  cases.push_back({"Card 4111111111111111 exp 12/29, server 10.1.2.3, key AKIAIOSFODNN7EXAMPLE",
                   {{"bank_card", "4111111111111111"},
                    {"ipv4", "10.1.2.3"},
                    {"aws_access_key", "AKIAIOSFODNN7EXAMPLE"}}});
  cases.push_back({"Passport No. 123456789 issued 2019", {{"passport", "123456789"}}});
  cases.push_back({"passport number: K1234567", {{"passport", "K1234567"}}});
  cases.push_back({"护照号码：AB1234567，有效期十年", {{"passport", "AB1234567"}}});
  EXPECT_GE(cases.size(), 150u);

  std::map<std::string, Counts> counts;
  for (const Case& c : cases) {
    auto found = (*scanner)->scan(c.text);
    ASSERT_TRUE(found) << found.error().message;
    std::set<std::tuple<std::string, size_t, size_t>> want, got;
    for (const auto& e : c.expected) {
      const size_t pos = c.text.find(e.value);
      ASSERT_NE(pos, std::string::npos);
      want.insert({e.type, pos, pos + e.value.size()});
    }
    for (const auto& f : *found) {
      got.insert({f.type, f.start, f.end});
      EXPECT_EQ(f.cp_start, count_code_points(std::string_view(c.text).substr(0, f.start)));
      EXPECT_EQ(f.cp_end, count_code_points(std::string_view(c.text).substr(0, f.end)));
    }
    for (const auto& w : want) {
      if (got.count(w)) {
        ++counts[std::get<0>(w)].tp;
      } else {
        ++counts[std::get<0>(w)].fn;
        ADD_FAILURE() << "missed " << std::get<0>(w) << " [" << std::get<1>(w) << ","
                      << std::get<2>(w) << ") in: " << c.text;
      }
    }
    for (const auto& g : got) {
      if (!want.count(g)) {
        ++counts[std::get<0>(g)].fp;
        ADD_FAILURE() << "false positive " << std::get<0>(g) << " [" << std::get<1>(g) << ","
                      << std::get<2>(g) << ") in: " << c.text;
      }
    }
  }
  std::printf("%zu cases\n%-16s %5s %5s %5s %9s %7s\n", cases.size(), "category", "tp", "fp", "fn",
              "precision", "recall");
  for (auto name : builtin_types()) {
    const Counts& k = counts[std::string(name)];
    const double precision = k.tp + k.fp ? double(k.tp) / (k.tp + k.fp) : 1.0;
    const double recall = k.tp + k.fn ? double(k.tp) / (k.tp + k.fn) : 1.0;
    std::printf("%-16s %5d %5d %5d %9.3f %7.3f\n", std::string(name).c_str(), k.tp, k.fp, k.fn,
                precision, recall);
    EXPECT_GT(k.tp, 0) << name << " has no positive example";
    EXPECT_EQ(precision, 1.0) << name;
    EXPECT_EQ(recall, 1.0) << name;
  }
}

}  // namespace
}  // namespace enclave::privacy
