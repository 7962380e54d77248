// Upstream HTTP client: one coroutine per call on the caller's executor (the client connection's
// strand) or on a strand of its own io threads; idle keep-alive connections are pooled per
// io_context (an Asio service, so they go when their io_context goes) and endpoint.
#include "router/upstream.h"

#include <openssl/ssl.h>

#include <array>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
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

// One upstream connection. Plain sockets (no beast::tcp_stream): timeouts come from the call's
// own timer on the call's executor, so a pooled connection can serve calls on any strand.
struct Conn {
  std::optional<tcp::socket> plain;
  std::unique_ptr<net::ssl::stream<tcp::socket>> tls;
  std::shared_ptr<net::ssl::context> tls_ctx;  // outlives `tls`
  beast::flat_buffer buffer;
  tcp::socket& socket() { return tls ? tls->next_layer() : *plain; }
};

std::string pool_key(const UpstreamEndpoint& e) {
  std::string k;
  k.reserve(16 + e.url.host.size() + e.url.port.size() + e.ca_file.size());
  k += e.url.tls ? "https://" : "http://";
  k += e.url.host;
  k += ':';
  k += e.url.port;
  k += '|';
  k += e.ca_file;
  k += e.verify_tls ? "|v" : "|n";
  return k;
}

Error io_error(const std::string& what, const beast::error_code& ec, bool timed_out) {
  if (timed_out || ec == beast::error::timeout) {
    return Error(ErrorCode::kUnavailable, "upstream " + what + " timed out");
  }
  if (ec == net::error::operation_aborted) {
    return Error(ErrorCode::kUnavailable, "upstream call cancelled during " + what);
  }
  return Error(ErrorCode::kUnavailable, "upstream " + what + " failed: " + ec.message());
}

// Idle keep-alive connections of one io_context, by endpoint.
struct PoolState {
  static constexpr size_t kMaxIdlePerEndpoint = 64;
  std::mutex mu;
  std::map<std::string, std::deque<std::unique_ptr<Conn>>, std::less<>> idle;
  bool shut_down = false;

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
    if (shut_down) return;
    auto& q = idle[key];
    if (q.size() < kMaxIdlePerEndpoint) q.push_back(std::move(c));
  }
  size_t size() {
    std::lock_guard lock(mu);
    size_t n = 0;
    for (const auto& [k, q] : idle) n += q.size();
    return n;
  }
};

// The pool lives as a service of the io_context whose sockets it holds: closed at that context's
// shutdown, whatever the order in which servers and clients are torn down.
class PoolService : public net::execution_context::service {
 public:
  using key_type = PoolService;
  static inline net::execution_context::id id;
  explicit PoolService(net::execution_context& ctx)
      : net::execution_context::service(ctx), state(std::make_shared<PoolState>()) {}
  void shutdown() override {
    std::map<std::string, std::deque<std::unique_ptr<Conn>>, std::less<>> idle;
    {
      std::lock_guard lock(state->mu);
      state->shut_down = true;
      idle.swap(state->idle);
    }
  }
  std::shared_ptr<PoolState> state;
};

}  // namespace

struct UpstreamClient::Impl {
  net::io_context ioc;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  mutable std::mutex mu;
  std::map<std::string, std::shared_ptr<net::ssl::context>> tls_contexts;
  std::vector<std::weak_ptr<PoolState>> pools;  // every pool this client used (idle_connections)

  std::shared_ptr<PoolState> pool_of(net::execution_context& ctx) {
    std::shared_ptr<PoolState> p = net::use_service<PoolService>(ctx).state;
    std::lock_guard lock(mu);
    for (auto it = pools.begin(); it != pools.end();) {
      std::shared_ptr<PoolState> q = it->lock();
      if (!q) {
        it = pools.erase(it);
        continue;
      }
      if (q == p) return p;
      ++it;
    }
    pools.push_back(p);
    return p;
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
  // No reference to the client: a call on a server's strand may outlive it.
  net::any_io_executor executor;  // where the call and its callbacks run (a strand)
  std::shared_ptr<PoolState> pool;
  std::string key;
  std::optional<Result<std::shared_ptr<net::ssl::context>>> tls_ctx;  // https endpoints
  UpstreamEndpoint endpoint;
  UpstreamCall call;
  UpstreamEvents events;
  std::atomic<bool> cancelled{false};
  Conn* active = nullptr;  // touched only on `executor`
  Clock::time_point deadline;
  // Timeouts: one watchdog timer per call; each step moves step_deadline (no re-arm per read).
  net::steady_timer watchdog;
  Clock::time_point step_deadline;
  bool watchdog_armed = false;
  bool timed_out = false;

  explicit CallState(net::any_io_executor ex) : executor(std::move(ex)), watchdog(executor) {}

  void cancel() override {
    cancelled = true;
    auto self = shared_from_this();
    net::post(executor, [self] { self->abort_active(); });
  }

  void abort_active() {
    if (!active) return;
    beast::error_code ignore;
    active->socket().shutdown(tcp::socket::shutdown_both, ignore);
    active->socket().cancel(ignore);
  }

  // The next step (connect, handshake, write, each read) must finish within `step_ms` and
  // before the call's total deadline.
  void step(int64_t step_ms) {
    step_deadline = std::min(deadline, Clock::now() + std::chrono::milliseconds(step_ms));
    if (!watchdog_armed) arm_watchdog();
  }

  void arm_watchdog() {
    watchdog_armed = true;
    watchdog.expires_at(step_deadline);
    watchdog.async_wait([self = shared_from_this()](const beast::error_code& ec) {
      self->watchdog_armed = false;
      if (ec) return;  // stopped
      if (Clock::now() >= self->step_deadline) {
        self->timed_out = true;
        self->abort_active();
        return;
      }
      self->arm_watchdog();  // the step moved on: wait for its deadline
    });
  }

  void stop_watchdog() {
    if (watchdog_armed) watchdog.cancel();
  }
};

// One pass (find_first_of calls memchr once per character of the value).
bool has_line_break(std::string_view v) {
  for (char c : v) {
    if (c == '\r' || c == '\n') return true;
  }
  return false;
}

net::awaitable<Result<std::unique_ptr<Conn>>> connect(CallState& st) {
  const ParsedUrl& u = st.endpoint.url;
  beast::error_code ec;
  auto conn = std::make_unique<Conn>();
  if (u.tls) {
    if (!st.tls_ctx || !*st.tls_ctx) {
      co_return st.tls_ctx ? st.tls_ctx->error()
                           : Error(ErrorCode::kInternal, "upstream TLS context missing");
    }
    conn->tls_ctx = **st.tls_ctx;
    conn->tls = std::make_unique<net::ssl::stream<tcp::socket>>(st.executor, *conn->tls_ctx);
  } else {
    conn->plain.emplace(st.executor);
  }
  st.active = conn.get();
  st.step(st.call.timeouts.connect_ms);
  // A literal address needs no resolver (whose async lookups run on a thread of their own).
  std::vector<tcp::endpoint> targets;
  uint16_t port = 0;
  std::from_chars(u.port.data(), u.port.data() + u.port.size(), port);
  if (net::ip::address addr = net::ip::make_address(u.host, ec); !ec) {
    targets.emplace_back(addr, port);
  } else {
    tcp::resolver resolver(st.executor);
    auto results = co_await resolver.async_resolve(u.host, u.port,
                                                   net::redirect_error(net::use_awaitable, ec));
    if (ec || st.timed_out) co_return io_error("name resolution", ec, st.timed_out);
    for (const auto& r : results) targets.push_back(r.endpoint());
  }
  co_await net::async_connect(conn->socket(), targets, net::redirect_error(net::use_awaitable, ec));
  if (ec || st.timed_out) co_return io_error("connect", ec, st.timed_out);
  conn->socket().set_option(tcp::no_delay(true), ec);
  if (conn->tls) {
    if (!SSL_set_tlsext_host_name(conn->tls->native_handle(), u.host.c_str())) {
      co_return Error(ErrorCode::kUnavailable, "upstream TLS: cannot set SNI");
    }
    if (st.endpoint.verify_tls) {
      conn->tls->set_verify_callback(net::ssl::host_name_verification(u.host));
    }
    st.step(st.call.timeouts.connect_ms);
    co_await conn->tls->async_handshake(net::ssl::stream_base::client,
                                        net::redirect_error(net::use_awaitable, ec));
    if (ec || st.timed_out) {
      co_return io_error("TLS handshake (certificate verification)", ec, st.timed_out);
    }
  }
  co_return conn;
}

// The request head, written once per call (no Beast message object: one string, one writev).
std::string request_head(const CallState& st) {
  const ParsedUrl& u = st.endpoint.url;
  const UpstreamCall& c = st.call;
  bool default_port = (u.tls && u.port == "443") || (!u.tls && u.port == "80");
  std::string h;
  h.reserve(256 + c.path.size() + u.base_path.size());
  h += c.method;
  h += ' ';
  h += u.base_path;
  h += c.path;
  h += " HTTP/1.1\r\nHost: ";
  h += u.host;
  if (!default_port) {
    h += ':';
    h += u.port;
  }
  h += "\r\nUser-Agent: enclave-gateway\r\nConnection: keep-alive\r\n";
  for (const auto& [k, v] : c.headers) {
    h += k;
    h += ": ";
    h += v;
    h += "\r\n";
  }
  if (!c.body.empty() || c.method == "POST") {
    h += "Content-Length: ";
    h += std::to_string(c.body.size());
    h += "\r\n";
  }
  h += "\r\n";
  return h;
}

// Bytes asked for per read of an upstream response.
constexpr size_t kReadChunkBytes = 16384;

// Response parser that hands the status to on_head and body bytes (de-chunked) straight to
// on_body as the parser meets them: no header fields stored, no copy through a body buffer.
class ResponseSink : public http::basic_parser<false> {
 public:
  explicit ResponseSink(CallState& st) : st_(st) {}

 private:
  void on_request_impl(http::verb, beast::string_view, beast::string_view, int,
                       beast::error_code&) override {}
  void on_response_impl(int code, beast::string_view, int, beast::error_code&) override {
    status_ = code;
  }
  void on_field_impl(http::field, beast::string_view, beast::string_view,
                     beast::error_code&) override {}
  void on_header_impl(beast::error_code&) override {
    if (st_.events.on_head) st_.events.on_head(status_);
  }
  void on_body_init_impl(const boost::optional<std::uint64_t>&, beast::error_code&) override {}
  size_t on_body_impl(beast::string_view body, beast::error_code&) override {
    deliver(body);
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}
  size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, beast::error_code&) override {
    deliver(body);
    return body.size();
  }
  void on_finish_impl(beast::error_code&) override {}
  void deliver(beast::string_view body) {
    if (!body.empty() && st_.events.on_body) {
      st_.events.on_body(std::string_view(body.data(), body.size()));
    }
  }

  CallState& st_;
  int status_ = 0;
};

// One request/response on an open connection. `got_bytes`: any response byte arrived (then
// the call must not be retried on a fresh connection).
template <class Stream>
net::awaitable<Status> exchange(Stream& stream, Conn& conn, CallState& st, const std::string& head,
                                bool& got_bytes, bool& keep_alive) {
  beast::error_code ec;
  st.step(st.call.timeouts.read_ms);
  std::array<net::const_buffer, 2> out{net::buffer(head), net::buffer(st.call.body)};
  co_await net::async_write(stream, out, net::redirect_error(net::use_awaitable, ec));
  if (ec || st.timed_out) co_return io_error("write", ec, st.timed_out);

  // Read and parse directly (no Beast composed read operations): parse what is buffered, read
  // more only when the parser needs it. Body bytes that came with the head (a small answer arrives
  // whole) are parsed without another read.
  ResponseSink parser(st);
  parser.body_limit(boost::none);
  parser.eager(true);
  st.step(st.call.timeouts.read_ms);
  for (;;) {
    if (conn.buffer.size() > 0) {
      size_t used = parser.put(conn.buffer.data(), ec);
      conn.buffer.consume(used);
      if (ec == http::error::need_more) ec = {};
      if (ec) co_return io_error("read", ec, false);
      if (parser.is_header_done()) got_bytes = true;
      if (parser.is_done()) break;
      if (used > 0) continue;
    }
    if (st.cancelled) co_return Error(ErrorCode::kUnavailable, "upstream call cancelled");
    if (got_bytes) st.step(st.call.timeouts.read_ms);
    size_t n = co_await stream.async_read_some(conn.buffer.prepare(kReadChunkBytes),
                                               net::redirect_error(net::use_awaitable, ec));
    conn.buffer.commit(n);
    if (st.timed_out) co_return io_error("read", ec, true);
    if (ec == net::error::eof) {
      // The end of a body without a length; before any byte, a connection the server closed.
      if (!parser.got_some()) co_return io_error("read", http::error::end_of_stream, false);
      ec = {};
      parser.put_eof(ec);
      if (ec) co_return io_error("read", ec, false);
      if (parser.is_header_done()) got_bytes = true;
      break;
    }
    if (ec) co_return io_error("read", ec, false);
  }
  keep_alive = parser.keep_alive();
  co_return Status::ok();
}

net::awaitable<void> run_call(std::shared_ptr<CallState> st) {
  Status result;
  std::string head = request_head(*st);
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::unique_ptr<Conn> conn = st->pool->take(st->key);
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
      result = co_await exchange(*conn->tls, *conn, *st, head, got_bytes, keep_alive);
    } else {
      result = co_await exchange(*conn->plain, *conn, *st, head, got_bytes, keep_alive);
    }
    st->active = nullptr;
    if (result && keep_alive) st->pool->give_back(st->key, std::move(conn));
    // A pooled connection the server already closed: retry once on a fresh one.
    if (!result && reused && !got_bytes && !st->cancelled && !st->timed_out) continue;
    break;
  }
  st->active = nullptr;
  if (st->events.on_done) st->events.on_done(result);
  st->stop_watchdog();  // after the answer went on its way
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
  net::use_service<PoolService>(impl_->ioc).shutdown();
  impl_->ioc.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
}

std::shared_ptr<UpstreamCallHandle> UpstreamClient::start(const UpstreamEndpoint& endpoint,
                                                          UpstreamCall call, UpstreamEvents events,
                                                          net::any_io_executor executor) {
  if (!executor) executor = net::make_strand(impl_->ioc);
  auto st = std::make_shared<CallState>(executor);
  st->pool = impl_->pool_of(net::query(executor, net::execution::context));
  if (endpoint.url.tls) st->tls_ctx = impl_->tls_context(endpoint);
  st->key = pool_key(endpoint);
  st->endpoint = endpoint;
  st->call = std::move(call);
  st->events = std::move(events);
  st->deadline = Clock::now() + std::chrono::milliseconds(st->call.timeouts.total_ms);
  bool bad_header = has_line_break(st->call.method) || has_line_break(st->call.path);
  for (const auto& [k, v] : st->call.headers) {
    bad_header = bad_header || has_line_break(k) || has_line_break(v);
  }
  std::optional<Error> refused;
  if (bad_header) {
    refused = Error(ErrorCode::kInvalidArgument,
                    "upstream request header contains a line break; check the backend's api_key "
                    "and base_url");
  } else if (st->tls_ctx && !*st->tls_ctx) {
    refused = st->tls_ctx->error();
  }
  if (refused) {
    // Posted: the caller finishes its own step before on_done runs.
    net::post(executor, [st, e = std::move(*refused)] {
      if (st->events.on_done) st->events.on_done(e);
    });
    return st;
  }
  // Spawned in place: on the caller's strand the call runs inline up to its first wait (the
  // request is written before start() returns). No callback runs before start() returns: Asio
  // posts the completion of an operation that finishes at once.
  net::co_spawn(st->executor, run_call(st), [st](std::exception_ptr e) {
    if (e && st->events.on_done) {
      st->events.on_done(Error(ErrorCode::kInternal, "upstream client: unexpected exception"));
    }
  });
  return st;
}

void UpstreamClient::schedule(int64_t delay_ms, std::function<void()> fn,
                              net::any_io_executor executor) {
  auto timer = std::make_shared<net::steady_timer>(executor ? executor : impl_->ioc.get_executor());
  timer->expires_after(std::chrono::milliseconds(delay_ms));
  timer->async_wait([timer, fn = std::move(fn)](const beast::error_code& ec) {
    if (!ec) fn();
  });
}

size_t UpstreamClient::idle_connections() const {
  std::vector<std::shared_ptr<PoolState>> pools;
  {
    std::lock_guard lock(impl_->mu);
    for (const auto& w : impl_->pools) {
      if (auto p = w.lock()) pools.push_back(std::move(p));
    }
  }
  size_t n = 0;
  for (const auto& p : pools) n += p->size();
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
