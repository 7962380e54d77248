// Engine integration tests on the tiny fixture models (F32 KV cache so greedy tokens are exact).
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace enclave::engine {
namespace {

const std::string kModels = std::string(ENCLAVE_FIXTURES_DIR) + "/models/";

struct RefPrompt {
  std::vector<int32_t> tokens;
  std::vector<int32_t> greedy;  // stored (stable) greedy tokens
};

std::vector<RefPrompt> load_ref(const std::string& name) {
  std::ifstream in(kModels + name);
  std::stringstream ss;
  ss << in.rdbuf();
  auto root = boost::json::parse(ss.str()).as_object();
  std::vector<RefPrompt> out;
  for (const auto& p : root.at("prompts").as_array()) {
    RefPrompt r;
    for (const auto& t : p.at("tokens").as_array()) r.tokens.push_back(int32_t(t.as_int64()));
    for (const auto& t : p.at("greedy").at("tokens").as_array())
      r.greedy.push_back(int32_t(t.as_int64()));
    out.push_back(std::move(r));
  }
  return out;
}

struct Outcome {
  std::vector<int32_t> tokens;
  std::string text;
  TokenEvent final_event;
};

// Collects the events of one request; wait() blocks until the final event.
class Collector {
 public:
  TokenCallback callback() {
    return [this](const TokenEvent& ev) {
      std::lock_guard<std::mutex> lock(mu_);
      out_.text += ev.text;
      if (ev.finished) {
        out_.final_event = ev;
        done_ = true;
        cv_.notify_all();
      } else {
        out_.tokens.push_back(ev.token);
        if (on_token_) on_token_(out_.tokens.size());
      }
    };
  }
  void on_token(std::function<void(size_t)> f) { on_token_ = std::move(f); }
  Outcome wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_; });
    return out_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  Outcome out_;
  std::function<void(size_t)> on_token_;
};

std::unique_ptr<Engine> make_engine(const std::string& model, int32_t n_parallel = 4,
                                    int32_t max_queue = 16, int32_t n_batch = 512) {
  EngineOptions o;
  o.model_path = kModels + model;
  o.n_threads = 2;
  o.n_ctx = 512;
  o.n_parallel = n_parallel;
  o.max_queue = max_queue;
  o.kv_type = "f32";
  o.n_batch = n_batch;
  auto e = Engine::create(o);
  EXPECT_TRUE(e.has_value()) << (e ? "" : e.error().message);
  return e ? std::move(e).value() : nullptr;
}

GenerationRequest greedy_request(std::vector<int32_t> prompt, int32_t max_tokens) {
  GenerationRequest r;
  r.prompt_tokens = std::move(prompt);
  r.sampling.temperature = 0.0f;
  r.max_tokens = max_tokens;
  r.stop_at_eog = false;  // the references do not stop at EOS
  return r;
}

GenerationRequest seeded_request(std::vector<int32_t> prompt, int32_t max_tokens, uint64_t seed) {
  GenerationRequest r;
  r.prompt_tokens = std::move(prompt);
  r.sampling.temperature = 2.5f;
  r.sampling.top_k = 0;
  r.sampling.top_p = 0.98f;
  r.sampling.min_p = 0.0f;
  r.sampling.seed = seed;
  r.max_tokens = max_tokens;
  r.stop_at_eog = false;
  return r;
}

Outcome run_one(Engine& e, GenerationRequest req) {
  Collector c;
  auto id = e.submit(std::move(req), c.callback());
  EXPECT_TRUE(id.has_value()) << (id ? "" : id.error().message);
  if (!id) return {};
  return c.wait();
}

void expect_reference_greedy(const std::string& model, const std::string& ref, int32_t n_parallel) {
  auto e = make_engine(model, n_parallel);
  ASSERT_TRUE(e);
  const auto prompts = load_ref(ref);
  ASSERT_FALSE(prompts.empty());
  // All prompts at once: they share decode steps (continuous batching).
  std::vector<std::unique_ptr<Collector>> cols;
  for (const auto& p : prompts) {
    cols.push_back(std::make_unique<Collector>());
    auto id =
        e->submit(greedy_request(p.tokens, int32_t(p.greedy.size())), cols.back()->callback());
    ASSERT_TRUE(id.has_value()) << id.error().message;
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    Outcome o = cols[i]->wait();
    EXPECT_EQ(o.tokens, prompts[i].greedy) << model << " prompt " << i;
    EXPECT_EQ(o.final_event.finish_reason, FinishReason::kLength);
    EXPECT_EQ(o.final_event.prompt_tokens, int32_t(prompts[i].tokens.size()));
    EXPECT_EQ(o.final_event.completion_tokens, int32_t(prompts[i].greedy.size()));
  }
}

TEST(Engine, GreedyMatchesReferenceQwen2) {
  expect_reference_greedy("qwen2-tiny-F32.gguf", "qwen2-tiny-F32.ref.json", 4);
}

TEST(Engine, GreedyMatchesReferenceLlamaOneSlot) {
  expect_reference_greedy("llama-tiny-F32.gguf", "llama-tiny-F32.ref.json", 1);
}

TEST(Engine, GreedyMatchesReferenceStories) {
  expect_reference_greedy("stories260K.gguf", "stories260K.ref.json", 3);
}

// Every request gives the same tokens alone (one slot) and together with others (4 slots, more
// requests than slots): generated tokens never change with the rest of their batch, and prompts
// never change with how they were chunked or co-batched. With a quantized model on a CPU with
// AMX, prompt tokens run on the AMX kernels and generated ones on the matrix-vector ones.
void expect_concurrent_equals_alone(const std::string& model, const std::string& ref) {
  const auto prompts = load_ref(ref);
  std::vector<GenerationRequest> reqs;
  for (const auto& p : prompts) reqs.push_back(greedy_request(p.tokens, 20));
  for (size_t i = 0; i < prompts.size(); ++i)
    reqs.push_back(seeded_request(prompts[i].tokens, 20, 1000 + i));
  reqs.push_back(seeded_request(prompts[1].tokens, 20, 7));  // same prompt, other seed

  // Alone: one slot, one request at a time.
  std::vector<Outcome> alone;
  {
    auto e = make_engine(model, 1);
    ASSERT_TRUE(e);
    for (const auto& r : reqs) alone.push_back(run_one(*e, r));
  }
  // Together: 4 slots, everything submitted at once (more requests than slots).
  auto e = make_engine(model, 4);
  ASSERT_TRUE(e);
  std::vector<std::unique_ptr<Collector>> cols;
  for (const auto& r : reqs) {
    cols.push_back(std::make_unique<Collector>());
    ASSERT_TRUE(e->submit(r, cols.back()->callback()).has_value());
  }
  for (size_t i = 0; i < reqs.size(); ++i) {
    Outcome o = cols[i]->wait();
    EXPECT_EQ(o.tokens.size(), 20u);
    EXPECT_EQ(o.tokens, alone[i].tokens) << model << " request " << i;
    EXPECT_EQ(o.text, alone[i].text) << model << " request " << i;
  }
  // Different seeds on the same prompt give different samples.
  EXPECT_NE(alone[prompts.size() + 1].tokens, alone.back().tokens);
}

TEST(Engine, ConcurrentEqualsAloneGreedyAndSeeded) {
  expect_concurrent_equals_alone("llama-tiny-F32.gguf", "llama-tiny-F32.ref.json");
}

TEST(Engine, ConcurrentEqualsAloneQuantized) {
  expect_concurrent_equals_alone("llama-tiny-Q4_0.gguf", "llama-tiny-Q4_0.ref.json");
}

TEST(Engine, SmallPrefillChunksGiveSameTokens) {
  const auto prompts = load_ref("qwen2-tiny-F32.ref.json");
  auto e = make_engine("qwen2-tiny-F32.gguf", 2, 16, /*n_batch=*/7);
  ASSERT_TRUE(e);
  for (const auto& p : prompts) {
    Outcome o = run_one(*e, greedy_request(p.tokens, int32_t(p.greedy.size())));
    EXPECT_EQ(o.tokens, p.greedy);
  }
}

// The same with a quantized model, against whole-prompt prefill (the prompt kernels do not depend
// on the chunking).
TEST(Engine, SmallPrefillChunksGiveSameTokensQuantized) {
  const auto prompts = load_ref("llama-tiny-Q4_0.ref.json");
  auto chunked = make_engine("llama-tiny-Q4_0.gguf", 2, 16, /*n_batch=*/7);
  auto whole = make_engine("llama-tiny-Q4_0.gguf", 2, 16);
  ASSERT_TRUE(chunked && whole);
  for (const auto& p : prompts) {
    Outcome a = run_one(*chunked, greedy_request(p.tokens, 24));
    Outcome b = run_one(*whole, greedy_request(p.tokens, 24));
    EXPECT_EQ(a.tokens, b.tokens);
  }
}

TEST(Engine, CancellationFreesTheSlot) {
  auto e = make_engine("llama-tiny-F32.gguf", 1, 4);
  ASSERT_TRUE(e);
  Collector c;
  std::promise<void> got_tokens;
  bool signalled = false;
  c.on_token([&](size_t n) {
    if (n == 3 && !signalled) {
      signalled = true;
      got_tokens.set_value();
    }
  });
  auto id = e->submit(greedy_request({1}, 400), c.callback());
  ASSERT_TRUE(id.has_value());
  got_tokens.get_future().wait();
  e->cancel(*id);
  Outcome o = c.wait();
  EXPECT_EQ(o.final_event.finish_reason, FinishReason::kCancelled);
  EXPECT_LT(o.final_event.completion_tokens, 400);
  EXPECT_GE(o.final_event.completion_tokens, 3);
  // The only slot is free again: a new request runs to completion.
  Outcome next = run_one(*e, greedy_request({1}, 5));
  EXPECT_EQ(next.final_event.finish_reason, FinishReason::kLength);
  EXPECT_EQ(next.tokens.size(), 5u);
  EXPECT_EQ(e->stats().busy_slots, 0);
  e->cancel(*id);  // cancelling a finished request is a no-op
}

TEST(Engine, CancelQueuedRequest) {
  auto e = make_engine("llama-tiny-F32.gguf", 1, 4);
  ASSERT_TRUE(e);
  Collector a, b;
  auto ida = e->submit(greedy_request({1}, 400), a.callback());
  auto idb = e->submit(greedy_request({1}, 400), b.callback());
  ASSERT_TRUE(ida && idb);
  e->cancel(*idb);
  e->cancel(*ida);
  EXPECT_EQ(b.wait().final_event.finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(a.wait().final_event.finish_reason, FinishReason::kCancelled);
}

TEST(Engine, QueueFullIsResourceExhausted) {
  auto e = make_engine("llama-tiny-F32.gguf", 1, 1);
  ASSERT_TRUE(e);
  Collector a, b, c;
  auto ida = e->submit(greedy_request({1}, 400), a.callback());
  auto idb = e->submit(greedy_request({1}, 400), b.callback());
  ASSERT_TRUE(ida.has_value());
  ASSERT_TRUE(idb.has_value());
  auto idc = e->submit(greedy_request({1}, 400), c.callback());
  ASSERT_FALSE(idc.has_value());
  EXPECT_EQ(idc.error().code, ErrorCode::kResourceExhausted);
  e->cancel(*ida);
  e->cancel(*idb);
  a.wait();
  b.wait();
}

TEST(Engine, PromptTooLongIsOutOfRangeWithNumbers) {
  auto e = make_engine("llama-tiny-F32.gguf", 1);
  ASSERT_TRUE(e);
  Collector c;
  auto r = e->submit(greedy_request(std::vector<int32_t>(600, 5), 4), c.callback());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kOutOfRange);
  EXPECT_NE(r.error().message.find("600"), std::string::npos);
  EXPECT_NE(r.error().message.find("512"), std::string::npos);
  // Exactly n_ctx - 1 tokens fit; generation then stops at the context end.
  Outcome o = run_one(*e, greedy_request(std::vector<int32_t>(511, 5), 10));
  EXPECT_EQ(o.final_event.finish_reason, FinishReason::kLength);
  EXPECT_EQ(o.final_event.completion_tokens, 2);  // positions 511 (fed) and the last sample

  auto bad = e->submit(greedy_request({1, 99999}, 4), c.callback());
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  auto empty = e->submit(greedy_request({}, 4), c.callback());
  ASSERT_FALSE(empty.has_value());
}

TEST(Engine, StopStringsCutTheText) {
  auto e = make_engine("stories260K.gguf", 1);
  ASSERT_TRUE(e);
  const auto prompts = load_ref("stories260K.ref.json");
  Outcome full = run_one(*e, greedy_request(prompts[1].tokens, 24));
  ASSERT_GT(full.text.size(), 20u);
  // Stop on a piece of the middle of the text; the output is what came before its first match.
  const std::string stop = full.text.substr(10, 4);
  const size_t cut = full.text.find(stop);
  auto req = greedy_request(prompts[1].tokens, 24);
  req.stop = {"zzzz-never", stop};
  Outcome o = run_one(*e, req);
  EXPECT_EQ(o.final_event.finish_reason, FinishReason::kStop);
  EXPECT_EQ(o.text, full.text.substr(0, cut));
  EXPECT_EQ(o.text.find(stop), std::string::npos);
  EXPECT_LT(o.final_event.completion_tokens, 24);
  EXPECT_EQ(o.final_event.completion_tokens, int32_t(o.tokens.size()));
}

TEST(Engine, StopsAtEndOfGenerationToken) {
  auto e = make_engine("llama-tiny-F32.gguf", 1);
  ASSERT_TRUE(e);
  auto req = greedy_request({1}, 8);
  req.stop_at_eog = true;
  req.sampling.logit_bias = {{2, 1000.0f}};  // force EOS (id 2)
  Outcome o = run_one(*e, req);
  EXPECT_EQ(o.final_event.finish_reason, FinishReason::kStop);
  EXPECT_TRUE(o.tokens.empty());
  EXPECT_EQ(o.final_event.completion_tokens, 1);
  EXPECT_EQ(o.text, "");
}

TEST(Engine, PrefixReuseReportsCachedTokensAndSameOutput) {
  auto e = make_engine("qwen2-tiny-F32.gguf", 2);
  ASSERT_TRUE(e);
  const auto prompts = load_ref("qwen2-tiny-F32.ref.json");
  const auto& p = prompts[2];  // 45 tokens, 24 stable greedy steps
  Outcome first = run_one(*e, greedy_request(p.tokens, 24));
  EXPECT_EQ(first.final_event.cached_prompt_tokens, 0);
  EXPECT_EQ(first.tokens, p.greedy);
  Outcome again = run_one(*e, greedy_request(p.tokens, 24));
  EXPECT_EQ(again.final_event.cached_prompt_tokens, int32_t(p.tokens.size()) - 1);
  EXPECT_EQ(again.tokens, p.greedy);
  // A continuation of the earlier conversation reuses the prompt and the generated tokens.
  std::vector<int32_t> longer = p.tokens;
  longer.insert(longer.end(), p.greedy.begin(), p.greedy.begin() + 10);
  Outcome cont = run_one(*e, greedy_request(longer, 8));
  EXPECT_EQ(cont.final_event.cached_prompt_tokens, int32_t(longer.size()) - 1);
  std::vector<int32_t> expect(p.greedy.begin() + 10, p.greedy.begin() + 18);
  EXPECT_EQ(cont.tokens, expect);
}

// A prompt whose prefix sits in a BUSY slot's cache: copied into the new slot (copy_slot), not
// recomputed, with the same greedy tokens as without reuse.
TEST(Engine, PrefixCopiedFromBusySlotGivesSameOutput) {
  const auto prompts = load_ref("qwen2-tiny-F32.ref.json");
  const auto& p = prompts[2];
  // The second prompt: the first 30 tokens of p, then another reference prompt.
  std::vector<int32_t> mixed(p.tokens.begin(), p.tokens.begin() + 30);
  mixed.insert(mixed.end(), prompts[0].tokens.begin(), prompts[0].tokens.end());
  ASSERT_NE(mixed[30], p.tokens[30]);
  Outcome fresh_mixed;
  {
    auto alone = make_engine("qwen2-tiny-F32.gguf", 1);
    ASSERT_TRUE(alone);
    fresh_mixed = run_one(*alone, greedy_request(mixed, 8));
    EXPECT_EQ(fresh_mixed.final_event.cached_prompt_tokens, 0);
  }

  auto e = make_engine("qwen2-tiny-F32.gguf", 3);
  ASSERT_TRUE(e);
  Collector first, same, other;
  std::promise<void> submitted;
  // Submitted from the first request's token callback: the first slot is busy generating.
  first.on_token([&](size_t n) {
    if (n != 1) return;
    EXPECT_TRUE(e->submit(greedy_request(p.tokens, 24), same.callback()).has_value());
    EXPECT_TRUE(e->submit(greedy_request(mixed, 8), other.callback()).has_value());
    submitted.set_value();
  });
  ASSERT_TRUE(e->submit(greedy_request(p.tokens, 24), first.callback()).has_value());
  Outcome a = first.wait();
  submitted.get_future().wait();
  Outcome b = same.wait();
  Outcome c = other.wait();
  EXPECT_EQ(a.tokens, p.greedy);
  EXPECT_EQ(a.final_event.cached_prompt_tokens, 0);
  EXPECT_EQ(b.tokens, p.greedy);
  EXPECT_EQ(b.final_event.cached_prompt_tokens, int32_t(p.tokens.size()) - 1);
  EXPECT_EQ(c.tokens, fresh_mixed.tokens);
  EXPECT_EQ(c.final_event.cached_prompt_tokens, 30);
  EXPECT_EQ(c.final_event.prompt_tokens, int32_t(mixed.size()));
  const EngineStats st = e->stats();
  EXPECT_EQ(st.prefix_copies_total, 2u);
  EXPECT_EQ(st.prompt_tokens_total, 2 * p.tokens.size() + mixed.size());
  EXPECT_EQ(st.cached_prompt_tokens_total, p.tokens.size() - 1 + 30);
}

// Requests admitted together that share a long prefix (a system prompt): one computes it, the
// others wait for it and copy it; every output equals the output without any reuse.
TEST(Engine, ConcurrentRequestsShareAPrefixBeingPrefilled) {
  const auto prompts = load_ref("qwen2-tiny-F32.ref.json");
  const std::vector<int32_t> shared = prompts[2].tokens;  // 45 tokens
  std::vector<std::vector<int32_t>> reqs;
  for (size_t i = 0; i < 4; ++i) {
    std::vector<int32_t> r = shared;
    r.insert(r.end(), prompts[i % prompts.size()].tokens.begin(),
             prompts[i % prompts.size()].tokens.end());
    r.push_back(int32_t(100 + i));  // all differ
    reqs.push_back(std::move(r));
  }
  // Without reuse: a fresh engine per request.
  std::vector<Outcome> alone;
  for (const auto& r : reqs) {
    auto fresh = make_engine("qwen2-tiny-F32.gguf", 1);
    ASSERT_TRUE(fresh);
    alone.push_back(run_one(*fresh, greedy_request(r, 8)));
  }
  // Slot 0 runs a blocker whose first token callback holds the engine thread until all four
  // requests are queued, so that they are admitted in one step. Small prefill chunks make the
  // shared prefix take several steps.
  auto e = make_engine("qwen2-tiny-F32.gguf", 5, 16, /*n_batch=*/8);
  ASSERT_TRUE(e);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  Collector blocker;
  blocker.on_token([released](size_t n) {
    if (n == 1) released.wait();
  });
  ASSERT_TRUE(e->submit(greedy_request({5, 6, 7}, 4), blocker.callback()).has_value());
  std::vector<std::unique_ptr<Collector>> cols;
  for (const auto& r : reqs) {
    cols.push_back(std::make_unique<Collector>());
    ASSERT_TRUE(e->submit(greedy_request(r, 8), cols.back()->callback()).has_value());
  }
  release.set_value();
  blocker.wait();
  for (size_t i = 0; i < reqs.size(); ++i) {
    Outcome o = cols[i]->wait();
    EXPECT_EQ(o.tokens, alone[i].tokens) << "request " << i;
    // The first one computes the prefix; the others copy what they share with it.
    size_t lcp = 0;
    while (i > 0 && lcp < reqs[i].size() - 1 && reqs[0][lcp] == reqs[i][lcp]) ++lcp;
    EXPECT_EQ(o.final_event.cached_prompt_tokens, int32_t(lcp)) << "request " << i;
    if (i > 0) {
      EXPECT_GE(lcp, shared.size());
    }
  }
  EXPECT_EQ(e->stats().prefix_copies_total, 3u);
}

// A waiting request whose source is cancelled before the shared prefix is ready still finishes
// with the right tokens (it computes what no cache holds).
TEST(Engine, SharedPrefixSourceCancelledStillCorrect) {
  const auto prompts = load_ref("qwen2-tiny-F32.ref.json");
  std::vector<int32_t> a = prompts[2].tokens;
  a.insert(a.end(), prompts[1].tokens.begin(), prompts[1].tokens.end());
  std::vector<int32_t> b = prompts[2].tokens;
  b.insert(b.end(), prompts[3 % prompts.size()].tokens.begin(),
           prompts[3 % prompts.size()].tokens.end());
  b.push_back(77);
  Outcome want;
  {
    auto alone = make_engine("qwen2-tiny-F32.gguf", 1);
    ASSERT_TRUE(alone);
    want = run_one(*alone, greedy_request(b, 8));
  }
  auto e = make_engine("qwen2-tiny-F32.gguf", 3, 16, /*n_batch=*/4);
  ASSERT_TRUE(e);
  // The blocker holds the engine thread at its first token until a and b are queued (so they
  // are admitted together and b waits for a's prefill), then cancels a two steps later, while
  // a is still prefilling in chunks of 3 tokens.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  uint64_t id_a = 0;
  Collector blocker, ca, cb;
  blocker.on_token([&, released](size_t n) {
    if (n == 1) released.wait();
    if (n == 3) e->cancel(id_a);
  });
  ASSERT_TRUE(e->submit(greedy_request({5, 6, 7}, 4), blocker.callback()).has_value());
  auto ida = e->submit(greedy_request(a, 8), ca.callback());
  ASSERT_TRUE(ida.has_value());
  id_a = *ida;
  ASSERT_TRUE(e->submit(greedy_request(b, 8), cb.callback()).has_value());
  release.set_value();
  EXPECT_EQ(ca.wait().final_event.finish_reason, FinishReason::kCancelled);
  Outcome o = cb.wait();
  EXPECT_EQ(o.tokens, want.tokens);
  EXPECT_EQ(o.final_event.finish_reason, FinishReason::kLength);
  // b took over what a had computed before the cancel, and computed the rest itself.
  EXPECT_GT(o.final_event.cached_prompt_tokens, 0);
  EXPECT_LT(o.final_event.cached_prompt_tokens, int32_t(prompts[2].tokens.size()));
}

// Logprobs are the log-softmax of the model's logits (computed here independently with
// model::Context), the top list is sorted and starts with the greedy token.
TEST(Engine, LogprobsAreTheModelsLogSoftmax) {
  const auto prompts = load_ref("qwen2-tiny-F32.ref.json");
  const auto& p = prompts[0];
  auto m = model::Model::load(kModels + "qwen2-tiny-F32.gguf");
  ASSERT_TRUE(m.has_value());
  auto ctx = model::Context::create(**m, 1, 512, model::KvType::kF32, 1);
  ASSERT_TRUE(ctx.has_value());
  model::Batch batch;
  for (size_t i = 0; i < p.tokens.size(); ++i)
    batch.add(p.tokens[i], int32_t(i), 0, i + 1 == p.tokens.size(), /*is_prompt=*/true);
  std::vector<float> logits;
  ASSERT_TRUE((*ctx)->decode(batch, logits).is_ok());
  double max_l = -1e30, sum = 0.0;
  for (float l : logits) max_l = std::max(max_l, double(l));
  for (float l : logits) sum += std::exp(double(l) - max_l);
  const double log_z = max_l + std::log(sum);
  std::vector<int32_t> order(logits.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = int32_t(i);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });

  auto e = make_engine("qwen2-tiny-F32.gguf", 1);
  ASSERT_TRUE(e);
  auto req = greedy_request(p.tokens, 3);
  req.logprobs = true;
  req.top_logprobs = 5;
  std::vector<TokenEvent> events;
  std::promise<void> done;
  ASSERT_TRUE(e->submit(req, [&](const TokenEvent& ev) {
                 if (ev.finished)
                   done.set_value();
                 else
                   events.push_back(ev);
               }).has_value());
  done.get_future().wait();
  ASSERT_EQ(events.size(), 3u);
  const TokenEvent& first = events[0];
  EXPECT_EQ(first.token, order[0]);
  EXPECT_NEAR(first.logprob, logits[size_t(first.token)] - log_z, 1e-3);
  ASSERT_EQ(first.top_logprobs.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(first.top_logprobs[i].token, order[i]) << i;
    EXPECT_NEAR(first.top_logprobs[i].logprob, logits[size_t(order[i])] - log_z, 1e-3) << i;
  }
  for (const TokenEvent& ev : events) {
    ASSERT_EQ(ev.top_logprobs.size(), 5u);
    EXPECT_EQ(ev.top_logprobs[0].token, ev.token);  // greedy
    EXPECT_FLOAT_EQ(ev.top_logprobs[0].logprob, ev.logprob);
    EXPECT_LE(ev.logprob, 0.0f);
    for (size_t i = 1; i < 5; ++i)
      EXPECT_GE(ev.top_logprobs[i - 1].logprob, ev.top_logprobs[i].logprob);
  }
  // Without the flag: nothing computed.
  Outcome plain = run_one(*e, greedy_request(p.tokens, 1));
  EXPECT_EQ(plain.tokens, std::vector<int32_t>{first.token});
  // Out of range.
  auto bad = greedy_request(p.tokens, 1);
  bad.logprobs = true;
  bad.top_logprobs = kMaxTopLogprobs + 1;
  auto r = e->submit(bad, nullptr);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
}

TEST(Engine, EmbeddingIsUnitLengthAndDeterministic) {
  auto e = make_engine("qwen2-tiny-F32.gguf", 1);
  ASSERT_TRUE(e);
  auto a = e->embed({293, 17, 40});
  ASSERT_TRUE(a.has_value()) << a.error().message;
  EXPECT_EQ(int32_t(a->size()), e->info().n_embd);
  double n = 0;
  for (float v : *a) n += double(v) * v;
  EXPECT_NEAR(n, 1.0, 1e-4);
  auto b = e->embed({293, 17, 40});
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(*a, *b);
  auto c = e->embed({100, 200});
  ASSERT_TRUE(c.has_value());
  EXPECT_NE(*a, *c);
  EXPECT_FALSE(e->embed({}).has_value());
  // Generation still works after an embedding used the slot.
  const auto prompts = load_ref("qwen2-tiny-F32.ref.json");
  Outcome o = run_one(*e, greedy_request(prompts[0].tokens, 10));
  std::vector<int32_t> expect(prompts[0].greedy.begin(), prompts[0].greedy.begin() + 10);
  EXPECT_EQ(o.tokens, expect);
}

TEST(Engine, InfoTokenizerAndShutdown) {
  auto e = make_engine("qwen2-tiny-F32.gguf", 2);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->info().architecture, "qwen2");
  EXPECT_EQ(e->info().n_vocab, 961);
  EXPECT_EQ(e->info().n_ctx, 512);
  EXPECT_GT(e->info().kv_cache_bytes, 0u);
  EXPECT_EQ(e->tokenizer().n_vocab(), 961);
  EXPECT_EQ(e->stats().n_slots, 2);
  // Shutdown cancels what is running and refuses new work.
  Collector c;
  ASSERT_TRUE(e->submit(greedy_request({293}, 400), c.callback()).has_value());
  e->shutdown();
  EXPECT_EQ(c.wait().final_event.finish_reason, FinishReason::kCancelled);
  Collector d;
  auto r = e->submit(greedy_request({293}, 4), d.callback());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
}

TEST(Engine, CreateErrors) {
  EngineOptions o;
  o.model_path = kModels + "does-not-exist.gguf";
  EXPECT_FALSE(Engine::create(o).has_value());
  o.model_path = kModels + "llama-tiny-F32.gguf";
  o.kv_type = "bf3";
  auto r = Engine::create(o);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace enclave::engine

namespace enclave::engine {
namespace {

TEST(Engine, ThrowingCallbackCancelsOnlyItsRequest) {
  auto e = make_engine("llama-tiny-F32.gguf", 2);
  ASSERT_TRUE(e);
  std::promise<TokenEvent> final_bad;
  bool set = false;
  auto bad = e->submit(greedy_request({1}, 50), [&](const TokenEvent& ev) {
    if (ev.finished) {
      if (!set) final_bad.set_value(ev);
      set = true;
      return;
    }
    throw std::runtime_error("callback failure");
  });
  ASSERT_TRUE(bad.has_value());
  const auto prompts = load_ref("llama-tiny-F32.ref.json");
  Outcome good = run_one(*e, greedy_request(prompts[1].tokens, 12));
  std::vector<int32_t> expect(prompts[1].greedy.begin(), prompts[1].greedy.begin() + 12);
  EXPECT_EQ(good.tokens, expect);
  EXPECT_EQ(final_bad.get_future().get().finish_reason, FinishReason::kCancelled);
}

}  // namespace
}  // namespace enclave::engine
