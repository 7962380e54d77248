// YAML gateway config (yaml-cpp exceptions stay inside this adapter) and the default policies.
#include "router/config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

namespace enclave::router {
namespace {

Error bad(const std::string& where, const std::string& what) {
  return Error(ErrorCode::kInvalidArgument, "gateway config: " + where + ": " + what);
}

Result<std::string> str(const YAML::Node& n, const std::string& where) {
  if (!n.IsScalar()) return bad(where, "expected a string");
  return n.as<std::string>();
}

Result<std::vector<std::string>> str_list(const YAML::Node& n, const std::string& where) {
  std::vector<std::string> out;
  if (n.IsScalar()) {
    out.push_back(n.as<std::string>());
    return out;
  }
  if (!n.IsSequence()) return bad(where, "expected a list of strings");
  for (size_t i = 0; i < n.size(); ++i) {
    if (!n[i].IsScalar()) return bad(where + "[" + std::to_string(i) + "]", "expected a string");
    out.push_back(n[i].as<std::string>());
  }
  return out;
}

template <class T>
Result<T> num(const YAML::Node& n, const std::string& where) {
  try {
    return n.as<T>();
  } catch (const std::exception&) {
    return bad(where, "expected a number");
  }
}

Result<bool> boolean(const YAML::Node& n, const std::string& where) {
  try {
    return n.as<bool>();
  } catch (const std::exception&) {
    return bad(where, "expected true or false");
  }
}

Result<privacy::Level> level(const YAML::Node& n, const std::string& where) {
  if (!n.IsScalar()) return bad(where, "expected a level");
  auto l = privacy::parse_level(n.as<std::string>());
  if (!l) return bad(where, "unknown level (public, internal, confidential, secret)");
  return *l;
}

Status check_keys(const YAML::Node& map, const std::set<std::string>& allowed,
                  const std::string& where) {
  if (!map.IsMap()) return bad(where, "expected a mapping");
  for (const auto& kv : map) {
    std::string k = kv.first.as<std::string>();
    if (!allowed.count(k)) return bad(where + "." + k, "unknown setting");
  }
  return Status::ok();
}

Result<BackendConfig> parse_backend(const YAML::Node& n, const std::string& where, EnvLookup env) {
  ENCLAVE_TRY_STATUS(check_keys(n,
                                {"name", "type", "preset", "base_url", "url", "api_key",
                                 "api_key_env", "ca_file", "verify_tls", "models", "model_map",
                                 "price_input_per_mtok_usd", "health_check", "completions_path"},
                                where));
  BackendConfig b;
  if (!n["name"]) return bad(where, "missing name");
  ENCLAVE_ASSIGN_OR_RETURN(b.name, str(n["name"], where + ".name"));
  std::string type = "cloud";
  if (n["type"]) {
    ENCLAVE_ASSIGN_OR_RETURN(type, str(n["type"], where + ".type"));
  }
  if (type == "local") {
    b.kind = BackendKind::kLocal;
  } else if (type == "node") {
    b.kind = BackendKind::kNode;
    b.health_check = true;
  } else if (type == "cloud") {
    b.kind = BackendKind::kCloud;
  } else {
    return bad(where + ".type", "expected local, node or cloud");
  }
  if (n["preset"]) {
    ENCLAVE_ASSIGN_OR_RETURN(std::string preset, str(n["preset"], where + ".preset"));
    if (preset != "deepseek") return bad(where + ".preset", "unknown preset (deepseek)");
    b.kind = BackendKind::kCloud;
    b.base_url = "https://api.deepseek.com";
    b.completions_path = kDeepSeekCompletionsPath;
    b.models = {"deepseek-chat", "deepseek-reasoner"};
    b.price_input_per_mtok_usd = 0.28;
    if (!n["api_key_env"] && !n["api_key"]) {
      if (auto k = env("DEEPSEEK_API_KEY")) b.api_key = *k;
    }
  }
  for (const char* key : {"base_url", "url"}) {
    if (n[key]) {
      ENCLAVE_ASSIGN_OR_RETURN(b.base_url, str(n[key], where + "." + key));
    }
  }
  if (n["api_key_env"]) {
    ENCLAVE_ASSIGN_OR_RETURN(std::string var, str(n["api_key_env"], where + ".api_key_env"));
    auto k = env(var.c_str());
    if (!k || k->empty()) {
      return bad(where + ".api_key_env", "environment variable " + var + " is not set");
    }
    b.api_key = *k;
  } else if (n["api_key"]) {
    ENCLAVE_ASSIGN_OR_RETURN(b.api_key, str(n["api_key"], where + ".api_key"));
  }
  if (n["ca_file"]) {
    ENCLAVE_ASSIGN_OR_RETURN(b.ca_file, str(n["ca_file"], where + ".ca_file"));
  }
  if (n["completions_path"]) {
    ENCLAVE_ASSIGN_OR_RETURN(b.completions_path,
                             str(n["completions_path"], where + ".completions_path"));
    if (b.completions_path.empty() || b.completions_path[0] != '/' ||
        b.completions_path.find_first_of(" \r\n?#") != std::string::npos) {
      return bad(where + ".completions_path", "must be a path such as /completions");
    }
  }
  if (n["verify_tls"]) {
    ENCLAVE_ASSIGN_OR_RETURN(b.verify_tls, boolean(n["verify_tls"], where + ".verify_tls"));
  }
  if (n["health_check"]) {
    ENCLAVE_ASSIGN_OR_RETURN(b.health_check, boolean(n["health_check"], where + ".health_check"));
  }
  if (n["models"]) {
    ENCLAVE_ASSIGN_OR_RETURN(b.models, str_list(n["models"], where + ".models"));
  }
  if (n["model_map"]) {
    if (!n["model_map"].IsMap()) return bad(where + ".model_map", "expected a mapping");
    for (const auto& kv : n["model_map"]) {
      b.model_map[kv.first.as<std::string>()] = kv.second.as<std::string>();
    }
  }
  if (n["price_input_per_mtok_usd"]) {
    ENCLAVE_ASSIGN_OR_RETURN(
        b.price_input_per_mtok_usd,
        num<double>(n["price_input_per_mtok_usd"], where + ".price_input_per_mtok_usd"));
  }
  return b;
}

Result<PolicyRule> parse_rule(const YAML::Node& n, const std::string& where) {
  ENCLAVE_TRY_STATUS(check_keys(n, {"name", "when", "action", "route", "redact", "reason"}, where));
  PolicyRule r;
  if (!n["name"]) return bad(where, "missing name");
  ENCLAVE_ASSIGN_OR_RETURN(r.name, str(n["name"], where + ".name"));
  if (n["action"]) {
    ENCLAVE_ASSIGN_OR_RETURN(std::string a, str(n["action"], where + ".action"));
    if (a == "route") {
      r.action = PolicyAction::kRoute;
    } else if (a == "redact") {
      r.action = PolicyAction::kRoute;
      r.redact = true;
    } else if (a == "block") {
      r.action = PolicyAction::kBlock;
    } else {
      return bad(where + ".action", "expected route, redact or block");
    }
  }
  if (n["redact"]) {
    ENCLAVE_ASSIGN_OR_RETURN(bool red, boolean(n["redact"], where + ".redact"));
    r.redact = r.redact || red;
  }
  if (n["route"]) {
    ENCLAVE_ASSIGN_OR_RETURN(r.route, str_list(n["route"], where + ".route"));
  }
  if (n["reason"]) {
    ENCLAVE_ASSIGN_OR_RETURN(r.reason, str(n["reason"], where + ".reason"));
  }
  if (r.action == PolicyAction::kRoute && r.route.empty()) {
    return bad(where + ".route", "a routing rule needs at least one backend or pool");
  }
  if (const YAML::Node& w = n["when"]) {
    std::string ww = where + ".when";
    ENCLAVE_TRY_STATUS(check_keys(
        w,
        {"min_level", "max_level", "categories", "key_names", "tenants", "models",
         "latency_budget_below_ms", "min_prompt_tokens", "max_prompt_tokens", "max_cost_usd"},
        ww));
    PolicyCondition& c = r.when;
    if (w["min_level"]) {
      ENCLAVE_ASSIGN_OR_RETURN(c.min_level, level(w["min_level"], ww + ".min_level"));
    }
    if (w["max_level"]) {
      ENCLAVE_ASSIGN_OR_RETURN(c.max_level, level(w["max_level"], ww + ".max_level"));
    }
    if (w["categories"]) {
      ENCLAVE_ASSIGN_OR_RETURN(c.categories, str_list(w["categories"], ww + ".categories"));
    }
    if (w["key_names"]) {
      ENCLAVE_ASSIGN_OR_RETURN(c.key_names, str_list(w["key_names"], ww + ".key_names"));
    }
    if (w["tenants"]) {
      ENCLAVE_ASSIGN_OR_RETURN(c.tenants, str_list(w["tenants"], ww + ".tenants"));
    }
    if (w["models"]) {
      ENCLAVE_ASSIGN_OR_RETURN(c.models, str_list(w["models"], ww + ".models"));
    }
    if (w["latency_budget_below_ms"]) {
      ENCLAVE_ASSIGN_OR_RETURN(
          c.latency_budget_below_ms,
          num<int64_t>(w["latency_budget_below_ms"], ww + ".latency_budget_below_ms"));
    }
    if (w["min_prompt_tokens"]) {
      ENCLAVE_ASSIGN_OR_RETURN(c.min_prompt_tokens,
                               num<int64_t>(w["min_prompt_tokens"], ww + ".min_prompt_tokens"));
    }
    if (w["max_prompt_tokens"]) {
      ENCLAVE_ASSIGN_OR_RETURN(c.max_prompt_tokens,
                               num<int64_t>(w["max_prompt_tokens"], ww + ".max_prompt_tokens"));
    }
    if (w["max_cost_usd"]) {
      ENCLAVE_ASSIGN_OR_RETURN(c.max_cost_usd,
                               num<double>(w["max_cost_usd"], ww + ".max_cost_usd"));
    }
  }
  return r;
}

Result<GatewayConfig> parse_root(const YAML::Node& root, EnvLookup env) {
  GatewayConfig cfg;
  if (!root || root.IsNull()) return cfg;
  ENCLAVE_TRY_STATUS(
      check_keys(root,
                 {"backends", "pools", "policies", "key_tenants", "scanner_rules",
                  "default_latency_budget_ms", "latency_critical_ms", "egress_max_level",
                  "timeouts", "breaker", "retries", "retry_backoff_ms", "health_interval_ms",
                  "ewma_alpha", "max_message_bytes", "max_response_bytes", "io_threads"},
                 "<root>"));
  if (const YAML::Node& bs = root["backends"]) {
    if (!bs.IsSequence()) return bad("backends", "expected a list");
    for (size_t i = 0; i < bs.size(); ++i) {
      ENCLAVE_ASSIGN_OR_RETURN(BackendConfig b,
                               parse_backend(bs[i], "backends[" + std::to_string(i) + "]", env));
      cfg.backends.push_back(std::move(b));
    }
  }
  if (const YAML::Node& ps = root["pools"]) {
    if (!ps.IsMap()) return bad("pools", "expected a mapping name -> [backends]");
    for (const auto& kv : ps) {
      PoolConfig p;
      p.name = kv.first.as<std::string>();
      ENCLAVE_ASSIGN_OR_RETURN(p.members, str_list(kv.second, "pools." + p.name));
      cfg.pools.push_back(std::move(p));
    }
  }
  if (const YAML::Node& rs = root["policies"]) {
    if (!rs.IsSequence()) return bad("policies", "expected a list");
    for (size_t i = 0; i < rs.size(); ++i) {
      ENCLAVE_ASSIGN_OR_RETURN(PolicyRule r,
                               parse_rule(rs[i], "policies[" + std::to_string(i) + "]"));
      cfg.policies.push_back(std::move(r));
    }
  }
  if (const YAML::Node& kt = root["key_tenants"]) {
    if (!kt.IsMap()) return bad("key_tenants", "expected a mapping key name -> tenant");
    for (const auto& kv : kt)
      cfg.key_tenants[kv.first.as<std::string>()] = kv.second.as<std::string>();
  }
  if (root["scanner_rules"]) {
    ENCLAVE_ASSIGN_OR_RETURN(cfg.scanner_rules, str(root["scanner_rules"], "scanner_rules"));
  }
  auto i64 = [&](const char* key, int64_t& out) -> Status {
    if (root[key]) {
      ENCLAVE_ASSIGN_OR_RETURN(out, num<int64_t>(root[key], key));
    }
    return Status::ok();
  };
  ENCLAVE_TRY_STATUS(i64("default_latency_budget_ms", cfg.default_latency_budget_ms));
  ENCLAVE_TRY_STATUS(i64("latency_critical_ms", cfg.latency_critical_ms));
  ENCLAVE_TRY_STATUS(i64("retry_backoff_ms", cfg.retry_backoff_ms));
  ENCLAVE_TRY_STATUS(i64("health_interval_ms", cfg.health_interval_ms));
  if (root["egress_max_level"]) {
    ENCLAVE_ASSIGN_OR_RETURN(cfg.egress_max_level,
                             level(root["egress_max_level"], "egress_max_level"));
  }
  if (root["retries"]) {
    ENCLAVE_ASSIGN_OR_RETURN(cfg.retries, num<int32_t>(root["retries"], "retries"));
  }
  if (root["io_threads"]) {
    ENCLAVE_ASSIGN_OR_RETURN(cfg.io_threads, num<int32_t>(root["io_threads"], "io_threads"));
  }
  if (root["ewma_alpha"]) {
    ENCLAVE_ASSIGN_OR_RETURN(cfg.ewma_alpha, num<double>(root["ewma_alpha"], "ewma_alpha"));
  }
  if (root["max_message_bytes"]) {
    ENCLAVE_ASSIGN_OR_RETURN(cfg.max_message_bytes,
                             num<size_t>(root["max_message_bytes"], "max_message_bytes"));
  }
  if (root["max_response_bytes"]) {
    ENCLAVE_ASSIGN_OR_RETURN(cfg.max_response_bytes,
                             num<size_t>(root["max_response_bytes"], "max_response_bytes"));
  }
  if (const YAML::Node& t = root["timeouts"]) {
    ENCLAVE_TRY_STATUS(check_keys(t, {"connect_ms", "read_ms", "total_ms"}, "timeouts"));
    if (t["connect_ms"]) {
      ENCLAVE_ASSIGN_OR_RETURN(cfg.timeouts.connect_ms,
                               num<int64_t>(t["connect_ms"], "timeouts.connect_ms"));
    }
    if (t["read_ms"]) {
      ENCLAVE_ASSIGN_OR_RETURN(cfg.timeouts.read_ms,
                               num<int64_t>(t["read_ms"], "timeouts.read_ms"));
    }
    if (t["total_ms"]) {
      ENCLAVE_ASSIGN_OR_RETURN(cfg.timeouts.total_ms,
                               num<int64_t>(t["total_ms"], "timeouts.total_ms"));
    }
  }
  if (const YAML::Node& b = root["breaker"]) {
    ENCLAVE_TRY_STATUS(check_keys(b, {"failure_threshold", "open_ms"}, "breaker"));
    if (b["failure_threshold"]) {
      ENCLAVE_ASSIGN_OR_RETURN(cfg.breaker.failure_threshold,
                               num<int32_t>(b["failure_threshold"], "breaker.failure_threshold"));
    }
    if (b["open_ms"]) {
      ENCLAVE_ASSIGN_OR_RETURN(cfg.breaker.open_ms, num<int64_t>(b["open_ms"], "breaker.open_ms"));
    }
  }
  return cfg;
}

}  // namespace

const char* backend_kind_name(BackendKind kind) {
  switch (kind) {
    case BackendKind::kLocal:
      return "local";
    case BackendKind::kNode:
      return "node";
    case BackendKind::kCloud:
      return "cloud";
  }
  return "?";
}

const BackendConfig* GatewayConfig::backend(const std::string& name) const {
  for (const auto& b : backends) {
    if (b.name == name) return &b;
  }
  return nullptr;
}

const PoolConfig* GatewayConfig::pool(const std::string& name) const {
  for (const auto& p : pools) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

std::optional<std::string> system_env(const char* name) {
  const char* v = std::getenv(name);
  if (!v) return std::nullopt;
  return std::string(v);
}

std::vector<PolicyRule> default_policies(const GatewayConfig& config) {
  std::vector<std::string> local, nodes, clouds;
  for (const auto& b : config.backends) {
    (b.kind == BackendKind::kLocal  ? local
     : b.kind == BackendKind::kNode ? nodes
                                    : clouds)
        .push_back(b.name);
  }
  std::vector<std::string> private_chain = local;
  private_chain.insert(private_chain.end(), nodes.begin(), nodes.end());
  std::vector<PolicyRule> rules;
  PolicyRule sensitive;
  sensitive.name = "default-sensitive-private";
  sensitive.when.min_level = privacy::Level::kConfidential;
  sensitive.route = private_chain;
  rules.push_back(sensitive);
  // Public (or redactable internal) traffic may still fall back to the cloud when local is down.
  PolicyRule fast;
  fast.name = "default-latency-local";
  fast.when.latency_budget_below_ms = config.latency_critical_ms;
  fast.route = private_chain;
  fast.route.insert(fast.route.end(), clouds.begin(), clouds.end());
  fast.redact = true;
  rules.push_back(fast);
  PolicyRule rest;
  rest.name = clouds.empty() ? "default-local" : "default-cloud";
  rest.route = clouds;
  rest.route.insert(rest.route.end(), private_chain.begin(), private_chain.end());
  rest.redact = true;
  rules.push_back(rest);
  return rules;
}

Result<ParsedUrl> parse_base_url(const std::string& url) {
  ParsedUrl u;
  std::string rest;
  if (url.rfind("https://", 0) == 0) {
    u.tls = true;
    rest = url.substr(8);
  } else if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else {
    return Error(ErrorCode::kInvalidArgument, "base URL must start with http:// or https://");
  }
  size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  if (slash != std::string::npos) u.base_path = rest.substr(slash);
  while (!u.base_path.empty() && u.base_path.back() == '/') u.base_path.pop_back();
  if (!hostport.empty() && hostport[0] == '[') {
    size_t close = hostport.find(']');
    if (close == std::string::npos) return Error(ErrorCode::kInvalidArgument, "bad IPv6 host");
    u.host = hostport.substr(1, close - 1);
    if (close + 1 < hostport.size() && hostport[close + 1] == ':')
      u.port = hostport.substr(close + 2);
  } else {
    size_t colon = hostport.rfind(':');
    u.host = hostport.substr(0, colon);
    if (colon != std::string::npos) u.port = hostport.substr(colon + 1);
  }
  if (u.host.empty()) return Error(ErrorCode::kInvalidArgument, "base URL has no host");
  if (u.port.empty()) u.port = u.tls ? "443" : "80";
  for (char c : u.port) {
    if (c < '0' || c > '9') return Error(ErrorCode::kInvalidArgument, "base URL has a bad port");
  }
  return u;
}

Status finalize_config(GatewayConfig& config) {
  std::set<std::string> names;
  for (size_t i = 0; i < config.backends.size(); ++i) {
    BackendConfig& b = config.backends[i];
    std::string where = "backends[" + std::to_string(i) + "]";
    if (b.name.empty()) return bad(where, "empty name");
    if (!names.insert(b.name).second) return bad(where, "duplicate name '" + b.name + "'");
    if (b.kind != BackendKind::kLocal) {
      if (b.base_url.empty()) return bad(where, "a node/cloud backend needs base_url");
      auto u = parse_base_url(b.base_url);
      if (!u) return bad(where + ".base_url", u.error().message);
    }
  }
  for (const auto& p : config.pools) {
    if (!names.insert(p.name).second) return bad("pools." + p.name, "name already used");
    if (p.members.empty()) return bad("pools." + p.name, "empty pool");
    for (const auto& m : p.members) {
      if (!config.backend(m)) return bad("pools." + p.name, "unknown backend '" + m + "'");
    }
  }
  if (config.policies.empty()) config.policies = default_policies(config);
  for (size_t i = 0; i < config.policies.size(); ++i) {
    for (const auto& t : config.policies[i].route) {
      if (!config.backend(t) && !config.pool(t)) {
        return bad("policies[" + std::to_string(i) + "].route",
                   "unknown backend or pool '" + t + "'");
      }
    }
  }
  if (config.ewma_alpha <= 0 || config.ewma_alpha > 1)
    return bad("ewma_alpha", "must be in (0, 1]");
  if (config.breaker.failure_threshold < 1) return bad("breaker.failure_threshold", "must be >= 1");
  if (config.retries < 0) return bad("retries", "must be >= 0");
  if (config.io_threads < 1) return bad("io_threads", "must be >= 1");
  return Status::ok();
}

Result<GatewayConfig> parse_gateway_yaml(const std::string& yaml, EnvLookup env) {
  Result<GatewayConfig> cfg = Error(ErrorCode::kInternal, "unset");
  try {
    cfg = parse_root(YAML::Load(yaml), env);
  } catch (const YAML::Exception& e) {
    return Error(ErrorCode::kInvalidArgument,
                 "gateway config: YAML syntax error at line " + std::to_string(e.mark.line + 1));
  }
  if (!cfg) return cfg;
  ENCLAVE_TRY_STATUS(finalize_config(*cfg));
  return cfg;
}

Result<GatewayConfig> load_gateway_config(const std::string& path, EnvLookup env) {
  std::ifstream in(path);
  if (!in) return Error(ErrorCode::kNotFound, "gateway config " + path + " cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_gateway_yaml(ss.str(), env);
}

Result<GatewayConfig> gateway_config_from_env(EnvLookup env) {
  GatewayConfig cfg;
  BackendConfig local;
  local.name = "local";
  local.kind = BackendKind::kLocal;
  cfg.backends.push_back(local);
  if (auto key = env("DEEPSEEK_API_KEY"); key && !key->empty()) {
    BackendConfig ds;
    ds.name = "deepseek";
    ds.kind = BackendKind::kCloud;
    ds.base_url = "https://api.deepseek.com";
    if (auto url = env("DEEPSEEK_BASE_URL"); url && !url->empty()) ds.base_url = *url;
    ds.api_key = *key;
    ds.completions_path = kDeepSeekCompletionsPath;
    ds.models = {"deepseek-chat", "deepseek-reasoner"};
    ds.price_input_per_mtok_usd = 0.28;
    cfg.backends.push_back(ds);
  }
  ENCLAVE_TRY_STATUS(finalize_config(cfg));  // fails only on a malformed DEEPSEEK_BASE_URL
  return cfg;
}

}  // namespace enclave::router
