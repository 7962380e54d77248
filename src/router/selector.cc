// Circuit breakers, EWMA statistics and the candidate order for a route chain.
#include "router/selector.h"

#include <algorithm>
#include <chrono>
#include <set>

namespace enclave::router {

NowMs steady_now_ms() {
  return [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
}

const char* breaker_state_name(CircuitBreaker::State s) {
  switch (s) {
    case CircuitBreaker::State::kClosed:
      return "closed";
    case CircuitBreaker::State::kOpen:
      return "open";
    case CircuitBreaker::State::kHalfOpen:
      return "half-open";
  }
  return "?";
}

CircuitBreaker::State CircuitBreaker::state(int64_t now_ms) const {
  if (state_ == State::kOpen && now_ms >= open_until_ms_) return State::kHalfOpen;
  return state_;
}

bool CircuitBreaker::would_allow(int64_t now_ms) const {
  switch (state(now_ms)) {
    case State::kClosed:
      return true;
    case State::kOpen:
      return false;
    case State::kHalfOpen:
      return !probe_in_flight_ || state_ == State::kOpen;
  }
  return false;
}

bool CircuitBreaker::allow(int64_t now_ms) {
  if (state_ == State::kOpen && now_ms >= open_until_ms_) {
    state_ = State::kHalfOpen;
    probe_in_flight_ = false;
  }
  switch (state_) {
    case State::kClosed:
      return true;
    case State::kOpen:
      return false;
    case State::kHalfOpen:
      if (probe_in_flight_) return false;
      probe_in_flight_ = true;
      return true;
  }
  return false;
}

void CircuitBreaker::on_success() {
  state_ = State::kClosed;
  failures_ = 0;
  probe_in_flight_ = false;
}

void CircuitBreaker::on_failure(int64_t now_ms) {
  probe_in_flight_ = false;
  if (state_ == State::kHalfOpen || ++failures_ >= config_.failure_threshold) {
    state_ = State::kOpen;
    open_until_ms_ = now_ms + config_.open_ms;
    failures_ = 0;
  }
}

Selector::Selector(const GatewayConfig& config, NowMs now) : config_(config), now_(std::move(now)) {
  for (const auto& b : config_.backends) {
    states_.emplace(b.name, std::make_unique<State>(config_.breaker));
  }
}

std::vector<const BackendConfig*> Selector::candidates(const PolicyRule& rule, int64_t budget_ms,
                                                       bool allow_egress) {
  std::lock_guard lock(mu_);
  int64_t now = now_();
  std::vector<const BackendConfig*> fast, slow;
  fast.reserve(rule.route.size());
  auto usable = [&](const BackendConfig& b) {
    if (!allow_egress && b.egress()) return false;
    const State& s = *states_.at(b.name);
    return s.healthy && s.breaker.would_allow(now);
  };
  auto add = [&](const BackendConfig& b) {
    // Each backend once (config_.backend() gives one entry per name): one already in `fast` or
    // `slow` was added, one left out was not usable and still is not.
    auto in = [&b](const std::vector<const BackendConfig*>& v) {
      return std::find(v.begin(), v.end(), &b) != v.end();
    };
    if (in(fast) || in(slow) || !usable(b)) return;
    const State& s = *states_.at(b.name);
    bool too_slow = s.ttft_ms.initialized && s.ttft_ms.value > static_cast<double>(budget_ms);
    (too_slow ? slow : fast).push_back(&b);
  };
  for (const std::string& target : rule.route) {
    if (const BackendConfig* b = config_.backend(target)) {
      add(*b);
      continue;
    }
    const PoolConfig* pool = config_.pool(target);
    if (!pool) continue;
    std::vector<const BackendConfig*> members;
    for (const auto& m : pool->members) members.push_back(config_.backend(m));
    std::stable_sort(members.begin(), members.end(), [&](auto* a, auto* b) {
      const State& sa = *states_.at(a->name);
      const State& sb = *states_.at(b->name);
      if (sa.outstanding != sb.outstanding) return sa.outstanding < sb.outstanding;
      return sa.ttft_ms.value < sb.ttft_ms.value;
    });
    for (auto* m : members) add(*m);
  }
  fast.insert(fast.end(), slow.begin(), slow.end());
  return fast;
}

bool Selector::acquire(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = states_.find(name);
  if (it == states_.end()) return false;
  if (!it->second->breaker.allow(now_())) return false;
  ++it->second->outstanding;
  return true;
}

void Selector::release(const std::string& name, bool success, double ttft_ms, double tokens_per_s) {
  std::lock_guard lock(mu_);
  auto it = states_.find(name);
  if (it == states_.end()) return;
  State& s = *it->second;
  --s.outstanding;
  if (success) {
    s.breaker.on_success();
    ++s.successes;
    if (ttft_ms >= 0) s.ttft_ms.add(ttft_ms, config_.ewma_alpha);
    if (tokens_per_s >= 0) s.tokens_per_s.add(tokens_per_s, config_.ewma_alpha);
  } else {
    s.breaker.on_failure(now_());
    ++s.failures;
  }
}

void Selector::set_healthy(const std::string& name, bool healthy) {
  std::lock_guard lock(mu_);
  if (auto it = states_.find(name); it != states_.end()) it->second->healthy = healthy;
}

BackendSnapshot Selector::snapshot(const std::string& name) const {
  std::lock_guard lock(mu_);
  BackendSnapshot out;
  out.name = name;
  auto it = states_.find(name);
  if (it == states_.end()) return out;
  const State& s = *it->second;
  out.outstanding = s.outstanding;
  out.healthy = s.healthy;
  out.breaker = s.breaker.state(now_());
  out.ewma_ttft_ms = s.ttft_ms.value;
  out.ewma_tokens_per_s = s.tokens_per_s.value;
  out.successes = s.successes;
  out.failures = s.failures;
  return out;
}

}  // namespace enclave::router
