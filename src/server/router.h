// Routes and the filter chain. dispatch(): find the route (each path also without the /v1 prefix),
// run the filters in order (auth first), then the handler. Beast-free.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "api/error_mapper.h"
#include "api/types.h"
#include "server/backend.h"
#include "server/filter.h"
#include "server/http_types.h"
#include "server/metrics.h"
#include "server/request_audit.h"

namespace enclave::server {

// What handlers share: the backend (swapped in once the model is loaded), metrics, limits.
class Services {
 public:
  std::shared_ptr<Backend> backend() const;
  void set_backend(std::shared_ptr<Backend> b);

  Metrics metrics;
  api::ParseLimits limits;
  bool metrics_public = false;
  int64_t started_unix_s = 0;
  // Runs blocking work (embeddings) off the io threads; set by the server.
  std::function<void(std::function<void()>)> run_blocking = [](std::function<void()> f) { f(); };
  // The routing gateway (src/router), when configured: takes chat and text completion requests
  // instead of the local handlers (it calls them itself for the local backend). Set before
  // Server::start().
  std::function<void(RequestContext&, const ExchangePtr&)> chat_gateway;
  std::function<void(RequestContext&, const ExchangePtr&)> completion_gateway;
  // Per-request audit of chat, completions and embeddings (request_audit.h), when set. Set
  // before Server::start().
  std::shared_ptr<RequestAuditor> auditor;
  // DELETE /v1/admin/tenants/{name} (admin scope): erases the tenant as `actor` and returns the
  // JSON response body; kNotFound for an unknown tenant. Unset: the route answers 404.
  std::function<Result<std::string>(const std::string& tenant, const std::string& actor)>
      erase_tenant;

 private:
  mutable std::mutex mu_;
  std::shared_ptr<Backend> backend_;
};

using Handler = std::function<void(RequestContext&, const ExchangePtr&)>;

struct Route {
  std::string method;
  std::string path;  // without the /v1 prefix, e.g. "/chat/completions"
  std::string name;  // metrics label
  Scope scope = Scope::kNone;
  Handler handler;
  bool prefix = false;  // `path` is a prefix; the rest of the path is the handler's argument
};

class Router {
 public:
  void add_route(Route route) { routes_.push_back(std::move(route)); }
  // Filters run in insertion order, after route lookup and before the handler.
  void add_filter(std::shared_ptr<Filter> filter) { filters_.push_back(std::move(filter)); }
  void dispatch(const ExchangePtr& exchange);

 private:
  std::vector<Route> routes_;
  std::vector<std::shared_ptr<Filter>> filters_;
};

// Sends an OpenAI error object with the error's status (and Retry-After when set).
void respond_error(const ExchangePtr& exchange, const api::ApiError& error);
void respond_json(const ExchangePtr& exchange, int status, std::string body);

// Registers every endpoint of the OpenAI/DeepSeek-compatible API on `router`.
void register_api_routes(Router& router, Services& services);

}  // namespace enclave::server
