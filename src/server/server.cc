// Listener, io thread pool, shutdown and signals. Sessions live in http_session.h.
#include "server/server.h"

#include <openssl/rand.h>

#include <thread>

#include "server/http_session.h"
#include "server/io_loop.h"
#include "server/tls.h"

namespace enclave::server {

const char* status_reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Payload Too Large";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 402:
      return "Payment Required";
    case 422:
      return "Unprocessable Entity";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Unknown";
  }
}

std::string format_head(int status, std::string_view content_type, const HttpResponse* extra,
                        size_t content_length, bool chunked, bool keep_alive,
                        std::string_view request_id) {
  // Room for the body too: callers append it (one allocation per response).
  size_t size = 224 + content_type.size() + request_id.size() + (chunked ? 0 : content_length);
  if (extra) {
    for (const auto& [k, v] : extra->headers) size += k.size() + v.size() + 4;
  }
  std::string h;
  h.reserve(size);
  h += "HTTP/1.1 ";
  h += std::to_string(status);
  h += ' ';
  h += status_reason(status);
  h += "\r\nServer: enclave\r\nContent-Type: ";
  h += content_type;
  if (chunked) {
    h += "\r\nTransfer-Encoding: chunked\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no";
  } else {
    h += "\r\nContent-Length: ";
    h += std::to_string(content_length);
  }
  if (!request_id.empty()) {
    h += "\r\nX-Request-Id: ";
    h += request_id;
  }
  h += keep_alive ? "\r\nConnection: keep-alive" : "\r\nConnection: close";
  if (extra) {
    for (const auto& [k, v] : extra->headers) {
      h += "\r\n";
      h += k;
      h += ": ";
      h += v;
    }
  }
  h += "\r\n\r\n";
  return h;
}

struct Server::Impl {
  ServerCore core;
  net::io_context ioc;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  tcp::acceptor acceptor{net::make_strand(ioc)};
  std::shared_ptr<net::ssl::context> ssl_ctx;
  std::vector<std::thread> threads;
  std::unique_ptr<net::thread_pool> blocking;
  std::unique_ptr<net::signal_set> signals;
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stop_requested = false;
  bool started = false;
  bool shut_down = false;
  uint16_t port = 0;

  void accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket sock) {
      if (ec) {
        if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
        return accept();  // e.g. EMFILE: keep serving the connections we have
      }
      if (core.draining.load()) return;
      beast::error_code ignore;
      sock.set_option(tcp::no_delay(true), ignore);
      if (ssl_ctx) {
        auto s = std::make_shared<Session<net::ssl::stream<tcp::socket>>>(
            core, net::ssl::stream<tcp::socket>(std::move(sock), *ssl_ctx));
        core.add_session(s);
        s->start(true);
      } else {
        auto s = std::make_shared<Session<tcp::socket>>(core, std::move(sock));
        core.add_session(s);
        s->start(false);
      }
      accept();
    });
  }
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  shutdown(std::chrono::milliseconds(0));
}

Result<std::unique_ptr<Server>> Server::create(ServerOptions options,
                                               std::shared_ptr<const KeyStore> keys) {
  if (options.io_spin_us < 0 || options.io_spin_us > kMaxIoSpinUs) {
    return Error(ErrorCode::kInvalidArgument, "--io-spin-us must be 0.." +
                                                  std::to_string(kMaxIoSpinUs) +
                                                  " (microseconds; 0 never spins)");
  }
  auto impl = std::make_unique<Impl>();
  if (!options.tls_cert.empty() || !options.tls_key.empty()) {
    if (options.tls_cert.empty() || options.tls_key.empty()) {
      return Error(ErrorCode::kInvalidArgument, "TLS needs both --tls-cert and --tls-key");
    }
    ENCLAVE_ASSIGN_OR_RETURN(
        impl->ssl_ctx, make_tls_context(options.tls_cert, options.tls_key, options.tls_client_ca));
  } else if (!options.tls_client_ca.empty()) {
    return Error(ErrorCode::kInvalidArgument,
                 "--tls-client-ca needs TLS: also pass --tls-cert and --tls-key");
  }
  unsigned char raw[4];
  if (RAND_bytes(raw, sizeof(raw)) != 1) raw[0] = raw[1] = raw[2] = raw[3] = 0;
  char prefix[32];
  std::snprintf(prefix, sizeof(prefix), "req_%02x%02x%02x%02x", raw[0], raw[1], raw[2], raw[3]);
  impl->core.request_prefix = prefix;
  impl->core.services.limits = options.limits;
  impl->core.services.metrics_public = options.metrics_public;
  impl->core.services.started_unix_s = std::chrono::duration_cast<std::chrono::seconds>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count();
  impl->blocking = std::make_unique<net::thread_pool>(std::max(1, options.blocking_threads));
  net::thread_pool* pool = impl->blocking.get();
  impl->core.services.run_blocking = [pool](std::function<void()> f) {
    net::post(*pool, std::move(f));
  };
  impl->core.options = std::move(options);
  impl->core.router.add_filter(std::make_shared<AuthFilter>(std::move(keys)));
  register_api_routes(impl->core.router, impl->core.services);
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

void Server::add_filter(std::shared_ptr<Filter> filter) {
  impl_->core.router.add_filter(std::move(filter));
}

Status Server::start() {
  Impl& m = *impl_;
  beast::error_code ec;
  auto addr = net::ip::make_address(m.core.options.host, ec);
  if (ec) {
    return Error(ErrorCode::kInvalidArgument,
                 "--host '" + m.core.options.host + "' is not an IP address (e.g. 127.0.0.1, ::1)");
  }
  tcp::endpoint ep(addr, m.core.options.port);
  m.acceptor.open(ep.protocol(), ec);
  if (!ec) m.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) m.acceptor.bind(ep, ec);
  if (!ec) m.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return Error(ErrorCode::kUnavailable, "cannot listen on " + m.core.options.host + ":" +
                                              std::to_string(m.core.options.port) + ": " +
                                              ec.message() + "; pick another --port");
  }
  m.port = m.acceptor.local_endpoint().port();
  m.work.emplace(m.ioc.get_executor());
  m.signals = std::make_unique<net::signal_set>(m.ioc, SIGINT, SIGTERM);
  m.signals->async_wait([this](beast::error_code ec, int) {
    if (!ec) request_stop();
  });
  m.accept();
  for (int i = 0; i < std::max(1, m.core.options.io_threads); ++i) {
    m.threads.emplace_back([&m] { run_io_loop(m.ioc, m.core.options.io_spin_us); });
  }
  m.started = true;
  return Status::ok();
}

uint16_t Server::port() const {
  return impl_->port;
}
bool Server::tls() const {
  return impl_->ssl_ctx != nullptr;
}
void Server::set_backend(std::shared_ptr<Backend> backend) {
  impl_->core.services.set_backend(std::move(backend));
}
Services& Server::services() {
  return impl_->core.services;
}

void Server::request_stop() {
  std::lock_guard lock(impl_->stop_mu);
  impl_->stop_requested = true;
  impl_->stop_cv.notify_all();
}

void Server::wait_for_stop_signal() {
  std::unique_lock lock(impl_->stop_mu);
  impl_->stop_cv.wait(lock, [this] { return impl_->stop_requested; });
}

void Server::shutdown(std::chrono::milliseconds deadline) {
  Impl& m = *impl_;
  if (m.shut_down) return;
  m.shut_down = true;
  if (!m.started) return;
  ServerCore& core = m.core;
  core.draining = true;
  net::post(m.acceptor.get_executor(), [&m] {
    beast::error_code ec;
    m.acceptor.close(ec);
  });
  if (m.signals) {
    net::post(m.ioc, [&m] {
      beast::error_code ec;
      m.signals->cancel(ec);
    });
  }
  for (auto& s : core.live_sessions()) s->drain();
  auto until = std::chrono::steady_clock::now() + deadline;
  {
    std::unique_lock lock(core.mu);
    core.cv.wait_until(lock, until, [&core] { return core.in_flight == 0; });
  }
  // Deadline passed: cancel what is left, give the cancellations a moment to answer, then close.
  for (auto& s : core.live_sessions()) s->force();
  {
    std::unique_lock lock(core.mu);
    core.cv.wait_for(lock, std::chrono::seconds(2), [&core] { return core.in_flight == 0; });
  }
  for (auto& s : core.live_sessions()) s->drain();
  m.work.reset();
  m.blocking->join();
  // Let the closes run, then stop the loop (pending timers would otherwise keep it alive).
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  m.ioc.stop();
  for (auto& t : m.threads) t.join();
  m.threads.clear();
}

}  // namespace enclave::server
