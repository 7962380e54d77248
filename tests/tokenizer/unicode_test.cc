// UTF-8 helpers and the GPT-2 byte map.
#include "tokenizer/unicode.h"

#include <gtest/gtest.h>

namespace enclave::tokenizer {
namespace {

TEST(Unicode, ValidLen) {
  EXPECT_EQ(utf8_valid_len("a", 0), 1u);
  EXPECT_EQ(utf8_valid_len("\xC3\xA9", 0), 2u);
  EXPECT_EQ(utf8_valid_len("\xE4\xBD\xA0", 0), 3u);
  EXPECT_EQ(utf8_valid_len("\xF0\x9F\x98\x80", 0), 4u);
  EXPECT_EQ(utf8_valid_len("\xC0\x80", 0), 0u);      // overlong
  EXPECT_EQ(utf8_valid_len("\xED\xA0\x80", 0), 0u);  // surrogate
  EXPECT_EQ(utf8_valid_len("\xF4\x90\x80\x80", 0), 0u);
  EXPECT_EQ(utf8_valid_len("\xE4\xBD", 0), 0u);  // truncated
  EXPECT_EQ(utf8_valid_len("\x80", 0), 0u);
}

TEST(Unicode, SanitizeReplacesEachInvalidByte) {
  EXPECT_EQ(utf8_sanitize("ok"), "ok");
  EXPECT_EQ(utf8_sanitize("a\xFF"
                          "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(utf8_sanitize("\xE4\xBD"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_TRUE(utf8_is_valid(utf8_sanitize("\xC0\xAF\xED\xA0\x80xyz\xF8")));
}

TEST(Unicode, CompletePrefix) {
  EXPECT_EQ(utf8_complete_prefix("abc"), 3u);
  EXPECT_EQ(utf8_complete_prefix("ab\xE4"), 2u);
  EXPECT_EQ(utf8_complete_prefix("ab\xE4\xBD"), 2u);
  EXPECT_EQ(utf8_complete_prefix("ab\xE4\xBD\xA0"), 5u);
  EXPECT_EQ(utf8_complete_prefix("\xF0\x9F\x98"), 0u);
  EXPECT_EQ(utf8_complete_prefix("a\xFF"), 2u);      // invalid: nothing to wait for
  EXPECT_EQ(utf8_complete_prefix("a\xE0\x80"), 3u);  // can never become valid
}

TEST(Unicode, ByteMapRoundTripAndKnownPoints) {
  const auto& t = byte_to_unicode_table();
  EXPECT_EQ(t[' '], "\xC4\xA0");   // U+0120
  EXPECT_EQ(t['\n'], "\xC4\x8A");  // U+010A
  EXPECT_EQ(t[0xAD], "\xC5\x83");  // U+0143
  EXPECT_EQ(t['A'], "A");
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  std::string enc;
  byte_encode_append(enc, all);
  EXPECT_EQ(byte_decode(enc), all);
}

}  // namespace
}  // namespace enclave::tokenizer
