// Golden tests: every llama / qwen2 fixture model against llama.cpp's reference logits and greedy
// continuations (tolerances from fixtures/models/README.md).
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "model/model.h"
#include "ref_data.h"

namespace enclave::model {
namespace {

using testing::argmax;
using testing::Diff;
using testing::fixture_path;
using testing::load_ref;
using testing::RefFile;

enum class Tol {
  kF32,       // F32 weights, F32 KV: max |d| <= 1e-3, every greedy token
  kF32KvF16,  // F32 weights, F16 KV: max |d| <= 0.15, greedy tokens where margin > 0.2
  kF16,       // F16 weights: max |d| <= 0.15, every greedy token
  kQuant,     // quantized: rms(d)/sigma <= 0.06 and max |d| <= 0.25 sigma, every greedy token
};

struct GoldenCase {
  const char* model;
  KvType kv;
  Tol tol;
};

std::string case_name(const ::testing::TestParamInfo<GoldenCase>& info) {
  std::string s = std::string(info.param.model) + "_kv_" + kv_type_name(info.param.kv);
  for (char& c : s) {
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s;
}

// Checks one logits vector; returns its max |d| (for the greedy-token rule below).
float expect_close(const float* got, const std::vector<float>& ref, Tol tol,
                   const std::string& what) {
  const Diff d = testing::diff(got, ref);
  switch (tol) {
    case Tol::kF32:
      EXPECT_LE(d.max_abs, 1e-3f) << what;
      break;
    case Tol::kF32KvF16:
    case Tol::kF16:
      EXPECT_LE(d.max_abs, 0.15f) << what;
      break;
    case Tol::kQuant:
      EXPECT_LE(d.rms / d.ref_std, 0.06f) << what << " max " << d.max_abs;
      EXPECT_LE(d.max_abs, 0.25f * d.ref_std) << what << " rms/sigma " << d.rms / d.ref_std;
      break;
  }
  return d.max_abs;
}

// Which stored greedy tokens must match. F32 / F16 weights with F32 KV: all of them (every stored
// margin >= 0.05 is far above the error). Otherwise the README's rule: a token is comparable only
// where its margin exceeds twice the engine's actual max |d| on that prompt (for F16 KV at least
// 0.2). Quantized engines cannot be bit-exact with llama.cpp: ggml's repacked kernels round some
// activations differently, and one flipped rounding moves these tiny random networks by 0.2-2
// logits (measured in the README even for an exact float64 emulation).
bool must_match(Tol tol, float margin, float max_seen) {
  switch (tol) {
    case Tol::kF32:
    case Tol::kF16:
      return true;
    case Tol::kF32KvF16:
      return margin > std::max(0.2f, 2.0f * max_seen);
    case Tol::kQuant:
      // max_seen only covers the vectors with references (prompt + 4 steps); later steps can
      // meet an activation that rounds the other way (0.2-2 logits, fixture README), so margins
      // below 1.0 are not comparable.
      return margin > std::max(1.0f, 2.0f * max_seen);
  }
  return true;
}

class GoldenTest : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenTest, PromptLogitsAndGreedyContinuation) {
  const GoldenCase& gc = GetParam();
  auto model = Model::load(fixture_path(std::string(gc.model) + ".gguf"));
  ASSERT_TRUE(model) << model.error().message;
  const RefFile ref = load_ref(std::string(gc.model) + ".ref.json");
  const int32_t V = (*model)->config().n_vocab;
  ASSERT_EQ(V, ref.n_vocab);
  auto ctx = Context::create(**model, 1, 512, gc.kv, 2);
  ASSERT_TRUE(ctx) << ctx.error().message;
  ASSERT_EQ(ref.prompts.size(), 3u);

  std::vector<float> logits;
  for (size_t pi = 0; pi < ref.prompts.size(); ++pi) {
    const auto& p = ref.prompts[pi];
    (*ctx)->clear_slot(0);
    Batch b;
    for (size_t i = 0; i < p.tokens.size(); ++i) {
      b.add(p.tokens[i], static_cast<int32_t>(i), 0, i + 1 == p.tokens.size());
    }
    ASSERT_TRUE((*ctx)->decode(b, logits).is_ok());
    ASSERT_EQ(logits.size(), static_cast<size_t>(V));
    const std::string where = std::string(gc.model) + " prompt " + std::to_string(pi);
    float max_seen = expect_close(logits.data(), p.logits, gc.tol, where + " prompt logits");
    int checked = 0;

    // Teacher-forced greedy: feed the reference tokens one at a time and check our argmax.
    int32_t pos = static_cast<int32_t>(p.tokens.size());
    for (size_t s = 0; s < p.greedy.size(); ++s) {
      if (must_match(gc.tol, p.margins[s], max_seen)) {
        ++checked;
        EXPECT_EQ(argmax(logits.data(), V), p.greedy[s])
            << where << " greedy step " << s << " margin " << p.margins[s];
      }
      if (s + 1 == p.greedy.size()) break;
      b.clear();
      b.add(p.greedy[s], pos++, 0, true);
      ASSERT_TRUE((*ctx)->decode(b, logits).is_ok());
      if (s < p.step_logits.size()) {
        max_seen = std::max(max_seen, expect_close(logits.data(), p.step_logits[s], gc.tol,
                                                   where + " step_logits " + std::to_string(s)));
      }
    }
    // The rule must leave real work to do (Q4_0, the loosest, still compares some tokens).
    EXPECT_GE(checked, 1) << where;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, GoldenTest,
    ::testing::Values(GoldenCase{"llama-tiny-F32", KvType::kF32, Tol::kF32},
                      GoldenCase{"llama-tiny-F32", KvType::kF16, Tol::kF32KvF16},
                      GoldenCase{"llama-tiny-F16", KvType::kF32, Tol::kF16},
                      GoldenCase{"llama-tiny-Q8_0", KvType::kF32, Tol::kQuant},
                      GoldenCase{"llama-tiny-Q4_0", KvType::kF32, Tol::kQuant},
                      GoldenCase{"llama-tiny-Q4_K", KvType::kF32, Tol::kQuant},
                      GoldenCase{"llama-tiny-Q6_K", KvType::kF32, Tol::kQuant},
                      GoldenCase{"qwen2-tiny-F32", KvType::kF32, Tol::kF32},
                      GoldenCase{"qwen2-tiny-F32", KvType::kF16, Tol::kF32KvF16},
                      GoldenCase{"qwen2-tiny-Q8_0", KvType::kF32, Tol::kQuant},
                      GoldenCase{"qwen2-tiny-Q4_K", KvType::kF32, Tol::kQuant},
                      GoldenCase{"stories260K", KvType::kF32, Tol::kF32},
                      GoldenCase{"stories260K", KvType::kF16, Tol::kF32KvF16}),
    case_name);

// stories260K text prompts: 48 greedy tokens from the reference prompt tokens, free-running.
TEST(GoldenStories, TextPromptContinuations) {
  auto model = Model::load(fixture_path("stories260K.gguf"));
  ASSERT_TRUE(model) << model.error().message;
  const RefFile ref = load_ref("stories260K.ref.json");
  ASSERT_EQ(ref.text_prompts.size(), 3u);
  auto ctx = Context::create(**model, 1, 256, KvType::kF16, 2);
  ASSERT_TRUE(ctx);
  const int32_t V = (*model)->config().n_vocab;
  std::vector<float> logits;
  for (const auto& tp : ref.text_prompts) {
    (*ctx)->clear_slot(0);
    Batch b;
    for (size_t i = 0; i < tp.prompt_tokens.size(); ++i) {
      b.add(tp.prompt_tokens[i], static_cast<int32_t>(i), 0, i + 1 == tp.prompt_tokens.size());
    }
    ASSERT_TRUE((*ctx)->decode(b, logits).is_ok());
    std::vector<int32_t> out;
    int32_t pos = static_cast<int32_t>(tp.prompt_tokens.size());
    while (out.size() < tp.continuation_tokens.size()) {
      const int32_t t = argmax(logits.data(), V);
      out.push_back(t);
      b.clear();
      b.add(t, pos++, 0, true);
      ASSERT_TRUE((*ctx)->decode(b, logits).is_ok());
    }
    EXPECT_EQ(out, tp.continuation_tokens) << tp.text;
  }
}

}  // namespace
}  // namespace enclave::model
