// Transport-neutral request/response types and the Exchange a handler answers through. Handlers
// and filters see only these (no Beast), so they are testable without sockets.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace enclave::server {

struct HttpRequest {
  std::string method;                                        // "GET", "POST", ...
  std::string target;                                        // as sent, with query
  std::string path;                                          // without query
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::string body;
  std::string request_id;  // assigned by the server, echoed as X-Request-Id
  bool tls = false;

  // Value of the first header named `name` (lower-case), empty if absent.
  std::string_view header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return {};
  }
};

struct HttpResponse {
  int status = 200;
  // A string literal (static storage): every content type the server sends is a constant.
  std::string_view content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

// What a handler learned about a request, for the audit trail and usage records: model and token
// counts, never content. Empty / unset fields leave earlier notes unchanged.
struct ExchangeNote {
  std::string model;
  std::optional<uint32_t> prompt_tokens;
  std::optional<uint32_t> completion_tokens;
  std::string outcome;  // empty: derived from the response status
};

// Why an in-flight request is being abandoned.
enum class CancelReason { kDisconnected, kTimeout, kShutdown };

// One request/response exchange. All methods are thread-safe (engine callbacks call them from the
// engine thread); the session serializes the writes. Exactly one of respond() or
// start_stream()...end_stream() per exchange.
class Exchange {
 public:
  virtual ~Exchange() = default;
  virtual const HttpRequest& request() const = 0;
  virtual void respond(HttpResponse response) = 0;
  // Starts a chunked text/event-stream response; send() writes raw bytes (already SSE-framed).
  virtual void start_stream(int status = 200) = 0;
  virtual void send(std::string bytes) = 0;
  virtual void end_stream() = 0;
  // `fn` runs at most once, when the client goes away, the request time limit passes, or shutdown
  // forces in-flight work to stop. Runs immediately if that already happened.
  virtual void on_cancel(std::function<void(CancelReason)> fn) = 0;
  virtual bool cancelled() const = 0;
  // Route label for metrics (set by the router; the name of a registered Route, which lives as
  // long as the server).
  virtual void set_route_name(std::string_view name) = 0;
  // Extra header for the response not sent yet (full or stream head), e.g. the routing
  // gateway's X-Enclave-Route. Default: ignored (exchanges without headers, test doubles).
  virtual void add_response_header(std::string name, std::string value) {}
  // Facts for the request audit (server/request_audit.h). Default: ignored.
  virtual void note(const ExchangeNote& note) {}
  // The executor (the connection's strand) this exchange's writes run on. Work that answers the
  // request (e.g. the gateway's upstream call) runs there too, so one request stays on one
  // thread end to end with no cross-thread hand-off. Empty: none (test doubles).
  virtual boost::asio::any_io_executor executor() const { return {}; }
};

using ExchangePtr = std::shared_ptr<Exchange>;

}  // namespace enclave::server
