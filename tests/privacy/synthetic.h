// Synthetic test values with valid checksums, generated at run time so no realistic personal
// data is stored in the tests (shared by the tests and the benchmark).
#pragma once

#include <string>
#include <string_view>

#include "privacy/validators.h"

namespace enclave::privacy::testdata {

// 18-character resident ID: 6-digit region, YYYYMMDD birth date, 3-digit sequence, check char.
inline std::string cn_id(std::string_view region, std::string_view date, std::string_view seq) {
  std::string s = std::string(region) + std::string(date) + std::string(seq);
  s.push_back(cn_id_check_char(s));
  return s;
}

// First sequence number (from `seq`) whose ID ends in the check character 'X'.
inline std::string cn_id_with_x(std::string_view region, std::string_view date) {
  for (int n = 0; n < 1000; ++n) {
    std::string seq = std::to_string(1000 + n).substr(1);
    std::string id = cn_id(region, date, seq);
    if (id.back() == 'X') return id;
  }
  return {};
}

// Luhn-valid card number: `prefix`, filler digits, check digit; `length` digits in total.
inline std::string card(std::string_view prefix, size_t length) {
  std::string s(prefix);
  for (size_t i = 0; s.size() + 1 < length; ++i)
    s.push_back(static_cast<char>('0' + (i * 7 + 3) % 10));
  s.push_back(luhn_check_digit(s));
  return s;
}

// Groups digits with `sep` using the given group sizes (e.g. 4,4,4,4).
inline std::string group(std::string_view digits, std::initializer_list<size_t> sizes, char sep) {
  std::string out;
  size_t pos = 0;
  for (size_t g : sizes) {
    if (!out.empty()) out.push_back(sep);
    out.append(digits.substr(pos, g));
    pos += g;
  }
  return out;
}

inline std::string iban(std::string_view country, std::string_view bban) {
  return std::string(country) + iban_check_digits(country, bban) + std::string(bban);
}

inline std::string base64url(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  unsigned acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
  return out;
}

inline std::string jwt(std::string_view payload_json) {
  return base64url(R"({"alg":"HS256","typ":"JWT"})") + "." + base64url(payload_json) + "." +
         base64url("not-a-real-signature-0123456789");
}

// Deterministic pseudo-random token characters.
inline std::string token_chars(size_t n, std::string_view alphabet, unsigned seed) {
  std::string s;
  unsigned x = seed * 2654435761u + 12345u;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    s.push_back(alphabet[(x >> 16) % alphabet.size()]);
  }
  return s;
}

inline constexpr std::string_view kAlnum =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
inline constexpr std::string_view kUpperAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

inline std::string pem(std::string_view label) {
  std::string body;
  for (int line = 0; line < 4; ++line) {
    body += token_chars(64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+/", 100 + line);
    body += "\n";
  }
  return "-----BEGIN " + std::string(label) + "-----\n" + body + "-----END " + std::string(label) +
         "-----";
}

}  // namespace enclave::privacy::testdata
