// Upstream HTTP client: one coroutine per call on its own strand; idle keep-alive connections are
// pooled per endpoint (host, port, TLS, CA file).
#include "router/upstream.h"

#include <openssl/ssl.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

namespace enclave::router {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

struct Conn {
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;
  beast::tcp_stream& tcp() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
};

std::string pool_key(const UpstreamEndpoint& e) {
  return (e.url.tls ? "https://" : "http://") + e.url.host + ":" + e.url.port + "|" + e.ca_file +
         (e.verify_tls ? "|v" : "|n");
}

Error io_error(const std::string& what, const beast::error_code& ec) {
  if (ec == beast::error::timeout) {
    return Error(ErrorCode::kUnavailable, "upstream " + what + " timed out");
  }
  if (ec == net::error::operation_aborted) {
    return Error(ErrorCode::kUnavailable, "upstream call cancelled during " + what);
  }
  return Error(ErrorCode::kUnavailable, "upstream " + what + " failed: " + ec.message());
}

}  // namespace

struct UpstreamClient::Impl : std::enable_shared_from_this<UpstreamClient::Impl> {
  net::io_context ioc;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  mutable std::mutex mu;
  std::map<std::string, std::deque<std::unique_ptr<Conn>>> idle;
  std::map<std::string, std::shared_ptr<net::ssl::context>> tls_contexts;
  static constexpr size_t kMaxIdlePerEndpoint = 64;

  std::unique_ptr<Conn> take(const std::string& key) {
    std::lock_guard lock(mu);
    auto it = idle.find(key);
    if (it == idle.end() || it->second.empty()) return nullptr;
    std::unique_ptr<Conn> c = std::move(it->second.back());
    it->second.pop_back();
    return c;
  }
  void give_back(const std::string& key, std::unique_ptr<Conn> c) {
    std::lock_guard lock(mu);
    auto& q = idle[key];
    if (q.size() < kMaxIdlePerEndpoint) q.push_back(std::move(c));
  }
  Result<std::shared_ptr<net::ssl::context>> tls_context(const UpstreamEndpoint& e) {
    std::lock_guard lock(mu);
    std::string key = e.ca_file + (e.verify_tls ? "|v" : "|n");
    if (auto it = tls_contexts.find(key); it != tls_contexts.end()) return it->second;
    auto ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_client);
    beast::error_code ec;
    ctx->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                     net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                     net::ssl::context::no_tlsv1_1);
    ctx->set_default_verify_paths(ec);
    if (ec) return Error(ErrorCode::kUnavailable, "cannot load the system CA store");
    if (!e.ca_file.empty()) {
      ctx->load_verify_file(e.ca_file, ec);
      if (ec) {
        return Error(ErrorCode::kInvalidArgument,
                     "cannot load the upstream CA file " + e.ca_file + "; check the path");
      }
    }
    ctx->set_verify_mode(e.verify_tls ? net::ssl::verify_peer : net::ssl::verify_none);
    tls_contexts[key] = ctx;
    return ctx;
  }
};

namespace {

struct CallState : UpstreamCallHandle, std::enable_shared_from_this<CallState> {
  std::shared_ptr<UpstreamClient::Impl> client;
  net::strand<net::io_context::executor_type> strand;
  UpstreamEndpoint endpoint;
  UpstreamCall call;
  UpstreamEvents events;
  std::atomic<bool> cancelled{false};
  Conn* active = nullptr;  // touched only on the strand
  Clock::time_point deadline;

  CallState(std::shared_ptr<UpstreamClient::Impl> c)
      : client(std::move(c)), strand(net::make_strand(client->ioc)) {}

  void cancel() override {
    cancelled = true;
    auto self = shared_from_this();
    net::post(strand, [self] {
      if (self->active) {
        beast::error_code ignore;
        self->active->tcp().socket().shutdown(tcp::socket::shutdown_both, ignore);
        self->active->tcp().cancel();
      }
    });
  }

  std::chrono::milliseconds budget(int64_t step_ms) const {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() < 1) left = std::chrono::milliseconds(1);
    return std::min(left, std::chrono::milliseconds(step_ms));
  }
};

net::awaitable<Result<std::unique_ptr<Conn>>> connect(CallState& st) {
  auto ex = co_await net::this_coro::executor;
  const ParsedUrl& u = st.endpoint.url;
  beast::error_code ec;
  tcp::resolver resolver(ex);
  auto results =
      co_await resolver.async_resolve(u.host, u.port, net::redirect_error(net::use_awaitable, ec));
  if (ec) co_return io_error("name resolution", ec);
  auto conn = std::make_unique<Conn>();
  std::shared_ptr<net::ssl::context> ctx;
  if (u.tls) {
    auto c = st.client->tls_context(st.endpoint);
    if (!c) co_return c.error();
    ctx = *c;
    conn->tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(st.client->ioc, *ctx);
  } else {
    conn->plain = std::make_unique<beast::tcp_stream>(st.client->ioc);
  }
  st.active = conn.get();
  conn->tcp().expires_after(st.budget(st.call.timeouts.connect_ms));
  co_await conn->tcp().async_connect(results, net::redirect_error(net::use_awaitable, ec));
  if (ec) co_return io_error("connect", ec);
  conn->tcp().socket().set_option(tcp::no_delay(true), ec);
  if (conn->tls) {
    if (!SSL_set_tlsext_host_name(conn->tls->native_handle(), u.host.c_str())) {
      co_return Error(ErrorCode::kUnavailable, "upstream TLS: cannot set SNI");
    }
    if (st.endpoint.verify_tls) {
      conn->tls->set_verify_callback(net::ssl::host_name_verification(u.host));
    }
    conn->tcp().expires_after(st.budget(st.call.timeouts.connect_ms));
    co_await conn->tls->async_handshake(net::ssl::stream_base::client,
                                        net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return io_error("TLS handshake (certificate verification)", ec);
  }
  co_return conn;
}

// One request/response on an open connection. `got_bytes`: any response byte arrived (then
// the call must not be retried on a fresh connection).
template <class Stream>
net::awaitable<Status> exchange(Stream& stream, Conn& conn, CallState& st, bool& got_bytes,
                                bool& keep_alive) {
  const ParsedUrl& u = st.endpoint.url;
  http::request<http::string_body> req{http::string_to_verb(st.call.method),
                                       u.base_path + st.call.path, 11};
  bool default_port = (u.tls && u.port == "443") || (!u.tls && u.port == "80");
  req.set(http::field::host, default_port ? u.host : u.host + ":" + u.port);
  req.set(http::field::user_agent, "enclave-gateway");
  for (const auto& [k, v] : st.call.headers) req.set(k, v);
  if (!st.call.body.empty() || st.call.method == "POST") {
    req.body() = st.call.body;
    req.prepare_payload();
  }
  req.keep_alive(true);
  beast::error_code ec;
  conn.tcp().expires_after(st.budget(st.call.timeouts.read_ms));
  co_await http::async_write(stream, req, net::redirect_error(net::use_awaitable, ec));
  if (ec) co_return io_error("write", ec);

  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  conn.tcp().expires_after(st.budget(st.call.timeouts.read_ms));
  co_await http::async_read_header(stream, conn.buffer, parser,
                                   net::redirect_error(net::use_awaitable, ec));
  if (ec) co_return io_error("read", ec);
  got_bytes = true;
  if (st.events.on_head) st.events.on_head(static_cast<int>(parser.get().result_int()));
  char buf[16384];
  while (!parser.is_done()) {
    if (st.cancelled) co_return Error(ErrorCode::kUnavailable, "upstream call cancelled");
    parser.get().body().data = buf;
    parser.get().body().size = sizeof(buf);
    conn.tcp().expires_after(st.budget(st.call.timeouts.read_ms));
    co_await http::async_read_some(stream, conn.buffer, parser,
                                   net::redirect_error(net::use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    if (ec) co_return io_error("read", ec);
    size_t n = sizeof(buf) - parser.get().body().size;
    if (n > 0 && st.events.on_body) st.events.on_body(std::string_view(buf, n));
  }
  keep_alive = parser.get().keep_alive();
  co_return Status::ok();
}

net::awaitable<void> run_call(std::shared_ptr<CallState> st) {
  std::string key = pool_key(st->endpoint);
  Status result;
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::unique_ptr<Conn> conn = st->client->take(key);
    bool reused = conn != nullptr;
    if (!conn) {
      auto c = co_await connect(*st);
      if (!c) {
        result = c.error();
        break;
      }
      conn = std::move(*c);
    }
    st->active = conn.get();
    if (st->cancelled) {
      result = Error(ErrorCode::kUnavailable, "upstream call cancelled");
      break;
    }
    bool got_bytes = false, keep_alive = false;
    if (conn->tls) {
      result = co_await exchange(*conn->tls, *conn, *st, got_bytes, keep_alive);
    } else {
      result = co_await exchange(*conn->plain, *conn, *st, got_bytes, keep_alive);
    }
    st->active = nullptr;
    if (result && keep_alive) {
      conn->tcp().expires_never();
      st->client->give_back(key, std::move(conn));
    }
    // A pooled connection the server already closed: retry once on a fresh one.
    if (!result && reused && !got_bytes && !st->cancelled) continue;
    break;
  }
  st->active = nullptr;
  if (st->events.on_done) st->events.on_done(result);
}

}  // namespace

UpstreamClient::UpstreamClient(int32_t io_threads) : impl_(std::make_shared<Impl>()) {
  impl_->work.emplace(impl_->ioc.get_executor());
  for (int32_t i = 0; i < std::max(1, io_threads); ++i) {
    impl_->threads.emplace_back([impl = impl_.get()] { impl->ioc.run(); });
  }
}

UpstreamClient::~UpstreamClient() {
  stop();
}

void UpstreamClient::stop() {
  if (impl_->threads.empty()) return;
  impl_->work.reset();
  {
    std::lock_guard lock(impl_->mu);
    impl_->idle.clear();
  }
  impl_->ioc.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
}

std::shared_ptr<UpstreamCallHandle> UpstreamClient::start(const UpstreamEndpoint& endpoint,
                                                          UpstreamCall call,
                                                          UpstreamEvents events) {
  auto st = std::make_shared<CallState>(impl_);
  st->endpoint = endpoint;
  st->call = std::move(call);
  st->events = std::move(events);
  st->deadline = Clock::now() + std::chrono::milliseconds(st->call.timeouts.total_ms);
  net::co_spawn(st->strand, run_call(st), [st](std::exception_ptr e) {
    if (e && st->events.on_done) {
      st->events.on_done(Error(ErrorCode::kInternal, "upstream client: unexpected exception"));
    }
  });
  return st;
}

void UpstreamClient::schedule(int64_t delay_ms, std::function<void()> fn) {
  auto timer = std::make_shared<net::steady_timer>(impl_->ioc);
  timer->expires_after(std::chrono::milliseconds(delay_ms));
  timer->async_wait([timer, fn = std::move(fn)](const beast::error_code& ec) {
    if (!ec) fn();
  });
}

size_t UpstreamClient::idle_connections() const {
  std::lock_guard lock(impl_->mu);
  size_t n = 0;
  for (const auto& [k, q] : impl_->idle) n += q.size();
  return n;
}

void SseParser::push(std::string_view bytes, std::vector<std::string>& events) {
  for (char c : bytes) {
    if (c != '\n') {
      line_ += c;
      continue;
    }
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    if (line_.empty()) {
      if (has_data_) events.push_back(std::move(data_));
      data_.clear();
      has_data_ = false;
    } else if (line_.rfind("data:", 0) == 0) {
      std::string_view v(line_);
      v.remove_prefix(5);
      if (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      if (has_data_) data_ += '\n';
      data_.append(v);
      has_data_ = true;
    }
    line_.clear();
  }
}

}  // namespace enclave::router
