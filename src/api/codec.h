// JSON codec for the OpenAI/DeepSeek API: request parsing with validation (errors name the field in
// `param`, e.g. "messages[2].content") and response writers (full bodies and SSE chunk payloads).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/types.h"
#include "core/result.h"

namespace enclave::api {

// Each parser returns kInvalidArgument (bad JSON, bad field) or kUnsupported (valid but not
// implemented, e.g. response_format json_object, n > 1); on error `*param` (if given) receives the
// offending field name, empty when the whole body is at fault.
Result<ChatRequest> parse_chat_request(std::string_view body, const ParseLimits& limits,
                                       std::string* param = nullptr);
Result<CompletionRequest> parse_completion_request(std::string_view body, const ParseLimits& limits,
                                                   std::string* param = nullptr);
Result<EmbeddingRequest> parse_embedding_request(std::string_view body, const ParseLimits& limits,
                                                 std::string* param = nullptr);

// Strict UTF-8 (no overlongs, no surrogates, max U+10FFFF).
bool is_valid_utf8(std::string_view text);

// ---- responses ----

// Log-probability of one token, for the logprobs of both endpoints. `bytes` are the token's raw
// bytes: a token can hold part of a UTF-8 character, so writers show `token` as the lossy text
// (U+FFFD for incomplete or invalid sequences) and the exact bytes as a number array.
struct TokenAlternative {
  std::string bytes;
  float logprob = 0.0f;
};
struct TokenLogprob {
  std::string bytes;
  float logprob = 0.0f;
  std::vector<TokenAlternative> top;  // most likely first
};

// `bytes` as text: valid UTF-8 is kept, each maximal invalid or truncated subsequence becomes one
// U+FFFD (what Python's decode(errors="replace") gives).
std::string lossy_utf8(std::string_view bytes);
// Characters (code points) that start in `bytes`: the completions `text_offset` unit.
int64_t count_utf8_starts(std::string_view bytes);

// finish_reason as the OpenAI API spells it: "stop", "length"; empty -> null.
struct ChatResult {
  std::string content;
  std::string reasoning_content;  // written only when `reasoning` is true
  bool reasoning = false;
  std::string finish_reason;
  Usage usage;
  // Requested logprobs: {"content": [...]} with one entry per generated token, in order; else null.
  std::optional<std::vector<TokenLogprob>> logprobs;
};
std::string write_chat_completion(const ResponseMeta& meta, const ChatResult& result);

// One "chat.completion.chunk". `role` non-empty on the first chunk; `finish_reason` on the last.
struct ChatDelta {
  std::string role;
  std::optional<std::string> content;
  std::optional<std::string> reasoning_content;
  std::string finish_reason;
  // Entries of the tokens whose text this chunk carries ({"content": [...]}); unset -> null.
  std::optional<std::vector<TokenLogprob>> logprobs;
};
std::string write_chat_chunk(const ResponseMeta& meta, const ChatDelta& delta);
// The usage-only chunk of stream_options.include_usage: "choices": [] and "usage".
std::string write_chat_usage_chunk(const ResponseMeta& meta, const Usage& usage);

// Completions logprobs (OpenAI legacy shape): {"tokens", "token_logprobs", "top_logprobs" (one
// {token: logprob} object per token), "text_offset"}. Offsets count characters of the completion
// text from `first_text_offset` (the characters earlier chunks of a stream carried).
struct TextLogprobs {
  std::vector<TokenLogprob> tokens;
  int64_t first_text_offset = 0;
};

struct TextResult {
  std::string text;
  std::string finish_reason;
  Usage usage;
  std::optional<TextLogprobs> logprobs;  // unset -> null
};
std::string write_text_completion(const ResponseMeta& meta, const TextResult& result);
std::string write_text_chunk(const ResponseMeta& meta, std::string_view text,
                             std::string_view finish_reason,
                             const TextLogprobs* logprobs = nullptr);
std::string write_text_usage_chunk(const ResponseMeta& meta, const Usage& usage);

std::string write_models(const std::vector<ModelCard>& models);
std::string write_model(const ModelCard& model);

std::string write_embeddings(std::string_view model, const std::vector<std::vector<float>>& vectors,
                             EmbeddingEncoding encoding, int32_t prompt_tokens);

// Standard base64 (with padding) of raw bytes; used for encoding_format "base64".
std::string base64_encode(std::string_view bytes);

}  // namespace enclave::api
