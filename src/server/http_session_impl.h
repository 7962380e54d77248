// Session<Stream> member definitions (see http_session.h). Included only through http_session.h.
#pragma once

namespace enclave::server {

template <class Stream>
void Session<Stream>::begin() {
  if constexpr (!std::is_same_v<Stream, tcp::socket>) {
    set_deadline_in(core_.options.read_timeout_s);
    auto self = this->shared_from_this();
    stream_.async_handshake(net::ssl::stream_base::server, [self](beast::error_code ec) {
      if (ec || self->closed_) return self->close();
      self->read_request();
    });
  } else {
    read_request();
  }
}

template <class Stream>
void Session<Stream>::set_deadline(Clock::time_point deadline) {
  deadline_ = deadline;
  if (closed_) return;
  // A pending wait that ends at or before the new deadline re-arms itself when it ends.
  if (!timer_armed_) return arm_deadline_timer(std::min(deadline, Clock::now() + max_wait_));
  if (deadline < timer_expiry_) arm_deadline_timer(deadline);  // sooner: replace the wait
}

template <class Stream>
void Session<Stream>::arm_deadline_timer(Clock::time_point at) {
  timer_armed_ = true;
  timer_expiry_ = at;
  uint64_t generation = ++timer_generation_;
  deadline_timer_.expires_at(at);  // cancels a pending wait (it sees a newer generation)
  // The pending wait holds the session: while the connection is open nothing else may (a
  // request's exchange holds it weakly). close() cancels it.
  deadline_timer_.async_wait([self = this->shared_from_this(), generation](beast::error_code ec) {
    if (generation != self->timer_generation_) return;
    self->timer_armed_ = false;
    self->on_deadline_timer(ec);
  });
}

template <class Stream>
void Session<Stream>::on_deadline_timer(beast::error_code ec) {
  if (ec || closed_) return;
  Clock::time_point now = Clock::now();
  if (now < deadline_) return arm_deadline_timer(std::min(deadline_, now + max_wait_));
  if (!exchange_) return close();  // read, idle or linger limit
  // Whole-request limit: cancels the generation (the handler then answers 408); keeps checking
  // until the answer came (complete_request() moves the deadline on).
  std::shared_ptr<SessionExchange> ex = exchange_;
  ex->fire_cancel(CancelReason::kTimeout);
  if (exchange_ == ex) set_deadline_in(std::max(1, core_.options.read_timeout_s));
}

// Bytes of the next request that already arrived (read while the previous one was in flight) are
// parsed here: async_read would find the message complete without any I/O and post its
// completion, one more trip through the io loop per request.
template <class Stream>
void Session<Stream>::read_request() {
  if (closed_ || reading_) return;
  if (core_.draining.load()) return close();
  parser_.emplace();
  parser_->body_limit(core_.options.max_body_bytes);
  parser_->header_limit(core_.options.max_header_bytes);
  set_deadline_in(buffer_.size() > 0 ? core_.options.read_timeout_s : core_.options.idle_timeout_s);
  if (buffer_.size() > 0) {
    beast::error_code ec;
    parser_->eager(true);
    while (buffer_.size() > 0 && !parser_->is_done()) {
      size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec || used == 0) break;
    }
    if (ec == http::error::need_more) ec = {};
    if (ec || parser_->is_done()) return on_read(ec);
  }
  reading_ = true;
  auto self = this->shared_from_this();
  http::async_read(stream_, buffer_, *parser_,
                   [self](beast::error_code ec, size_t) { self->on_read(ec); });
}

template <class Stream>
void Session<Stream>::on_read(beast::error_code ec) {
  reading_ = false;
  if (closed_) return;
  if (ec == http::error::body_limit) {
    return write_error_and_close(api::payload_too_large(core_.options.max_body_bytes));
  }
  if (ec == http::error::header_limit) return write_error_and_close(api::header_too_large());
  if (ec == http::error::end_of_stream || ec == net::error::eof ||
      ec == net::error::operation_aborted || ec == net::error::connection_reset ||
      ec == net::ssl::error::stream_truncated) {
    return close();
  }
  if (ec) {
    if (ec.category() != beast::error_code(http::error::bad_method).category()) return close();
    return write_error_and_close(api::map_error(
        Error(ErrorCode::kInvalidArgument, "Malformed HTTP request; send HTTP/1.1.")));
  }
  dispatch_request();
}

template <class Stream>
void Session<Stream>::dispatch_request() {
  HttpRequest req = std::move(parser_->request());
  req.path = req.target.substr(0, req.target.find('?'));
  req.request_id = core_.next_request_id();
  req.tls = tls_;
  keep_alive_ = parser_->keep_alive() && !core_.draining.load();
  head_only_ = parser_->head();
  response_done_ = false;
  streaming_ = false;
  exchange_ = std::make_shared<SessionExchange>(this->shared_from_this(), std::move(req));
  core_.begin_request();
  set_deadline_in(core_.options.request_timeout_s);
  std::shared_ptr<SessionExchange> ex = exchange_;
  try {
    core_.router.dispatch(ex);
  } catch (const std::exception&) {
    respond_error(ex, api::map_error(Error(ErrorCode::kInternal, "handler threw"), {},
                                     ex->request().request_id));
  }
  watch();
}

// Keeps one read armed while the request is in flight: EOF/reset there means the client left.
template <class Stream>
void Session<Stream>::watch() {
  if (reading_ || closed_ || !exchange_) return;
  // Bytes of a pipelined next request are already buffered (the client is still there): no watch,
  // or it would wait for bytes the client will not send before its answer. complete_request()
  // parses them.
  if (buffer_.size() > 0) return;
  reading_ = true;
  auto self = this->shared_from_this();
  stream_.async_read_some(buffer_.prepare(4096),
                          [self](beast::error_code ec, size_t n) { self->on_watch(ec, n); });
}

template <class Stream>
void Session<Stream>::on_watch(beast::error_code ec, size_t n) {
  reading_ = false;
  if (ec) {
    if (exchange_) exchange_->fire_cancel(CancelReason::kDisconnected);
    return close();
  }
  buffer_.commit(n);
  // Data while a request is in flight is the client's next request: it is still there, so stop
  // watching (a failed write still cancels) and let complete_request() parse the buffered bytes.
  if (exchange_) return;
  read_request();
}

template <class Stream>
void Session<Stream>::write_full(SessionExchange* ex, HttpResponse r) {
  if (!current(ex) || response_done_) return;
  core_.services.metrics.record_request(ex->route(), r.status);
  for (auto& h : ex->take_extra_headers()) r.headers.push_back(std::move(h));
  std::string out = format_head(r.status, r.content_type, &r, r.body.size(), false, keep_alive_,
                                ex->request().request_id);
  if (!head_only_) out += r.body;
  response_done_ = true;
  enqueue(std::move(out));
}

template <class Stream>
void Session<Stream>::write_stream_head(SessionExchange* ex, int status) {
  if (!current(ex) || response_done_ || streaming_) return;
  core_.services.metrics.record_request(ex->route(), status);
  streaming_ = true;
  HttpResponse extra;
  extra.headers = ex->take_extra_headers();
  enqueue(format_head(status, "text/event-stream", &extra, 0, true, keep_alive_,
                      ex->request().request_id));
}

template <class Stream>
void Session<Stream>::write_chunk(SessionExchange* ex, std::string bytes) {
  if (!current(ex) || !streaming_ || response_done_ || bytes.empty()) return;
  char len[20];
  std::snprintf(len, sizeof(len), "%zx\r\n", bytes.size());
  std::string out;
  out.reserve(bytes.size() + 24);
  out += len;
  out += bytes;
  out += "\r\n";
  enqueue(std::move(out));
}

template <class Stream>
void Session<Stream>::write_stream_end(SessionExchange* ex) {
  if (!current(ex) || response_done_) return;
  response_done_ = true;
  if (!streaming_) {
    // The handler ended a stream it never started: answer with an empty 200 body instead.
    return enqueue(format_head(200, "text/event-stream", nullptr, 0, false, keep_alive_,
                               ex->request().request_id));
  }
  enqueue("0\r\n\r\n");
}

template <class Stream>
void Session<Stream>::write_error_and_close(const api::ApiError& e) {
  keep_alive_ = false;
  linger_ = true;
  core_.services.metrics.record_request("unmatched", e.status);
  std::string body = api::error_json(e);
  enqueue(format_head(e.status, "application/json", nullptr, body.size(), false, false, "") + body);
}

template <class Stream>
void Session<Stream>::enqueue(std::string bytes) {
  if (closed_ || write_failed_) {
    // Nothing can be delivered; still account for the request.
    if (response_done_ && exchange_) complete_request();
    return;
  }
  queue_.push_back(std::move(bytes));
  if (!writing_) do_write();
}

template <class Stream>
void Session<Stream>::do_write() {
  if (queue_.empty()) {
    writing_ = false;
    if (response_done_ && exchange_) return complete_request();
    if (!exchange_ && !keep_alive_) return linger_ ? linger_close() : close();
    return;
  }
  writing_ = true;
  auto self = this->shared_from_this();
  net::async_write(stream_, net::buffer(queue_.front()), [self](beast::error_code ec, size_t) {
    self->queue_.pop_front();
    if (ec) {
      self->write_failed_ = true;
      self->writing_ = false;
      self->queue_.clear();
      if (self->exchange_) self->exchange_->fire_cancel(CancelReason::kDisconnected);
      if (self->response_done_ && self->exchange_) self->complete_request();
      return self->close();
    }
    self->do_write();
  });
}

template <class Stream>
void Session<Stream>::complete_request() {
  if (exchange_) exchange_->clear_cancel();
  exchange_.reset();
  response_done_ = false;
  streaming_ = false;
  core_.end_request();
  if (closed_ || write_failed_) return close();
  if (!keep_alive_ || core_.draining.load()) return close();
  if (!reading_) return read_request();
  set_deadline_in(core_.options.idle_timeout_s);  // the armed watch read now waits for the next one
}

template <class Stream>
void Session<Stream>::close() {
  if (closed_) return;
  closed_ = true;
  deadline_timer_.cancel();
  if (std::shared_ptr<SessionExchange> ex = exchange_) ex->fire_cancel(CancelReason::kDisconnected);
  beast::error_code ec;
  auto& sock = beast::get_lowest_layer(stream_);
  sock.shutdown(tcp::socket::shutdown_both, ec);
  sock.close(ec);
}

// A refused request (too large, malformed) may still be arriving. Closing a socket with unread
// bytes makes the kernel send RST, which can discard our error response before the client reads
// it (curl then reports no status at all). So, as nginx's lingering close does: send FIN, read and
// discard what still comes for a bounded time and amount, then close.
template <class Stream>
void Session<Stream>::linger_close() {
  if (closed_) return;
  beast::error_code ec;
  beast::get_lowest_layer(stream_).shutdown(tcp::socket::shutdown_send, ec);
  if (ec) return close();
  constexpr auto kLingerTime = std::chrono::seconds(2);
  set_deadline(Clock::now() + kLingerTime);
  linger_buffer_ = std::make_unique<char[]>(kLingerBufferBytes);
  linger_read();
}

template <class Stream>
void Session<Stream>::linger_read() {
  constexpr size_t kLingerMaxBytes = size_t{64} << 20;
  if (closed_ || lingered_bytes_ > kLingerMaxBytes) return close();
  auto self = this->shared_from_this();
  beast::get_lowest_layer(stream_).async_read_some(
      net::buffer(linger_buffer_.get(), kLingerBufferBytes),
      [self](beast::error_code ec, size_t n) {
        if (ec) return self->close();
        self->lingered_bytes_ += n;
        self->linger_read();
      });
}

}  // namespace enclave::server
