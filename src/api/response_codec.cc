// Response writers: typed results -> OpenAI/DeepSeek JSON bodies and SSE chunk payloads.
#include <boost/json.hpp>
#include <cmath>
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

// OpenAI writes -9999.0 for a token the model rules out; JSON has no -Infinity.
double json_logprob(float logprob) {
  return std::isfinite(logprob) ? static_cast<double>(logprob) : -9999.0;
}

json::array bytes_json(std::string_view bytes) {
  json::array a;
  a.reserve(bytes.size());
  for (char c : bytes) a.push_back(static_cast<unsigned char>(c));
  return a;
}

json::object alternative_json(std::string_view bytes, float logprob) {
  json::object o;
  o["token"] = lossy_utf8(bytes);
  o["logprob"] = json_logprob(logprob);
  o["bytes"] = bytes_json(bytes);
  return o;
}

// Chat shape: {"content": [{"token","logprob","bytes","top_logprobs": [...]}, ...]}.
json::value chat_logprobs_json(const std::optional<std::vector<TokenLogprob>>& entries) {
  if (!entries) return nullptr;
  json::array content;
  content.reserve(entries->size());
  for (const TokenLogprob& t : *entries) {
    json::object o = alternative_json(t.bytes, t.logprob);
    json::array top;
    top.reserve(t.top.size());
    for (const TokenAlternative& a : t.top) top.push_back(alternative_json(a.bytes, a.logprob));
    o["top_logprobs"] = std::move(top);
    content.push_back(std::move(o));
  }
  json::object o;
  o["content"] = std::move(content);
  return o;
}

// Legacy completions shape: parallel arrays, alternatives as {token: logprob} objects (two
// tokens with the same lossy text keep the more likely one, as a JSON object cannot hold both).
json::value text_logprobs_json(const TextLogprobs* lp) {
  if (!lp) return nullptr;
  json::array tokens, token_logprobs, top_logprobs, text_offset;
  int64_t offset = lp->first_text_offset;
  for (const TokenLogprob& t : lp->tokens) {
    tokens.push_back(json::string(lossy_utf8(t.bytes)));
    token_logprobs.push_back(json_logprob(t.logprob));
    json::object top;
    for (const TokenAlternative& a : t.top)
      top.emplace(lossy_utf8(a.bytes), json_logprob(a.logprob));
    top_logprobs.push_back(std::move(top));
    text_offset.push_back(offset);
    offset += count_utf8_starts(t.bytes);
  }
  json::object o;
  o["tokens"] = std::move(tokens);
  o["token_logprobs"] = std::move(token_logprobs);
  o["top_logprobs"] = std::move(top_logprobs);
  o["text_offset"] = std::move(text_offset);
  return o;
}

}  // namespace

std::string lossy_utf8(std::string_view bytes) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  std::string out;
  out.reserve(n);
  size_t i = 0;
  while (i < n) {
    const unsigned char c = b[i];
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    // Sequence length and the allowed range of the second byte (excludes overlongs, surrogates
    // and code points above U+10FFFF).
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    }
    if (len == 0) {
      out += kReplacement;
      ++i;
      continue;
    }
    size_t valid = 1;
    while (valid < len && i + valid < n) {
      const unsigned char x = b[i + valid];
      const bool ok = valid == 1 ? (x >= lo && x <= hi) : (x >= 0x80 && x <= 0xBF);
      if (!ok) break;
      ++valid;
    }
    if (valid == len) {
      out.append(bytes.substr(i, len));
    } else {
      out += kReplacement;
    }
    i += valid;
  }
  return out;
}

int64_t count_utf8_starts(std::string_view bytes) {
  int64_t n = 0;
  for (char c : bytes) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

std::string write_chat_completion(const ResponseMeta& meta, const ChatResult& result) {
  json::object o = envelope(meta, "chat.completion");
  json::object message;
  message["role"] = "assistant";
  message["content"] = result.content;
  if (result.reasoning) message["reasoning_content"] = result.reasoning_content;
  json::object choice;
  choice["index"] = 0;
  choice["message"] = std::move(message);
  choice["logprobs"] = chat_logprobs_json(result.logprobs);
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
  choice["logprobs"] = chat_logprobs_json(delta.logprobs);
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
  choice["logprobs"] = text_logprobs_json(result.logprobs ? &*result.logprobs : nullptr);
  choice["finish_reason"] = nullable(result.finish_reason);
  o["choices"] = json::array{std::move(choice)};
  o["usage"] = usage_json(result.usage);
  return json::serialize(o);
}

std::string write_text_chunk(const ResponseMeta& meta, std::string_view text,
                             std::string_view finish_reason, const TextLogprobs* logprobs) {
  json::object o = envelope(meta, "text_completion");
  json::object choice;
  choice["index"] = 0;
  choice["text"] = json::string_view(text.data(), text.size());
  choice["logprobs"] = text_logprobs_json(logprobs);
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
