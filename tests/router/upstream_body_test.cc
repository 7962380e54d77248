// The gateway writes upstream bodies without a JSON tree; they must be the bytes Boost.JSON's
// serializer gives for the equivalent object (the tree-based builder the gateway used before).
#include "router/upstream_body.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace enclave::router {
namespace {

namespace json = boost::json;

// Reference: the object the gateway used to build, member by member, then serialize.
template <class Request>
void reference_common(json::object& o, const Request& r, const BackendConfig& b) {
  o["stream"] = r.stream;
  if (r.stream && r.include_usage) o["stream_options"] = json::object{{"include_usage", true}};
  if (r.max_tokens) o["max_tokens"] = *r.max_tokens;
  const api::SamplingOptions& s = r.sampling;
  if (s.temperature) o["temperature"] = *s.temperature;
  if (s.top_p) o["top_p"] = *s.top_p;
  if (s.presence_penalty != 0) o["presence_penalty"] = s.presence_penalty;
  if (s.frequency_penalty != 0) o["frequency_penalty"] = s.frequency_penalty;
  if (s.seed) o["seed"] = *s.seed;
  if (b.kind == BackendKind::kNode) {
    if (s.top_k) o["top_k"] = *s.top_k;
    if (s.min_p) o["min_p"] = *s.min_p;
    if (s.repeat_penalty) o["repeat_penalty"] = *s.repeat_penalty;
  }
  if (!r.stop.empty()) {
    json::array st;
    for (const auto& x : r.stop) st.push_back(json::string(x));
    o["stop"] = std::move(st);
  }
}

std::string reference_body(const api::ChatRequest& r, const BackendConfig& b) {
  json::object o;
  o["model"] = upstream_model(b, r.model);
  json::array msgs;
  for (const auto& m : r.messages) {
    json::object jm;
    jm["role"] = m.role;
    jm["content"] = m.content;
    if (!m.name.empty()) jm["name"] = m.name;
    msgs.push_back(std::move(jm));
  }
  o["messages"] = std::move(msgs);
  reference_common(o, r, b);
  if (r.logprobs) {
    o["logprobs"] = true;
    if (r.top_logprobs > 0) o["top_logprobs"] = r.top_logprobs;
  }
  return json::serialize(o);
}

std::string reference_body(const api::CompletionRequest& r, const BackendConfig& b) {
  json::object o;
  o["model"] = upstream_model(b, r.model);
  o["prompt"] = r.prompt;
  reference_common(o, r, b);
  if (r.logprobs) o["logprobs"] = *r.logprobs;
  return json::serialize(o);
}

BackendConfig backend(BackendKind kind) {
  BackendConfig b;
  b.name = "x";
  b.kind = kind;
  b.models = {"deepseek-chat", "deepseek-reasoner"};
  b.model_map = {{"fast", "deepseek-chat"}};
  return b;
}

// Every byte below 0x80 (controls, quotes, backslash, DEL) plus Chinese text and a placeholder.
std::string every_ascii_and_more() {
  std::string s;
  for (int c = 1; c < 0x80; ++c) s += static_cast<char>(c);
  s += std::string("\0", 1);
  s += "患者张三 [EMAIL_1] \xF0\x9F\x98\x80 \\\"/";
  return s;
}

TEST(UpstreamBody, ChatIsByteIdenticalToTheSerializedObject) {
  api::ChatRequest r;
  r.model = "deepseek-chat";
  r.messages.push_back({"system", "You are a concise assistant.", "", ""});
  r.messages.push_back({"user", every_ascii_and_more(), "", ""});
  r.messages.back().name = "alice \"a\"";
  r.messages.push_back({"assistant", "", "", ""});
  for (BackendKind kind : {BackendKind::kCloud, BackendKind::kNode}) {
    const BackendConfig b = backend(kind);
    EXPECT_EQ(build_upstream_body(r, b), reference_body(r, b));
    api::ChatRequest full = r;
    full.model = "fast";
    full.stream = true;
    full.include_usage = true;
    full.max_tokens = 32;
    full.sampling.temperature = 0.7f;
    full.sampling.top_p = 0.95f;
    full.sampling.presence_penalty = -1.25f;
    full.sampling.frequency_penalty = 0.1f;
    full.sampling.seed = 18446744073709551615ull;
    full.sampling.top_k = 40;
    full.sampling.min_p = 0.05f;
    full.sampling.repeat_penalty = 1.1f;
    full.stop = {"\n\n", "END\x01"};
    full.logprobs = true;
    full.top_logprobs = 5;
    std::string got = build_upstream_body(full, b);
    EXPECT_EQ(got, reference_body(full, b));
    EXPECT_TRUE(json::parse(got).is_object());
  }
}

TEST(UpstreamBody, CompletionIsByteIdenticalToTheSerializedObject) {
  api::CompletionRequest r;
  r.model = "unknown-model";
  r.prompt = every_ascii_and_more();
  for (BackendKind kind : {BackendKind::kCloud, BackendKind::kNode}) {
    const BackendConfig b = backend(kind);
    EXPECT_EQ(build_upstream_body(r, b), reference_body(r, b));
    api::CompletionRequest full = r;
    full.stream = true;
    full.max_tokens = 7;
    full.sampling.temperature = 0.0f;
    full.sampling.top_k = -1;
    full.stop = {"x"};
    full.logprobs = 0;
    EXPECT_EQ(build_upstream_body(full, b), reference_body(full, b));
  }
}

TEST(UpstreamBody, EscapesLikeBoostJson) {
  for (int c = 0; c < 256; ++c) {
    std::string s(1, static_cast<char>(c));
    std::string out;
    append_json_string(out, s);
    if (c < 0x80) {
      EXPECT_EQ(out, json::serialize(json::value(s))) << "byte " << c;
    } else {
      EXPECT_EQ(out, "\"" + s + "\"");  // bytes of UTF-8 sequences are copied as they are
    }
  }
  std::string out;
  append_json_string(out, "a\tb\"c\\d\x1f");
  EXPECT_EQ(out, "\"a\\tb\\\"c\\\\d\\u001f\"");
}

}  // namespace
}  // namespace enclave::router
