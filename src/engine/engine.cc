// Engine implementation: one scheduler thread owns the model::Context. Requests wait in a
// bounded queue; each step the scheduler admits queued requests into free KV slots, builds ONE
// batch with the next token of every generating sequence plus prompt chunks of sequences still
// in prefill, decodes it, samples per sequence and reports tokens through the callbacks.
#include "engine/engine.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <exception>
#include <filesystem>
#include <future>
#include <mutex>
#include <random>
#include <span>
#include <thread>
#include <unordered_set>

#include "engine/stop_matcher.h"
#include "model/model.h"
#include "sampling/sampler.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace enclave::engine {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kNone:
      return "none";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
  }
  return "unknown";
}

namespace {

sampling::SamplerConfig to_sampler_config(const SamplingParams& p, uint64_t seed) {
  sampling::SamplerConfig c;
  c.temperature = p.temperature;
  c.top_k = p.top_k;
  c.top_p = p.top_p;
  c.min_p = p.min_p;
  c.repeat_penalty = p.repeat_penalty;
  c.repeat_last_n = p.repeat_last_n;
  c.frequency_penalty = p.frequency_penalty;
  c.presence_penalty = p.presence_penalty;
  c.seed = seed;
  c.logit_bias = p.logit_bias;
  return c;
}

Result<model::KvType> parse_kv_type(const EngineOptions& o) {
  if (o.kv_q8) return model::KvType::kQ8_0;
  if (o.kv_type.empty() || o.kv_type == "f16") return model::KvType::kF16;
  if (o.kv_type == "q8_0" || o.kv_type == "q8") return model::KvType::kQ8_0;
  if (o.kv_type == "f32") return model::KvType::kF32;
  return make_error(ErrorCode::kInvalidArgument,
                    "engine: unknown KV cache type '" + o.kv_type + "' (use f16, q8_0 or f32)");
}

// Log-softmax of `logits` at `token`, and the `top_n` largest entries (largest first, ties by
// lower id). Double accumulation: vocabularies are 150k entries.
void compute_logprobs(std::span<const float> logits, int32_t token, int32_t top_n, TokenEvent& ev) {
  float max_logit = -INFINITY;
  for (float l : logits) max_logit = std::max(max_logit, l);
  double sum = 0.0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - max_logit);
  const double log_z = static_cast<double>(max_logit) + std::log(sum);
  ev.logprob = static_cast<float>(static_cast<double>(logits[static_cast<size_t>(token)]) - log_z);
  ev.top_logprobs.clear();
  if (top_n <= 0) return;
  const size_t n = std::min<size_t>(static_cast<size_t>(top_n), logits.size());
  std::vector<int32_t> ids(logits.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
  auto more_likely = [&](int32_t a, int32_t b) {
    const float la = logits[static_cast<size_t>(a)];
    const float lb = logits[static_cast<size_t>(b)];
    return la > lb || (la == lb && a < b);
  };
  std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(n), ids.end(),
                    more_likely);
  ev.top_logprobs.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const int32_t id = ids[i];
    ev.top_logprobs.push_back(
        {id, static_cast<float>(static_cast<double>(logits[static_cast<size_t>(id)]) - log_z)});
  }
}

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

// Waiting for another slot's prefill pays off only when it saves at least this many tokens.
constexpr size_t kMinSharedWaitTokens = 16;

struct Pending {
  uint64_t id = 0;
  GenerationRequest request;
  TokenCallback callback;
  uint64_t seed = 0;
};

struct EmbedJob {
  std::vector<int32_t> tokens;
  std::promise<Result<std::vector<float>>> done;
};

// Scheduler-thread state of one KV slot.
struct Slot {
  int32_t index = 0;
  bool active = false;
  uint64_t id = 0;
  GenerationRequest request;
  TokenCallback callback;
  std::unique_ptr<sampling::Sampler> sampler;
  std::unique_ptr<tokenizer::StreamDecoder> decoder;
  StopMatcher stop;
  std::vector<int32_t> history;  // tokens whose K/V are in the cache, in position order
  size_t n_prompt_fed = 0;       // prompt tokens already in the cache
  int32_t cached_prompt = 0;     // prompt tokens reused from an earlier request
  int32_t n_generated = 0;
  int32_t next_token = -1;  // sampled, to be fed in the next step
  uint64_t last_used = 0;   // admission counter, for least-recently-used reuse
  // Prefix sharing: while >= 0, this slot waits for slot `wait_for` (in prefill) to have the
  // first `wait_tokens` tokens of our prompt in its cache, then copies them instead of computing.
  int32_t wait_for = -1;
  uint64_t wait_for_id = 0;  // the request in that slot when the wait began
  size_t wait_tokens = 0;

  bool prefilling() const { return n_prompt_fed < request.prompt_tokens.size(); }
  bool waiting() const { return wait_for >= 0; }
};

class EngineImpl final : public Engine {
 public:
  EngineImpl(EngineOptions options, std::unique_ptr<model::Model> model,
             std::unique_ptr<model::Context> ctx, std::unique_ptr<tokenizer::Tokenizer> tok,
             std::unique_ptr<tokenizer::ChatTemplate> tmpl, ModelInfo info)
      : options_(std::move(options)),
        model_(std::move(model)),
        ctx_(std::move(ctx)),
        tok_(std::move(tok)),
        tmpl_(std::move(tmpl)),
        info_(std::move(info)) {
    n_slots_ = ctx_->n_slots();
    n_ctx_ = ctx_->n_ctx();
    n_vocab_ = model_->config().n_vocab;
    n_batch_ = std::max<int32_t>(options_.n_batch, 1);
    slots_.resize(static_cast<size_t>(n_slots_));
    for (int32_t i = 0; i < n_slots_; ++i) slots_[static_cast<size_t>(i)].index = i;
    thread_ = std::thread([this] { run(); });
  }

  ~EngineImpl() override { shutdown(); }

  const ModelInfo& info() const override { return info_; }
  const tokenizer::Tokenizer& tokenizer() const override { return *tok_; }
  const tokenizer::ChatTemplate& chat_template() const override { return *tmpl_; }

  EngineStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    EngineStats s;
    s.queued = static_cast<int32_t>(queue_.size());
    s.busy_slots = busy_slots_;
    s.n_slots = n_slots_;
    s.prompt_tokens_total = prompt_tokens_total_;
    s.cached_prompt_tokens_total = cached_prompt_tokens_total_;
    s.prefix_copies_total = prefix_copies_total_;
    return s;
  }

  Result<uint64_t> submit(GenerationRequest request, TokenCallback on_event) override {
    const auto n_prompt = static_cast<int64_t>(request.prompt_tokens.size());
    if (n_prompt == 0)
      return make_error(ErrorCode::kInvalidArgument,
                        "engine: the prompt is empty; send at least one token");
    if (n_prompt > n_ctx_ - 1)
      return make_error(ErrorCode::kOutOfRange,
                        "engine: the prompt has " + std::to_string(n_prompt) +
                            " tokens but the context holds " + std::to_string(n_ctx_) +
                            " per sequence (at most " + std::to_string(n_ctx_ - 1) +
                            " prompt tokens); shorten the prompt or raise the context size");
    for (int32_t t : request.prompt_tokens) {
      if (t < 0 || t >= n_vocab_)
        return make_error(ErrorCode::kInvalidArgument,
                          "engine: prompt token id " + std::to_string(t) +
                              " is outside the vocabulary [0, " + std::to_string(n_vocab_) + ")");
    }
    for (const auto& s : request.stop) {
      if (s.empty())
        return make_error(ErrorCode::kInvalidArgument, "engine: stop strings must not be empty");
    }
    if (request.top_logprobs < 0 || request.top_logprobs > kMaxTopLogprobs)
      return make_error(ErrorCode::kInvalidArgument,
                        "engine: top_logprobs must be in [0, " + std::to_string(kMaxTopLogprobs) +
                            "], got " + std::to_string(request.top_logprobs));
    uint64_t seed = 0;
    if (request.sampling.seed) {
      seed = *request.sampling.seed;
    } else {
      std::random_device rd;
      seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    }
    if (auto st = sampling::validate(to_sampler_config(request.sampling, seed), n_vocab_); !st)
      return st.error();

    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_)
      return make_error(ErrorCode::kUnavailable, "engine: shutting down; not accepting requests");
    if (static_cast<int64_t>(in_flight_.size()) >=
        static_cast<int64_t>(n_slots_) + std::max<int32_t>(options_.max_queue, 0))
      return make_error(ErrorCode::kResourceExhausted,
                        "engine: request queue is full (" + std::to_string(n_slots_) +
                            " running + " + std::to_string(options_.max_queue) +
                            " queued); retry later");
    const uint64_t id = next_id_++;
    Pending p;
    p.id = id;
    p.request = std::move(request);
    p.callback = std::move(on_event);
    p.seed = seed;
    queue_.push_back(std::move(p));
    in_flight_.insert(id);
    cv_.notify_all();
    return id;
  }

  void cancel(uint64_t request_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (in_flight_.count(request_id) == 0) return;
    cancels_.insert(request_id);
    cv_.notify_all();
  }

  Result<std::vector<float>> embed(const std::vector<int32_t>& tokens) override {
    if (tokens.empty())
      return make_error(ErrorCode::kInvalidArgument, "engine: embedding input is empty");
    if (static_cast<int64_t>(tokens.size()) > n_ctx_)
      return make_error(ErrorCode::kOutOfRange, "engine: embedding input has " +
                                                    std::to_string(tokens.size()) +
                                                    " tokens but the context holds " +
                                                    std::to_string(n_ctx_) + "; shorten the input");
    for (int32_t t : tokens) {
      if (t < 0 || t >= n_vocab_)
        return make_error(ErrorCode::kInvalidArgument,
                          "engine: token id " + std::to_string(t) + " is outside the vocabulary");
    }
    if (std::this_thread::get_id() == thread_.get_id())
      return make_error(ErrorCode::kInternal,
                        "engine: embed() called from an engine callback; call it from another "
                        "thread");
    auto job = std::make_shared<EmbedJob>();
    job->tokens = tokens;
    auto fut = job->done.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_)
        return make_error(ErrorCode::kUnavailable, "engine: shutting down; embedding refused");
      embeds_.push_back(job);
      cv_.notify_all();
    }
    return fut.get();
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      cv_.notify_all();
    }
    if (thread_.joinable() && std::this_thread::get_id() != thread_.get_id()) thread_.join();
  }

 private:
  // ---- scheduler thread ----

  void emit(Slot& s, const TokenEvent& ev) { emit(s.id, s.callback, ev); }
  void emit(uint64_t id, const TokenCallback& cb, const TokenEvent& ev) {
    if (!cb) return;
    try {
      cb(ev);
    } catch (...) {
      // A throwing callback must not take down the scheduler; stop that request instead.
      if (!ev.finished) {
        std::lock_guard<std::mutex> lock(mu_);
        if (in_flight_.count(id)) cancels_.insert(id);
      }
    }
  }

  void release(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_.erase(id);
    cancels_.erase(id);
  }

  void finish(Slot& s, FinishReason reason, std::string error = {}) {
    TokenEvent ev;
    ev.finished = true;
    ev.finish_reason = reason;
    ev.error = std::move(error);
    if (reason == FinishReason::kStop || reason == FinishReason::kLength) {
      // Release what the decoder and the stop matcher still hold.
      std::string rest = s.decoder ? s.decoder->flush() : std::string();
      bool hit = false;
      ev.text = s.stop.push(rest, &hit);
      if (!hit) ev.text += s.stop.flush();
    }
    ev.prompt_tokens = static_cast<int32_t>(s.request.prompt_tokens.size());
    ev.completion_tokens = s.n_generated;
    ev.cached_prompt_tokens = s.cached_prompt;
    const uint64_t id = s.id;
    TokenCallback cb = std::move(s.callback);
    s.active = false;
    s.callback = nullptr;
    s.sampler.reset();
    s.decoder.reset();
    s.next_token = -1;
    s.wait_for = -1;
    if (reason == FinishReason::kError) {
      // The cache may be inconsistent after a failed decode.
      ctx_->clear_slot(s.index);
      s.history.clear();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      --busy_slots_;
      prompt_tokens_total_ += static_cast<uint64_t>(ev.prompt_tokens);
      cached_prompt_tokens_total_ += static_cast<uint64_t>(ev.cached_prompt_tokens);
    }
    emit(id, cb, ev);
    release(id);
  }

  void finish_pending(Pending& p, FinishReason reason, std::string error = {}) {
    TokenEvent ev;
    ev.finished = true;
    ev.finish_reason = reason;
    ev.error = std::move(error);
    ev.prompt_tokens = static_cast<int32_t>(p.request.prompt_tokens.size());
    emit(p.id, p.callback, ev);
    release(p.id);
  }

  // Picks the free slot sharing the longest prefix with `prompt`, else the least recently used.
  Slot* pick_slot(const std::vector<int32_t>& prompt, size_t* lcp_out) {
    Slot* best = nullptr;
    size_t best_lcp = 0;
    for (auto& s : slots_) {
      if (s.active) continue;
      const size_t lcp = common_prefix(s.history, prompt);
      if (!best || lcp > best_lcp || (lcp == best_lcp && s.last_used < best->last_used)) {
        best = &s;
        best_lcp = lcp;
      }
    }
    *lcp_out = best_lcp;
    return best;
  }

  // Puts the longest cached prefix of s's prompt into s's cache: its own (kept in place) or
  // another slot's, busy or free (copied: a memcpy of the K/V rows is far cheaper than
  // recomputing them). At least the last prompt token is decoded again: its logits start the
  // generation.
  void place_prefix(Slot& s) {
    const auto& prompt = s.request.prompt_tokens;
    const size_t max_keep = prompt.size() - 1;
    size_t keep = std::min(common_prefix(s.history, prompt), max_keep);
    Slot* src = nullptr;
    for (auto& o : slots_) {
      if (&o == &s) continue;
      const size_t n = std::min(common_prefix(o.history, prompt), max_keep);
      if (n > keep) {
        keep = n;
        src = &o;
      }
    }
    if (src != nullptr) {
      ctx_->copy_slot(src->index, s.index, static_cast<int32_t>(keep));
      s.history.assign(src->history.begin(),
                       src->history.begin() + static_cast<std::ptrdiff_t>(keep));
      std::lock_guard<std::mutex> lock(mu_);
      ++prefix_copies_total_;
    } else if (keep < s.history.size()) {
      if (keep == 0)
        ctx_->clear_slot(s.index);
      else
        ctx_->truncate_slot(s.index, static_cast<int32_t>(keep));
      s.history.resize(keep);
    }
    s.n_prompt_fed = keep;
    s.cached_prompt = static_cast<int32_t>(keep);
  }

  // A slot still in prefill whose prompt shares a longer prefix with `prompt` than any cache
  // holds: waiting for it and copying saves computing the shared part twice (e.g. concurrent
  // requests with the same long system prompt). Returns nullptr when waiting does not pay.
  Slot* shared_prefill_source(const Slot& s, size_t* shared_out) {
    const auto& prompt = s.request.prompt_tokens;
    const size_t max_keep = prompt.size() - 1;
    size_t cached = 0;
    for (const auto& o : slots_) cached = std::max(cached, common_prefix(o.history, prompt));
    cached = std::min(cached, max_keep);
    Slot* best = nullptr;
    size_t best_shared = 0;
    for (auto& o : slots_) {
      if (&o == &s || !o.active || !o.prefilling() || o.waiting()) continue;
      const size_t n = std::min(common_prefix(o.request.prompt_tokens, prompt), max_keep);
      if (n > best_shared) {
        best_shared = n;
        best = &o;
      }
    }
    if (best == nullptr || best_shared < cached + kMinSharedWaitTokens) return nullptr;
    *shared_out = best_shared;
    return best;
  }

  void admit(Pending&& p) {
    size_t lcp = 0;
    Slot* s = pick_slot(p.request.prompt_tokens, &lcp);
    s->active = true;
    s->id = p.id;
    s->callback = std::move(p.callback);
    s->request = std::move(p.request);
    s->sampler =
        std::make_unique<sampling::Sampler>(to_sampler_config(s->request.sampling, p.seed));
    s->sampler->accept_prompt(s->request.prompt_tokens);
    s->decoder = std::make_unique<tokenizer::StreamDecoder>(*tok_);
    s->stop = StopMatcher(s->request.stop);
    s->n_generated = 0;
    s->next_token = -1;
    s->last_used = ++use_counter_;
    s->wait_for = -1;
    size_t shared = 0;
    if (Slot* src = shared_prefill_source(*s, &shared)) {
      s->wait_for = src->index;
      s->wait_for_id = src->id;
      s->wait_tokens = shared;
      s->n_prompt_fed = 0;
      s->cached_prompt = 0;
    } else {
      place_prefix(*s);
    }
  }

  // Ends the waits whose source now caches the shared prefix, or stopped prefilling (finished,
  // cancelled, failed: then whatever is cached anywhere is used and the rest computed).
  void resolve_waits() {
    for (auto& s : slots_) {
      if (!s.active || !s.waiting()) continue;
      const Slot& src = slots_[static_cast<size_t>(s.wait_for)];
      const bool progressing =
          src.active && src.id == s.wait_for_id && src.prefilling() && !src.waiting();
      if (progressing && common_prefix(src.history, s.request.prompt_tokens) < s.wait_tokens)
        continue;
      s.wait_for = -1;
      place_prefix(s);
    }
  }

  // Runs one embedding job on a free slot; false when every slot is busy.
  bool run_embed(EmbedJob& job) {
    Slot* free_slot = nullptr;
    for (auto& s : slots_) {
      if (s.active) continue;
      if (!free_slot || s.history.size() < free_slot->history.size() ||
          (s.history.size() == free_slot->history.size() && s.last_used < free_slot->last_used))
        free_slot = &s;
    }
    if (!free_slot) return false;
    std::vector<float> out;
    Status st = ctx_->embed(job.tokens, free_slot->index, out);
    // The slot's cache was overwritten; forget its history.
    ctx_->clear_slot(free_slot->index);
    free_slot->history.clear();
    if (!st) {
      job.done.set_value(st.error());
      return true;
    }
    double norm = 0.0;
    for (float v : out) norm += static_cast<double>(v) * v;
    norm = std::sqrt(norm);
    if (norm > 0.0) {
      for (float& v : out) v = static_cast<float>(v / norm);
    }
    job.done.set_value(std::move(out));
    return true;
  }

  // Handles one sampled token of slot `s`; finishes the request when it ends.
  void on_token(Slot& s, int32_t token, std::span<const float> logits) {
    ++s.n_generated;
    s.sampler->accept(token);
    if (s.request.stop_at_eog && tok_->is_eog(token)) {
      finish(s, FinishReason::kStop);
      return;
    }
    TokenEvent ev;
    ev.token = token;
    if (s.request.logprobs) compute_logprobs(logits, token, s.request.top_logprobs, ev);
    bool hit = false;
    ev.text = s.stop.push(s.decoder->push(token), &hit);
    emit(s, ev);
    if (hit) {
      finish(s, FinishReason::kStop);
      return;
    }
    const bool cap = s.request.max_tokens > 0 && s.n_generated >= s.request.max_tokens;
    // The sampled token needs a cache position to be fed back.
    const bool full = static_cast<int64_t>(s.history.size()) >= n_ctx_;
    if (cap || full) {
      finish(s, FinishReason::kLength);
      return;
    }
    s.next_token = token;
  }

  void run() {
    model::Batch batch;
    std::vector<float> logits;
    std::vector<Slot*> want;  // slots whose logits come back, in batch order
    for (;;) {
      std::vector<Pending> cancelled_queued;
      std::vector<Pending> admitted;
      std::vector<uint64_t> cancel_running;
      std::vector<std::shared_ptr<EmbedJob>> embeds;
      bool stop = false;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] {
          if (stopping_ || !cancels_.empty()) return true;
          if (busy_slots_ > 0) return true;
          return (!queue_.empty() || !embeds_.empty()) && busy_slots_ < n_slots_;
        });
        stop = stopping_;
        // Cancellations of queued requests are answered without touching a slot.
        for (auto it = queue_.begin(); it != queue_.end();) {
          if (stop || cancels_.count(it->id)) {
            cancels_.erase(it->id);
            cancelled_queued.push_back(std::move(*it));
            it = queue_.erase(it);
          } else {
            ++it;
          }
        }
        for (uint64_t id : cancels_) cancel_running.push_back(id);
        cancels_.clear();
        if (stop) {
          embeds.assign(embeds_.begin(), embeds_.end());
          embeds_.clear();
        } else {
          // Embeddings first (they are short and someone waits synchronously), then requests.
          int32_t free_slots = n_slots_ - busy_slots_;
          if (free_slots > 0) {
            embeds.assign(embeds_.begin(), embeds_.end());
            embeds_.clear();
          }
          while (!queue_.empty() && free_slots > 0) {
            admitted.push_back(std::move(queue_.front()));
            queue_.pop_front();
            --free_slots;
            ++busy_slots_;
          }
        }
      }

      for (auto& p : cancelled_queued) finish_pending(p, FinishReason::kCancelled);
      for (auto& s : slots_) {
        if (!s.active) continue;
        if (stop ||
            std::find(cancel_running.begin(), cancel_running.end(), s.id) != cancel_running.end())
          finish(s, FinishReason::kCancelled);
      }
      if (stop) {
        for (auto& job : embeds)
          job->done.set_value(
              make_error(ErrorCode::kUnavailable, "engine: shutting down; embedding refused"));
        return;
      }
      for (size_t i = 0; i < embeds.size(); ++i) {
        if (!run_embed(*embeds[i])) {
          // No free slot after all: put the rest back in front, in order.
          std::lock_guard<std::mutex> lock(mu_);
          embeds_.insert(embeds_.begin(), embeds.begin() + static_cast<std::ptrdiff_t>(i),
                         embeds.end());
          break;
        }
      }
      for (auto& p : admitted) admit(std::move(p));
      resolve_waits();

      // One batch: every generating sequence's next token, then prompt chunks.
      batch.clear();
      want.clear();
      for (auto& s : slots_) {
        if (!s.active || s.prefilling()) continue;
        batch.add(s.next_token, static_cast<int32_t>(s.history.size()), s.index, true);
        want.push_back(&s);
      }
      std::vector<std::pair<Slot*, size_t>> fed_prompt;  // slot, prompt tokens in this batch
      std::vector<Slot*> prefill_order;
      for (auto& s : slots_)
        if (s.active && s.prefilling() && !s.waiting()) prefill_order.push_back(&s);
      std::sort(prefill_order.begin(), prefill_order.end(),
                [](const Slot* a, const Slot* b) { return a->last_used < b->last_used; });
      for (Slot* s : prefill_order) {
        const int64_t budget = static_cast<int64_t>(n_batch_) - static_cast<int64_t>(batch.size());
        if (budget <= 0) break;
        const auto& prompt = s->request.prompt_tokens;
        const size_t n =
            std::min<size_t>(prompt.size() - s->n_prompt_fed, static_cast<size_t>(budget));
        for (size_t i = 0; i < n; ++i) {
          const size_t k = s->n_prompt_fed + i;
          const bool last = k + 1 == prompt.size();
          batch.add(prompt[k], static_cast<int32_t>(k), s->index, last, /*is_prompt=*/true);
          if (last) want.push_back(s);
        }
        fed_prompt.emplace_back(s, n);
      }
      if (batch.size() == 0) continue;

      Status st = ctx_->decode(batch, logits);
      if (!st) {
        const std::string msg = "engine: decode failed: " + st.error().message;
        for (auto& s : slots_)
          if (s.active) finish(s, FinishReason::kError, msg);
        continue;
      }
      // The batch is in the cache now.
      for (auto& s : slots_) {
        if (!s.active || s.prefilling()) continue;
        if (s.next_token >= 0) s.history.push_back(s.next_token);
      }
      for (auto& [s, n] : fed_prompt) {
        const auto& prompt = s->request.prompt_tokens;
        s->history.insert(s->history.end(),
                          prompt.begin() + static_cast<std::ptrdiff_t>(s->n_prompt_fed),
                          prompt.begin() + static_cast<std::ptrdiff_t>(s->n_prompt_fed + n));
        s->n_prompt_fed += n;
      }
      const size_t n_vocab = static_cast<size_t>(n_vocab_);
      for (size_t i = 0; i < want.size(); ++i) {
        Slot& s = *want[i];
        if (!s.active) continue;
        std::span<const float> row(logits.data() + i * n_vocab, n_vocab);
        on_token(s, s.sampler->sample(row), row);
      }
    }
  }

  EngineOptions options_;
  std::unique_ptr<model::Model> model_;
  std::unique_ptr<model::Context> ctx_;
  std::unique_ptr<tokenizer::Tokenizer> tok_;
  std::unique_ptr<tokenizer::ChatTemplate> tmpl_;
  ModelInfo info_;
  int32_t n_slots_ = 0;
  int32_t n_ctx_ = 0;
  int32_t n_vocab_ = 0;
  int32_t n_batch_ = 512;

  // Shared with callers; guarded by mu_.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  std::deque<std::shared_ptr<EmbedJob>> embeds_;
  std::unordered_set<uint64_t> in_flight_;  // submitted, final event not yet delivered
  std::unordered_set<uint64_t> cancels_;
  int32_t busy_slots_ = 0;
  uint64_t prompt_tokens_total_ = 0;
  uint64_t cached_prompt_tokens_total_ = 0;
  uint64_t prefix_copies_total_ = 0;
  bool stopping_ = false;
  uint64_t next_id_ = 1;

  // Scheduler thread only.
  std::vector<Slot> slots_;
  uint64_t use_counter_ = 0;
  std::thread thread_;
};

}  // namespace

Result<std::unique_ptr<Engine>> Engine::create(const EngineOptions& options) {
  if (options.model_path.empty())
    return make_error(ErrorCode::kInvalidArgument, "engine: no model path given (--model)");
  if (options.n_parallel < 1)
    return make_error(ErrorCode::kInvalidArgument,
                      "engine: n_parallel must be >= 1, got " + std::to_string(options.n_parallel));
  if (options.n_threads < 1)
    return make_error(ErrorCode::kInvalidArgument,
                      "engine: n_threads must be >= 1, got " + std::to_string(options.n_threads));
  ENCLAVE_ASSIGN_OR_RETURN(model::KvType kv_type, parse_kv_type(options));
  ENCLAVE_ASSIGN_OR_RETURN(
      std::unique_ptr<model::Model> model,
      model::Model::load(options.model_path,
                         options.mmap ? gguf::FileMemory::kMap : gguf::FileMemory::kCopy));
  const auto& cfg = model->config();

  ENCLAVE_ASSIGN_OR_RETURN(tokenizer::Tokenizer tok,
                           tokenizer::Tokenizer::from_gguf(model->file()));
  auto tok_ptr = std::make_unique<tokenizer::Tokenizer>(std::move(tok));
  std::unique_ptr<tokenizer::ChatTemplate> tmpl;
  {
    auto t = tokenizer::ChatTemplate::from_gguf(model->file());
    if (!t) t = tokenizer::ChatTemplate::by_name("chatml", &model->file());  // documented fallback
    if (!t) return t.error();
    tmpl = std::make_unique<tokenizer::ChatTemplate>(std::move(t).value());
  }

  // Positions past the training context are not meaningful: cap the per-sequence context there.
  int32_t n_ctx = options.n_ctx > 0 ? options.n_ctx : cfg.n_ctx_train;
  if (cfg.n_ctx_train > 0) n_ctx = std::min(n_ctx, cfg.n_ctx_train);
  if (n_ctx < 2)
    return make_error(ErrorCode::kInvalidArgument,
                      "engine: context size must be >= 2, got " + std::to_string(n_ctx));
  ENCLAVE_ASSIGN_OR_RETURN(
      std::unique_ptr<model::Context> ctx,
      model::Context::create(*model, options.n_parallel, n_ctx, kv_type, options.n_threads));

  ModelInfo info;
  {
    auto name = model->file().get_string("general.name");
    if (name && name.value()) info.name = *name.value();
    if (info.name.empty()) info.name = std::filesystem::path(options.model_path).stem().string();
    info.is_demo = info.name.find("demo") != std::string::npos ||
                   info.name.find("random weights") != std::string::npos;
  }
  info.architecture = cfg.arch_name;
  info.path = options.model_path;
  info.n_vocab = cfg.n_vocab;
  info.n_ctx = ctx->n_ctx();
  info.n_embd = cfg.n_embd;
  info.file_bytes = model->file().file_size();
  info.kv_cache_bytes = ctx->kv_bytes();
  info.weights_mapped = model->file().memory() == gguf::FileMemory::kMap;

  // Start-up is done: now turn the copied weights into huge pages (see gguf::FileMemory).
  model->file().collapse_huge_pages_in_background();
  std::unique_ptr<Engine> engine =
      std::make_unique<EngineImpl>(options, std::move(model), std::move(ctx), std::move(tok_ptr),
                                   std::move(tmpl), std::move(info));
  return engine;
}

}  // namespace enclave::engine
