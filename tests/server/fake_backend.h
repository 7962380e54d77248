// A deterministic fake Backend for server tests: its own scheduler thread emits "w0 w1 w2 ..."
// (one word per token) for every active request in round-robin (a stand-in for continuous
// batching), honours parallel slots + a bounded queue (kResourceExhausted), records cancels.
#pragma once

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "server/backend.h"

namespace enclave::server::testing {

// Splits "<think>...</think>rest"; assumes tags arrive whole in one push (the fake emits them so).
class FakeSplitter : public ReasoningSplitter {
 public:
  explicit FakeSplitter(bool in_reasoning) : in_(in_reasoning) {}
  Delta push(std::string_view text) override {
    Delta d;
    std::string t(text);
    if (t == "<think>") {
      in_ = true;
      return d;
    }
    if (t == "</think>") {
      in_ = false;
      return d;
    }
    (in_ ? d.reasoning : d.content) = t;
    return d;
  }
  Delta flush() override { return {}; }

 private:
  bool in_;
};

class FakeBackend : public Backend {
 public:
  struct Options {
    int32_t n_parallel = 4;
    int32_t max_queue = 8;
    int32_t n_ctx = 256;
    std::chrono::milliseconds token_delay{1};
    bool reasoning = false;  // emit "<think>" "r0" "</think>" before the words
    // Start with "€" split over two tokens ("\xE2\x82", "\xAC"): the first token's event has no
    // text (incomplete UTF-8 is held back, as the engine's StreamDecoder does).
    bool split_utf8 = false;
    // Prefix-cache totals reported by stats() (the real engine counts them per request).
    uint64_t cached_prompt_tokens_total = 0;
    uint64_t prefix_copies_total = 0;
  };

  explicit FakeBackend(Options o) : opt_(o) {
    info_.name = "fake-model";
    info_.architecture = "fake";
    info_.n_ctx = o.n_ctx;
    info_.n_vocab = 300;
    info_.n_embd = 8;
    thread_ = std::thread([this] { run(); });
  }
  ~FakeBackend() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  std::string model_id() const override { return "fake-model"; }
  std::vector<std::string> aliases() const override { return {"fake-alias"}; }
  const engine::ModelInfo& info() const override { return info_; }
  engine::EngineStats stats() const override {
    std::lock_guard lock(mu_);
    engine::EngineStats s;
    s.n_slots = opt_.n_parallel;
    s.busy_slots = static_cast<int32_t>(active_.size());
    s.queued = static_cast<int32_t>(queue_.size());
    s.cached_prompt_tokens_total = opt_.cached_prompt_tokens_total;
    s.prefix_copies_total = opt_.prefix_copies_total;
    return s;
  }

  // One token per byte, plus 3 template tokens per message.
  Result<PreparedPrompt> prepare_chat(const std::vector<api::ChatMessage>& messages) override {
    PreparedPrompt p;
    for (const auto& m : messages) {
      p.tokens.insert(p.tokens.end(), {1, 2, 3});
      for (unsigned char c : m.content) p.tokens.push_back(c);
    }
    p.reasoning = opt_.reasoning;
    p.starts_in_reasoning = false;
    return p;
  }
  Result<std::vector<int32_t>> tokenize(std::string_view text) override {
    std::vector<int32_t> t;
    for (unsigned char c : text) t.push_back(c);
    return t;
  }
  std::unique_ptr<ReasoningSplitter> make_splitter(bool starts_in_reasoning) override {
    return std::make_unique<FakeSplitter>(starts_in_reasoning);
  }
  // Generated token ids are 101, 102, ... (the piece of step id - 101); alternatives 200 + i.
  std::string token_bytes(int32_t token) const override {
    if (token > 200 && token <= 200 + engine::kMaxTopLogprobs) {
      return "alt" + std::to_string(token - 200);
    }
    if (token > 100 && token <= 200) return piece_at(token - 101);
    return "";
  }
  // The fake's logprobs: the sampled token -0.5 (also the most likely one), alternative i at
  // -0.5 - i.
  static constexpr float kSampledLogprob = -0.5f;

  Result<uint64_t> submit(engine::GenerationRequest request, engine::TokenCallback cb) override {
    std::lock_guard lock(mu_);
    if (static_cast<int32_t>(active_.size()) >= opt_.n_parallel &&
        static_cast<int32_t>(queue_.size()) >= opt_.max_queue) {
      return Error(ErrorCode::kResourceExhausted, "queue full; retry later");
    }
    uint64_t id = ++next_id_;
    Seq s;
    s.id = id;
    s.req = std::move(request);
    s.cb = std::move(cb);
    queue_.push_back(std::move(s));
    last_request_ = queue_.back().req;
    cv_.notify_all();
    ++submitted_;
    return id;
  }

  void cancel(uint64_t id) override {
    std::lock_guard lock(mu_);
    cancel_requests_.push_back(id);
    cv_.notify_all();
  }

  Result<std::vector<float>> embed(const std::vector<int32_t>& tokens) override {
    std::vector<float> v(8, 0.0f);
    for (size_t i = 0; i < tokens.size(); ++i) v[i % 8] += static_cast<float>(tokens[i]);
    float n = 0;
    for (float x : v) n += x * x;
    n = std::sqrt(n);
    for (float& x : v) x /= n > 0 ? n : 1;
    return v;
  }

  int cancelled() const { return cancelled_.load(); }
  int submitted() const { return submitted_.load(); }
  int finished() const { return finished_.load(); }
  engine::GenerationRequest last_request() const {
    std::lock_guard lock(mu_);
    return last_request_;
  }

  // Text the fake generates for n tokens (what clients should see as content).
  static std::string expected_text(int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += "w" + std::to_string(i) + " ";
    return s;
  }

 private:
  struct Seq {
    uint64_t id = 0;
    engine::GenerationRequest req;
    engine::TokenCallback cb;
    int32_t step = 0;
    int32_t produced = 0;
    std::string text;
    std::string held;  // bytes of an incomplete UTF-8 character (split_utf8)
  };

  std::string piece_at(int32_t step) const {
    if (opt_.reasoning) {
      if (step == 0) return "<think>";
      if (step == 1) return "r0";
      if (step == 2) return "</think>";
      return "w" + std::to_string(step - 3) + " ";
    }
    if (opt_.split_utf8) {
      if (step == 0) return "\xE2\x82";
      if (step == 1) return "\xAC";
      return "w" + std::to_string(step - 2) + " ";
    }
    return "w" + std::to_string(step) + " ";
  }
  std::string piece(Seq& s) const { return piece_at(s.step); }

  void run() {
    std::unique_lock lock(mu_);
    while (true) {
      cv_.wait_for(lock, opt_.token_delay, [this] {
        return stop_ || !cancel_requests_.empty() ||
               (!queue_.empty() && (int)active_.size() < opt_.n_parallel);
      });
      if (stop_) break;
      std::vector<std::pair<engine::TokenCallback, engine::TokenEvent>> out;
      for (uint64_t id : cancel_requests_) {
        auto finish = [&](Seq& s) {
          engine::TokenEvent e;
          e.finished = true;
          e.finish_reason = engine::FinishReason::kCancelled;
          e.prompt_tokens = static_cast<int32_t>(s.req.prompt_tokens.size());
          e.completion_tokens = s.produced;
          out.emplace_back(s.cb, e);
          ++cancelled_;
        };
        if (auto it = active_.find(id); it != active_.end()) {
          finish(it->second);
          active_.erase(it);
        }
        for (auto it = queue_.begin(); it != queue_.end(); ++it) {
          if (it->id == id) {
            finish(*it);
            queue_.erase(it);
            break;
          }
        }
      }
      cancel_requests_.clear();
      while (!queue_.empty() && (int)active_.size() < opt_.n_parallel) {
        Seq s = std::move(queue_.front());
        queue_.pop_front();
        active_.emplace(s.id, std::move(s));
      }
      // One "decode step" for every active sequence.
      for (auto it = active_.begin(); it != active_.end();) {
        Seq& s = it->second;
        std::string p = piece(s);
        ++s.step;
        ++s.produced;
        s.text += p;
        bool stop_hit = false;
        for (const auto& st : s.req.stop)
          stop_hit = stop_hit || s.text.find(st) != std::string::npos;
        engine::TokenEvent e;
        e.token = 100 + s.step;
        s.held += p;
        const bool incomplete = opt_.split_utf8 && s.step == 1;
        e.text = stop_hit || incomplete ? "" : std::exchange(s.held, {});
        if (s.req.logprobs) {
          e.logprob = kSampledLogprob;
          for (int32_t i = 0; i < s.req.top_logprobs; ++i) {
            e.top_logprobs.push_back({i == 0 ? e.token : 200 + i, kSampledLogprob - i});
          }
        }
        out.emplace_back(s.cb, e);
        if (stop_hit || s.produced >= s.req.max_tokens) {
          engine::TokenEvent f;
          f.finished = true;
          f.finish_reason = stop_hit ? engine::FinishReason::kStop : engine::FinishReason::kLength;
          f.prompt_tokens = static_cast<int32_t>(s.req.prompt_tokens.size());
          f.completion_tokens = s.produced;
          out.emplace_back(s.cb, f);
          ++finished_;
          it = active_.erase(it);
        } else {
          ++it;
        }
      }
      lock.unlock();
      for (auto& [cb, e] : out) cb(e);
      lock.lock();
    }
    // Shutdown: cancel everything left.
    for (auto& [id, s] : active_) {
      engine::TokenEvent e;
      e.finished = true;
      e.finish_reason = engine::FinishReason::kCancelled;
      s.cb(e);
    }
  }

  Options opt_;
  engine::ModelInfo info_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Seq> queue_;
  std::map<uint64_t, Seq> active_;
  std::vector<uint64_t> cancel_requests_;
  engine::GenerationRequest last_request_;
  uint64_t next_id_ = 0;
  bool stop_ = false;
  std::atomic<int> cancelled_{0};
  std::atomic<int> submitted_{0};
  std::atomic<int> finished_{0};
  std::thread thread_;
};

}  // namespace enclave::server::testing
