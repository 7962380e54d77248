// The request path is an explicit list of filters run before the route handler. Each filter either
// passes the request on (kNext) or answers it (kRespond, with an error). Authentication is the
// first filter; the router's sensitive-data scanning and audit plug in after it.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "api/error_mapper.h"
#include "server/http_types.h"

namespace enclave::server {

// kNone: public route; kAnyKey: any valid key; otherwise the key needs that scope (admin: all).
enum class Scope : unsigned { kNone = 0, kChat = 1, kEmbeddings = 2, kAdmin = 4, kAnyKey = 8 };

struct RequestContext {
  HttpRequest& request;
  std::string_view route;         // route name, e.g. "chat_completions" (the Route's, static)
  Scope required = Scope::kNone;  // scope the route needs; kNone: public
  std::string key_name;           // set by the auth filter
  unsigned key_scopes = 0;        // bit set of Scope
};

struct FilterResult {
  enum class Outcome { kNext, kRespond } outcome = Outcome::kNext;
  api::ApiError error;  // when kRespond

  static FilterResult next() { return {}; }
  static FilterResult respond(api::ApiError e) { return {Outcome::kRespond, std::move(e)}; }
};

class Filter {
 public:
  virtual ~Filter() = default;
  virtual std::string name() const = 0;
  virtual FilterResult apply(RequestContext& ctx) = 0;
};

}  // namespace enclave::server
