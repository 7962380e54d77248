#include "audit/request_fields.h"

#include <boost/json.hpp>
#include <charconv>
#include <cstdint>
#include <cstring>

namespace enclave::audit {
namespace {

template <typename Int>
void append_int(std::string& out, Int value) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  (void)ec;  // 24 characters hold any 64-bit integer
  out.append(buf, end);
}

// boost::json's own number format (e.g. 2.5E-1), so lines stay byte-identical.
void append_double(std::string& out, double value) {
  boost::json::value jv(value);
  boost::json::serializer sr;
  sr.reset(&jv);
  char buf[64];
  while (!sr.done()) {
    std::string_view part = sr.read(buf, sizeof(buf));
    out.append(part.data(), part.size());
  }
}

void append_key(std::string& out, std::string_view key) {
  append_json_string(out, key);
  out += ':';
}

// A member name of our own (plain ASCII, nothing to escape): appended as "name": in one go.
void append_plain_key(std::string& out, std::string_view key) {
  out += '"';
  out += key;
  out += "\":";
}

void append_member(std::string& out, std::string_view key, std::string_view value) {
  append_plain_key(out, key);
  append_json_string(out, value);
  out += ',';
}

// Whether any of the eight bytes of `word` is below 0x20, '"' or '\\' (exact: the classic
// "has a zero byte" / "has a byte less than n" tests, which never miss one).
bool word_needs_escape(uint64_t word) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHighs = 0x8080808080808080ULL;
  auto has_zero = [](uint64_t v) { return (v - kOnes) & ~v & kHighs; };
  uint64_t below_space = (word - kOnes * 0x20) & ~word & kHighs;
  return (below_space | has_zero(word ^ (kOnes * '"')) | has_zero(word ^ (kOnes * '\\'))) != 0;
}

}  // namespace

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  size_t run = 0;  // start of the pending run of bytes copied as they are
  size_t i = 0;
  while (i < text.size()) {
    // Eight plain bytes at a time: audit text rarely needs escaping.
    if (i + 8 <= text.size() && (i & 7) == 0) {
      uint64_t word;
      std::memcpy(&word, text.data() + i, sizeof(word));
      if (!word_needs_escape(word)) {
        i += 8;
        continue;
      }
    }
    auto c = static_cast<unsigned char>(text[i++]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    size_t at = i - 1;
    out.append(text.data() + run, at - run);
    run = i;
    out += '\\';
    switch (c) {
      case '"':
        out += '"';
        break;
      case '\\':
        out += '\\';
        break;
      case '\b':
        out += 'b';
        break;
      case '\t':
        out += 't';
        break;
      case '\n':
        out += 'n';
        break;
      case '\f':
        out += 'f';
        break;
      case '\r':
        out += 'r';
        break;
      default:
        out += "u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
    }
  }
  out.append(text.data() + run, text.size() - run);
  out += '"';
}

void append_request_fields(std::string& out, const RequestAudit& r) {
  append_member(out, "request_id", r.request_id);
  append_member(out, "key_name", r.key_name);
  append_member(out, "tenant", r.tenant);
  append_member(out, "route", r.route);
  append_member(out, "policy", r.policy);
  append_member(out, "model", r.model);
  append_member(out, "model_version", r.model_version);
  append_plain_key(out, "sensitivity");
  out += '{';
  // As a JSON object built by assignment: a repeated category keeps its first position and
  // takes its last count.
  bool first = true;
  const auto& sens = r.sensitivity;
  for (size_t i = 0; i < sens.size(); ++i) {
    bool seen = false;
    for (size_t j = 0; j < i && !seen; ++j) seen = sens[j].category == sens[i].category;
    if (seen) continue;
    uint32_t count = sens[i].count;
    for (size_t j = i + 1; j < sens.size(); ++j) {
      if (sens[j].category == sens[i].category) count = sens[j].count;
    }
    if (!first) out += ',';
    first = false;
    append_key(out, sens[i].category);
    append_int(out, count);
  }
  out += "},";
  append_plain_key(out, "prompt_tokens");
  append_int(out, r.prompt_tokens);
  out += ',';
  append_plain_key(out, "completion_tokens");
  append_int(out, r.completion_tokens);
  out += ',';
  append_plain_key(out, "latency_ms");
  append_double(out, r.latency_ms);
  out += ',';
  append_member(out, "outcome", r.outcome);
  append_plain_key(out, "http_status");
  append_int(out, r.http_status);
}

}  // namespace enclave::audit
