// Engine: the only owner of model state. Requests go in through a queue; a scheduler thread runs
// continuous batching (sequences join and leave between decode steps, each with its own sampler
// and KV slot) and reports tokens through per-request callbacks. No JSON here.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"

namespace enclave::tokenizer {
class Tokenizer;
class ChatTemplate;
}  // namespace enclave::tokenizer

namespace enclave::engine {

struct SamplingParams {
  float temperature = 0.8f;  // 0 => greedy
  int32_t top_k = 40;        // <= 0 disables
  float top_p = 0.95f;       // 1 disables
  float min_p = 0.05f;       // 0 disables
  float repeat_penalty = 1.0f;
  int32_t repeat_last_n = 64;
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  std::optional<uint64_t> seed;                       // same seed + request => same output
  std::vector<std::pair<int32_t, float>> logit_bias;  // token id -> additive bias
};

enum class FinishReason { kNone, kStop, kLength, kCancelled, kError };
const char* finish_reason_name(FinishReason r);  // "stop", "length", ...

struct GenerationRequest {
  std::vector<int32_t> prompt_tokens;
  SamplingParams sampling;
  int32_t max_tokens = 256;       // generated tokens cap (also capped by the context)
  std::vector<std::string> stop;  // stop strings (not included in the output)
  bool stop_at_eog = true;        // end-of-generation tokens end the sequence
  // Log-probabilities on each token event (OpenAI chat `logprobs` / `top_logprobs`, completions
  // `logprobs: N`): the sampled token's, and the `top_logprobs` (0..kMaxTopLogprobs) most likely
  // tokens'. From the model's distribution: log-softmax of the raw logits, before temperature,
  // penalties, logit bias and truncation.
  bool logprobs = false;
  int32_t top_logprobs = 0;
};

inline constexpr int32_t kMaxTopLogprobs = 20;

struct TokenLogprob {
  int32_t token = -1;
  float logprob = 0.0f;
};

// One event per generated token, then a final event with `finished` set.
struct TokenEvent {
  int32_t token = -1;  // -1 on the final event
  std::string text;    // UTF-8-complete text released by this step (may be empty)
  // With GenerationRequest::logprobs: log-probability of `token`, and the most likely tokens
  // (most likely first; ties by lower id).
  float logprob = 0.0f;
  std::vector<TokenLogprob> top_logprobs;
  bool finished = false;
  FinishReason finish_reason = FinishReason::kNone;
  std::string error;          // set when finish_reason == kError
  int32_t prompt_tokens = 0;  // on the final event: exact usage
  int32_t completion_tokens = 0;
  int32_t cached_prompt_tokens = 0;  // prompt tokens reused from a cached prefix
};

using TokenCallback = std::function<void(const TokenEvent&)>;

struct EngineOptions {
  std::string model_path;
  int32_t n_threads = 2;
  int32_t n_ctx = 4096;    // per sequence
  int32_t n_parallel = 4;  // KV slots / concurrent sequences
  int32_t max_queue = 64;  // queued requests beyond the slots; more => kResourceExhausted
  bool kv_q8 = false;      // KV cache as Q8_0 instead of F16
  // KV cache element type: "f16" (default), "q8_0" or "f32" (exact; used by the golden tests).
  // kv_q8 = true wins over this field.
  std::string kv_type = "f16";
  int32_t n_batch = 512;  // most tokens per decode step (prompt prefill is chunked to this)
  // Map the model file instead of copying it into huge-page memory (model::Model::load).
  bool mmap = false;
};

struct ModelInfo {
  std::string name;          // general.name or file stem
  std::string architecture;  // "qwen2", "llama"
  std::string path;
  int32_t n_vocab = 0;
  int32_t n_ctx = 0;
  int32_t n_embd = 0;
  uint64_t file_bytes = 0;
  uint64_t kv_cache_bytes = 0;
  bool is_demo = false;  // random-weight synth model
  // Weights read from the file mapping: asked for (--mmap), or the copy did not fit in memory.
  bool weights_mapped = false;
};

struct EngineStats {
  int32_t queued = 0;
  int32_t busy_slots = 0;
  int32_t n_slots = 0;
  // Since create, over finished requests (counters for /metrics): prompt tokens, the part of them
  // reused from a cached prefix instead of computed, and prefixes copied from another KV slot.
  uint64_t prompt_tokens_total = 0;
  uint64_t cached_prompt_tokens_total = 0;
  uint64_t prefix_copies_total = 0;
};

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> create(const EngineOptions& options);
  virtual ~Engine() = default;

  virtual const ModelInfo& info() const = 0;
  virtual EngineStats stats() const = 0;

  // Queues a request; returns its id. Errors: prompt longer than the context (kOutOfRange),
  // queue full (kResourceExhausted). The callback runs on the engine thread: keep it short.
  virtual Result<uint64_t> submit(GenerationRequest request, TokenCallback on_event) = 0;
  // Cancels a queued or running request; its final event reports kCancelled.
  virtual void cancel(uint64_t request_id) = 0;

  // Mean-pooled final hidden state (after output_norm), L2-normalized. Runs on the engine thread.
  virtual Result<std::vector<float>> embed(const std::vector<int32_t>& tokens) = 0;

  // Stops the scheduler after cancelling everything in flight.
  virtual void shutdown() = 0;

  // The model's tokenizer and chat template (immutable after create; safe from any thread).
  // When the GGUF has no recognized chat template, ChatML is used.
  virtual const tokenizer::Tokenizer& tokenizer() const = 0;
  virtual const tokenizer::ChatTemplate& chat_template() const = 0;
};

}  // namespace enclave::engine
