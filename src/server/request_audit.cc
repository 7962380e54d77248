// The auditing exchange: forwards everything to the session's exchange except the final bytes,
// which wait (queued, in order) until the audit record is durable.
#include "server/request_audit.h"

#include <vector>

#include "api/error_mapper.h"
#include "server/sse.h"

namespace enclave::server {

class AuditingExchange : public Exchange, public std::enable_shared_from_this<AuditingExchange> {
 public:
  AuditingExchange(ExchangePtr inner, std::shared_ptr<RequestAuditor> auditor, RequestRecord record,
                   bool await_route)
      : inner_(std::move(inner)),
        auditor_(std::move(auditor)),
        record_(std::move(record)),
        route_ready_(!await_route),
        t0_(std::chrono::steady_clock::now()) {}

  ~AuditingExchange() override {
    // The gateway never reported (it always should): audit with what is known rather than
    // withholding the answer.
    std::lock_guard lock(mu_);
    if (!forgotten_) auditor_->forget(record_.request_id);
    if (final_begun_ && state_ == State::kIdle) {
      route_ready_ = true;
      state_ = State::kRunning;
      audit_and_flush();
    }
  }

  const HttpRequest& request() const override { return inner_->request(); }

  void respond(HttpResponse response) override {
    std::lock_guard lock(mu_);
    if (state_ == State::kDone || final_begun_) {
      if (state_ == State::kDone) inner_->respond(std::move(response));
      return;
    }
    record_.http_status = response.status;
    final_begun_ = true;
    full_response_ = true;
    response_ = std::move(response);
    maybe_finish();
  }

  void start_stream(int status) override {
    std::lock_guard lock(mu_);
    record_.http_status = status;
    streaming_ = true;
    inner_->start_stream(status);
  }

  void send(std::string bytes) override {
    std::lock_guard lock(mu_);
    if (state_ == State::kDone) return inner_->send(std::move(bytes));
    if (final_begun_) {
      queue_.push_back([this, b = std::move(bytes)]() mutable { inner_->send(std::move(b)); });
      return;
    }
    if (bytes == sse_done()) {
      final_begun_ = true;
      done_queued_ = true;
      maybe_finish();
      return;
    }
    if (bytes.rfind("data: {\"error\"", 0) == 0 && record_.outcome.empty()) {
      record_.outcome = "error";
    }
    inner_->send(std::move(bytes));
  }

  void end_stream() override {
    std::lock_guard lock(mu_);
    if (state_ == State::kDone) return inner_->end_stream();
    final_begun_ = true;
    queue_.push_back([this] { inner_->end_stream(); });
    maybe_finish();
  }

  void on_cancel(std::function<void(CancelReason)> fn) override {
    inner_->on_cancel(std::move(fn));
  }
  bool cancelled() const override { return inner_->cancelled(); }
  void set_route_name(std::string_view name) override { inner_->set_route_name(name); }
  void add_response_header(std::string name, std::string value) override {
    inner_->add_response_header(std::move(name), std::move(value));
  }
  boost::asio::any_io_executor executor() const override { return inner_->executor(); }

  void note(const ExchangeNote& n) override {
    std::lock_guard lock(mu_);
    if (!n.model.empty()) record_.model = n.model;
    if (n.prompt_tokens) record_.prompt_tokens = *n.prompt_tokens;
    if (n.completion_tokens) record_.completion_tokens = *n.completion_tokens;
    if (!n.outcome.empty()) record_.outcome = n.outcome;
  }

  void route(RouteNote n) {
    std::lock_guard lock(mu_);
    if (!n.tenant.empty()) record_.tenant = std::move(n.tenant);
    if (record_.model.empty()) record_.model = std::move(n.model);
    record_.route = std::move(n.route);
    record_.backend = std::move(n.backend);
    record_.policy = std::move(n.policy);
    record_.sensitivity = std::move(n.sensitivity);
    // "local": the local handler answered and noted its own outcome.
    if (!n.outcome.empty() && n.outcome != "local" && record_.outcome.empty()) {
      record_.outcome = std::move(n.outcome);
    }
    route_ready_ = true;
    maybe_finish();
  }

 private:
  enum class State { kIdle, kRunning, kDone };

  // Holds mu_.
  void maybe_finish() {
    if (!final_begun_ || !route_ready_ || state_ != State::kIdle) return;
    state_ = State::kRunning;
    std::shared_ptr<AuditingExchange> keep = shared_from_this();
    auditor_->hooks().run([keep] {
      std::lock_guard lock(keep->mu_);
      keep->audit_and_flush();
    });
  }

  static std::string outcome_for(int status) {
    if (status >= 200 && status < 300) return "ok";
    if (status >= 400 && status < 500) return "client_error";
    return "error";
  }

  // Holds mu_ (the final bytes stay queued behind it, in order).
  void audit_and_flush() {
    record_.latency_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0_).count();
    if (record_.outcome.empty()) record_.outcome = outcome_for(record_.http_status);
    Status st = auditor_->hooks().append ? auditor_->hooks().append(record_) : Status::ok();
    if (st) {
      if (full_response_) inner_->respond(std::move(response_));
      if (done_queued_) inner_->send(sse_done());
    } else {
      // Fail closed; the reason goes to the operator's log via the hook, not to the client.
      api::ApiError e = api::map_error(
          Error(ErrorCode::kUnavailable,
                "The request could not be recorded in the audit log, so it was not completed; "
                "retry shortly."),
          {}, record_.request_id);
      if (full_response_) {
        HttpResponse r;
        r.status = e.status;
        r.body = api::error_json(e);
        inner_->respond(std::move(r));
      } else if (done_queued_ || streaming_) {
        inner_->send(sse_data(api::error_json(e)));
      }
      record_.http_status = e.status;
    }
    std::vector<std::function<void()>> queued = std::move(queue_);
    for (auto& f : queued) f();
    state_ = State::kDone;
    auditor_->forget(record_.request_id);
    forgotten_ = true;
    if (st && auditor_->hooks().after) {
      if (auditor_->hooks().run_after) {
        auditor_->after(std::move(record_));  // answered: the record is not needed here any more
      } else {
        auditor_->hooks().after(record_);
      }
    }
  }

  ExchangePtr inner_;
  std::shared_ptr<RequestAuditor> auditor_;
  std::recursive_mutex mu_;
  RequestRecord record_;
  bool forgotten_ = false;  // removed from the auditor's pending requests (record_ may be moved)
  bool route_ready_;
  std::chrono::steady_clock::time_point t0_;
  State state_ = State::kIdle;
  bool final_begun_ = false;
  bool full_response_ = false;
  bool done_queued_ = false;
  bool streaming_ = false;
  HttpResponse response_;
  std::vector<std::function<void()>> queue_;
};

ExchangePtr RequestAuditor::wrap(const ExchangePtr& inner, const RequestContext& ctx,
                                 bool await_route) {
  RequestRecord r;
  r.request_id = inner->request().request_id;
  r.key_name = ctx.key_name;
  r.endpoint = ctx.route;
  if (!await_route) {
    r.route = "local";
    r.backend = "local";
    r.policy = "default";
  }
  auto ex =
      std::make_shared<AuditingExchange>(inner, shared_from_this(), std::move(r), await_route);
  if (await_route) {
    std::lock_guard lock(mu_);
    pending_[inner->request().request_id] = ex;
  }
  return ex;
}

void RequestAuditor::route_facts(const std::string& request_id, RouteNote note) {
  std::shared_ptr<AuditingExchange> ex;
  {
    std::lock_guard lock(mu_);
    auto it = pending_.find(request_id);
    if (it == pending_.end()) return;
    ex = it->second.lock();
  }
  if (ex) ex->route(std::move(note));
}

void RequestAuditor::after(RequestRecord record) {
  bool start = false;
  {
    std::lock_guard lock(after_mu_);
    after_queue_.push_back(std::move(record));
    start = !after_running_;
    after_running_ = true;
  }
  if (start) hooks_.run_after([self = shared_from_this()] { self->drain_after(); });
}

void RequestAuditor::drain_after() {
  std::vector<RequestRecord> batch;
  for (;;) {
    batch.clear();
    {
      std::lock_guard lock(after_mu_);
      if (after_queue_.empty()) {
        after_running_ = false;
        return;
      }
      batch.swap(after_queue_);
    }
    for (const RequestRecord& r : batch) hooks_.after(r);
  }
}

void RequestAuditor::forget(const std::string& request_id) {
  std::lock_guard lock(mu_);
  pending_.erase(request_id);
}

}  // namespace enclave::server
