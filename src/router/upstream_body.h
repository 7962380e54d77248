// The JSON body the gateway sends to a node or cloud backend for a chat or text completion,
// written straight into one string (no JSON tree): the same bytes Boost.JSON's serializer writes
// for the equivalent object, members in the same order.
#pragma once

#include <string>
#include <string_view>

#include "api/types.h"
#include "router/config.h"

namespace enclave::router {

// The model id the backend knows for `requested` (model_map, then models, else the first model).
std::string upstream_model(const BackendConfig& b, const std::string& requested);

std::string build_upstream_body(const api::ChatRequest& r, const BackendConfig& b);
std::string build_upstream_body(const api::CompletionRequest& r, const BackendConfig& b);

// Appends `s` as a JSON string literal, escaped as Boost.JSON's serializer does.
void append_json_string(std::string& out, std::string_view s);

}  // namespace enclave::router
