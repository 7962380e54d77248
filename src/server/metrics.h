// Prometheus text exposition (format 0.0.4), written by hand: request counts by route and status,
// tokens in/out, time-to-first-token and per-token latency histograms, the routing gateway's own
// time per request, queue depth, busy slots.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "engine/engine.h"

namespace enclave::server {

class Histogram {
 public:
  using Bounds = std::array<double, 12>;  // upper bounds in seconds, ascending
  // Generation latencies (time to first token, between tokens).
  static constexpr Bounds kLatencyBounds = {0.005, 0.01, 0.025, 0.05, 0.1,  0.25,
                                            0.5,   1.0,  2.5,   5.0,  10.0, 30.0};
  // Work measured in microseconds (the gateway's own time per request).
  static constexpr Bounds kOverheadBounds = {10e-6, 25e-6,  50e-6, 100e-6, 250e-6, 500e-6,
                                             1e-3,  2.5e-3, 5e-3,  10e-3,  25e-3,  100e-3};

  explicit Histogram(const Bounds& bounds = kLatencyBounds) : bounds_(bounds) {}
  void observe(double seconds);
  void write(std::string& out, const std::string& name) const;

 private:
  const Bounds& bounds_;                                          // one of the constants above
  std::array<uint64_t, std::tuple_size_v<Bounds> + 1> counts_{};  // last: +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  void record_request(std::string_view route, int status);
  void add_tokens(int64_t prompt_tokens, int64_t completion_tokens);
  void observe_ttft(double seconds);
  void observe_token_latency(double seconds);
  // The routing gateway's own time for one request: from its handler's start until the answer
  // (or the hand-off to the local engine), minus the time spent waiting for upstream backends
  // and retry back-off. What the gateway adds, as LiteLLM's overhead metric reports it.
  void observe_gateway_overhead(double seconds);
  void add_cancelled();
  // Full exposition; `stats` gives the queue/slot gauges (null: no model loaded).
  std::string render(const engine::EngineStats* stats, bool ready) const;

 private:
  mutable std::mutex mu_;
  // Ordered by (route, status); looked up by a string_view route so counting builds no key.
  struct RouteStatusLess {
    using is_transparent = void;
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      int c = std::string_view(a.first).compare(std::string_view(b.first));
      return c < 0 || (c == 0 && a.second < b.second);
    }
  };
  std::map<std::pair<std::string, int>, uint64_t, RouteStatusLess> requests_;
  uint64_t prompt_tokens_ = 0;
  uint64_t completion_tokens_ = 0;
  uint64_t cancelled_ = 0;
  Histogram ttft_;
  Histogram token_latency_;
  Histogram gateway_overhead_{Histogram::kOverheadBounds};
};

}  // namespace enclave::server
