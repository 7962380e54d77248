// Validators behind the scanner's detectors: checksums, dates, address syntax, UTF-8. Pure
// functions on ASCII spans, exposed for tests, the benchmark and synthetic test-data generators.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace enclave::privacy {

// Offset of the first byte that is not part of well-formed UTF-8 (overlongs, surrogates and code
// points above U+10FFFF are ill-formed); npos when the whole text is valid.
size_t find_invalid_utf8(std::string_view text);
// Number of code points in valid UTF-8 (counts non-continuation bytes).
size_t count_code_points(std::string_view text);

// Luhn (mod 10) over ASCII digits only; false on any non-digit or fewer than 2 digits.
bool luhn_valid(std::string_view digits);
// The digit that makes `digits + d` Luhn-valid (for generating synthetic test numbers).
char luhn_check_digit(std::string_view digits);

// GB 11643 (ISO 7064 MOD 11-2) check character ('0'-'9' or 'X') for the first 17 digits.
char cn_id_check_char(std::string_view first17);
// 18-character Chinese resident ID: province code, birth date between 1900-01-01 and
// `today_yyyymmdd` (a real calendar date), check character (X or x).
bool cn_id_valid(std::string_view id, int today_yyyymmdd);
// Today's UTC date as YYYYMMDD.
int today_yyyymmdd();

// IBAN without spaces: known country, that country's length, mod 97 == 1.
bool iban_valid(std::string_view compact);
// Two check digits for COUNTRY + "00" + BBAN (for generating synthetic test numbers).
std::string iban_check_digits(std::string_view country, std::string_view bban);
// IBAN length for a country code, 0 if the country is not in the table.
int iban_length(std::string_view country);

// "AAA-GG-SSSS": area not 000/666/9xx, group not 00, serial not 0000.
bool us_ssn_valid(std::string_view ssn);
// Dotted quad, each octet 0-255 with 1-3 digits.
bool ipv4_valid(std::string_view text);
// Full (8 groups) or compressed (one "::", at least 2 groups and 5 hex digits in total, to keep
// C++ scopes like "A::B" out) IPv6 address; no zone id, no embedded IPv4.
bool ipv6_valid(std::string_view text);

}  // namespace enclave::privacy
