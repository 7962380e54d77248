// Async HTTP/1.1 client for node and cloud backends (Boost.Beast on Asio C++20 coroutines):
// TLS verified against the system CA store (plus an optional CA file) with SNI and host name
// checks, keep-alive connection pool per endpoint, connect / read / total timeouts, and the
// response body handed over as it arrives (SSE is relayed chunk by chunk, never buffered whole).
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"
#include "router/config.h"

namespace enclave::router {

struct UpstreamEndpoint {
  ParsedUrl url;
  std::string ca_file;
  bool verify_tls = true;
};

struct UpstreamCall {
  std::string method = "POST";
  std::string path;  // appended to the endpoint's base path, e.g. "/chat/completions"
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  TimeoutConfig timeouts;
};

// Callbacks run one at a time per call, on the call's executor (see UpstreamClient::start).
struct UpstreamEvents {
  std::function<void(int status)> on_head;
  std::function<void(std::string_view bytes)> on_body;  // de-chunked body bytes, as received
  // Exactly once. ok: the whole body arrived. Errors: kUnavailable (connect/IO), kDeadline-like
  // timeouts as kUnavailable with "timed out", cancelled calls as kUnavailable "cancelled".
  std::function<void(Status)> on_done;
};

class UpstreamCallHandle {
 public:
  virtual ~UpstreamCallHandle() = default;
  // Aborts the call (closes its connection); on_done still fires once.
  virtual void cancel() = 0;
};

class UpstreamClient {
 public:
  explicit UpstreamClient(int32_t io_threads = 1);
  ~UpstreamClient();
  UpstreamClient(const UpstreamClient&) = delete;
  UpstreamClient& operator=(const UpstreamClient&) = delete;

  // Starts a call. With `executor` (the client connection's strand, server::Exchange::executor)
  // the whole call and its callbacks run there, on sockets of that executor's io_context pooled
  // per context: one request stays on one thread, with no hand-off to the client's own threads.
  // Without it the call runs on a strand of the client's own io threads.
  std::shared_ptr<UpstreamCallHandle> start(const UpstreamEndpoint& endpoint, UpstreamCall call,
                                            UpstreamEvents events,
                                            boost::asio::any_io_executor executor = {});
  // Runs `fn` after `delay_ms` on `executor` (default: the client's threads); retry backoff,
  // health checks.
  void schedule(int64_t delay_ms, std::function<void()> fn,
                boost::asio::any_io_executor executor = {});
  // Pooled idle connections (tests).
  size_t idle_connections() const;
  // Stops the io threads; pending calls end with an error.
  void stop();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// Incremental Server-Sent Events parser: push() bytes split anywhere, get whole events' data.
class SseParser {
 public:
  // Appends the data payloads of every event completed by `bytes`. Comment lines (": keep-alive")
  // and fields other than data are ignored; multi-line data joins with '\n'.
  void push(std::string_view bytes, std::vector<std::string>& events);
  size_t buffered() const { return line_.size() + data_.size(); }

 private:
  std::string line_;
  std::string data_;
  bool has_data_ = false;
};

}  // namespace enclave::router
