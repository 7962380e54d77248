// Gateway configuration: backends (local, node, cloud), pools, policies (first match wins) and
// the knobs of selection (timeouts, retries, circuit breaker, health checks). YAML (yaml-cpp) or
// the environment (DEEPSEEK_API_KEY / DEEPSEEK_BASE_URL) with no file at all.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "privacy/scanner.h"

namespace enclave::router {

enum class BackendKind { kLocal, kNode, kCloud };
inline constexpr const char* kDeepSeekCompletionsPath = "/beta/completions";
const char* backend_kind_name(BackendKind kind);

struct BackendConfig {
  std::string name;
  BackendKind kind = BackendKind::kLocal;
  // node / cloud: OpenAI-compatible base URL, e.g. https://api.deepseek.com (path prefix kept).
  std::string base_url;
  std::string api_key;              // resolved secret (from api_key_env or api_key); never logged
  std::string ca_file;              // extra PEM CA bundle (node/cloud over HTTPS)
  bool verify_tls = true;           // false only for tests with self-signed nodes
  std::vector<std::string> models;  // upstream model ids (first: default)
  std::map<std::string, std::string> model_map;  // requested id -> upstream id
  double price_input_per_mtok_usd = 0.0;         // for the cost condition
  bool health_check = false;                     // GET /health periodically (default: nodes)
  // Text completions go to base_url + this. OpenAI-compatible servers and Enclave nodes:
  // /completions; DeepSeek serves them (FIM, beta) at /beta/completions (the preset's value).
  std::string completions_path = "/completions";
  // Whether content sent here leaves the trust boundary. Cloud: always true.
  bool egress() const { return kind == BackendKind::kCloud; }
};

struct PoolConfig {
  std::string name;
  std::vector<std::string> members;  // backend names; least outstanding requests wins
};

enum class PolicyAction { kRoute, kBlock };

struct PolicyCondition {
  std::optional<privacy::Level> min_level;         // max level of the findings >= this
  std::optional<privacy::Level> max_level;         // max level of the findings <= this
  std::vector<std::string> categories;             // any finding of one of these types
  std::vector<std::string> key_names;              // API key name in this list
  std::vector<std::string> tenants;                // tenant (from key_tenants) in this list
  std::vector<std::string> models;                 // requested model in this list
  std::optional<int64_t> latency_budget_below_ms;  // budget < this
  std::optional<int64_t> min_prompt_tokens;        // estimated prompt tokens >= this
  std::optional<int64_t> max_prompt_tokens;        // estimated prompt tokens <= this
  std::optional<double> max_cost_usd;  // estimated input cost on the first target <= this
};

struct PolicyRule {
  std::string name;
  PolicyCondition when;
  PolicyAction action = PolicyAction::kRoute;
  bool redact = false;             // replace findings with placeholders before forwarding
  std::vector<std::string> route;  // backends or pools, tried in order (fallback chain)
  std::string reason;              // block: told to the client (403)
};

struct TimeoutConfig {
  int64_t connect_ms = 3000;
  int64_t read_ms = 60000;    // between two reads of the upstream response
  int64_t total_ms = 600000;  // whole upstream exchange
};

struct BreakerConfig {
  int32_t failure_threshold = 5;  // consecutive failures that open the breaker
  int64_t open_ms = 30000;        // then one half-open probe
};

struct GatewayConfig {
  std::vector<BackendConfig> backends;
  std::vector<PoolConfig> pools;
  std::vector<PolicyRule> policies;                // empty: default_policies()
  std::map<std::string, std::string> key_tenants;  // API key name -> tenant
  std::string scanner_rules;                       // privacy rules YAML path (empty: builtins)
  int64_t default_latency_budget_ms = 60000;
  int64_t latency_critical_ms = 1000;  // default policy: budget below this -> local
  // Highest finding level that may leave unredacted (hard guard under every policy).
  privacy::Level egress_max_level = privacy::Level::kPublic;
  TimeoutConfig timeouts;
  BreakerConfig breaker;
  int32_t retries = 1;            // extra tries on the same backend before the next in the chain
  int64_t retry_backoff_ms = 50;  // doubled each retry
  int64_t health_interval_ms = 5000;
  double ewma_alpha = 0.2;
  size_t max_message_bytes = 1u << 20;    // one message's content
  size_t max_response_bytes = 16u << 20;  // non-streaming upstream body
  int32_t io_threads = 1;

  const BackendConfig* backend(const std::string& name) const;
  const PoolConfig* pool(const std::string& name) const;
};

// The brief's default: secret/confidential -> local (then private nodes), latency-critical ->
// local, everything else -> cloud (findings redacted) if one is configured, else local.
std::vector<PolicyRule> default_policies(const GatewayConfig& config);

// Parses YAML (see README.md). Secrets come from `api_key_env` (preferred) or `api_key`.
// `getenv` is injectable for tests. Errors name the key path, never a value.
using EnvLookup = std::optional<std::string> (*)(const char* name);
std::optional<std::string> system_env(const char* name);
Result<GatewayConfig> parse_gateway_yaml(const std::string& yaml, EnvLookup env = system_env);
Result<GatewayConfig> load_gateway_config(const std::string& path, EnvLookup env = system_env);
// No file: a `local` backend plus, when DEEPSEEK_API_KEY is set, the `deepseek` cloud preset
// (DEEPSEEK_BASE_URL overrides https://api.deepseek.com).
Result<GatewayConfig> gateway_config_from_env(EnvLookup env = system_env);

// Checks names, references and URLs; fills default policies. Called by the parsers.
Status finalize_config(GatewayConfig& config);

struct ParsedUrl {
  bool tls = false;
  std::string host;
  std::string port;
  std::string base_path;  // without trailing '/', may be empty
};
Result<ParsedUrl> parse_base_url(const std::string& url);

}  // namespace enclave::router
