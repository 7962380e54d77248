// Gateway request path: parse -> scan every text -> policy -> chain of backends (local, node,
// cloud) with redaction before egress and restoration of the answer (streams included).
#include "router/gateway.h"

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>
#include <chrono>
#include <mutex>

#include "api/codec.h"
#include "router/policy.h"
#include "router/redact.h"
#include "router/upstream_body.h"
#include "server/generation.h"
#include "server/sse.h"

namespace enclave::router {

namespace json = boost::json;
using server::ExchangePtr;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr const char* kRouteHeader = "X-Enclave-Route";
constexpr const char* kPolicyHeader = "X-Enclave-Policy";
constexpr const char* kRedactedHeader = "X-Enclave-Redacted";
constexpr size_t kMaxErrorBody = 64 * 1024;

double ms_since(SteadyClock::time_point t) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - t).count();
}

// Where a scanned text sits in the request; spelled out (e.g. "messages[2].content") only for
// an error message, so the common path builds no strings.
struct TextLoc {
  const char* field;  // member of messages[index]; or "stop" (stop[index]), "prompt"
  size_t index = 0;
  bool in_message = false;
  std::string str() const {
    if (in_message) return "messages[" + std::to_string(index) + "]." + field;
    if (std::string_view(field) == "stop") return "stop[" + std::to_string(index) + "]";
    return field;
  }
};

// Every text of a chat request the scanner must see: contents, reasoning, names, stop strings.
template <class F>
void for_each_text(api::ChatRequest& r, F&& f) {
  for (size_t i = 0; i < r.messages.size(); ++i) {
    f(r.messages[i].content, TextLoc{"content", i, true});
    f(r.messages[i].reasoning_content, TextLoc{"reasoning_content", i, true});
    f(r.messages[i].name, TextLoc{"name", i, true});
  }
  for (size_t i = 0; i < r.stop.size(); ++i) f(r.stop[i], TextLoc{"stop", i});
}

// Every text of a text completion: the prompt and the stop strings (both are forwarded).
template <class F>
void for_each_text(api::CompletionRequest& r, F&& f) {
  f(r.prompt, TextLoc{"prompt"});
  for (size_t i = 0; i < r.stop.size(); ++i) f(r.stop[i], TextLoc{"stop", i});
}

UpstreamEndpoint endpoint_of(const BackendConfig& b) {
  UpstreamEndpoint e;
  e.url = *parse_base_url(b.base_url);  // validated by finalize_config
  e.ca_file = b.ca_file;
  e.verify_tls = b.verify_tls;
  return e;
}

void add_route_headers(const ExchangePtr& ex, const std::string& route, const std::string& policy,
                       size_t redacted) {
  ex->add_response_header(kRouteHeader, route);
  ex->add_response_header(kPolicyHeader, policy.empty() ? "none" : policy);
  if (redacted > 0) ex->add_response_header(kRedactedHeader, std::to_string(redacted));
}

// Restores placeholders in the string member `key` of `o` through `r` (streaming).
void restore_member(json::object& o, const char* key, Restorer& r, bool& had_text) {
  json::value* v = o.if_contains(key);
  if (!v || !v->is_string()) return;
  std::string_view s = v->as_string();
  if (!s.empty()) had_text = true;
  *v = json::string(r.push(s));
}

// Redacted answers carry no logprobs: their tokens hold placeholders cut at token boundaries that
// the restorer cannot map back consistently, so nothing of them reaches the client (the egress
// request does not ask for them either; a backend that sends them anyway is overridden).
void withhold_logprobs(json::object& choice) {
  if (json::value* lp = choice.if_contains("logprobs"); lp && !lp->is_null()) *lp = nullptr;
}

// A basic_parser handler that accepts every event: a syntax check that builds nothing.
struct SyntaxOnly {
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  using ec_t = json::error_code;
  bool on_document_begin(ec_t&) { return true; }
  bool on_document_end(ec_t&) { return true; }
  bool on_array_begin(ec_t&) { return true; }
  bool on_array_end(std::size_t, ec_t&) { return true; }
  bool on_object_begin(ec_t&) { return true; }
  bool on_object_end(std::size_t, ec_t&) { return true; }
  bool on_string_part(json::string_view, std::size_t, ec_t&) { return true; }
  bool on_string(json::string_view, std::size_t, ec_t&) { return true; }
  bool on_key_part(json::string_view, std::size_t, ec_t&) { return true; }
  bool on_key(json::string_view, std::size_t, ec_t&) { return true; }
  bool on_number_part(json::string_view, ec_t&) { return true; }
  bool on_int64(int64_t, json::string_view, ec_t&) { return true; }
  bool on_uint64(uint64_t, json::string_view, ec_t&) { return true; }
  bool on_double(double, json::string_view, ec_t&) { return true; }
  bool on_bool(bool, ec_t&) { return true; }
  bool on_null(ec_t&) { return true; }
  bool on_comment_part(json::string_view, ec_t&) { return true; }
  bool on_comment(json::string_view, ec_t&) { return true; }
};

// Whether `text` is one JSON object (surrounding whitespace allowed), without a DOM: relayed
// answers that need no restoring are checked, not parsed and re-serialised.
bool is_json_object(std::string_view text) {
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || text[first] != '{') return false;
  json::basic_parser<SyntaxOnly> p(json::parse_options{});
  json::error_code ec;
  size_t n = p.write_some(false, text.data(), text.size(), ec);
  return !ec && p.done() && n == text.size();
}

void append_member(json::object& o, const char* key, const std::string& tail) {
  if (tail.empty()) return;
  json::value* v = o.if_contains(key);
  if (v && v->is_string()) {
    std::string s(v->as_string());
    *v = json::string(s + tail);
  } else {
    o[key] = tail;
  }
}

}  // namespace

namespace {

struct Scan {
  privacy::Level level = privacy::Level::kPublic;
  std::map<std::string, uint32_t> categories;
};

// Latency budget from the header (400 on junk) or the default.
Result<int64_t> latency_budget(const server::HttpRequest& req, int64_t fallback) {
  std::string_view h = req.header("x-enclave-latency-budget-ms");
  if (h.empty()) return fallback;
  int64_t v = 0;
  for (char c : h) {
    if (c < '0' || c > '9' || v > (int64_t{1} << 40)) {
      return Error(ErrorCode::kInvalidArgument,
                   "X-Enclave-Latency-Budget-Ms must be a positive integer (milliseconds).");
    }
    v = v * 10 + (c - '0');
  }
  return v;
}

void respond_with_route(const ExchangePtr& ex, const std::string& route, const std::string& policy,
                        const api::ApiError& e) {
  add_route_headers(ex, route, policy, 0);
  server::respond_error(ex, e);
}

}  // namespace

// One request on the remote part of its chain (nodes, cloud); may end on the local backend.
struct Gateway::RemoteJob : std::enable_shared_from_this<Gateway::RemoteJob> {
  template <class Request>
  static void route(Gateway& gw, server::RequestContext& ctx, const ExchangePtr& ex,
                    Result<Request> parsed, std::string param, SteadyClock::time_point t0);

  Gateway* gw = nullptr;
  ExchangePtr ex;
  bool completion = false;  // text completion (original_c) instead of chat (original)
  api::ChatRequest original;
  api::ChatRequest redacted;  // valid when redact
  api::CompletionRequest original_c;
  api::CompletionRequest redacted_c;  // valid when redact
  bool redact = false;
  std::unique_ptr<Redactor> redactor;
  RouteFacts facts;
  std::vector<const BackendConfig*> chain;
  size_t idx = 0;
  int32_t attempt = 0;
  SteadyClock::time_point t0;
  // Time spent waiting for upstream calls (from our request written to the answer read) and retry
  // back-off: not the gateway's own work (enclave_gateway_overhead_seconds leaves it out).
  SteadyClock::duration waited{};
  SteadyClock::time_point wait_start;
  bool awaiting = false;  // an upstream call of this job is out

  std::mutex mu;
  std::shared_ptr<UpstreamCallHandle> handle;
  bool cancelled = false;

  // Per attempt (callbacks of one call run one at a time).
  const BackendConfig* current = nullptr;
  int status = 0;
  bool relayed = false;
  bool done_seen = false;
  std::string buffer;  // non-streaming body or error body
  SseParser sse;
  std::unique_ptr<Restorer> content_r, reasoning_r;
  json::object last_chunk;
  SteadyClock::time_point attempt_start;
  double ttft_ms = -1;
  int64_t n_chunks = 0;

  bool streaming() const { return completion ? original_c.stream : original.stream; }
  const std::string& requested_model() const {
    return completion ? original_c.model : original.model;
  }

  // Spans replaced in what the current backend received (only egress backends get placeholders).
  size_t redacted_here() const {
    return redact && current && current->egress() ? redactor->replaced() : 0;
  }

  void emit(int http_status, std::string outcome) {
    facts.redacted = static_cast<uint32_t>(redacted_here());
    facts.http_status = http_status;
    facts.outcome = std::move(outcome);
    SteadyClock::time_point now = SteadyClock::now();
    facts.latency_ms = std::chrono::duration<double, std::milli>(now - t0).count();
    gw->services_.metrics.observe_gateway_overhead(
        std::chrono::duration<double>(now - t0 - waited).count());
    if (gw->options_.on_facts) gw->options_.on_facts(facts);
  }

  // A request for a model the local engine does not serve (e.g. "deepseek-chat" kept local by
  // policy) is answered by the local model: the body's "model" is rewritten to its id.
  void use_local_model() {
    if (server::resolve_model(gw->services_, requested_model())) return;
    std::shared_ptr<server::Backend> local = gw->services_.backend();
    if (!local) return;
    boost::system::error_code ec;
    json::value v = json::parse(ex->request().body, ec);
    if (ec || !v.is_object()) return;
    v.as_object()["model"] = local->model_id();
    // Same pattern as server::Router::dispatch: the exchange owns the request until it answers.
    const_cast<server::HttpRequest&>(ex->request()).body = json::serialize(v);
  }

  void fail_unavailable() {
    add_route_headers(ex, "none", facts.policy, 0);
    facts.backend = "none";
    api::ApiError e = api::map_error(
        Error(ErrorCode::kUnavailable,
              "No backend this request's routing policy allows is available; it was not sent "
              "anywhere else. Retry shortly."));
    server::respond_error(ex, e);
    emit(503, "unavailable");
  }

  void next() {
    while (idx < chain.size()) {
      const BackendConfig& b = *chain[idx];
      if (b.kind == BackendKind::kLocal) {
        if (!gw->services_.backend()) {
          ++idx;
          continue;
        }
        facts.backend = b.name;
        facts.backend_kind = "local";
        current = nullptr;
        use_local_model();
        add_route_headers(ex, b.name, facts.policy, 0);
        if (completion) {
          server::handle_completion(gw->services_, ex);
        } else {
          server::handle_chat(gw->services_, ex);
        }
        emit(0, "local");
        return;
      }
      {
        std::lock_guard lock(mu);
        if (cancelled) return emit(499, "cancelled");
      }
      if (!gw->selector_->acquire(b.name)) {
        ++idx;
        attempt = 0;
        continue;
      }
      start_attempt(b);
      return;
    }
    fail_unavailable();
  }

  void retry_or_next() {
    if (attempt < gw->config_.retries) {
      int64_t delay = gw->config_.retry_backoff_ms << attempt;
      ++attempt;
      waited += std::chrono::milliseconds(delay);  // the timer's lateness counts as ours
      auto self = shared_from_this();
      gw->client_->schedule(
          delay, [self] { self->next(); }, ex->executor());
      return;
    }
    ++idx;
    attempt = 0;
    next();
  }

  void start_attempt(const BackendConfig& b) {
    current = &b;
    facts.backend = b.name;
    facts.backend_kind = backend_kind_name(b.kind);
    status = 0;
    relayed = false;
    done_seen = false;
    buffer.clear();
    sse = SseParser();
    const bool use_redacted = redact && b.egress();
    const Redactor* table = use_redacted ? redactor.get() : nullptr;
    // Only streams restore piece by piece (full answers are restored whole).
    content_r = streaming() ? std::make_unique<Restorer>(table) : nullptr;
    reasoning_r = streaming() ? std::make_unique<Restorer>(table) : nullptr;
    ttft_ms = -1;
    n_chunks = 0;
    attempt_start = SteadyClock::now();
    UpstreamCall call;
    if (completion) {
      call.path = b.completions_path;
      call.body = build_upstream_body(use_redacted ? redacted_c : original_c, b);
    } else {
      call.path = "/chat/completions";
      call.body = build_upstream_body(use_redacted ? redacted : original, b);
    }
    call.timeouts = gw->config_.timeouts;
    call.headers.reserve(4);
    call.headers.emplace_back("Content-Type", "application/json");
    call.headers.emplace_back("Accept", streaming() ? "text/event-stream" : "application/json");
    if (!b.api_key.empty()) call.headers.emplace_back("Authorization", "Bearer " + b.api_key);
    call.headers.emplace_back("X-Request-Id", ex->request().request_id);
    auto self = shared_from_this();
    UpstreamEvents ev;
    ev.on_head = [self](int s) { self->status = s; };
    ev.on_body = [self](std::string_view bytes) { self->on_body(bytes); };
    ev.on_done = [self](Status st) { self->on_done(st); };
    // On the client connection's strand: the request stays on one thread end to end.
    awaiting = true;
    wait_start = SteadyClock::now();
    auto h = gw->client_->start(gw->endpoints_.at(b.name), std::move(call), std::move(ev),
                                ex->executor());
    // start() has written the request (or queued it behind a connect); unless it already ended
    // the call (on_done ran inline), the wait for the upstream starts now.
    if (awaiting) wait_start = SteadyClock::now();
    std::lock_guard lock(mu);
    handle = h;
    if (cancelled) h->cancel();
  }

  void cancel() {
    std::shared_ptr<UpstreamCallHandle> h;
    {
      std::lock_guard lock(mu);
      cancelled = true;
      h = handle;
    }
    if (h) h->cancel();
  }

  void on_body(std::string_view bytes) {
    if (status != 200 || !streaming()) {
      size_t cap = status == 200 ? gw->config_.max_response_bytes : kMaxErrorBody;
      if (buffer.size() + bytes.size() <= cap) buffer.append(bytes);
      return;
    }
    std::vector<std::string> events;
    sse.push(bytes, events);
    for (const std::string& e : events) on_event(e);
  }

  void send(std::string bytes) {
    if (!relayed) {
      add_route_headers(ex, current->name, facts.policy, redacted_here());
      ex->start_stream(200);
      relayed = true;
    }
    ex->send(std::move(bytes));
  }

  void flush_pending() {
    if (!content_r) return;
    std::string c = content_r->flush();
    std::string r = reasoning_r->flush();
    if (c.empty() && r.empty()) return;
    json::object chunk = last_chunk;
    if (completion) {
      chunk["choices"] =
          json::array{json::object{{"index", 0}, {"text", c}, {"finish_reason", nullptr}}};
      send(server::sse_data(json::serialize(chunk)));
      return;
    }
    json::object delta;
    if (!r.empty()) delta["reasoning_content"] = r;
    if (!c.empty()) delta["content"] = c;
    chunk["choices"] = json::array{
        json::object{{"index", 0}, {"delta", std::move(delta)}, {"finish_reason", nullptr}}};
    send(server::sse_data(json::serialize(chunk)));
  }

  void on_event(const std::string& data) {
    if (data == "[DONE]") {
      flush_pending();
      done_seen = true;
      send(server::sse_done());
      return;
    }
    boost::system::error_code ec;
    json::value v = json::parse(data, ec);
    if (ec || !v.is_object()) {
      send(server::sse_data(data));  // not JSON: from upstream, holds no client value
      return;
    }
    json::object& o = v.as_object();
    bool had_text = false;
    const bool restore = redact && current->egress();
    if (json::value* ch = o.if_contains("choices"); ch && ch->is_array()) {
      for (json::value& c : ch->as_array()) {
        if (!c.is_object()) continue;
        json::object& co = c.as_object();
        if (restore) withhold_logprobs(co);
        if (completion) {  // text completions carry the text in the choice itself
          restore_member(co, "text", *content_r, had_text);
          json::value* fin = co.if_contains("finish_reason");
          if (fin && fin->is_string()) append_member(co, "text", content_r->flush());
          continue;
        }
        json::value* d = co.if_contains("delta");
        if (!d || !d->is_object()) continue;
        json::object& delta = d->as_object();
        restore_member(delta, "reasoning_content", *reasoning_r, had_text);
        restore_member(delta, "content", *content_r, had_text);
        json::value* fin = co.if_contains("finish_reason");
        if (fin && fin->is_string()) {
          append_member(delta, "reasoning_content", reasoning_r->flush());
          append_member(delta, "content", content_r->flush());
        }
      }
    }
    if (had_text) {
      ++n_chunks;
      if (ttft_ms < 0) ttft_ms = ms_since(attempt_start);
    }
    last_chunk = o;
    send(server::sse_data(json::serialize(v)));
  }

  void finish_ok_nonstream() {
    const bool restore = redact && current->egress();
    boost::system::error_code ec;
    json::value v;
    if (restore) v = json::parse(buffer, ec);
    if (restore ? (ec || !v.is_object()) : !is_json_object(buffer)) {
      gw->selector_->release(current->name, false);
      add_route_headers(ex, current->name, facts.policy, 0);
      server::respond_error(
          ex, api::map_error(Error(ErrorCode::kUnavailable,
                                   "The upstream backend returned an unreadable answer.")));
      return emit(503, "error");
    }
    json::value* ch = restore ? v.as_object().if_contains("choices") : nullptr;
    if (restore && ch && ch->is_array()) {
      for (json::value& c : ch->as_array()) {
        if (!c.is_object()) continue;
        withhold_logprobs(c.as_object());
        json::object* holder = &c.as_object();
        if (!completion) {
          json::value* m = c.as_object().if_contains("message");
          if (!m || !m->is_object()) continue;
          holder = &m->as_object();
        }
        for (const char* key : {"content", "reasoning_content", "text"}) {
          json::value* s = holder->if_contains(key);
          if (s && s->is_string()) *s = json::string(restore_all(*redactor, s->as_string()));
        }
      }
    }
    gw->selector_->release(current->name, true, ms_since(attempt_start));
    add_route_headers(ex, current->name, facts.policy, redacted_here());
    server::HttpResponse r;
    // Nothing to restore: the upstream's bytes go out as they came (checked to be a JSON object).
    r.body = restore ? json::serialize(v) : std::move(buffer);
    ex->respond(std::move(r));
    emit(200, "ok");
  }

  void on_done(Status st) {
    if (awaiting) {
      waited += SteadyClock::now() - wait_start;
      awaiting = false;
    }
    bool was_cancelled;
    {
      std::lock_guard lock(mu);
      handle.reset();
      was_cancelled = cancelled;
    }
    if (was_cancelled) {
      gw->selector_->release(current->name, true);
      if (relayed) ex->end_stream();
      return emit(499, "cancelled");
    }
    if (relayed) {  // streaming already reached the client: no retry possible
      if (!st) {
        gw->selector_->release(current->name, false);
        api::ApiError e = api::map_error(
            Error(ErrorCode::kUnavailable, "The upstream backend failed mid-stream; retry."));
        ex->send(server::sse_data(api::error_json(e)));
        ex->send(server::sse_done());
        ex->end_stream();
        return emit(200, "error");
      }
      if (!done_seen) {
        flush_pending();
        send(server::sse_done());
      }
      double dur_s = ttft_ms >= 0 ? (ms_since(attempt_start) - ttft_ms) / 1000.0 : 0;
      gw->selector_->release(current->name, true, ttft_ms,
                             dur_s > 0 ? static_cast<double>(n_chunks) / dur_s : -1);
      ex->end_stream();
      return emit(200, "ok");
    }
    if (!st) {  // connect / IO / timeout before anything was relayed: safe to retry
      gw->selector_->release(current->name, false);
      return retry_or_next();
    }
    if (status == 200) {
      if (streaming()) {  // a stream that ended before any event
        if (!done_seen) {
          flush_pending();
          send(server::sse_done());
        }
        gw->selector_->release(current->name, true);
        ex->end_stream();
        return emit(200, "ok");
      }
      return finish_ok_nonstream();
    }
    if (status == 400 || status == 422) {  // the request itself is at fault: relay, no retry
      gw->selector_->release(current->name, true);
      add_route_headers(ex, current->name, facts.policy, redacted_here());
      boost::system::error_code ec;
      json::value v = json::parse(buffer, ec);
      server::HttpResponse r;
      r.status = status;
      if (!ec && v.is_object() && v.as_object().contains("error")) {
        r.body = json::serialize(v);
      } else {
        r.body = api::error_json(api::map_error(
            Error(ErrorCode::kInvalidArgument, "The upstream backend rejected the request.")));
      }
      ex->respond(std::move(r));
      return emit(status, "client_error");
    }
    // 401/402/429/5xx...: this backend cannot serve now; try again or the next one.
    gw->selector_->release(current->name, false);
    retry_or_next();
  }
};

Gateway::Gateway(GatewayConfig config, server::Services& services, GatewayOptions options)
    : config_(std::move(config)),
      services_(services),
      options_(std::move(options)),
      alive_(std::make_shared<bool>(true)) {}

Gateway::~Gateway() {
  *alive_ = false;
  if (client_) client_->stop();
}

Result<std::unique_ptr<Gateway>> Gateway::create(GatewayConfig config, server::Services& services,
                                                 GatewayOptions options) {
  ENCLAVE_TRY_STATUS(finalize_config(config));
  privacy::ScanRules rules;
  if (!config.scanner_rules.empty()) {
    ENCLAVE_ASSIGN_OR_RETURN(rules, privacy::load_rules_yaml(config.scanner_rules));
  }
  ENCLAVE_ASSIGN_OR_RETURN(auto scanner, privacy::SensitivityScanner::create(rules));
  bool health = options.start_health_checks;
  std::unique_ptr<Gateway> g(new Gateway(std::move(config), services, std::move(options)));
  g->scanner_ = std::move(scanner);
  g->selector_ = std::make_unique<Selector>(g->config_, g->options_.now);
  g->client_ = std::make_unique<UpstreamClient>(g->config_.io_threads);
  for (const auto& b : g->config_.backends) {
    if (b.kind != BackendKind::kLocal) g->endpoints_.emplace(b.name, endpoint_of(b));
  }
  if (health) g->schedule_health();
  return g;
}

void Gateway::install() {
  services_.chat_gateway = [this](server::RequestContext& ctx, const ExchangePtr& ex) {
    handle_chat(ctx, ex);
  };
  services_.completion_gateway = [this](server::RequestContext& ctx, const ExchangePtr& ex) {
    handle_completion(ctx, ex);
  };
}

void Gateway::handle_chat(server::RequestContext& ctx, const ExchangePtr& ex) {
  auto t0 = SteadyClock::now();
  std::string param;
  Result<api::ChatRequest> parsed =
      api::parse_chat_request(ex->request().body, services_.limits, &param);
  RemoteJob::route(*this, ctx, ex, std::move(parsed), param, t0);
}

void Gateway::handle_completion(server::RequestContext& ctx, const ExchangePtr& ex) {
  auto t0 = SteadyClock::now();
  std::string param;
  Result<api::CompletionRequest> parsed =
      api::parse_completion_request(ex->request().body, services_.limits, &param);
  RemoteJob::route(*this, ctx, ex, std::move(parsed), param, t0);
}

// parse result -> scan every text -> facts -> policy -> block, or the chain (redacted for egress).
template <class Request>
void Gateway::RemoteJob::route(Gateway& gw, server::RequestContext& ctx, const ExchangePtr& ex,
                               Result<Request> parsed, std::string param,
                               SteadyClock::time_point t0) {
  constexpr bool kCompletion = std::is_same_v<Request, api::CompletionRequest>;
  const GatewayConfig& config = gw.config_;
  const server::HttpRequest& req = ex->request();
  RouteFacts facts;
  facts.request_id = req.request_id;
  facts.key_name = ctx.key_name;
  if (auto it = config.key_tenants.find(ctx.key_name); it != config.key_tenants.end()) {
    facts.tenant = it->second;
  }
  auto finish_early = [&](int status, const char* outcome) {
    facts.http_status = status;
    facts.outcome = outcome;
    facts.latency_ms = ms_since(t0);
    if (gw.options_.on_facts) gw.options_.on_facts(facts);
  };

  if (!parsed) {
    api::ApiError e = api::map_error(parsed.error(), param);
    respond_with_route(ex, "none", "", e);
    return finish_early(e.status, "client_error");
  }
  auto job = std::make_shared<RemoteJob>();
  job->completion = kCompletion;
  Request* r_ptr;
  if constexpr (kCompletion) {
    job->original_c = std::move(*parsed);
    r_ptr = &job->original_c;
  } else {
    job->original = std::move(*parsed);
    r_ptr = &job->original;
  }
  Request& r = *r_ptr;
  facts.model = r.model;
  Result<int64_t> budget = latency_budget(req, config.default_latency_budget_ms);
  if (!budget) {
    api::ApiError e = api::map_error(budget.error(), "X-Enclave-Latency-Budget-Ms");
    respond_with_route(ex, "none", "", e);
    return finish_early(e.status, "client_error");
  }

  // Scan every text, all in one scanner pass. Any scanner failure stops egress: the request may
  // only be served locally.
  std::vector<std::string_view> texts;  // for_each_text order, up to the first oversized one
  std::vector<TextLoc> locs;            // where texts[i] is; one more if a text is too large
  if constexpr (kCompletion) {
    texts.reserve(1 + r.stop.size());
  } else {
    texts.reserve(r.messages.size() * 3 + r.stop.size());
  }
  locs.reserve(texts.capacity());
  bool too_large = false;
  for_each_text(r, [&](std::string& text, const TextLoc& where) {
    if (too_large) return;
    locs.push_back(where);
    if (text.size() > config.max_message_bytes) {
      too_large = true;
      return;
    }
    texts.push_back(text);
  });
  std::vector<std::vector<privacy::Finding>> findings;  // per text, for_each_text order
  Scan scan;
  Status scan_status;
  int64_t tokens = 0;
  size_t failed = 0;
  // Texts before an oversized one are scanned first: their errors come first, as in order.
  Result<std::vector<std::vector<privacy::Finding>>> scanned =
      gw.scanner_->scan_each(texts, &failed);
  if (!scanned) {
    param = locs[failed].str();
    scan_status = scanned.error();
  } else if (too_large) {
    param = locs.back().str();
    scan_status = Error(ErrorCode::kOutOfRange, param + " is larger than the gateway's limit of " +
                                                    std::to_string(config.max_message_bytes) +
                                                    " bytes; shorten it.");
  } else {
    findings = std::move(*scanned);
    for (size_t i = 0; i < texts.size(); ++i) {
      if (texts[i].empty()) continue;
      tokens += estimate_tokens(texts[i]);
      for (const auto& x : findings[i]) {
        scan.level = std::max(scan.level, x.level);
        ++scan.categories[x.type];
      }
    }
  }
  // A prompt of token ids has no text to scan, and ids mean nothing to another backend's
  // tokenizer: served by the local engine only.
  bool local_only = false;
  if constexpr (kCompletion) {
    if (r.prompt_is_tokens) {
      local_only = true;
      tokens += static_cast<int64_t>(r.prompt_tokens.size());
    }
  }
  bool scanner_failed = false;
  if (!scan_status) {
    ErrorCode c = scan_status.error().code;
    if (c == ErrorCode::kInvalidArgument || c == ErrorCode::kOutOfRange) {
      api::ApiError e = api::map_error(scan_status.error(), param);
      if (c == ErrorCode::kOutOfRange) e.status = 413, e.code = "message_too_large";
      respond_with_route(ex, "none", "", e);
      return finish_early(e.status, "client_error");
    }
    scanner_failed = true;  // fail closed below
  }
  facts.level = scanner_failed ? privacy::Level::kSecret : scan.level;
  facts.categories = scan.categories;

  RequestFacts rf;
  rf.level = facts.level;
  rf.categories = scan.categories;
  rf.key_name = facts.key_name;
  rf.tenant = facts.tenant;
  rf.model = r.model;
  rf.latency_budget_ms = *budget;
  rf.prompt_tokens = tokens;

  PolicyRule fail_closed_rule;
  const PolicyRule* rule = nullptr;
  if (scanner_failed) {
    fail_closed_rule.name = "fail-closed-scanner-error";
    for (const auto& b : config.backends) {
      if (!b.egress()) fail_closed_rule.route.push_back(b.name);
    }
    rule = &fail_closed_rule;
  } else {
    Result<const PolicyRule*> decided = evaluate_policies(config, rf);
    if (!decided) {
      respond_with_route(ex, "none", "", api::map_error(decided.error()));
      return finish_early(503, "unavailable");
    }
    rule = *decided;
  }
  facts.policy = rule->name;
  if (rule->action == PolicyAction::kBlock) {
    std::string reason = rule->reason.empty() ? "This request was blocked by the gateway policy '" +
                                                    rule->name + "'."
                                              : rule->reason;
    facts.backend = "blocked";
    respond_with_route(ex, "blocked", rule->name,
                       api::map_error(Error(ErrorCode::kPermissionDenied, reason)));
    return finish_early(403, "blocked");
  }

  // Egress is allowed only when nothing above egress_max_level would leave in clear text.
  bool redact = rule->redact && !scanner_failed && !scan.categories.empty();
  privacy::Level leaving = redact ? privacy::Level::kPublic : facts.level;
  bool allow_egress = !scanner_failed && !local_only && leaving <= config.egress_max_level;

  job->gw = &gw;
  job->ex = ex;
  job->t0 = t0;
  job->redact = redact;
  if (redact) {
    job->redactor = std::make_unique<Redactor>();
    Request* copy;
    // Egress backends are not asked for logprobs of redacted requests (see withhold_logprobs).
    if constexpr (kCompletion) {
      job->redacted_c = job->original_c;
      job->redacted_c.logprobs.reset();
      copy = &job->redacted_c;
    } else {
      job->redacted = job->original;
      job->redacted.logprobs = false;
      job->redacted.top_logprobs = 0;
      copy = &job->redacted;
    }
    size_t k = 0;
    for_each_text(*copy, [&](std::string& text, const TextLoc&) {
      const std::vector<privacy::Finding>& f = findings[k++];
      if (!f.empty()) text = job->redactor->redact(text, f);
    });
  }
  job->chain = gw.selector_->candidates(*rule, *budget, allow_egress);
  if (local_only) {
    std::erase_if(job->chain,
                  [](const BackendConfig* b) { return b->kind != BackendKind::kLocal; });
  }
  job->facts = std::move(facts);
  std::weak_ptr<RemoteJob> weak = job;
  ex->on_cancel([weak](server::CancelReason) {
    if (auto j = weak.lock()) j->cancel();
  });
  job->next();
}

void Gateway::check_health(std::function<void()> done) {
  struct Counter {
    std::mutex mu;
    int left = 0;
    std::function<void()> done;
    void one() {
      std::function<void()> d;
      {
        std::lock_guard lock(mu);
        if (--left > 0) return;
        d = std::move(done);
      }
      if (d) d();
    }
  };
  auto counter = std::make_shared<Counter>();
  counter->done = std::move(done);
  std::vector<const BackendConfig*> targets;
  for (const auto& b : config_.backends) {
    if (b.health_check && b.kind != BackendKind::kLocal) targets.push_back(&b);
  }
  counter->left = static_cast<int>(targets.size()) + 1;
  for (const BackendConfig* b : targets) {
    UpstreamCall call;
    call.method = "GET";
    call.path = "/health";
    call.timeouts = config_.timeouts;
    call.timeouts.total_ms = std::min<int64_t>(call.timeouts.total_ms, 5000);
    auto status = std::make_shared<int>(0);
    UpstreamEvents ev;
    ev.on_head = [status](int s) { *status = s; };
    std::string name = b->name;
    Selector* sel = selector_.get();
    ev.on_done = [status, name, sel, counter](Status st) {
      sel->set_healthy(name, st.is_ok() && *status == 200);
      counter->one();
    };
    client_->start(endpoints_.at(b->name), std::move(call), std::move(ev));
  }
  counter->one();
}

void Gateway::schedule_health() {
  bool any = false;
  for (const auto& b : config_.backends)
    any = any || (b.health_check && b.kind != BackendKind::kLocal);
  if (!any) return;
  std::weak_ptr<bool> alive = alive_;
  client_->schedule(config_.health_interval_ms, [this, alive] {
    auto a = alive.lock();
    if (!a || !*a) return;
    check_health();
    schedule_health();
  });
}

}  // namespace enclave::router
