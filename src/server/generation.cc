// POST /v1/chat/completions and /v1/completions: typed request -> engine request, engine events ->
// full JSON body or SSE chunks. The job object lives until the engine's final event.
#include "server/generation.h"

#include <openssl/rand.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <utility>

#include "api/codec.h"
#include "server/sse.h"

namespace enclave::server {
namespace {

using Clock = std::chrono::steady_clock;

std::string random_id(const char* prefix) {
  unsigned char raw[12];
  if (RAND_bytes(raw, sizeof(raw)) != 1) {
    static std::atomic<uint64_t> counter{0};
    return std::string(prefix) + std::to_string(++counter);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = prefix;
  for (unsigned char b : raw) {
    id += kHex[b >> 4];
    id += kHex[b & 15];
  }
  return id;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const char* finish_name(engine::FinishReason r) {
  return r == engine::FinishReason::kLength ? "length" : "stop";
}

// Which logprobs shape a job writes.
enum class LogprobsMode { kNone, kChat, kText };

// One in-flight generation. Engine events arrive on the engine thread, one at a time.
class GenerationJob : public std::enable_shared_from_this<GenerationJob> {
 public:
  GenerationJob(ExchangePtr ex, std::shared_ptr<Backend> backend, Services& services, bool chat,
                bool stream, bool include_usage, std::string model)
      : ex_(std::move(ex)),
        backend_(std::move(backend)),
        services_(services),
        chat_(chat),
        stream_(stream),
        include_usage_(include_usage) {
    meta_.id = random_id(chat ? "chatcmpl-" : "cmpl-");
    meta_.created = unix_now();
    meta_.model = std::move(model);
  }

  // Chat: entries carry exactly the engine's top alternatives. Text (legacy): the sampled token
  // joins its alternatives when it is not among them ("up to logprobs + 1", as OpenAI documents).
  void set_logprobs(LogprobsMode mode) { logprobs_mode_ = mode; }

  void set_reasoning(bool reasoning, bool starts_in_reasoning) {
    reasoning_ = reasoning;
    if (reasoning) splitter_ = backend_->make_splitter(starts_in_reasoning);
  }

  void start(engine::GenerationRequest request) {
    prompt_tokens_ = static_cast<int32_t>(request.prompt_tokens.size());
    // Stream headers go out only once the engine accepted the request, so a queue-full 429 is
    // still a proper error response.
    auto self = shared_from_this();
    std::lock_guard lock(mu_);
    submit_time_ = Clock::now();
    Result<uint64_t> id = backend_->submit(
        std::move(request), [self](const engine::TokenEvent& e) { self->on_event(e); });
    if (!id) {
      respond_error(ex_, api::map_error(id.error(), {}, ex_->request().request_id));
      return;
    }
    if (stream_) {
      ex_->start_stream(200);
      if (chat_) {
        api::ChatDelta first;
        first.role = "assistant";
        first.content = std::string();
        ex_->send(sse_data(api::write_chat_chunk(meta_, first)));
      }
    }
    accepted_ = true;
    // Events that raced ahead of the headers (the engine thread is fast) go out now, in order.
    std::vector<engine::TokenEvent> early = std::move(early_);
    for (const engine::TokenEvent& e : early) on_event(e);
    uint64_t rid = *id;
    // Weak: the exchange keeps this callback, and this job keeps the exchange (no cycle).
    std::weak_ptr<GenerationJob> weak = self;
    ex_->on_cancel([weak, rid](CancelReason reason) {
      std::shared_ptr<GenerationJob> job = weak.lock();
      if (!job) return;  // finished: nothing left to cancel
      job->cancel_reason_.store(static_cast<int>(reason) + 1);
      job->backend_->cancel(rid);
    });
  }

 private:
  void on_event(const engine::TokenEvent& e) {
    std::lock_guard lock(mu_);
    if (!accepted_) {
      early_.push_back(e);
      return;
    }
    if (!e.finished) {
      Clock::time_point now = Clock::now();
      if (e.token >= 0) {
        if (!first_token_seen_) {
          services_.metrics.observe_ttft(std::chrono::duration<double>(now - submit_time_).count());
          first_token_seen_ = true;
        } else {
          services_.metrics.observe_token_latency(
              std::chrono::duration<double>(now - last_token_time_).count());
        }
        last_token_time_ = now;
        if (logprobs_mode_ != LogprobsMode::kNone) pending_logprobs_.push_back(logprob_entry(e));
      }
      if (!e.text.empty()) emit_text(e.text);
      return;
    }
    finish(e);
  }

  api::TokenLogprob logprob_entry(const engine::TokenEvent& e) const {
    api::TokenLogprob t;
    t.bytes = backend_->token_bytes(e.token);
    t.logprob = e.logprob;
    t.top.reserve(e.top_logprobs.size() + 1);
    bool sampled_listed = false;
    for (const engine::TokenLogprob& a : e.top_logprobs) {
      sampled_listed = sampled_listed || a.token == e.token;
      t.top.push_back({backend_->token_bytes(a.token), a.logprob});
    }
    if (logprobs_mode_ == LogprobsMode::kText && !sampled_listed) {
      t.top.push_back({t.bytes, e.logprob});
    }
    return t;
  }

  // Logprob entries of the tokens whose text the next chunk carries. Entries wait here while the
  // engine (incomplete UTF-8, stop-string prefixes) or the reasoning splitter (partial tags) hold
  // their text back, and go out with the first chunk that carries text after them; the finish
  // chunk takes the rest (tokens whose text is never shown, e.g. a stop string's).
  std::optional<std::vector<api::TokenLogprob>> take_chat_logprobs() {
    if (logprobs_mode_ == LogprobsMode::kNone) return std::nullopt;
    return std::exchange(pending_logprobs_, {});
  }

  api::TextLogprobs take_text_logprobs() {
    api::TextLogprobs lp;
    lp.tokens = std::exchange(pending_logprobs_, {});
    lp.first_text_offset = text_offset_;
    for (const api::TokenLogprob& t : lp.tokens) text_offset_ += api::count_utf8_starts(t.bytes);
    return lp;
  }

  void emit_text(std::string_view text) {
    ReasoningSplitter::Delta d;
    if (splitter_) {
      d = splitter_->push(text);
    } else {
      d.content = std::string(text);
    }
    emit_delta(d);
  }

  void emit_delta(const ReasoningSplitter::Delta& d) {
    if (!stream_) {
      reasoning_text_ += d.reasoning;
      content_ += d.content;
      return;
    }
    if (chat_) {
      if (!d.reasoning.empty()) {
        api::ChatDelta delta;
        delta.reasoning_content = d.reasoning;
        delta.logprobs = take_chat_logprobs();
        ex_->send(sse_data(api::write_chat_chunk(meta_, delta)));
      }
      if (!d.content.empty()) {
        api::ChatDelta delta;
        delta.content = d.content;
        delta.logprobs = take_chat_logprobs();
        ex_->send(sse_data(api::write_chat_chunk(meta_, delta)));
      }
    } else if (!d.content.empty()) {
      if (logprobs_mode_ == LogprobsMode::kNone) {
        ex_->send(sse_data(api::write_text_chunk(meta_, d.content, {})));
      } else {
        api::TextLogprobs lp = take_text_logprobs();
        ex_->send(sse_data(api::write_text_chunk(meta_, d.content, {}, &lp)));
      }
    }
  }

  void finish(const engine::TokenEvent& e) {
    // The final event carries what the engine still held (stop-string prefix, incomplete UTF-8).
    const bool completed = e.finish_reason == engine::FinishReason::kStop ||
                           e.finish_reason == engine::FinishReason::kLength;
    if (completed && !e.text.empty()) emit_text(e.text);
    if (splitter_) emit_delta(splitter_->flush());
    api::Usage usage;
    usage.prompt_tokens = prompt_tokens_;
    usage.completion_tokens = e.completion_tokens;
    usage.cached_prompt_tokens = e.cached_prompt_tokens;
    services_.metrics.add_tokens(usage.prompt_tokens, usage.completion_tokens);
    ex_->note({.prompt_tokens = static_cast<uint32_t>(usage.prompt_tokens),
               .completion_tokens = static_cast<uint32_t>(usage.completion_tokens),
               .outcome = e.finish_reason == engine::FinishReason::kCancelled ? "cancelled"
                          : e.finish_reason == engine::FinishReason::kError   ? "error"
                                                                              : ""});
    const std::string& rid = ex_->request().request_id;

    if (e.finish_reason == engine::FinishReason::kCancelled ||
        e.finish_reason == engine::FinishReason::kError) {
      api::ApiError err;
      if (e.finish_reason == engine::FinishReason::kError) {
        err = api::map_error(Error(ErrorCode::kInternal, e.error), {}, rid);
      } else {
        services_.metrics.add_cancelled();
        err = cancel_reason_.load() == static_cast<int>(CancelReason::kTimeout) + 1
                  ? api::request_timeout()
                  : api::map_error(Error(ErrorCode::kUnavailable,
                                         "The request was cancelled because the server is "
                                         "shutting down; retry shortly."));
      }
      if (stream_) {
        // A disconnected client gets nothing more; the exchange drops writes anyway.
        if (cancel_reason_.load() != static_cast<int>(CancelReason::kDisconnected) + 1) {
          ex_->send(sse_data(api::error_json(err)));
          ex_->send(sse_done());
        }
        ex_->end_stream();
      } else {
        respond_error(ex_, err);
      }
      return;
    }

    std::string finish = finish_name(e.finish_reason);
    if (!stream_) {
      if (chat_) {
        api::ChatResult r;
        r.content = std::move(content_);
        r.reasoning_content = std::move(reasoning_text_);
        r.reasoning = reasoning_;
        r.finish_reason = finish;
        r.usage = usage;
        r.logprobs = take_chat_logprobs();
        respond_json(ex_, 200, api::write_chat_completion(meta_, r));
      } else {
        api::TextResult r;
        r.text = std::move(content_);
        r.finish_reason = finish;
        r.usage = usage;
        if (logprobs_mode_ != LogprobsMode::kNone) r.logprobs = take_text_logprobs();
        respond_json(ex_, 200, api::write_text_completion(meta_, r));
      }
      return;
    }
    if (chat_) {
      api::ChatDelta last;
      last.finish_reason = finish;
      if (!pending_logprobs_.empty()) last.logprobs = take_chat_logprobs();
      ex_->send(sse_data(api::write_chat_chunk(meta_, last)));
      if (include_usage_) ex_->send(sse_data(api::write_chat_usage_chunk(meta_, usage)));
    } else {
      if (pending_logprobs_.empty()) {
        ex_->send(sse_data(api::write_text_chunk(meta_, "", finish)));
      } else {
        api::TextLogprobs lp = take_text_logprobs();
        ex_->send(sse_data(api::write_text_chunk(meta_, "", finish, &lp)));
      }
      if (include_usage_) ex_->send(sse_data(api::write_text_usage_chunk(meta_, usage)));
    }
    ex_->send(sse_done());
    ex_->end_stream();
  }

  std::recursive_mutex mu_;  // start() vs the engine thread; recursive: submit may call back
  bool accepted_ = false;
  std::vector<engine::TokenEvent> early_;
  ExchangePtr ex_;
  std::shared_ptr<Backend> backend_;
  Services& services_;
  bool chat_;
  bool stream_;
  bool include_usage_;
  api::ResponseMeta meta_;
  bool reasoning_ = false;
  std::unique_ptr<ReasoningSplitter> splitter_;
  std::string content_;
  std::string reasoning_text_;
  LogprobsMode logprobs_mode_ = LogprobsMode::kNone;
  std::vector<api::TokenLogprob> pending_logprobs_;  // not yet sent (all of them when !stream_)
  int64_t text_offset_ = 0;                          // characters of the sent text entries
  int32_t prompt_tokens_ = 0;
  Clock::time_point submit_time_;
  Clock::time_point last_token_time_;
  bool first_token_seen_ = false;
  std::atomic<int> cancel_reason_{0};  // 0: none, else CancelReason + 1
};

}  // namespace

Result<std::shared_ptr<Backend>> resolve_model(Services& services, const std::string& model) {
  std::shared_ptr<Backend> backend = services.backend();
  if (!backend) {
    return Error(ErrorCode::kUnavailable,
                 "The model is still loading; retry when GET /ready is 200.");
  }
  if (model == backend->model_id()) return backend;
  for (const std::string& alias : backend->aliases()) {
    if (model == alias) return backend;
  }
  return Error(ErrorCode::kNotFound,
               "The model '" + model + "' does not exist; GET /v1/models lists the served model (" +
                   backend->model_id() + ").");
}

Status build_engine_request(const Backend& backend, const api::SamplingOptions& s,
                            std::optional<int32_t> max_tokens, std::vector<std::string> stop,
                            std::vector<int32_t> prompt, engine::GenerationRequest& out,
                            std::string* param) {
  const engine::ModelInfo& info = backend.info();
  int32_t n_ctx = info.n_ctx;
  int32_t n_prompt = static_cast<int32_t>(prompt.size());
  if (n_prompt == 0) {
    if (param) *param = "prompt";
    return Error(ErrorCode::kInvalidArgument, "The prompt is empty after tokenization.");
  }
  if (n_ctx > 0 && n_prompt >= n_ctx) {
    if (param) *param = "messages";
    return Error(ErrorCode::kOutOfRange,
                 "This model's maximum context length is " + std::to_string(n_ctx) +
                     " tokens, but the prompt has " + std::to_string(n_prompt) +
                     " tokens; shorten the prompt.");
  }
  for (const auto& [id, bias] : s.logit_bias) {
    if (info.n_vocab > 0 && id >= info.n_vocab) {
      if (param) *param = "logit_bias";
      return Error(ErrorCode::kInvalidArgument, "logit_bias token id " + std::to_string(id) +
                                                    " is outside the vocabulary (" +
                                                    std::to_string(info.n_vocab) + " tokens).");
    }
  }
  engine::SamplingParams& p = out.sampling;
  if (s.temperature) p.temperature = *s.temperature;
  if (s.top_p) p.top_p = *s.top_p;
  if (s.top_k) p.top_k = *s.top_k;
  if (s.min_p) p.min_p = *s.min_p;
  if (s.repeat_penalty) p.repeat_penalty = *s.repeat_penalty;
  p.presence_penalty = s.presence_penalty;
  p.frequency_penalty = s.frequency_penalty;
  p.seed = s.seed;
  p.logit_bias = s.logit_bias;
  int32_t room = n_ctx > 0 ? n_ctx - n_prompt : (1 << 20);
  out.max_tokens = max_tokens ? std::min(*max_tokens, room) : room;
  out.stop = std::move(stop);
  out.prompt_tokens = std::move(prompt);
  return Status::ok();
}

void handle_chat(Services& services, const ExchangePtr& ex) {
  const HttpRequest& req = ex->request();
  std::string param;
  Result<api::ChatRequest> parsed = api::parse_chat_request(req.body, services.limits, &param);
  if (!parsed) return respond_error(ex, api::map_error(parsed.error(), param));
  api::ChatRequest& r = *parsed;
  ex->note({.model = r.model});
  Result<std::shared_ptr<Backend>> backend = resolve_model(services, r.model);
  if (!backend) return respond_error(ex, api::map_error(backend.error(), "model"));
  ex->note({.model = (*backend)->model_id()});  // the model that serves it, not the alias
  Result<PreparedPrompt> prompt = (*backend)->prepare_chat(r.messages);
  if (!prompt) return respond_error(ex, api::map_error(prompt.error(), "messages", req.request_id));
  engine::GenerationRequest greq;
  param.clear();
  Status st = build_engine_request(**backend, r.sampling, r.max_tokens, std::move(r.stop),
                                   std::move(prompt->tokens), greq, &param);
  if (!st) return respond_error(ex, api::map_error(st.error(), param));
  greq.logprobs = r.logprobs;
  greq.top_logprobs = r.logprobs ? r.top_logprobs : 0;
  auto job = std::make_shared<GenerationJob>(ex, *backend, services, true, r.stream,
                                             r.include_usage, r.model);
  job->set_logprobs(r.logprobs ? LogprobsMode::kChat : LogprobsMode::kNone);
  job->set_reasoning(prompt->reasoning, prompt->starts_in_reasoning);
  job->start(std::move(greq));
}

void handle_completion(Services& services, const ExchangePtr& ex) {
  const HttpRequest& req = ex->request();
  std::string param;
  Result<api::CompletionRequest> parsed =
      api::parse_completion_request(req.body, services.limits, &param);
  if (!parsed) return respond_error(ex, api::map_error(parsed.error(), param));
  api::CompletionRequest& r = *parsed;
  ex->note({.model = r.model});
  Result<std::shared_ptr<Backend>> backend = resolve_model(services, r.model);
  if (!backend) return respond_error(ex, api::map_error(backend.error(), "model"));
  ex->note({.model = (*backend)->model_id()});  // the model that serves it, not the alias
  std::vector<int32_t> tokens;
  if (r.prompt_is_tokens) {
    int32_t n_vocab = (*backend)->info().n_vocab;
    for (size_t i = 0; i < r.prompt_tokens.size(); ++i) {
      if (n_vocab > 0 && r.prompt_tokens[i] >= n_vocab) {
        return respond_error(
            ex, api::map_error(Error(ErrorCode::kInvalidArgument,
                                     "Token id " + std::to_string(r.prompt_tokens[i]) +
                                         " is outside the vocabulary (" + std::to_string(n_vocab) +
                                         " tokens)."),
                               "prompt[" + std::to_string(i) + "]"));
      }
    }
    tokens = std::move(r.prompt_tokens);
  } else {
    Result<std::vector<int32_t>> t = (*backend)->tokenize(r.prompt);
    if (!t) return respond_error(ex, api::map_error(t.error(), "prompt", req.request_id));
    tokens = std::move(*t);
  }
  engine::GenerationRequest greq;
  param.clear();
  Status st = build_engine_request(**backend, r.sampling, r.max_tokens, std::move(r.stop),
                                   std::move(tokens), greq, &param);
  if (!st) {
    if (param == "messages") param = "prompt";
    return respond_error(ex, api::map_error(st.error(), param));
  }
  greq.logprobs = r.logprobs.has_value();
  greq.top_logprobs = r.logprobs.value_or(0);
  auto job = std::make_shared<GenerationJob>(ex, *backend, services, false, r.stream,
                                             r.include_usage, r.model);
  job->set_logprobs(r.logprobs ? LogprobsMode::kText : LogprobsMode::kNone);
  job->start(std::move(greq));
}

}  // namespace enclave::server
