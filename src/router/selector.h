// Backend selection: circuit breakers (closed / open / half-open with one probe), health flags
// from active checks, EWMA of time to first token and tokens/s, and least-outstanding-requests
// balancing inside pools. The clock is injected so tests drive time.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "router/config.h"

namespace enclave::router {

using NowMs = std::function<int64_t()>;  // monotonic milliseconds
NowMs steady_now_ms();

class CircuitBreaker {
 public:
  enum class State { kClosed, kOpen, kHalfOpen };
  explicit CircuitBreaker(BreakerConfig config) : config_(config) {}

  // Whether a request may go now. Open -> half-open once open_ms passed; half-open lets exactly
  // one probe through until it reports back.
  bool allow(int64_t now_ms);
  // Whether allow() would say yes (no state change).
  bool would_allow(int64_t now_ms) const;
  void on_success();
  void on_failure(int64_t now_ms);
  State state(int64_t now_ms) const;

 private:
  BreakerConfig config_;
  State state_ = State::kClosed;
  int32_t failures_ = 0;
  int64_t open_until_ms_ = 0;
  bool probe_in_flight_ = false;
};
const char* breaker_state_name(CircuitBreaker::State s);

struct Ewma {
  double value = 0.0;
  bool initialized = false;
  void add(double x, double alpha) {
    value = initialized ? alpha * x + (1 - alpha) * value : x;
    initialized = true;
  }
};

struct BackendSnapshot {
  std::string name;
  int64_t outstanding = 0;
  bool healthy = true;
  CircuitBreaker::State breaker = CircuitBreaker::State::kClosed;
  double ewma_ttft_ms = 0;  // 0: no sample yet
  double ewma_tokens_per_s = 0;
  uint64_t successes = 0, failures = 0;
};

class Selector {
 public:
  Selector(const GatewayConfig& config, NowMs now);

  // The rule's route chain expanded into backends, in the order to try them: pools ordered by
  // outstanding requests (then EWMA TTFT); backends that are unhealthy or whose breaker is open
  // are left out; with allow_egress false every egress (cloud) backend is left out; backends
  // whose EWMA TTFT exceeds the latency budget go last. Each backend appears once.
  std::vector<const BackendConfig*> candidates(const PolicyRule& rule, int64_t budget_ms,
                                               bool allow_egress);
  // Takes a slot on `name` (breaker permitting); false: skip this backend now.
  bool acquire(const std::string& name);
  // Reports the outcome of an acquired attempt. ttft_ms / tokens_per_s < 0: no sample.
  void release(const std::string& name, bool success, double ttft_ms = -1,
               double tokens_per_s = -1);
  void set_healthy(const std::string& name, bool healthy);
  BackendSnapshot snapshot(const std::string& name) const;
  int64_t now_ms() const { return now_(); }

 private:
  struct State {
    explicit State(BreakerConfig c) : breaker(c) {}
    CircuitBreaker breaker;
    int64_t outstanding = 0;
    bool healthy = true;
    Ewma ttft_ms, tokens_per_s;
    uint64_t successes = 0, failures = 0;
  };
  const GatewayConfig& config_;
  NowMs now_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<State>> states_;
};

}  // namespace enclave::router
