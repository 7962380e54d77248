#include "privacy/validators.h"

#include <gtest/gtest.h>

#include "synthetic.h"

namespace enclave::privacy {
namespace {

TEST(Validators, Utf8) {
  EXPECT_EQ(find_invalid_utf8(""), std::string_view::npos);
  EXPECT_EQ(find_invalid_utf8("hello, 世界 😀 ü"), std::string_view::npos);
  EXPECT_EQ(find_invalid_utf8("abcdefghij\x80"), 10u);
  EXPECT_EQ(find_invalid_utf8("\xe0\x80\xaf"), 0u);   // overlong
  EXPECT_EQ(find_invalid_utf8("a\xed\xb0\x80"), 1u);  // surrogate
  EXPECT_EQ(find_invalid_utf8("\xf5\x80\x80\x80"), 0u);
  EXPECT_EQ(find_invalid_utf8("\xf0\x9f\x98"), 0u);  // truncated
  EXPECT_EQ(count_code_points("a世😀"), 3u);
}

TEST(Validators, Luhn) {
  EXPECT_TRUE(luhn_valid("4111111111111111"));
  EXPECT_FALSE(luhn_valid("4111111111111112"));
  EXPECT_FALSE(luhn_valid("41111111111a1111"));
  EXPECT_TRUE(luhn_valid(testdata::card("6222", 19)));
  EXPECT_EQ(luhn_check_digit("411111111111111"), '1');
}

TEST(Validators, CnId) {
  const int today = 20240601;
  const std::string id = testdata::cn_id("110101", "19900307", "123");
  EXPECT_TRUE(cn_id_valid(id, today));
  std::string bad = id;
  bad.back() = bad.back() == '1' ? '2' : '1';
  EXPECT_FALSE(cn_id_valid(bad, today));
  EXPECT_TRUE(cn_id_valid(testdata::cn_id("440305", "20000229", "001"), today));   // leap day
  EXPECT_FALSE(cn_id_valid(testdata::cn_id("440305", "19000229", "001"), today));  // not leap
  EXPECT_FALSE(cn_id_valid(testdata::cn_id("440305", "20240602", "001"), today));  // future
  EXPECT_TRUE(cn_id_valid(testdata::cn_id("440305", "20240601", "001"), today));
  EXPECT_FALSE(cn_id_valid(testdata::cn_id("990305", "19900101", "001"), today));  // region
  const std::string x = testdata::cn_id_with_x("310115", "19851120");
  ASSERT_EQ(x.back(), 'X');
  EXPECT_TRUE(cn_id_valid(x, today));
  EXPECT_GE(today_yyyymmdd(), 20240101);
}

TEST(Validators, Iban) {
  EXPECT_TRUE(iban_valid("GB82WEST12345698765432"));
  EXPECT_TRUE(iban_valid("DE89370400440532013000"));
  EXPECT_FALSE(iban_valid("DE89370400440532013001"));
  EXPECT_FALSE(iban_valid("DE8937040044053201300"));   // length
  EXPECT_FALSE(iban_valid("ZZ89370400440532013000"));  // country
  EXPECT_EQ(iban_length("NO"), 15);
  EXPECT_TRUE(iban_valid(testdata::iban("NO", "86011117947")));
}

TEST(Validators, SsnAndIp) {
  EXPECT_TRUE(us_ssn_valid("078-05-1120"));
  EXPECT_FALSE(us_ssn_valid("000-05-1120"));
  EXPECT_FALSE(us_ssn_valid("666-05-1120"));
  EXPECT_FALSE(us_ssn_valid("950-05-1120"));
  EXPECT_FALSE(us_ssn_valid("078-00-1120"));
  EXPECT_FALSE(us_ssn_valid("078-05-0000"));
  EXPECT_TRUE(ipv4_valid("0.0.0.0"));
  EXPECT_TRUE(ipv4_valid("255.255.255.255"));
  EXPECT_FALSE(ipv4_valid("255.255.255.256"));
  EXPECT_FALSE(ipv4_valid("1.2.3"));
  EXPECT_FALSE(ipv4_valid("1.2.3.4.5"));
  EXPECT_TRUE(ipv6_valid("2001:0db8:0000:0000:0000:ff00:0042:8329"));
  EXPECT_TRUE(ipv6_valid("2001:db8::ff00:42:8329"));
  EXPECT_TRUE(ipv6_valid("fe80::1"));
  EXPECT_FALSE(ipv6_valid("::1"));            // one group: too little to be worth flagging
  EXPECT_FALSE(ipv6_valid("1::2::3"));        // two "::"
  EXPECT_FALSE(ipv6_valid("1:2:3:4:5:6:7"));  // 7 groups, no "::"
  EXPECT_FALSE(ipv6_valid("12345::1"));       // 5-digit group
}

}  // namespace
}  // namespace enclave::privacy
