#include "sampling/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <vector>

namespace enclave::sampling {
namespace {

SamplerConfig plain(float temperature, uint64_t seed = 1) {
  SamplerConfig c;
  c.temperature = temperature;
  c.top_k = 0;
  c.top_p = 1.0f;
  c.min_p = 0.0f;
  c.seed = seed;
  return c;
}

std::vector<float> log_probs(const std::vector<double>& p) {
  std::vector<float> l;
  for (double x : p) l.push_back(static_cast<float>(std::log(x)));
  return l;
}

std::vector<int> histogram(Sampler& s, const std::vector<float>& logits, int draws) {
  std::vector<int> h(logits.size(), 0);
  for (int i = 0; i < draws; ++i) {
    const int32_t t = s.sample(logits);
    EXPECT_GE(t, 0);
    EXPECT_LT(t, static_cast<int32_t>(logits.size()));
    if (t >= 0 && t < static_cast<int32_t>(h.size())) ++h[t];
  }
  return h;
}

TEST(Argmax, TiesGoToLowestId) {
  EXPECT_EQ(argmax(std::vector<float>{1.0f, 3.0f, 3.0f, 2.0f}), 1);
  EXPECT_EQ(argmax(std::vector<float>{5.0f, 5.0f}), 0);
  EXPECT_EQ(argmax(std::vector<float>{-1.0f}), 0);
  EXPECT_EQ(argmax(std::vector<float>{}), -1);
  EXPECT_EQ(argmax(std::vector<float>{std::nanf(""), 0.5f, 0.25f}), 1);
}

TEST(Sampler, GreedyIsExactArgmaxAndIgnoresRng) {
  Sampler a(plain(0.0f, 1)), b(plain(0.0f, 999));
  const std::vector<float> logits = {0.1f, 2.5f, 2.5f, -4.0f, 2.4999f};
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(a.sample(logits), 1);
    EXPECT_EQ(b.sample(logits), 1);
  }
}

TEST(Sampler, LogitBiasShiftsGreedyChoiceAndCanBan) {
  auto c = plain(0.0f);
  c.logit_bias = {{1, -1.0f}, {3, 10.0f}};
  Sampler s(c);
  EXPECT_EQ(s.sample(std::vector<float>{0.0f, 2.0f, 1.5f, -5.0f}), 3);

  auto ban = plain(1.0f);
  ban.logit_bias = {{0, -std::numeric_limits<float>::infinity()}};
  Sampler sb(ban);
  for (int i = 0; i < 200; ++i) EXPECT_NE(sb.sample(std::vector<float>{10.0f, 0.0f, 0.0f}), 0);
}

TEST(Sampler, RepetitionPenaltyFollowsLlamaCppMath) {
  auto c = plain(0.0f);
  c.repeat_penalty = 2.0f;
  c.repeat_last_n = 3;
  Sampler s(c);
  // Window after these: {2, 3, 3}; token 1 falls out of the window.
  s.accept_prompt(std::vector<int32_t>{1, 2});
  s.accept(3);
  s.accept(3);
  std::vector<float> l = {1.0f, 4.0f, 4.0f, -3.0f, 6.0f};
  s.apply_penalties(l);
  EXPECT_FLOAT_EQ(l[0], 1.0f);
  EXPECT_FLOAT_EQ(l[1], 4.0f);   // out of the window
  EXPECT_FLOAT_EQ(l[2], 2.0f);   // positive: divided
  EXPECT_FLOAT_EQ(l[3], -6.0f);  // negative: multiplied, once despite two occurrences
  EXPECT_FLOAT_EQ(l[4], 6.0f);
}

TEST(Sampler, FrequencyAndPresencePenaltiesFollowOpenAiMath) {
  auto c = plain(0.0f);
  c.frequency_penalty = 0.5f;
  c.presence_penalty = 0.25f;
  Sampler s(c);
  s.accept_prompt(std::vector<int32_t>{0, 0, 0});  // prompt tokens do not count
  s.accept(1);
  s.accept(1);
  s.accept(1);
  s.accept(2);
  std::vector<float> l = {1.0f, 1.0f, 1.0f, 1.0f};
  s.apply_penalties(l);
  EXPECT_FLOAT_EQ(l[0], 1.0f);
  EXPECT_FLOAT_EQ(l[1], 1.0f - 3 * 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(l[2], 1.0f - 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(l[3], 1.0f);
  // The penalized logits decide the greedy choice.
  EXPECT_EQ(s.sample(std::vector<float>{0.0f, 2.0f, 0.5f, 0.6f}), 3);
}

TEST(Sampler, TemperatureOneMatchesSoftmax) {
  const std::vector<double> p = {0.5, 0.3, 0.2};
  Sampler s(plain(1.0f, 42));
  const int n = 40000;
  auto h = histogram(s, log_probs(p), n);
  for (size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(h[i] / double(n), p[i], 0.015) << i;
}

TEST(Sampler, TemperatureSharpensAndFlattens) {
  const std::vector<double> p = {0.6, 0.3, 0.1};
  for (float t : {0.5f, 2.0f}) {
    Sampler s(plain(t, 7));
    const int n = 40000;
    auto h = histogram(s, log_probs(p), n);
    double z = 0;
    for (double x : p) z += std::pow(x, 1.0 / t);
    for (size_t i = 0; i < p.size(); ++i)
      EXPECT_NEAR(h[i] / double(n), std::pow(p[i], 1.0 / t) / z, 0.015) << "t=" << t << " i=" << i;
  }
}

TEST(Sampler, TopKOneIsGreedyEvenWhenHot) {
  auto c = plain(5.0f, 3);
  c.top_k = 1;
  Sampler s(c);
  for (int i = 0; i < 500; ++i) EXPECT_EQ(s.sample(std::vector<float>{1.0f, 1.2f, 1.1f}), 1);
}

TEST(Sampler, TopKKeepsOnlyTheKBest) {
  auto c = plain(1.0f, 5);
  c.top_k = 2;
  Sampler s(c);
  auto h = histogram(s, log_probs({0.1, 0.4, 0.2, 0.3}), 20000);
  EXPECT_EQ(h[0], 0);
  EXPECT_EQ(h[2], 0);
  EXPECT_NEAR(h[1] / 20000.0, 0.4 / 0.7, 0.02);
  EXPECT_NEAR(h[3] / 20000.0, 0.3 / 0.7, 0.02);
}

TEST(Sampler, TopPKeepsSmallestPrefixReachingMass) {
  auto c = plain(1.0f, 9);
  c.top_p = 0.75f;  // 0.5 < 0.75 <= 0.5 + 0.3
  Sampler s(c);
  auto h = histogram(s, log_probs({0.5, 0.3, 0.15, 0.05}), 20000);
  EXPECT_EQ(h[2], 0);
  EXPECT_EQ(h[3], 0);
  EXPECT_NEAR(h[0] / 20000.0, 0.5 / 0.8, 0.02);
}

TEST(Sampler, TopPOnLargeFlatVocabMatchesBruteForce) {
  // Slowly decaying logits: the kept prefix is longer than the first sorting chunk.
  const int n = 1000;
  std::vector<float> l(n);
  for (int i = 0; i < n; ++i) l[i] = -0.002f * static_cast<float>((i * 7919) % n);
  auto c = plain(1.0f, 11);
  c.top_p = 0.6f;
  // Brute force: sort all, cumulate.
  std::vector<std::pair<float, int>> all;
  for (int i = 0; i < n; ++i) all.emplace_back(l[i], i);
  std::sort(all.begin(), all.end(), [](auto& a, auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  double z = 0;
  for (auto& [v, i] : all) z += std::exp(double(v - all[0].first));
  double cum = 0;
  size_t keep = 0;
  while (keep < all.size()) {
    cum += std::exp(double(all[keep].first - all[0].first));
    ++keep;
    if (cum >= 0.6f * z) break;
  }
  ASSERT_GT(keep, 256u);
  std::vector<char> allowed(n, 0);
  for (size_t i = 0; i < keep; ++i) allowed[all[i].second] = 1;
  Sampler s(c);
  int seen_last = 0;
  for (int d = 0; d < 8000; ++d) {
    const int32_t t = s.sample(l);
    ASSERT_TRUE(allowed[t]) << "token " << t << " is outside the top-p set";
    if (t == all[keep - 1].second) ++seen_last;
  }
  EXPECT_GT(seen_last, 0);  // the boundary token is kept
}

TEST(Sampler, MinPDropsTokensBelowFractionOfMax) {
  auto c = plain(1.0f, 13);
  c.min_p = 0.1f;  // threshold 0.06
  Sampler s(c);
  auto h = histogram(s, log_probs({0.6, 0.3, 0.05, 0.05}), 20000);
  EXPECT_EQ(h[2], 0);
  EXPECT_EQ(h[3], 0);
  EXPECT_NEAR(h[0] / 20000.0, 2.0 / 3.0, 0.02);
}

TEST(Sampler, SameSeedSameSequenceDifferentSeedDiffers) {
  std::vector<float> l(64);
  for (int i = 0; i < 64; ++i) l[i] = std::sin(float(i)) * 2.0f;
  auto run = [&](uint64_t seed) {
    auto c = plain(1.0f, seed);
    c.top_k = 40;
    c.top_p = 0.95f;
    c.min_p = 0.01f;
    Sampler s(c);
    std::vector<int32_t> out;
    for (int i = 0; i < 100; ++i) {
      out.push_back(s.sample(l));
      s.accept(out.back());
    }
    return out;
  };
  EXPECT_EQ(run(123), run(123));
  EXPECT_NE(run(123), run(124));
}

TEST(Rng, DoublesInUnitIntervalAndSeeded) {
  Rng a(5), b(5);
  double sum = 0;
  for (int i = 0; i < 10000; ++i) {
    const double x = a.next_double();
    ASSERT_GE(x, 0.0);
    ASSERT_LT(x, 1.0);
    ASSERT_EQ(x, b.next_double());
    sum += x;
  }
  EXPECT_NEAR(sum / 10000, 0.5, 0.02);
}

TEST(Validate, RejectsOutOfRangeFieldsByName) {
  SamplerConfig c;
  EXPECT_TRUE(validate(c, 10).is_ok());
  c.top_p = 1.5f;
  auto st = validate(c, 10);
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(st.error().message.find("top_p"), std::string::npos);
  c = SamplerConfig{};
  c.temperature = -1.0f;
  EXPECT_FALSE(validate(c, 10).is_ok());
  c = SamplerConfig{};
  c.logit_bias = {{10, 1.0f}};
  st = validate(c, 10);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.error().message.find("logit_bias"), std::string::npos);
  c = SamplerConfig{};
  c.repeat_penalty = 0.0f;
  EXPECT_FALSE(validate(c, 10).is_ok());
  c = SamplerConfig{};
  c.presence_penalty = 3.0f;
  EXPECT_FALSE(validate(c, 10).is_ok());
}

}  // namespace
}  // namespace enclave::sampling
