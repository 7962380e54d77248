// Context: batch validation, continuous batching across slots, chunked prompts, slot operations,
// embeddings and KV cache types.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "model/model.h"
#include "ref_data.h"

namespace enclave::model {
namespace {

using testing::argmax;
using testing::fixture_path;

std::unique_ptr<Model> load(const char* name) {
  auto m = Model::load(fixture_path(name));
  EXPECT_TRUE(m) << (m ? "" : m.error().message);
  return m ? std::move(*m) : nullptr;
}

std::unique_ptr<Context> make_ctx(const Model& m, int32_t slots, int32_t n_ctx, KvType kv) {
  auto c = Context::create(m, slots, n_ctx, kv, 2);
  EXPECT_TRUE(c) << (c ? "" : c.error().message);
  return c ? std::move(*c) : nullptr;
}

Batch prompt_batch(const std::vector<int32_t>& toks, int32_t slot, int32_t pos0 = 0) {
  Batch b;
  for (size_t i = 0; i < toks.size(); ++i) {
    b.add(toks[i], pos0 + static_cast<int32_t>(i), slot, i + 1 == toks.size());
  }
  return b;
}

float max_abs_diff(const float* a, const float* b, size_t n) {
  float m = 0.0f;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

const std::vector<int32_t> kPromptA = {1, 403, 407, 261, 378, 27, 291, 334, 261, 391, 364, 425};
const std::vector<int32_t> kPromptB = {1, 329, 400, 27, 365, 317, 359, 363};
const std::vector<int32_t> kPromptC = {1, 500, 12, 77, 300};
const std::vector<int32_t> kPromptD = {1,   259, 260, 261, 262, 263, 264, 265, 266, 267,
                                       268, 269, 270, 271, 272, 273, 274, 275, 276, 277};

TEST(ContextErrors, PromptLongerThanContext) {
  auto m = load("llama-tiny-Q4_0.gguf");
  auto ctx = make_ctx(*m, 1, 8, KvType::kF16);
  std::vector<int32_t> long_prompt(9, 5);
  std::vector<float> logits;
  Status st = ctx->decode(prompt_batch(long_prompt, 0), logits);
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.error().code, ErrorCode::kOutOfRange);
  EXPECT_NE(st.error().message.find("n_ctx"), std::string::npos) << st.error().message;
  EXPECT_EQ(ctx->slot_length(0), 0);
  // Still usable, and exactly n_ctx tokens fit.
  std::vector<int32_t> fits(8, 5);
  EXPECT_TRUE(ctx->decode(prompt_batch(fits, 0), logits).is_ok());
  EXPECT_EQ(ctx->slot_length(0), 8);
  Batch one = prompt_batch({7}, 0, 8);
  EXPECT_EQ(ctx->decode(one, logits).error().code, ErrorCode::kOutOfRange);

  std::vector<float> emb;
  EXPECT_EQ(ctx->embed(long_prompt, 0, emb).error().code, ErrorCode::kOutOfRange);
}

TEST(ContextErrors, BadBatches) {
  auto m = load("llama-tiny-Q4_0.gguf");
  auto ctx = make_ctx(*m, 2, 64, KvType::kF16);
  std::vector<float> logits;
  EXPECT_EQ(ctx->decode(prompt_batch({1, 512}, 0), logits).error().code,
            ErrorCode::kInvalidArgument);  // token out of vocabulary
  EXPECT_EQ(ctx->decode(prompt_batch({1, -1}, 0), logits).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(ctx->decode(prompt_batch({1, 2}, 2), logits).error().code,
            ErrorCode::kInvalidArgument);  // slot out of range
  EXPECT_EQ(ctx->decode(prompt_batch({1, 2}, 0, 3), logits).error().code,
            ErrorCode::kInvalidArgument);  // starts past the slot's cached length
  Batch gap;
  gap.add(1, 0, 0, false);
  gap.add(2, 2, 0, true);
  EXPECT_EQ(ctx->decode(gap, logits).error().code, ErrorCode::kInvalidArgument);
  Batch ragged = prompt_batch({1, 2}, 0);
  ragged.pos.pop_back();
  EXPECT_EQ(ctx->decode(ragged, logits).error().code, ErrorCode::kInvalidArgument);
  Batch empty;
  EXPECT_TRUE(ctx->decode(empty, logits).is_ok());
  EXPECT_TRUE(logits.empty());
  EXPECT_FALSE(Context::create(*m, 0, 64, KvType::kF16, 2));
  EXPECT_FALSE(Context::create(*m, 1, 0, KvType::kF16, 2));
}

TEST(ContextErrors, Q8CacheNeedsHeadDimMultipleOf32) {
  auto m = load("stories260K.gguf");  // head_dim 8
  auto c = Context::create(*m, 1, 64, KvType::kQ8_0, 1);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, ErrorCode::kUnsupported);
}

TEST(Context, KvBytes) {
  auto m = load("llama-tiny-Q4_0.gguf");
  auto f16 = make_ctx(*m, 3, 100, KvType::kF16);
  // 2 (K,V) * layers 2 * slots 3 * kv heads 4 * n_ctx 100 * head_dim 32 * 2 bytes.
  EXPECT_EQ(f16->kv_bytes(), 2ull * 2 * 3 * 4 * 100 * 32 * 2);
  auto f32 = make_ctx(*m, 1, 10, KvType::kF32);
  EXPECT_EQ(f32->kv_bytes(), 2ull * 2 * 1 * 4 * 10 * 32 * 4);
  auto q8 = make_ctx(*m, 1, 10, KvType::kQ8_0);
  EXPECT_EQ(q8->kv_bytes(), 2ull * 2 * 1 * 4 * 10 * 34);
  EXPECT_EQ(f16->n_ctx(), 100);
  EXPECT_EQ(f16->n_slots(), 3);
}

// A prompt longer than one internal chunk, in one batch, equals the same prompt token by token.
TEST(Context, LongPromptBatchEqualsTokenByToken) {
  auto m = load("stories260K.gguf");
  std::vector<int32_t> toks;
  for (int i = 0; i < 300; ++i) toks.push_back(1 + (i * 37) % 500);
  auto a = make_ctx(*m, 1, 320, KvType::kF32);
  auto b = make_ctx(*m, 1, 320, KvType::kF32);
  std::vector<float> la, lb;
  ASSERT_TRUE(a->decode(prompt_batch(toks, 0), la).is_ok());
  for (size_t i = 0; i < toks.size(); ++i) {
    ASSERT_TRUE(b->decode(prompt_batch({toks[i]}, 0, static_cast<int32_t>(i)), lb).is_ok());
  }
  ASSERT_EQ(la.size(), lb.size());
  EXPECT_LE(max_abs_diff(la.data(), lb.data(), la.size()), 1e-3f);
}

// Generates `n` greedy tokens for each prompt, alone (one slot each, separate decode calls).
std::vector<std::vector<int32_t>> generate_alone(Context& ctx,
                                                 const std::vector<std::vector<int32_t>>& prompts,
                                                 int n,
                                                 std::vector<std::vector<float>>* first_logits) {
  const int32_t V = ctx.model().config().n_vocab;
  std::vector<std::vector<int32_t>> out;
  std::vector<float> logits;
  for (size_t s = 0; s < prompts.size(); ++s) {
    ctx.clear_slot(0);
    EXPECT_TRUE(ctx.decode(prompt_batch(prompts[s], 0), logits).is_ok());
    if (first_logits) first_logits->push_back(logits);
    std::vector<int32_t> gen;
    int32_t pos = static_cast<int32_t>(prompts[s].size());
    for (int i = 0; i < n; ++i) {
      gen.push_back(argmax(logits.data(), V));
      EXPECT_TRUE(ctx.decode(prompt_batch({gen.back()}, 0, pos++), logits).is_ok());
    }
    out.push_back(gen);
  }
  return out;
}

// All prompts in one batch with their tokens interleaved round-robin, then one token per slot
// per step: continuous batching.
std::vector<std::vector<int32_t>> generate_batched(Context& ctx,
                                                   const std::vector<std::vector<int32_t>>& prompts,
                                                   int n,
                                                   std::vector<std::vector<float>>* first_logits) {
  const int32_t V = ctx.model().config().n_vocab;
  const size_t S = prompts.size();
  Batch b;
  size_t longest = 0;
  for (const auto& p : prompts) longest = std::max(longest, p.size());
  std::vector<size_t> row_of(S);
  for (size_t i = 0; i < longest; ++i) {
    for (size_t s = 0; s < S; ++s) {
      if (i >= prompts[s].size()) continue;
      const bool last = i + 1 == prompts[s].size();
      if (last)
        row_of[s] = static_cast<size_t>(std::count(b.want_logits.begin(), b.want_logits.end(), 1));
      b.add(prompts[s][i], static_cast<int32_t>(i), static_cast<int32_t>(s), last);
    }
  }
  std::vector<float> logits;
  EXPECT_TRUE(ctx.decode(b, logits).is_ok());
  std::vector<std::vector<int32_t>> out(S);
  if (first_logits) {
    for (size_t s = 0; s < S; ++s) {
      first_logits->emplace_back(logits.begin() + row_of[s] * V,
                                 logits.begin() + (row_of[s] + 1) * V);
    }
  }
  std::vector<int32_t> pos(S);
  for (size_t s = 0; s < S; ++s) pos[s] = static_cast<int32_t>(prompts[s].size());
  for (int i = 0; i < n; ++i) {
    b.clear();
    // Reverse slot order on odd steps: batch order must not matter.
    for (size_t k = 0; k < S; ++k) {
      const size_t s = (i % 2) ? S - 1 - k : k;
      const size_t row = (i == 0) ? row_of[s] : ((i - 1) % 2 ? S - 1 - s : s);
      const int32_t t = argmax(logits.data() + row * V, V);
      out[s].push_back(t);
      b.add(t, pos[s]++, static_cast<int32_t>(s), true);
    }
    EXPECT_TRUE(ctx.decode(b, logits).is_ok());
  }
  return out;
}

void check_batched_equals_alone(const char* model, KvType kv, float logit_tol) {
  auto m = load(model);
  const std::vector<std::vector<int32_t>> prompts = {kPromptA, kPromptB, kPromptC, kPromptD};
  auto alone_ctx = make_ctx(*m, 1, 128, kv);
  auto batch_ctx = make_ctx(*m, 4, 128, kv);
  std::vector<std::vector<float>> la, lb;
  const auto alone = generate_alone(*alone_ctx, prompts, 12, &la);
  const auto batched = generate_batched(*batch_ctx, prompts, 12, &lb);
  for (size_t s = 0; s < prompts.size(); ++s) {
    EXPECT_EQ(batched[s], alone[s]) << model << " sequence " << s;
    EXPECT_LE(max_abs_diff(la[s].data(), lb[s].data(), la[s].size()), logit_tol)
        << model << " " << s;
  }
}

TEST(ContinuousBatching, FourSequencesInOneBatchMatchAloneF32) {
  check_batched_equals_alone("llama-tiny-F32.gguf", KvType::kF32, 1e-3f);
}

TEST(ContinuousBatching, FourSequencesInOneBatchMatchAloneQuantized) {
  check_batched_equals_alone("llama-tiny-Q4_0.gguf", KvType::kF16, 0.5f);
}

TEST(Slots, CopySlotSharesPrefix) {
  auto m = load("llama-tiny-F32.gguf");
  auto ctx = make_ctx(*m, 2, 64, KvType::kF16);
  std::vector<float> l0, l1;
  ASSERT_TRUE(ctx->decode(prompt_batch(kPromptA, 0), l0).is_ok());
  ctx->copy_slot(0, 1, static_cast<int32_t>(kPromptA.size()));
  EXPECT_EQ(ctx->slot_length(1), static_cast<int32_t>(kPromptA.size()));
  const int32_t p = static_cast<int32_t>(kPromptA.size());
  ASSERT_TRUE(ctx->decode(prompt_batch({42}, 0, p), l0).is_ok());
  ASSERT_TRUE(ctx->decode(prompt_batch({42}, 1, p), l1).is_ok());
  EXPECT_EQ(l0, l1);
}

TEST(Slots, TruncateAndReuseEqualsFresh) {
  auto m = load("qwen2-tiny-Q8_0.gguf");
  auto ctx = make_ctx(*m, 1, 64, KvType::kF16);
  auto fresh = make_ctx(*m, 1, 64, KvType::kF16);
  std::vector<int32_t> ab = kPromptA;
  ab.insert(ab.end(), kPromptB.begin(), kPromptB.end());
  std::vector<int32_t> ac = kPromptA;
  ac.insert(ac.end(), kPromptC.begin(), kPromptC.end());
  std::vector<float> l_reuse, l_fresh;
  ASSERT_TRUE(ctx->decode(prompt_batch(ab, 0), l_reuse).is_ok());
  ctx->truncate_slot(0, static_cast<int32_t>(kPromptA.size()));
  EXPECT_EQ(ctx->slot_length(0), static_cast<int32_t>(kPromptA.size()));
  ASSERT_TRUE(ctx->decode(prompt_batch(kPromptC, 0, static_cast<int32_t>(kPromptA.size())), l_reuse)
                  .is_ok());
  ASSERT_TRUE(fresh->decode(prompt_batch(ac, 0), l_fresh).is_ok());
  EXPECT_LE(max_abs_diff(l_reuse.data(), l_fresh.data(), l_fresh.size()), 1e-3f);
  ctx->clear_slot(0);
  EXPECT_EQ(ctx->slot_length(0), 0);
}

TEST(Embedding, MeanOfFinalHiddenStates) {
  auto m = load("llama-tiny-F32.gguf");
  auto ctx = make_ctx(*m, 2, 64, KvType::kF32);
  std::vector<float> e1, e2, e3;
  ASSERT_TRUE(ctx->embed(kPromptA, 1, e1).is_ok());
  ASSERT_EQ(e1.size(), 256u);
  EXPECT_EQ(ctx->slot_length(1), static_cast<int32_t>(kPromptA.size()));
  ASSERT_TRUE(ctx->embed(kPromptA, 0, e2).is_ok());
  EXPECT_EQ(e1, e2);
  ASSERT_TRUE(ctx->embed(kPromptB, 0, e3).is_ok());
  EXPECT_GT(max_abs_diff(e1.data(), e3.data(), e1.size()), 1e-3f);
  for (float x : e1) ASSERT_TRUE(std::isfinite(x));
  // A single token: the mean is that token's normed hidden state, whose RMS is about 1 with
  // unit norm weights.
  std::vector<float> e4;
  ASSERT_TRUE(ctx->embed({1}, 0, e4).is_ok());
  double ss = 0.0;
  for (float x : e4) ss += x * x;
  EXPECT_NEAR(std::sqrt(ss / e4.size()), 1.0, 1e-3);
  EXPECT_FALSE(ctx->embed({}, 0, e4).is_ok());
  EXPECT_FALSE(ctx->embed({1}, 5, e4).is_ok());
}

TEST(KvCache, Q8CacheWithinQuantizedTolerance) {
  auto m = load("llama-tiny-F32.gguf");
  const auto ref = testing::load_ref("llama-tiny-F32.ref.json");
  auto ctx = make_ctx(*m, 1, 128, KvType::kQ8_0);
  std::vector<float> logits;
  for (const auto& p : ref.prompts) {
    ctx->clear_slot(0);
    ASSERT_TRUE(ctx->decode(prompt_batch(p.tokens, 0), logits).is_ok());
    const auto d = testing::diff(logits.data(), p.logits);
    EXPECT_LE(d.rms / d.ref_std, 0.06f);
    if (p.margins[0] > 2.0f * d.max_abs) {
      EXPECT_EQ(argmax(logits.data(), 512), p.greedy[0]);
    }
  }
}

}  // namespace
}  // namespace enclave::model
