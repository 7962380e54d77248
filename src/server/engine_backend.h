// The local engine as a Backend: chat template + tokenizer from the engine's model, reasoning
// split with tokenizer::ReasoningParser, generation and embeddings through engine::Engine.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "server/backend.h"

namespace enclave::server {

class EngineBackend : public Backend {
 public:
  // `model_id` is what /v1/models lists; `aliases` also resolve (e.g. "deepseek-chat").
  EngineBackend(std::unique_ptr<engine::Engine> engine, std::string model_id,
                std::vector<std::string> aliases, bool is_demo);
  ~EngineBackend() override;

  std::string model_id() const override { return model_id_; }
  std::vector<std::string> aliases() const override { return aliases_; }
  const engine::ModelInfo& info() const override { return info_; }
  engine::EngineStats stats() const override { return engine_->stats(); }
  Result<PreparedPrompt> prepare_chat(const std::vector<api::ChatMessage>& messages) override;
  Result<std::vector<int32_t>> tokenize(std::string_view text) override;
  std::unique_ptr<ReasoningSplitter> make_splitter(bool starts_in_reasoning) override;
  std::string token_bytes(int32_t token) const override;
  Result<uint64_t> submit(engine::GenerationRequest request,
                          engine::TokenCallback on_event) override;
  void cancel(uint64_t request_id) override { engine_->cancel(request_id); }
  Result<std::vector<float>> embed(const std::vector<int32_t>& tokens) override;

 private:
  std::unique_ptr<engine::Engine> engine_;
  std::string model_id_;
  std::vector<std::string> aliases_;
  engine::ModelInfo info_;
};

}  // namespace enclave::server
