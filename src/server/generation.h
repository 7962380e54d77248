// Generation endpoints (chat and text completions) and the helpers they share with embeddings.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "server/router.h"

namespace enclave::server {

// The backend serving `model` (kNotFound for unknown ids, kUnavailable before the model loads).
Result<std::shared_ptr<Backend>> resolve_model(Services& services, const std::string& model);

// API sampling fields -> engine request; checks context length (kOutOfRange with the numbers) and
// logit_bias ids. max_tokens defaults to the room left in the context.
Status build_engine_request(const Backend& backend, const api::SamplingOptions& sampling,
                            std::optional<int32_t> max_tokens, std::vector<std::string> stop,
                            std::vector<int32_t> prompt, engine::GenerationRequest& out,
                            std::string* param);

void handle_chat(Services& services, const ExchangePtr& exchange);
void handle_completion(Services& services, const ExchangePtr& exchange);

}  // namespace enclave::server
