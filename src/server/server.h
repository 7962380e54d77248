// The HTTP server: Boost.Beast/Asio, a small io thread pool (no thread per connection), HTTP/1.1
// keep-alive, SSE streaming, optional TLS/mTLS, graceful shutdown. Requests go through the Router
// (filters, then handlers); the model is a Backend set once it is loaded (/ready flips to 200).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "api/types.h"
#include "core/result.h"
#include "server/auth.h"
#include "server/backend.h"
#include "server/config.h"
#include "server/router.h"

namespace enclave::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: pick a free port (see Server::port())
  int32_t io_threads = 2;
  // After handling work an io thread polls without blocking for up to this many µs before it
  // blocks in epoll_wait again (see io_loop.h); 0: never spins.
  int32_t io_spin_us = kDefaultIoSpinUs;
  int32_t blocking_threads = 2;  // embeddings
  uint64_t max_body_bytes = 4ull << 20;
  uint32_t max_header_bytes = 16 * 1024;
  int32_t request_timeout_s = 600;
  int32_t read_timeout_s = 30;
  int32_t idle_timeout_s = 60;
  std::string tls_cert;  // PEM files; TLS when both set
  std::string tls_key;
  std::string tls_client_ca;  // require and verify client certificates
  bool metrics_public = false;
  api::ParseLimits limits;
};

class Server {
 public:
  // Builds the router (auth filter + API routes) and, with TLS options, the TLS context.
  static Result<std::unique_ptr<Server>> create(ServerOptions options,
                                                std::shared_ptr<const KeyStore> keys);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Extra filters run after authentication, in order. Call before start().
  void add_filter(std::shared_ptr<Filter> filter);
  // Binds, listens and starts the io threads.
  Status start();
  uint16_t port() const;
  bool tls() const;

  // Makes the model available (and /ready 200).
  void set_backend(std::shared_ptr<Backend> backend);
  Services& services();

  // Blocks until SIGINT/SIGTERM or request_stop().
  void wait_for_stop_signal();
  void request_stop();
  // Stops accepting, lets in-flight requests finish until `deadline`, then cancels the rest,
  // closes every connection and joins the threads. Idempotent.
  void shutdown(std::chrono::milliseconds deadline);

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace enclave::server
