// Prometheus text exposition.
#include "server/metrics.h"

#include <cstdio>

namespace enclave::server {
namespace {

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

}  // namespace

void Histogram::observe(double seconds) {
  size_t i = 0;
  while (i < bounds_.size() && seconds > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += seconds;
  ++count_;
}

void Histogram::write(std::string& out, const std::string& name) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += name + "_bucket{le=\"" + num(bounds_[i]) + "\"} " + std::to_string(cumulative) + "\n";
  }
  cumulative += counts_[bounds_.size()];
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(cumulative) + "\n";
  out += name + "_sum " + num(sum_) + "\n";
  out += name + "_count " + std::to_string(count_) + "\n";
}

void Metrics::record_request(std::string_view route, int status) {
  std::lock_guard lock(mu_);
  auto it = requests_.find(std::pair<std::string_view, int>(route, status));
  if (it == requests_.end()) {
    requests_.emplace(std::pair<std::string, int>(route, status), 1);
  } else {
    ++it->second;
  }
}

void Metrics::add_tokens(int64_t prompt_tokens, int64_t completion_tokens) {
  std::lock_guard lock(mu_);
  prompt_tokens_ += static_cast<uint64_t>(prompt_tokens);
  completion_tokens_ += static_cast<uint64_t>(completion_tokens);
}

void Metrics::observe_ttft(double seconds) {
  std::lock_guard lock(mu_);
  ttft_.observe(seconds);
}

void Metrics::observe_token_latency(double seconds) {
  std::lock_guard lock(mu_);
  token_latency_.observe(seconds);
}

void Metrics::observe_gateway_overhead(double seconds) {
  std::lock_guard lock(mu_);
  gateway_overhead_.observe(seconds);
}

void Metrics::add_cancelled() {
  std::lock_guard lock(mu_);
  ++cancelled_;
}

std::string Metrics::render(const engine::EngineStats* stats, bool ready) const {
  std::lock_guard lock(mu_);
  std::string out;
  out.reserve(4096);
  out += "# HELP enclave_http_requests_total HTTP requests by route and status code.\n";
  out += "# TYPE enclave_http_requests_total counter\n";
  for (const auto& [key, n] : requests_) {
    out += "enclave_http_requests_total{route=\"" + key.first + "\",status=\"" +
           std::to_string(key.second) + "\"} " + std::to_string(n) + "\n";
  }
  out += "# HELP enclave_prompt_tokens_total Prompt tokens processed.\n";
  out += "# TYPE enclave_prompt_tokens_total counter\n";
  out += "enclave_prompt_tokens_total " + std::to_string(prompt_tokens_) + "\n";
  out += "# HELP enclave_completion_tokens_total Tokens generated.\n";
  out += "# TYPE enclave_completion_tokens_total counter\n";
  out += "enclave_completion_tokens_total " + std::to_string(completion_tokens_) + "\n";
  out += "# HELP enclave_requests_cancelled_total Generations cancelled (disconnect, timeout).\n";
  out += "# TYPE enclave_requests_cancelled_total counter\n";
  out += "enclave_requests_cancelled_total " + std::to_string(cancelled_) + "\n";
  out += "# HELP enclave_time_to_first_token_seconds Time from submit to the first token.\n";
  out += "# TYPE enclave_time_to_first_token_seconds histogram\n";
  ttft_.write(out, "enclave_time_to_first_token_seconds");
  out += "# HELP enclave_token_latency_seconds Time between consecutive generated tokens.\n";
  out += "# TYPE enclave_token_latency_seconds histogram\n";
  token_latency_.write(out, "enclave_token_latency_seconds");
  out += "# HELP enclave_gateway_overhead_seconds The routing gateway's own time per request ";
  out += "(upstream waits and retry back-off excluded).\n";
  out += "# TYPE enclave_gateway_overhead_seconds histogram\n";
  gateway_overhead_.write(out, "enclave_gateway_overhead_seconds");
  out += "# HELP enclave_queue_depth Requests waiting for a slot.\n";
  out += "# TYPE enclave_queue_depth gauge\n";
  out += "enclave_queue_depth " + std::to_string(stats ? stats->queued : 0) + "\n";
  out += "# HELP enclave_busy_slots Slots generating now.\n";
  out += "# TYPE enclave_busy_slots gauge\n";
  out += "enclave_busy_slots " + std::to_string(stats ? stats->busy_slots : 0) + "\n";
  out += "# HELP enclave_slots Configured parallel slots.\n";
  out += "# TYPE enclave_slots gauge\n";
  out += "enclave_slots " + std::to_string(stats ? stats->n_slots : 0) + "\n";
  out +=
      "# HELP enclave_prompt_tokens_cached_total Prompt tokens reused from a cached prefix "
      "instead of computed (finished requests).\n";
  out += "# TYPE enclave_prompt_tokens_cached_total counter\n";
  out += "enclave_prompt_tokens_cached_total " +
         std::to_string(stats ? stats->cached_prompt_tokens_total : 0) + "\n";
  out += "# HELP enclave_prefix_copies_total Prompt prefixes copied from another KV slot.\n";
  out += "# TYPE enclave_prefix_copies_total counter\n";
  out += "enclave_prefix_copies_total " + std::to_string(stats ? stats->prefix_copies_total : 0) +
         "\n";
  out += "# HELP enclave_ready 1 when a model is loaded.\n";
  out += "# TYPE enclave_ready gauge\n";
  out += std::string("enclave_ready ") + (ready ? "1" : "0") + "\n";
  return out;
}

}  // namespace enclave::server
