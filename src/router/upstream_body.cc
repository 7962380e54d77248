#include "router/upstream_body.h"

#include <boost/json.hpp>
#include <charconv>

namespace enclave::router {

namespace json = boost::json;

namespace {

// Escape for each byte below 0x20 plus '"' and '\\' (0: copied as is; 'u': \u00XX).
constexpr char kEscape[] =
    "uuuuuuuubtnufruuuuuuuuuuuuuuuuuu"
    "\0\0\"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
    "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\\";

char escape_of(unsigned char c) {
  return c < sizeof(kEscape) - 1 ? kEscape[c] : '\0';
}

template <class Int>
void append_int(std::string& out, Int v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, end);
}

// Doubles in Boost.JSON's own shortest form (e.g. 7.000000476837158E-1 for 0.7f): the rare
// sampling fields go through its serializer so the bytes stay the same.
void append_double(std::string& out, double v) {
  out += json::serialize(json::value(v));
}

void append_key(std::string& out, std::string_view key, bool& first) {
  if (!first) out += ',';
  first = false;
  out += '"';
  out += key;  // fixed ASCII member names: nothing to escape
  out += "\":";
}

template <class Request>
void append_common_fields(std::string& o, const Request& r, const BackendConfig& b, bool& first) {
  append_key(o, "stream", first);
  o += r.stream ? "true" : "false";
  if (r.stream && r.include_usage) {
    append_key(o, "stream_options", first);
    o += "{\"include_usage\":true}";
  }
  if (r.max_tokens) append_key(o, "max_tokens", first), append_int(o, int64_t{*r.max_tokens});
  const api::SamplingOptions& s = r.sampling;
  if (s.temperature) append_key(o, "temperature", first), append_double(o, *s.temperature);
  if (s.top_p) append_key(o, "top_p", first), append_double(o, *s.top_p);
  if (s.presence_penalty != 0) {
    append_key(o, "presence_penalty", first), append_double(o, s.presence_penalty);
  }
  if (s.frequency_penalty != 0) {
    append_key(o, "frequency_penalty", first), append_double(o, s.frequency_penalty);
  }
  if (s.seed) append_key(o, "seed", first), append_int(o, uint64_t{*s.seed});
  if (b.kind == BackendKind::kNode) {  // Enclave extensions
    if (s.top_k) append_key(o, "top_k", first), append_int(o, int64_t{*s.top_k});
    if (s.min_p) append_key(o, "min_p", first), append_double(o, *s.min_p);
    if (s.repeat_penalty)
      append_key(o, "repeat_penalty", first), append_double(o, *s.repeat_penalty);
  }
  if (!r.stop.empty()) {
    append_key(o, "stop", first);
    o += '[';
    for (size_t i = 0; i < r.stop.size(); ++i) {
      if (i > 0) o += ',';
      append_json_string(o, r.stop[i]);
    }
    o += ']';
  }
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  size_t run = 0;  // start of the bytes not copied yet
  for (size_t i = 0; i < s.size(); ++i) {
    char e = escape_of(static_cast<unsigned char>(s[i]));
    if (!e) continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    out += '\\';
    if (e != 'u') {
      out += e;
      continue;
    }
    unsigned char c = static_cast<unsigned char>(s[i]);
    out += "u00";
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  out.append(s.data() + run, s.size() - run);
  out += '"';
}

std::string upstream_model(const BackendConfig& b, const std::string& requested) {
  if (auto it = b.model_map.find(requested); it != b.model_map.end()) return it->second;
  for (const auto& m : b.models) {
    if (m == requested) return m;
  }
  return b.models.empty() ? requested : b.models.front();
}

std::string build_upstream_body(const api::ChatRequest& r, const BackendConfig& b) {
  size_t text_bytes = 0;
  for (const auto& m : r.messages) text_bytes += m.role.size() + m.content.size() + m.name.size();
  std::string o;
  o.reserve(192 + text_bytes + text_bytes / 8 + r.messages.size() * 48);
  o += '{';
  bool first = true;
  append_key(o, "model", first);
  append_json_string(o, upstream_model(b, r.model));
  append_key(o, "messages", first);
  o += '[';
  for (size_t i = 0; i < r.messages.size(); ++i) {
    const api::ChatMessage& m = r.messages[i];
    if (i > 0) o += ',';
    o += "{\"role\":";
    append_json_string(o, m.role);
    o += ",\"content\":";
    append_json_string(o, m.content);
    if (!m.name.empty()) {
      o += ",\"name\":";
      append_json_string(o, m.name);
    }
    // DeepSeek rejects reasoning_content of earlier turns (reference §6.4); nodes drop it too.
    o += '}';
  }
  o += ']';
  append_common_fields(o, r, b, first);
  if (r.logprobs) {
    append_key(o, "logprobs", first);
    o += "true";
    if (r.top_logprobs > 0) append_key(o, "top_logprobs", first), append_int(o, r.top_logprobs);
  }
  o += '}';
  return o;
}

std::string build_upstream_body(const api::CompletionRequest& r, const BackendConfig& b) {
  std::string o;
  o.reserve(192 + r.prompt.size() + r.prompt.size() / 8);
  o += '{';
  bool first = true;
  append_key(o, "model", first);
  append_json_string(o, upstream_model(b, r.model));
  append_key(o, "prompt", first);
  append_json_string(o, r.prompt);
  append_common_fields(o, r, b, first);
  if (r.logprobs) append_key(o, "logprobs", first), append_int(o, int64_t{*r.logprobs});
  o += '}';
  return o;
}

}  // namespace enclave::router
