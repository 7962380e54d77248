#include "privacy/validators.h"

#include <cstdint>
#include <cstring>
#include <ctime>

namespace enclave::privacy {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool is_upper(char c) {
  return c >= 'A' && c <= 'Z';
}

// Two-letter country codes with their IBAN lengths (SWIFT IBAN registry), common countries.
struct IbanCountry {
  char code[3];
  int length;
};
constexpr IbanCountry kIbanCountries[] = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16}, {"BG", 22},
    {"BH", 22}, {"BR", 29}, {"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24}, {"DE", 22}, {"DK", 18},
    {"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22},
    {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27}, {"GT", 28}, {"HR", 21}, {"HU", 28}, {"IE", 22},
    {"IL", 23}, {"IQ", 23}, {"IS", 26}, {"IT", 27}, {"JO", 30}, {"KW", 30}, {"KZ", 20}, {"LB", 28},
    {"LI", 21}, {"LT", 20}, {"LU", 20}, {"LV", 21}, {"MC", 27}, {"MD", 24}, {"ME", 22}, {"MK", 19},
    {"MR", 27}, {"MT", 31}, {"MU", 30}, {"NL", 18}, {"NO", 15}, {"PK", 24}, {"PL", 28}, {"PS", 29},
    {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"SA", 24}, {"SE", 24}, {"SI", 19}, {"SK", 24},
    {"SM", 27}, {"TN", 24}, {"TR", 26}, {"UA", 29}, {"VG", 24}, {"XK", 20},
};

// Province-level region codes (first two digits of a resident ID, GB/T 2260).
bool cn_province_valid(int p) {
  switch (p) {
    case 11:
    case 12:
    case 13:
    case 14:
    case 15:
    case 21:
    case 22:
    case 23:
    case 31:
    case 32:
    case 33:
    case 34:
    case 35:
    case 36:
    case 37:
    case 41:
    case 42:
    case 43:
    case 44:
    case 45:
    case 46:
    case 50:
    case 51:
    case 52:
    case 53:
    case 54:
    case 61:
    case 62:
    case 63:
    case 64:
    case 65:
    case 71:
    case 81:
    case 82:
    case 83:
      return true;
    default:
      return false;
  }
}

bool date_valid(int y, int m, int d) {
  if (m < 1 || m > 12 || d < 1) return false;
  static constexpr int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int max_day = kDays[m - 1];
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) max_day = 29;
  return d <= max_day;
}

int parse_int(std::string_view s) {
  int v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}

// Remainder mod 97 of the IBAN's rearranged numeric form (letters A=10 ... Z=35).
int iban_mod97(std::string_view rearranged) {
  int r = 0;
  for (char c : rearranged) {
    if (is_digit(c)) {
      r = (r * 10 + (c - '0')) % 97;
    } else {
      const int v = c - 'A' + 10;
      r = (r * 100 + v) % 97;
    }
  }
  return r;
}

}  // namespace

size_t find_invalid_utf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    if (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if ((w & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) {
      if (i + 1 >= n || (p[i + 1] & 0xC0) != 0x80) return i;
      i += 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      if (i + 2 >= n) return i;
      const unsigned char c1 = p[i + 1];
      if ((c1 & 0xC0) != 0x80 || (p[i + 2] & 0xC0) != 0x80) return i;
      if (c == 0xE0 && c1 < 0xA0) return i;   // overlong
      if (c == 0xED && c1 >= 0xA0) return i;  // surrogate
      i += 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      if (i + 3 >= n) return i;
      const unsigned char c1 = p[i + 1];
      if ((c1 & 0xC0) != 0x80 || (p[i + 2] & 0xC0) != 0x80 || (p[i + 3] & 0xC0) != 0x80) return i;
      if (c == 0xF0 && c1 < 0x90) return i;   // overlong
      if (c == 0xF4 && c1 >= 0x90) return i;  // above U+10FFFF
      i += 4;
    } else {
      return i;
    }
  }
  return std::string_view::npos;
}

size_t count_code_points(std::string_view text) {
  size_t n = 0;
  for (char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

bool luhn_valid(std::string_view digits) {
  if (digits.size() < 2) return false;
  int sum = 0;
  bool dbl = false;
  for (size_t i = digits.size(); i-- > 0;) {
    const char c = digits[i];
    if (!is_digit(c)) return false;
    int v = c - '0';
    if (dbl) {
      v *= 2;
      if (v > 9) v -= 9;
    }
    sum += v;
    dbl = !dbl;
  }
  return sum % 10 == 0;
}

char luhn_check_digit(std::string_view digits) {
  std::string s(digits);
  s.push_back('0');
  for (char d = '0'; d <= '9'; ++d) {
    s.back() = d;
    if (luhn_valid(s)) return d;
  }
  return '0';
}

char cn_id_check_char(std::string_view first17) {
  static constexpr int kWeights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  static constexpr char kCheck[11] = {'1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'};
  int sum = 0;
  for (size_t i = 0; i < 17 && i < first17.size(); ++i) sum += (first17[i] - '0') * kWeights[i];
  return kCheck[sum % 11];
}

bool cn_id_valid(std::string_view id, int today) {
  if (id.size() != 18) return false;
  for (size_t i = 0; i < 17; ++i) {
    if (!is_digit(id[i])) return false;
  }
  char last = id[17];
  if (last == 'x') last = 'X';
  if (!is_digit(last) && last != 'X') return false;
  if (!cn_province_valid(parse_int(id.substr(0, 2)))) return false;
  const int y = parse_int(id.substr(6, 4)), m = parse_int(id.substr(10, 2)),
            d = parse_int(id.substr(12, 2));
  if (y < 1900 || !date_valid(y, m, d) || y * 10000 + m * 100 + d > today) return false;
  return cn_id_check_char(id) == last;
}

int today_yyyymmdd() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

int iban_length(std::string_view country) {
  for (const auto& c : kIbanCountries) {
    if (country == std::string_view(c.code, 2)) return c.length;
  }
  return 0;
}

bool iban_valid(std::string_view s) {
  if (s.size() < 15 || s.size() > 34) return false;
  if (!is_upper(s[0]) || !is_upper(s[1]) || !is_digit(s[2]) || !is_digit(s[3])) return false;
  if (iban_length(s.substr(0, 2)) != static_cast<int>(s.size())) return false;
  for (char c : s.substr(4)) {
    if (!is_digit(c) && !is_upper(c)) return false;
  }
  char buf[34];
  const size_t n = s.size();
  std::memcpy(buf, s.data() + 4, n - 4);
  std::memcpy(buf + n - 4, s.data(), 4);
  return iban_mod97(std::string_view(buf, n)) == 1;
}

std::string iban_check_digits(std::string_view country, std::string_view bban) {
  std::string r(bban);
  r.append(country);
  r.append("00");
  const int check = 98 - iban_mod97(r);
  return {static_cast<char>('0' + check / 10), static_cast<char>('0' + check % 10)};
}

bool us_ssn_valid(std::string_view s) {
  if (s.size() != 11 || s[3] != '-' || s[6] != '-') return false;
  for (size_t i : {0, 1, 2, 4, 5, 7, 8, 9, 10}) {
    if (!is_digit(s[i])) return false;
  }
  const int area = parse_int(s.substr(0, 3)), group = parse_int(s.substr(4, 2)),
            serial = parse_int(s.substr(7, 4));
  return area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
}

bool ipv4_valid(std::string_view s) {
  int octets = 0;
  size_t i = 0;
  while (true) {
    size_t digits = 0;
    int v = 0;
    while (i < s.size() && is_digit(s[i]) && digits < 4) {
      v = v * 10 + (s[i] - '0');
      ++i;
      ++digits;
    }
    if (digits == 0 || digits > 3 || v > 255) return false;
    ++octets;
    if (i == s.size()) break;
    if (s[i] != '.' || octets == 4) return false;
    ++i;
  }
  return octets == 4;
}

bool ipv6_valid(std::string_view s) {
  const size_t dbl = s.find("::");
  if (dbl != std::string_view::npos && s.find("::", dbl + 1) != std::string_view::npos) {
    return false;
  }
  // Counts groups of 1-4 hex digits in a colon-separated run with no empty group.
  auto count_groups = [](std::string_view part, int& groups, int& hex_digits) {
    if (part.empty()) return true;
    size_t run = 0;
    for (size_t i = 0; i <= part.size(); ++i) {
      if (i == part.size() || part[i] == ':') {
        if (run == 0 || run > 4) return false;
        ++groups;
        run = 0;
      } else if (is_hex(part[i])) {
        ++run;
        ++hex_digits;
      } else {
        return false;
      }
    }
    return true;
  };
  int groups = 0, hex_digits = 0;
  if (dbl == std::string_view::npos) {
    return count_groups(s, groups, hex_digits) && groups == 8;
  }
  if (!count_groups(s.substr(0, dbl), groups, hex_digits) ||
      !count_groups(s.substr(dbl + 2), groups, hex_digits)) {
    return false;
  }
  return groups >= 2 && groups <= 7 && hex_digits >= 5;
}

}  // namespace enclave::privacy
