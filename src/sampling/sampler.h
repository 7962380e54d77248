// Sampler: turns one logits vector into one token id for one sequence. Each sequence owns its
// Sampler (configuration, token history and RNG), so the same seed and the same request give the
// same tokens no matter what other sequences run beside it.
//
// Order of the chain (llama.cpp's default order, restricted to what we support):
//   logit bias -> repetition penalty -> frequency/presence penalties
//   -> temperature <= 0 ? argmax (ties: lowest id)
//   -> top-k -> top-p -> min-p -> temperature -> softmax -> draw
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/result.h"

namespace enclave::sampling {

struct SamplerConfig {
  float temperature = 0.8f;  // <= 0 => greedy
  int32_t top_k = 40;        // <= 0 disables
  float top_p = 0.95f;       // >= 1 disables
  float min_p = 0.05f;       // <= 0 disables
  // llama.cpp semantics: for each distinct token among the last `repeat_last_n` tokens
  // (prompt + generated), logit /= penalty when positive, logit *= penalty otherwise.
  float repeat_penalty = 1.0f;  // 1 disables
  int32_t repeat_last_n = 64;   // 0 disables
  // OpenAI semantics, over the generated tokens only:
  // logit -= count * frequency_penalty + (count > 0) * presence_penalty.
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  uint64_t seed = 0;
  std::vector<std::pair<int32_t, float>> logit_bias;  // token id -> additive bias
};

// Checks ranges; names the offending field. n_vocab bounds the logit_bias ids.
Status validate(const SamplerConfig& config, int32_t n_vocab);

// Small deterministic PRNG (splitmix64-seeded xoshiro256**); fully specified here so results do
// not depend on the standard library's distributions.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { reseed(seed); }
  void reseed(uint64_t seed);
  uint64_t next_u64();
  double next_double();  // uniform in [0, 1), 53 bits

 private:
  uint64_t s_[4] = {0, 0, 0, 0};
};

// Index of the largest value; ties go to the lowest index. Empty input => -1.
int32_t argmax(std::span<const float> logits);

class Sampler {
 public:
  explicit Sampler(SamplerConfig config);

  const SamplerConfig& config() const { return config_; }

  // Prompt tokens enter the repetition-penalty window only (not the OpenAI penalty counts).
  void accept_prompt(std::span<const int32_t> tokens);
  // A generated token: enters the repetition window and the frequency/presence counts.
  void accept(int32_t token);

  // Picks the next token from raw logits [n_vocab]. Does not record it: call accept().
  int32_t sample(std::span<const float> logits);

  // Applies logit bias and the penalties in place (exposed for tests and inspection).
  void apply_penalties(std::span<float> logits) const;

 private:
  SamplerConfig config_;
  Rng rng_;
  std::deque<int32_t> recent_;                   // last repeat_last_n tokens
  std::unordered_map<int32_t, int32_t> counts_;  // generated token -> occurrences
  // Scratch reused across calls: (logit, id) candidates.
  std::vector<float> work_;
  std::vector<std::pair<float, int32_t>> cand_;
  std::vector<double> probs_;
};

}  // namespace enclave::sampling
