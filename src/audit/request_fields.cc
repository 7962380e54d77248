#include "audit/request_fields.h"

#include <boost/json.hpp>
#include <charconv>
#include <cstdint>

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

void append_member(std::string& out, std::string_view key, std::string_view value) {
  append_key(out, key);
  append_json_string(out, value);
  out += ',';
}

}  // namespace

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  size_t run = 0;  // start of the pending run of bytes copied as they are
  for (size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(text.data() + run, i - run);
    run = i + 1;
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
  append_key(out, "sensitivity");
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
  append_key(out, "prompt_tokens");
  append_int(out, r.prompt_tokens);
  out += ',';
  append_key(out, "completion_tokens");
  append_int(out, r.completion_tokens);
  out += ',';
  append_key(out, "latency_ms");
  append_double(out, r.latency_ms);
  out += ',';
  append_member(out, "outcome", r.outcome);
  append_key(out, "http_status");
  append_int(out, r.http_status);
}

}  // namespace enclave::audit
