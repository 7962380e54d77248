// Response writers: typed results -> OpenAI/DeepSeek JSON bodies and SSE chunk payloads.
#include <boost/json.hpp>
#include <cstring>

#include "api/codec.h"

namespace enclave::api {
namespace json = boost::json;
namespace {

json::value nullable(std::string_view s) {
  return s.empty() ? json::value(nullptr) : json::value(json::string_view(s.data(), s.size()));
}

json::object usage_json(const Usage& u) {
  json::object o;
  o["prompt_tokens"] = u.prompt_tokens;
  o["completion_tokens"] = u.completion_tokens;
  o["total_tokens"] = u.prompt_tokens + u.completion_tokens;
  json::object details;
  details["cached_tokens"] = u.cached_prompt_tokens;
  o["prompt_tokens_details"] = std::move(details);
  // DeepSeek's names for the same split.
  o["prompt_cache_hit_tokens"] = u.cached_prompt_tokens;
  o["prompt_cache_miss_tokens"] = u.prompt_tokens - u.cached_prompt_tokens;
  return o;
}

json::object envelope(const ResponseMeta& meta, const char* object) {
  json::object o;
  o["id"] = meta.id;
  o["object"] = object;
  o["created"] = meta.created;
  o["model"] = meta.model;
  o["system_fingerprint"] = "enclave";
  return o;
}

}  // namespace

std::string write_chat_completion(const ResponseMeta& meta, const ChatResult& result) {
  json::object o = envelope(meta, "chat.completion");
  json::object message;
  message["role"] = "assistant";
  message["content"] = result.content;
  if (result.reasoning) message["reasoning_content"] = result.reasoning_content;
  json::object choice;
  choice["index"] = 0;
  choice["message"] = std::move(message);
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = nullable(result.finish_reason);
  o["choices"] = json::array{std::move(choice)};
  o["usage"] = usage_json(result.usage);
  return json::serialize(o);
}

std::string write_chat_chunk(const ResponseMeta& meta, const ChatDelta& delta) {
  json::object o = envelope(meta, "chat.completion.chunk");
  json::object d;
  if (!delta.role.empty()) d["role"] = delta.role;
  if (delta.content) d["content"] = *delta.content;
  if (delta.reasoning_content) d["reasoning_content"] = *delta.reasoning_content;
  json::object choice;
  choice["index"] = 0;
  choice["delta"] = std::move(d);
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = nullable(delta.finish_reason);
  o["choices"] = json::array{std::move(choice)};
  return json::serialize(o);
}

std::string write_chat_usage_chunk(const ResponseMeta& meta, const Usage& usage) {
  json::object o = envelope(meta, "chat.completion.chunk");
  o["choices"] = json::array{};
  o["usage"] = usage_json(usage);
  return json::serialize(o);
}

std::string write_text_completion(const ResponseMeta& meta, const TextResult& result) {
  json::object o = envelope(meta, "text_completion");
  json::object choice;
  choice["index"] = 0;
  choice["text"] = result.text;
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = nullable(result.finish_reason);
  o["choices"] = json::array{std::move(choice)};
  o["usage"] = usage_json(result.usage);
  return json::serialize(o);
}

std::string write_text_chunk(const ResponseMeta& meta, std::string_view text,
                             std::string_view finish_reason) {
  json::object o = envelope(meta, "text_completion");
  json::object choice;
  choice["index"] = 0;
  choice["text"] = json::string_view(text.data(), text.size());
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = nullable(finish_reason);
  o["choices"] = json::array{std::move(choice)};
  return json::serialize(o);
}

std::string write_text_usage_chunk(const ResponseMeta& meta, const Usage& usage) {
  json::object o = envelope(meta, "text_completion");
  o["choices"] = json::array{};
  o["usage"] = usage_json(usage);
  return json::serialize(o);
}

namespace {
json::object model_json(const ModelCard& m) {
  json::object o;
  o["id"] = m.id;
  o["object"] = "model";
  o["created"] = m.created;
  o["owned_by"] = m.owned_by;
  if (m.context_length > 0) o["context_length"] = m.context_length;
  if (m.is_demo) {
    o["demo"] = true;
    o["description"] = "random-weight demo model: output is gibberish; configure a real model";
  }
  return o;
}
}  // namespace

std::string write_models(const std::vector<ModelCard>& models) {
  json::array data;
  for (const ModelCard& m : models) data.push_back(model_json(m));
  json::object o;
  o["object"] = "list";
  o["data"] = std::move(data);
  return json::serialize(o);
}

std::string write_model(const ModelCard& model) {
  return json::serialize(model_json(model));
}

std::string base64_encode(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = (uint32_t{b[i]} << 16) | (uint32_t{b[i + 1]} << 8) | b[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  size_t rest = bytes.size() - i;
  if (rest == 1) {
    uint32_t v = uint32_t{b[i]} << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (rest == 2) {
    uint32_t v = (uint32_t{b[i]} << 16) | (uint32_t{b[i + 1]} << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string write_embeddings(std::string_view model, const std::vector<std::vector<float>>& vectors,
                             EmbeddingEncoding encoding, int32_t prompt_tokens) {
  json::array data;
  for (size_t i = 0; i < vectors.size(); ++i) {
    json::object e;
    e["object"] = "embedding";
    e["index"] = static_cast<int64_t>(i);
    if (encoding == EmbeddingEncoding::kBase64) {
      // Little-endian float32 bytes, as the OpenAI API returns them.
      std::string raw(vectors[i].size() * sizeof(float), '\0');
      if (!raw.empty()) std::memcpy(raw.data(), vectors[i].data(), raw.size());
      e["embedding"] = base64_encode(raw);
    } else {
      json::array values;
      values.reserve(vectors[i].size());
      for (float f : vectors[i]) values.push_back(static_cast<double>(f));
      e["embedding"] = std::move(values);
    }
    data.push_back(std::move(e));
  }
  json::object o;
  o["object"] = "list";
  o["data"] = std::move(data);
  o["model"] = json::string_view(model.data(), model.size());
  json::object usage;
  usage["prompt_tokens"] = prompt_tokens;
  usage["total_tokens"] = prompt_tokens;
  o["usage"] = std::move(usage);
  return json::serialize(o);
}

}  // namespace enclave::api
