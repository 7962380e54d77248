// Route lookup and the filter chain.
#include "server/router.h"

namespace enclave::server {

std::shared_ptr<Backend> Services::backend() const {
  std::lock_guard lock(mu_);
  return backend_;
}

void Services::set_backend(std::shared_ptr<Backend> b) {
  std::lock_guard lock(mu_);
  backend_ = std::move(b);
}

void respond_error(const ExchangePtr& exchange, const api::ApiError& error) {
  HttpResponse r;
  r.status = error.status;
  r.body = api::error_json(error);
  if (error.retry_after_s > 0)
    r.headers.emplace_back("Retry-After", std::to_string(error.retry_after_s));
  exchange->respond(std::move(r));
}

void respond_json(const ExchangePtr& exchange, int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  exchange->respond(std::move(r));
}

void Router::dispatch(const ExchangePtr& exchange) {
  HttpRequest& req = const_cast<HttpRequest&>(exchange->request());
  std::string_view path = req.path;
  // DeepSeek's API serves every endpoint with and without /v1.
  if (path.size() >= 3 && path.substr(0, 3) == "/v1" && (path.size() == 3 || path[3] == '/')) {
    path.remove_prefix(3);
  }
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  const Route* found = nullptr;
  bool path_known = false;
  for (const Route& r : routes_) {
    bool match = r.prefix ? path.size() > r.path.size() && path.substr(0, r.path.size()) == r.path
                          : r.path == path;
    if (!match) continue;
    path_known = true;
    if (r.method == req.method || (req.method == "HEAD" && r.method == "GET")) {
      found = &r;
      break;
    }
  }
  if (!found) {
    respond_error(exchange, path_known ? api::method_not_allowed(req.method, req.path)
                                       : api::route_not_found(req.method, req.path));
    return;
  }
  req.path = std::string(path);
  RequestContext ctx{req, found->name, found->scope, {}, 0};
  exchange->set_route_name(found->name);
  for (const auto& f : filters_) {
    FilterResult res = f->apply(ctx);
    if (res.outcome == FilterResult::Outcome::kRespond) {
      respond_error(exchange, res.error);
      return;
    }
  }
  found->handler(ctx, exchange);
}

}  // namespace enclave::server
