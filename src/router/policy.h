// Policy evaluation: the first rule whose every condition holds decides (route chain, redact,
// block). Pure functions over the facts of one request; no IO.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "core/result.h"
#include "privacy/scanner.h"
#include "router/config.h"

namespace enclave::router {

// What policies look at (never the content itself).
struct RequestFacts {
  privacy::Level level = privacy::Level::kPublic;  // highest finding level over every message
  std::map<std::string, uint32_t> categories;      // finding type -> count
  std::string key_name;
  std::string tenant;
  std::string model;
  int64_t latency_budget_ms = 0;
  int64_t prompt_tokens = 0;  // estimate (estimate_tokens)
};

// Rough token estimate without a tokenizer: ASCII bytes / 4 plus one per non-ASCII code point
// (CJK text is about one token per character in DeepSeek's vocabulary).
int64_t estimate_tokens(std::string_view text);

// Estimated input cost of `tokens` on the first backend a rule routes to (pools: first member).
double estimate_cost_usd(const GatewayConfig& config, const PolicyRule& rule, int64_t tokens);

bool rule_matches(const GatewayConfig& config, const PolicyRule& rule, const RequestFacts& facts);

// The deciding rule, or kUnavailable when none matches (fail closed: nothing is forwarded).
Result<const PolicyRule*> evaluate_policies(const GatewayConfig& config, const RequestFacts& facts);

}  // namespace enclave::router
