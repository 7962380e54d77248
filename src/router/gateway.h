// The hybrid routing gateway in the server's request path: scans every message of a chat
// request, evaluates the policies (first match wins), then serves it locally, on a private node
// or in the cloud (findings replaced by placeholders and restored in the answer), with retries,
// fallback chains, circuit breakers and health checks. Fails closed: content a policy keeps
// private never reaches an egress backend, whatever fails; such requests get 503 instead.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/result.h"
#include "privacy/scanner.h"
#include "router/config.h"
#include "router/selector.h"
#include "router/upstream.h"
#include "server/router.h"

namespace enclave::router {

// What the audit log records about one routed request: categories and counts, never values.
struct RouteFacts {
  std::string request_id;
  std::string key_name;
  std::string tenant;
  std::string model;
  std::string backend;       // serving backend; "blocked" / "none" when nothing served it
  std::string backend_kind;  // local | node | cloud | ""
  std::string policy;        // deciding rule
  privacy::Level level = privacy::Level::kPublic;
  std::map<std::string, uint32_t> categories;  // finding type -> count
  uint32_t redacted = 0;                       // spans replaced before egress
  int http_status = 0;  // 0: answered by the local handler (status not observed here)
  std::string outcome;  // ok | blocked | unavailable | error | local | client_error
  double latency_ms = 0;
};
using RouteFactsSink = std::function<void(const RouteFacts&)>;

struct GatewayOptions {
  NowMs now = steady_now_ms();
  RouteFactsSink on_facts;          // e.g. the audit log (see README: hook for src/audit)
  bool start_health_checks = true;  // periodic GET /health on backends with health_check
};

class Gateway {
 public:
  // Builds the scanner from config.scanner_rules (builtins when empty). `services` is the
  // server's (local backend, parse limits) and must outlive the gateway.
  static Result<std::unique_ptr<Gateway>> create(GatewayConfig config, server::Services& services,
                                                 GatewayOptions options = {});
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Installs the gateway as the server's chat/completion handler (Services::chat_gateway).
  void install();

  void handle_chat(server::RequestContext& ctx, const server::ExchangePtr& exchange);
  // Text completions (/v1/completions): scanned, policed, redacted and routed like chat; backends
  // get them on their `completions_path`. Prompts of token ids are served only locally.
  void handle_completion(server::RequestContext& ctx, const server::ExchangePtr& exchange);

  // One round of health checks now; `done` runs when every check reported.
  void check_health(std::function<void()> done = {});
  Selector& selector() { return *selector_; }
  const GatewayConfig& config() const { return config_; }
  UpstreamClient& client() { return *client_; }

  struct RemoteJob;

 private:
  Gateway(GatewayConfig config, server::Services& services, GatewayOptions options);
  void schedule_health();

  GatewayConfig config_;
  server::Services& services_;
  GatewayOptions options_;
  std::unique_ptr<privacy::SensitivityScanner> scanner_;
  std::unique_ptr<Selector> selector_;
  std::unique_ptr<UpstreamClient> client_;
  std::map<std::string, UpstreamEndpoint> endpoints_;  // node and cloud backends, by name
  std::shared_ptr<bool> alive_;
};

}  // namespace enclave::router
