// One HTTP/1.1 connection (plain or TLS): reads requests with Beast's parser, hands them to the
// Router as an Exchange, and writes responses (full or chunked SSE) from a queue. Everything on the
// connection's strand. While a request is in flight a read stays armed, so a client that closes its
// socket cancels its generation (as does a failed write). Included only by server.cc.
//
// Per request the session arms no timer: one lazy deadline timer per connection (read, idle,
// request and linger limits all move `deadline_`, a plain field) wakes at the latest one
// `max_wait_` after it was armed and re-arms itself for whatever deadline is current then. Writes
// from handlers on the connection's strand run inline (dispatch); only other threads (the engine)
// post.
#pragma once

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <list>
#include <memory>
#include <mutex>

#include "server/router.h"
#include "server/server.h"

namespace enclave::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;

class SessionBase {
 public:
  virtual ~SessionBase() = default;
  virtual void drain() = 0;  // shutdown began: close when idle, no more keep-alive
  virtual void force() = 0;  // deadline passed: cancel in-flight work and close
};

// State shared by the listener and all sessions.
struct ServerCore {
  ServerOptions options;
  Router router;
  Services services;
  std::atomic<bool> draining{false};
  std::atomic<uint64_t> request_counter{0};
  std::string request_prefix;

  std::mutex mu;
  std::condition_variable cv;
  int64_t in_flight = 0;  // requests dispatched and not yet fully answered
  std::list<std::weak_ptr<SessionBase>> sessions;

  void begin_request() {
    std::lock_guard lock(mu);
    ++in_flight;
  }
  void end_request() {
    std::lock_guard lock(mu);
    --in_flight;
    cv.notify_all();
  }
  void add_session(const std::shared_ptr<SessionBase>& s) {
    std::lock_guard lock(mu);
    for (auto it = sessions.begin(); it != sessions.end();) {
      it = it->expired() ? sessions.erase(it) : std::next(it);
    }
    sessions.push_back(s);
  }
  std::vector<std::shared_ptr<SessionBase>> live_sessions() {
    std::lock_guard lock(mu);
    std::vector<std::shared_ptr<SessionBase>> out;
    for (auto& w : sessions) {
      if (auto s = w.lock()) out.push_back(std::move(s));
    }
    return out;
  }
  // request_prefix + the counter in lower-case hex, at least 8 digits (as "%08llx").
  std::string next_request_id() {
    uint64_t n = ++request_counter;
    char digits[16];
    int len = 0;
    do {
      digits[len++] = "0123456789abcdef"[n & 15];
      n >>= 4;
    } while (n != 0);
    std::string id;
    id.reserve(request_prefix.size() + 16);
    id += request_prefix;
    if (len < 8) id.append(static_cast<size_t>(8 - len), '0');
    while (len > 0) id += digits[--len];
    return id;
  }
};

// Request parser that builds the HttpRequest while it parses (header names lower-cased once, the
// body appended in place): no Beast header container, no copy of the message afterwards.
class RequestSink : public http::basic_parser<true> {
 public:
  HttpRequest& request() { return req_; }
  bool head() const { return method_ == http::verb::head; }

 private:
  void on_request_impl(http::verb method, beast::string_view method_str, beast::string_view target,
                       int, beast::error_code&) override {
    method_ = method;
    req_.method.assign(method_str.data(), method_str.size());
    req_.target.assign(target.data(), target.size());
    req_.headers.reserve(8);
  }
  void on_response_impl(int, beast::string_view, int, beast::error_code&) override {}
  void on_field_impl(http::field, beast::string_view name, beast::string_view value,
                     beast::error_code&) override {
    auto& [k, v] = req_.headers.emplace_back();
    k.resize(name.size());
    for (size_t i = 0; i < name.size(); ++i) {
      char c = name[i];
      k[i] = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    }
    v.assign(value.data(), value.size());
  }
  void on_header_impl(beast::error_code&) override {}
  // The parser has already refused a Content-Length above the body limit.
  void on_body_init_impl(const boost::optional<std::uint64_t>& length,
                         beast::error_code&) override {
    if (length) req_.body.reserve(static_cast<size_t>(*length));
  }
  size_t on_body_impl(beast::string_view body, beast::error_code&) override {
    req_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}
  size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, beast::error_code&) override {
    req_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(beast::error_code&) override {}

  HttpRequest req_;
  http::verb method_ = http::verb::unknown;
};

const char* status_reason(int status);
// Status line + headers of a full response (Content-Length) or of a chunked stream.
std::string format_head(int status, std::string_view content_type, const HttpResponse* extra,
                        size_t content_length, bool chunked, bool keep_alive,
                        std::string_view request_id);

template <class Stream>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  using Clock = std::chrono::steady_clock;

  Session(ServerCore& core, Stream stream)
      : core_(core),
        stream_(std::move(stream)),
        deadline_timer_(stream_.get_executor()),
        max_wait_(std::chrono::seconds(
            std::max(1, std::min({core.options.read_timeout_s, core.options.idle_timeout_s,
                                  core.options.request_timeout_s})))) {}

  void start(bool tls) {
    tls_ = tls;
    auto self = this->shared_from_this();
    net::dispatch(stream_.get_executor(), [self] { self->begin(); });
  }

  void drain() override {
    auto self = this->shared_from_this();
    net::post(stream_.get_executor(), [self] {
      if (!self->exchange_) {
        self->close();
      } else {
        self->keep_alive_ = false;
      }
    });
  }

  void force() override {
    auto self = this->shared_from_this();
    net::post(stream_.get_executor(), [self] {
      if (self->exchange_) self->exchange_->fire_cancel(CancelReason::kShutdown);
      if (!self->exchange_) self->close();
    });
  }

 private:
  class SessionExchange : public Exchange, public std::enable_shared_from_this<SessionExchange> {
   public:
    // Holds the session weakly: the session owns the exchange (exchange_), and a strong
    // reference back would be a cycle that outlives the io_context at shutdown. While the
    // connection is open the session is kept alive by its pending deadline timer.
    SessionExchange(const std::shared_ptr<Session>& s, HttpRequest r)
        : session_(s), executor_(s->stream_.get_executor()), request_(std::move(r)) {}
    const HttpRequest& request() const override { return request_; }
    net::any_io_executor executor() const override { return executor_; }
    void respond(HttpResponse response) override {
      post([this, r = std::move(response)](Session& s) mutable {
        s.write_full(this, std::move(r));
      });
    }
    void start_stream(int status) override {
      post([this, status](Session& s) { s.write_stream_head(this, status); });
    }
    void send(std::string bytes) override {
      post([this, b = std::move(bytes)](Session& s) mutable { s.write_chunk(this, std::move(b)); });
    }
    void end_stream() override {
      post([this](Session& s) { s.write_stream_end(this); });
    }
    void on_cancel(std::function<void(CancelReason)> fn) override {
      std::unique_lock lock(mu_);
      if (fired_) {
        CancelReason r = reason_;
        lock.unlock();
        fn(r);
        return;
      }
      cancel_fn_ = std::move(fn);
    }
    bool cancelled() const override { return cancelled_.load(); }
    void set_route_name(std::string_view name) override { route_ = name; }
    void add_response_header(std::string name, std::string value) override {
      std::lock_guard lock(mu_);
      extra_headers_.emplace_back(std::move(name), std::move(value));
    }
    std::vector<std::pair<std::string, std::string>> take_extra_headers() {
      std::lock_guard lock(mu_);
      return std::move(extra_headers_);
    }

    void fire_cancel(CancelReason reason) {
      std::function<void(CancelReason)> fn;
      {
        std::lock_guard lock(mu_);
        if (fired_) return;
        fired_ = true;
        reason_ = reason;
        cancelled_ = true;
        fn = std::move(cancel_fn_);
      }
      if (fn) fn(reason);
    }
    std::string_view route() const { return route_; }
    // The request is answered: drop the cancel callback (it may own the handler's state, which
    // owns this exchange).
    void clear_cancel() {
      std::function<void(CancelReason)> fn;
      std::lock_guard lock(mu_);
      fired_ = true;
      fn.swap(cancel_fn_);
    }

   private:
    // Inline when the caller already runs on the connection's strand (the gateway, synchronous
    // answers of the local handlers) and nothing posted from another thread (the engine) is still
    // waiting: writes keep their order either way. Otherwise queued on the strand.
    template <class F>
    void post(F&& f) {
      std::shared_ptr<Session> s = session_.lock();
      if (!s) return;  // the connection is gone: nothing can be written
      if (queued_writes_.load(std::memory_order_acquire) == 0 && on_own_strand()) return f(*s);
      // Keep this exchange alive until the posted write ran.
      auto keep = this->shared_from_this();
      queued_writes_.fetch_add(1, std::memory_order_acq_rel);
      net::post(executor_, [s = std::move(s), keep, f = std::forward<F>(f)]() mutable {
        keep->queued_writes_.fetch_sub(1, std::memory_order_acq_rel);
        f(*s);
      });
    }
    bool on_own_strand() const {
      const auto* strand = executor_.target<net::strand<net::io_context::executor_type>>();
      return strand && strand->running_in_this_thread();
    }

    std::weak_ptr<Session> session_;
    net::any_io_executor executor_;
    HttpRequest request_;
    std::string_view route_ = "unmatched";
    std::mutex mu_;
    bool fired_ = false;
    CancelReason reason_ = CancelReason::kDisconnected;
    std::function<void(CancelReason)> cancel_fn_;
    std::atomic<bool> cancelled_{false};
    std::atomic<int> queued_writes_{0};  // posted writes not run yet
    std::vector<std::pair<std::string, std::string>> extra_headers_;
    friend class Session;
  };

  void begin();
  void read_request();
  void on_read(beast::error_code ec);
  void dispatch_request();
  void watch();
  void on_watch(beast::error_code ec, size_t n);
  void write_full(SessionExchange* ex, HttpResponse r);
  void write_stream_head(SessionExchange* ex, int status);
  void write_chunk(SessionExchange* ex, std::string bytes);
  void write_stream_end(SessionExchange* ex);
  void write_error_and_close(const api::ApiError& e);
  void enqueue(std::string bytes);
  void do_write();
  void complete_request();
  void close();
  void linger_close();
  void linger_read();
  // The connection's one time limit (read, idle, whole request or linger) ends at `deadline`.
  void set_deadline(Clock::time_point deadline);
  void set_deadline_in(int seconds) { set_deadline(Clock::now() + std::chrono::seconds(seconds)); }
  void arm_deadline_timer(Clock::time_point at);
  void on_deadline_timer(beast::error_code ec);
  bool current(SessionExchange* ex) const { return exchange_ && exchange_.get() == ex; }

  ServerCore& core_;
  Stream stream_;
  net::steady_timer deadline_timer_;
  Clock::time_point deadline_ = Clock::time_point::max();  // the current limit
  Clock::time_point timer_expiry_{};                       // when the pending wait ends
  bool timer_armed_ = false;
  uint64_t timer_generation_ = 0;  // a wait replaced by an earlier one is ignored when it ends
  // The shortest of the read, idle and request limits: the timer never waits longer than this
  // past its arming, so a limit of at least that length only moves deadline_ (no timer operation).
  Clock::duration max_wait_;
  beast::flat_buffer buffer_;
  std::optional<RequestSink> parser_;
  std::shared_ptr<SessionExchange> exchange_;
  std::deque<std::string> queue_;
  bool tls_ = false;
  bool reading_ = false;
  bool writing_ = false;
  bool closed_ = false;
  bool keep_alive_ = true;
  bool head_only_ = false;
  bool response_done_ = false;  // the handler finished; complete when the queue drains
  bool streaming_ = false;
  bool write_failed_ = false;
  static constexpr size_t kLingerBufferBytes = 16384;
  bool linger_ = false;  // the request was refused unread: drain the client's bytes before closing
  size_t lingered_bytes_ = 0;
  std::unique_ptr<char[]> linger_buffer_;
};

}  // namespace enclave::server

#include "server/http_session_impl.h"
