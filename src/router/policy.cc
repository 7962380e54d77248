// First-match policy evaluation.
#include "router/policy.h"

#include <algorithm>

namespace enclave::router {
namespace {

bool contains(const std::vector<std::string>& list, const std::string& v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

}  // namespace

int64_t estimate_tokens(std::string_view text) {
  int64_t ascii = 0, other = 0;
  for (unsigned char c : text) {
    if (c < 0x80) {
      ++ascii;
    } else if ((c & 0xC0) != 0x80) {
      ++other;  // lead byte of a multi-byte code point
    }
  }
  return (ascii + 3) / 4 + other;
}

double estimate_cost_usd(const GatewayConfig& config, const PolicyRule& rule, int64_t tokens) {
  if (rule.route.empty()) return 0.0;
  const std::string* target = &rule.route.front();
  if (const PoolConfig* p = config.pool(*target)) target = &p->members.front();
  const BackendConfig* b = config.backend(*target);
  if (!b) return 0.0;
  return static_cast<double>(tokens) * b->price_input_per_mtok_usd / 1e6;
}

bool rule_matches(const GatewayConfig& config, const PolicyRule& rule, const RequestFacts& f) {
  const PolicyCondition& c = rule.when;
  if (c.min_level && f.level < *c.min_level) return false;
  if (c.max_level && f.level > *c.max_level) return false;
  if (!c.categories.empty()) {
    bool any = false;
    for (const auto& cat : c.categories) any = any || f.categories.count(cat) > 0;
    if (!any) return false;
  }
  if (!c.key_names.empty() && !contains(c.key_names, f.key_name)) return false;
  if (!c.tenants.empty() && !contains(c.tenants, f.tenant)) return false;
  if (!c.models.empty() && !contains(c.models, f.model)) return false;
  if (c.latency_budget_below_ms && !(f.latency_budget_ms < *c.latency_budget_below_ms)) {
    return false;
  }
  if (c.min_prompt_tokens && f.prompt_tokens < *c.min_prompt_tokens) return false;
  if (c.max_prompt_tokens && f.prompt_tokens > *c.max_prompt_tokens) return false;
  if (c.max_cost_usd && estimate_cost_usd(config, rule, f.prompt_tokens) > *c.max_cost_usd) {
    return false;
  }
  return true;
}

Result<const PolicyRule*> evaluate_policies(const GatewayConfig& config,
                                            const RequestFacts& facts) {
  for (const PolicyRule& r : config.policies) {
    if (rule_matches(config, r, facts)) return &r;
  }
  return Error(ErrorCode::kUnavailable,
               "No routing policy matches this request, so it is not forwarded anywhere; add a "
               "catch-all rule to the gateway policies.");
}

}  // namespace enclave::router
