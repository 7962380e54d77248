// Per-request audit for the generation and embedding routes. The auditor wraps the handler's
// exchange: it collects what the handler and the routing gateway learn (model, token counts,
// route, policy, sensitivity categories and counts, never content) and appends one record
// through AuditHooks::append *before* the final response bytes go out (the full response, or the
// stream's final "data: [DONE]"). When the append fails the client gets 503 (streams: an error
// event instead of [DONE]): a request that could not be audited is not acknowledged.
// The server does not depend on the audit or store libraries; `enclave serve` wires the hooks.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "core/result.h"
#include "server/filter.h"
#include "server/http_types.h"

namespace enclave::server {

struct RequestRecord {
  std::string request_id;
  std::string key_name;  // API key name, never the key
  std::string tenant;
  std::string endpoint;  // route name: chat_completions | completions | embeddings
  std::string route;     // local | remote:<backend> | blocked | none
  std::string backend;   // serving backend name ("local" without the gateway)
  std::string policy;    // deciding policy ("default" without the gateway)
  std::string model;
  std::map<std::string, uint32_t> sensitivity;  // category -> count
  uint32_t prompt_tokens = 0;
  uint32_t completion_tokens = 0;
  double latency_ms = 0;
  int http_status = 0;
  std::string outcome;  // ok | client_error | error | blocked | unavailable | cancelled | ...
};

// What the routing gateway decided for one request (from router::RouteFacts).
struct RouteNote {
  std::string tenant;
  std::string model;
  std::string route;
  std::string backend;
  std::string policy;
  std::map<std::string, uint32_t> sensitivity;
  std::string outcome;
};

struct AuditHooks {
  // Durably records the request; runs before the final bytes. An error fails the request closed.
  std::function<Status(const RequestRecord&)> append;
  // Runs after the final bytes were handed to the connection (usage accounting).
  std::function<void(const RequestRecord&)> after;
  // Where append/after run (e.g. the blocking pool, so an fsync never stalls the engine thread).
  // Default: inline.
  std::function<void(std::function<void()>)> run = [](std::function<void()> f) { f(); };
  // Where `after` runs (it is off the response path: e.g. the blocking pool). Unset: like `run`.
  std::function<void(std::function<void()>)> run_after;
};

class AuditingExchange;

class RequestAuditor : public std::enable_shared_from_this<RequestAuditor> {
 public:
  explicit RequestAuditor(AuditHooks hooks) : hooks_(std::move(hooks)) {}

  // Wraps `inner` for one request. With `await_route`, the record is held until route_facts()
  // for the request arrives (the gateway reports after it answered) or the exchange is released.
  ExchangePtr wrap(const ExchangePtr& inner, const RequestContext& ctx, bool await_route);
  // The routing gateway's facts for `request_id` (the GatewayOptions::on_facts sink).
  void route_facts(const std::string& request_id, RouteNote note);

  const AuditHooks& hooks() const { return hooks_; }
  void forget(const std::string& request_id);
  // Queues `record` for AuditHooks::after. Records queued while a drain is running join it: one
  // hand-off to run_after per burst rather than one per request.
  void after(RequestRecord record);

 private:
  void drain_after();

  AuditHooks hooks_;
  std::mutex after_mu_;
  std::vector<RequestRecord> after_queue_;
  bool after_running_ = false;
  std::mutex mu_;
  std::map<std::string, std::weak_ptr<AuditingExchange>> pending_;
};

}  // namespace enclave::server
