#include "audit/entry.h"

#include <boost/json.hpp>
#include <ctime>

#include "crypto/primitives.h"

namespace enclave::audit {
namespace {

constexpr std::string_view kHmacPrefix = ",\"hmac\":\"";
constexpr size_t kHmacHexChars = 64;
constexpr size_t kHmacSuffixChars = kHmacPrefix.size() + kHmacHexChars + 2;  // + "}

bool is_hex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

Result<std::string> seal_line(std::string_view body, const crypto::SecretBytes& key) {
  if (body.size() < 2 || body.back() != '}') {
    return make_error(ErrorCode::kInternal, "audit entry body is not a JSON object");
  }
  ENCLAVE_ASSIGN_OR_RETURN(crypto::Sha256Digest mac,
                           crypto::hmac_sha256(key.span(), crypto::as_bytes(body)));
  std::string line(body.substr(0, body.size() - 1));
  line += kHmacPrefix;
  line += crypto::hex_encode(mac);
  line += "\"}";
  return line;
}

std::string line_hash(std::string_view line) {
  return crypto::hex_encode(crypto::sha256(crypto::as_bytes(line)));
}

ParsedLine parse_line(std::string_view line, const crypto::SecretBytes* key) {
  ParsedLine out;
  if (line.size() <= kHmacSuffixChars) return out;
  std::string_view suffix = line.substr(line.size() - kHmacSuffixChars);
  if (suffix.substr(0, kHmacPrefix.size()) != kHmacPrefix ||
      suffix.substr(suffix.size() - 2) != "\"}") {
    return out;
  }
  std::string_view mac_hex = suffix.substr(kHmacPrefix.size(), kHmacHexChars);
  if (!is_hex(mac_hex)) return out;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(line, ec);
  if (ec || !v.is_object()) return out;
  const auto& obj = v.as_object();
  const auto* seq = obj.if_contains("seq");
  const auto* prev = obj.if_contains("prev");
  const auto* hmac = obj.if_contains("hmac");
  if (!seq || !prev || !hmac || !prev->is_string() || !hmac->is_string() ||
      hmac->as_string() != mac_hex) {
    return out;
  }
  if (seq->is_uint64()) {
    out.seq = seq->as_uint64();
  } else if (seq->is_int64() && seq->as_int64() >= 0) {
    out.seq = static_cast<uint64_t>(seq->as_int64());
  } else {
    return out;
  }
  out.prev = std::string(prev->as_string());
  if (out.prev.size() != 64 || !is_hex(out.prev)) return out;
  if (const auto* type = obj.if_contains("type"); type && type->is_string()) {
    out.type = std::string(type->as_string());
  }
  if (const auto* ts = obj.if_contains("ts_ms"); ts && ts->is_int64()) out.ts_ms = ts->as_int64();
  out.json_ok = true;
  if (key) {
    std::string body(line.substr(0, line.size() - kHmacSuffixChars));
    body += '}';
    auto mac = crypto::hmac_sha256(key->span(), crypto::as_bytes(body));
    auto expected = crypto::hex_decode(mac_hex);
    out.hmac_ok = mac && expected && crypto::constant_time_equal(*mac, *expected);
  }
  return out;
}

std::string format_rfc3339_ms(int64_t unix_ms) {
  std::string out;
  append_rfc3339_ms(out, unix_ms);
  return out;
}

void append_rfc3339_ms(std::string& out, int64_t unix_ms) {
  std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  int ms = static_cast<int>(unix_ms % 1000);
  if (ms < 0) {
    ms += 1000;
    secs -= 1;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  int year = tm.tm_year + 1900;
  if (year < 0 || year > 9999) {  // printf's widths for the rare year outside 4 digits
    char buf[96];
    std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", year, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    out += buf;
    return;
  }
  // The same bytes as the format above, without printf (once per audit entry).
  char buf[24];
  auto digits = [&buf](size_t at, int value, int width) {
    for (int i = width - 1; i >= 0; --i) {
      buf[at + static_cast<size_t>(i)] = static_cast<char>('0' + value % 10);
      value /= 10;
    }
  };
  digits(0, year, 4);
  buf[4] = '-';
  digits(5, tm.tm_mon + 1, 2);
  buf[7] = '-';
  digits(8, tm.tm_mday, 2);
  buf[10] = 'T';
  digits(11, tm.tm_hour, 2);
  buf[13] = ':';
  digits(14, tm.tm_min, 2);
  buf[16] = ':';
  digits(17, tm.tm_sec, 2);
  buf[19] = '.';
  digits(20, ms, 3);
  buf[23] = 'Z';
  out.append(buf, sizeof(buf));
}

}  // namespace enclave::audit
