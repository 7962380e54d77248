// OpenAI/DeepSeek-compatible request and response value types. Parsed from and written to JSON by
// codec.h; the engine never sees these (the server translates them into engine requests).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace enclave::api {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" (also "developer" -> system, "tool")
  std::string content;
  std::string reasoning_content;  // assistant turns of reasoning models (dropped by R1 template)
  std::string name;
};

// Sampling fields shared by chat and text completions. Unset optionals take the server defaults.
struct SamplingOptions {
  std::optional<float> temperature;     // [0, 2]
  std::optional<float> top_p;           // (0, 1]
  std::optional<int32_t> top_k;         // extension (llama.cpp-style); <= 0 disables
  std::optional<float> min_p;           // extension; [0, 1]
  std::optional<float> repeat_penalty;  // extension; > 0
  float presence_penalty = 0.0f;        // [-2, 2]
  float frequency_penalty = 0.0f;       // [-2, 2]
  std::optional<uint64_t> seed;
  std::vector<std::pair<int32_t, float>> logit_bias;  // token id -> bias in [-100, 100]
};

struct ChatRequest {
  std::string model;
  std::vector<ChatMessage> messages;
  SamplingOptions sampling;
  std::optional<int32_t> max_tokens;  // max_tokens or max_completion_tokens
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool logprobs = false;       // choices[].logprobs.content per generated token
  int32_t top_logprobs = 0;    // [0, kMaxChatTopLogprobs]; only with logprobs
};

// Most alternatives per token: chat `top_logprobs` (OpenAI: 20) and completions `logprobs`
// (OpenAI legacy: 5).
inline constexpr int32_t kMaxChatTopLogprobs = 20;
inline constexpr int32_t kMaxCompletionLogprobs = 5;

struct CompletionRequest {
  std::string model;
  std::string prompt;                  // when !prompt_is_tokens
  std::vector<int32_t> prompt_tokens;  // when prompt_is_tokens
  bool prompt_is_tokens = false;
  SamplingOptions sampling;
  std::optional<int32_t> max_tokens;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;
  // `logprobs: N` (OpenAI legacy): unset = off, N in [0, kMaxCompletionLogprobs] alternatives.
  std::optional<int32_t> logprobs;
};

enum class EmbeddingEncoding { kFloat, kBase64 };

struct EmbeddingRequest {
  std::string model;
  std::vector<std::string> inputs;  // one embedding per input, in order
  EmbeddingEncoding encoding = EmbeddingEncoding::kFloat;
};

struct Usage {
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  int32_t cached_prompt_tokens = 0;
};

// Limits applied while parsing (the server fills them from its configuration).
struct ParseLimits {
  size_t max_messages = 1024;
  size_t max_stop = 16;
  size_t max_embedding_inputs = 2048;
  size_t max_logit_bias = 1024;
};

// What a response needs besides the generated text.
struct ResponseMeta {
  std::string id;       // "chatcmpl-..." / "cmpl-..."
  int64_t created = 0;  // unix seconds
  std::string model;
};

struct ModelCard {
  std::string id;
  int64_t created = 0;
  std::string owned_by = "enclave";
  bool is_demo = false;
  int32_t context_length = 0;
};

}  // namespace enclave::api
