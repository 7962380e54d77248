// Backend: what the HTTP layer generates with. The local engine is the first implementation
// (engine_backend.h); cloud backends from the router plug in behind the same interface. Backends
// take typed values, never JSON.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "api/types.h"
#include "core/result.h"
#include "engine/engine.h"

namespace enclave::server {

struct PreparedPrompt {
  std::vector<int32_t> tokens;
  bool reasoning = false;            // model emits <think>...</think> (R1 template)
  bool starts_in_reasoning = false;  // the generation prompt already opened <think>
};

// Splits generated text into reasoning_content and content, incrementally.
class ReasoningSplitter {
 public:
  struct Delta {
    std::string reasoning;
    std::string content;
  };
  virtual ~ReasoningSplitter() = default;
  virtual Delta push(std::string_view text) = 0;
  virtual Delta flush() = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // The id clients send as "model"; aliases() also resolve to this backend.
  virtual std::string model_id() const = 0;
  virtual std::vector<std::string> aliases() const = 0;
  virtual const engine::ModelInfo& info() const = 0;
  virtual engine::EngineStats stats() const = 0;

  // Renders the chat template (with the generation prompt) and tokenizes it.
  virtual Result<PreparedPrompt> prepare_chat(const std::vector<api::ChatMessage>& messages) = 0;
  // Plain text -> tokens (BOS per the model's default).
  virtual Result<std::vector<int32_t>> tokenize(std::string_view text) = 0;
  virtual std::unique_ptr<ReasoningSplitter> make_splitter(bool starts_in_reasoning) = 0;
  // Raw bytes of one token (may be part of a UTF-8 character): the text of logprobs entries.
  // Safe from any thread (the engine thread calls it while streaming).
  virtual std::string token_bytes(int32_t token) const = 0;

  // See engine::Engine::submit / cancel / embed.
  virtual Result<uint64_t> submit(engine::GenerationRequest request,
                                  engine::TokenCallback on_event) = 0;
  virtual void cancel(uint64_t request_id) = 0;
  virtual Result<std::vector<float>> embed(const std::vector<int32_t>& tokens) = 0;
};

}  // namespace enclave::server
