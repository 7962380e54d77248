#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace enclave::sampling {
namespace {

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

// Descending by logit; equal logits by ascending id, so every ordering is total and reproducible.
bool better(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
  if (a.first != b.first) return a.first > b.first;
  return a.second < b.second;
}

Error invalid(const std::string& what) {
  return make_error(ErrorCode::kInvalidArgument, "sampling: " + what);
}

}  // namespace

Status validate(const SamplerConfig& c, int32_t n_vocab) {
  if (!std::isfinite(c.temperature) || c.temperature < 0.0f)
    return invalid("temperature must be a finite number >= 0 (0 = greedy), got " +
                   std::to_string(c.temperature));
  if (!(c.top_p >= 0.0f && c.top_p <= 1.0f))
    return invalid("top_p must be in [0, 1], got " + std::to_string(c.top_p));
  if (!(c.min_p >= 0.0f && c.min_p <= 1.0f))
    return invalid("min_p must be in [0, 1], got " + std::to_string(c.min_p));
  if (!(c.repeat_penalty > 0.0f) || !std::isfinite(c.repeat_penalty))
    return invalid("repeat_penalty must be > 0 (1 disables), got " +
                   std::to_string(c.repeat_penalty));
  if (c.repeat_last_n < 0)
    return invalid("repeat_last_n must be >= 0, got " + std::to_string(c.repeat_last_n));
  if (!(c.frequency_penalty >= -2.0f && c.frequency_penalty <= 2.0f))
    return invalid("frequency_penalty must be in [-2, 2], got " +
                   std::to_string(c.frequency_penalty));
  if (!(c.presence_penalty >= -2.0f && c.presence_penalty <= 2.0f))
    return invalid("presence_penalty must be in [-2, 2], got " +
                   std::to_string(c.presence_penalty));
  for (const auto& [id, bias] : c.logit_bias) {
    if (id < 0 || id >= n_vocab)
      return invalid("logit_bias token id " + std::to_string(id) +
                     " is outside the vocabulary [0, " + std::to_string(n_vocab) + ")");
    if (std::isnan(bias)) return invalid("logit_bias for token " + std::to_string(id) + " is NaN");
  }
  return Status::ok();
}

void Rng::reseed(uint64_t seed) {
  uint64_t x = seed;
  for (auto& s : s_) s = splitmix64(x);
}

uint64_t Rng::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::next_double() {
  return static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
}

int32_t argmax(std::span<const float> logits) {
  if (logits.empty()) return -1;
  int32_t best = 0;
  float best_v = logits[0];
  for (size_t i = 1; i < logits.size(); ++i) {
    // Strictly greater keeps the lowest id on ties; NaN never wins.
    if (logits[i] > best_v || (std::isnan(best_v) && !std::isnan(logits[i]))) {
      best_v = logits[i];
      best = static_cast<int32_t>(i);
    }
  }
  return best;
}

Sampler::Sampler(SamplerConfig config) : config_(std::move(config)), rng_(config_.seed) {}

void Sampler::accept_prompt(std::span<const int32_t> tokens) {
  if (config_.repeat_last_n <= 0) return;
  const size_t n = static_cast<size_t>(config_.repeat_last_n);
  const size_t start = tokens.size() > n ? tokens.size() - n : 0;
  for (size_t i = start; i < tokens.size(); ++i) {
    recent_.push_back(tokens[i]);
    if (recent_.size() > n) recent_.pop_front();
  }
}

void Sampler::accept(int32_t token) {
  if (config_.repeat_last_n > 0) {
    recent_.push_back(token);
    if (recent_.size() > static_cast<size_t>(config_.repeat_last_n)) recent_.pop_front();
  }
  if (config_.frequency_penalty != 0.0f || config_.presence_penalty != 0.0f) ++counts_[token];
}

void Sampler::apply_penalties(std::span<float> logits) const {
  const auto n = static_cast<int32_t>(logits.size());
  for (const auto& [id, bias] : config_.logit_bias) {
    if (id >= 0 && id < n) logits[id] += bias;
  }
  if (config_.repeat_penalty != 1.0f && !recent_.empty()) {
    // Each distinct token is penalized once, however often it occurs in the window.
    std::vector<int32_t> seen(recent_.begin(), recent_.end());
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (int32_t id : seen) {
      if (id < 0 || id >= n) continue;
      float& l = logits[id];
      l = l <= 0.0f ? l * config_.repeat_penalty : l / config_.repeat_penalty;
    }
  }
  if (config_.frequency_penalty != 0.0f || config_.presence_penalty != 0.0f) {
    for (const auto& [id, count] : counts_) {
      if (id < 0 || id >= n || count <= 0) continue;
      logits[id] -=
          static_cast<float>(count) * config_.frequency_penalty + config_.presence_penalty;
    }
  }
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (logits.empty()) return -1;
  work_.assign(logits.begin(), logits.end());
  apply_penalties(work_);
  if (config_.temperature <= 0.0f) return argmax(work_);

  // Candidates: every token with a usable logit (-inf from a ban is dropped).
  cand_.clear();
  cand_.reserve(work_.size());
  for (size_t i = 0; i < work_.size(); ++i) {
    const float l = work_[i];
    if (!std::isnan(l) && l != -std::numeric_limits<float>::infinity())
      cand_.emplace_back(l, static_cast<int32_t>(i));
  }
  if (cand_.empty()) return argmax(work_);

  size_t sorted_n = 0;  // cand_[0, sorted_n) are the best sorted_n candidates, in order
  auto sort_prefix = [&](size_t k) {
    k = std::min(k, cand_.size());
    if (k <= sorted_n) return;
    std::partial_sort(cand_.begin(), cand_.begin() + static_cast<std::ptrdiff_t>(k), cand_.end(),
                      better);
    sorted_n = k;
  };

  // top-k
  if (config_.top_k > 0 && static_cast<size_t>(config_.top_k) < cand_.size()) {
    sort_prefix(static_cast<size_t>(config_.top_k));
    cand_.resize(static_cast<size_t>(config_.top_k));
  }

  // top-p: smallest prefix (by probability) whose mass reaches top_p, normalized over all current
  // candidates. Sorting grows geometrically so a peaked distribution never sorts the whole vocab.
  if (config_.top_p < 1.0f) {
    float max_l = cand_[0].first;
    for (const auto& c : cand_) max_l = std::max(max_l, c.first);
    double denom = 0.0;
    for (const auto& c : cand_) denom += std::exp(static_cast<double>(c.first - max_l));
    const double target = static_cast<double>(config_.top_p) * denom;
    size_t m = std::min<size_t>(cand_.size(), 256);
    size_t keep = cand_.size();
    for (;;) {
      sort_prefix(m);
      double cum = 0.0;
      bool found = false;
      for (size_t i = 0; i < sorted_n; ++i) {
        cum += std::exp(static_cast<double>(cand_[i].first - max_l));
        if (cum >= target) {
          keep = i + 1;
          found = true;
          break;
        }
      }
      if (found || sorted_n == cand_.size()) break;
      m = std::min(cand_.size(), m * 4);
    }
    cand_.resize(std::max<size_t>(keep, 1));
    sorted_n = std::min(sorted_n, cand_.size());
  }

  // min-p: keep p >= min_p * p_max, i.e. logit >= max_logit + ln(min_p) (order preserved).
  if (config_.min_p > 0.0f) {
    float max_l = cand_[0].first;
    for (const auto& c : cand_) max_l = std::max(max_l, c.first);
    const float threshold = max_l + std::log(config_.min_p);
    auto end = std::stable_partition(cand_.begin(), cand_.end(),
                                     [&](const auto& c) { return c.first >= threshold; });
    cand_.erase(end, cand_.end());
  }

  // temperature + softmax + draw.
  float max_l = cand_[0].first;
  for (const auto& c : cand_) max_l = std::max(max_l, c.first);
  const double inv_t = 1.0 / static_cast<double>(config_.temperature);
  probs_.resize(cand_.size());
  double sum = 0.0;
  for (size_t i = 0; i < cand_.size(); ++i) {
    probs_[i] = std::exp(static_cast<double>(cand_[i].first - max_l) * inv_t);
    sum += probs_[i];
  }
  const double u = rng_.next_double() * sum;
  double cum = 0.0;
  for (size_t i = 0; i < cand_.size(); ++i) {
    cum += probs_[i];
    if (u < cum) return cand_[i].second;
  }
  return cand_.back().second;  // rounding at the very end of the range
}

}  // namespace enclave::sampling
