// DeepSeek API emulator for gateway tests: a small Beast HTTP server on 127.0.0.1 (port 0) that
// behaves like api.deepseek.com for /chat/completions and /beta/completions (Bearer auth, streaming
// and not, SSE chunks, reasoning_content for deepseek-reasoner, the documented error statuses and
// shapes) and records every byte it receives, so tests can prove no sensitive value reached it. The
// answer echoes the last user message ("You said: <content>"), so the gateway's restore of
// placeholders is observable; streamed answers are split at chosen code-point offsets. Chat
// requests with logprobs: true get one entry per streamed piece of the answer.
#pragma once

#include <atomic>
#include <boost/json.hpp>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace enclave::testing {

struct EmulatorOptions {
  std::string api_key = "sk-emulator-0123456789abcdef0123";
  bool health = true;  // answer GET /health (as an Enclave node does)
  // Chat answers carry logprobs even when the request did not ask (a backend that ignores the
  // field): the gateway must still withhold them from redacted answers.
  bool always_logprobs = false;
  // Each chat or completion request waits this long before it is answered (a slow upstream).
  int answer_delay_ms = 0;
};

class DeepSeekEmulator {
 public:
  explicit DeepSeekEmulator(EmulatorOptions options = {});
  ~DeepSeekEmulator();
  DeepSeekEmulator(const DeepSeekEmulator&) = delete;
  DeepSeekEmulator& operator=(const DeepSeekEmulator&) = delete;

  uint16_t port() const { return port_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& api_key() const { return options_.api_key; }

  // Every byte received on every connection, in arrival order per connection.
  std::string recorded() const;
  int chat_requests() const { return chat_requests_.load(); }
  // Text completions received on /completions or /beta/completions (DeepSeek's FIM endpoint).
  int completion_requests() const { return completion_requests_.load(); }
  int connections() const { return connections_.load(); }

  // The next `count` chat requests get `status` with DeepSeek's error body (400, 401, 402, 422,
  // 429, 500, 503).
  void fail_next(int status, int count = 1);
  // Streamed content is split at these code-point offsets of the answer (sorted); empty: one
  // chunk per word.
  void set_split_points(std::vector<size_t> offsets);
  // Streams also start with an SSE comment (": keep-alive"), as the real API does under load.
  void stop();

 private:
  void accept_loop();
  void serve(int fd);
  // Answers one request on `fd`; false: close the connection.
  bool handle(int fd, const std::string& method, std::string target, const std::string& auth,
              const std::string& body, bool keep_alive);
  bool handle_completion(int fd, const std::string& auth, const std::string& body, bool keep_alive);
  // The shared start of every API request: the key, a queued failure (fail_next), a JSON object
  // body. Returns the body (and the split points in effect); nullopt once the error response went
  // out, with *keep = whether the connection stays open.
  std::optional<boost::json::object> admit(int fd, const std::string& auth, const std::string& body,
                                           bool keep_alive, std::vector<size_t>* splits,
                                           bool* keep);

  EmulatorOptions options_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread acceptor_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::string recorded_;
  std::deque<int> failures_;
  std::vector<size_t> split_points_;
  std::vector<int> client_fds_;
  std::vector<std::thread> workers_;
  std::atomic<int> chat_requests_{0};
  std::atomic<int> completion_requests_{0};
  std::atomic<int> connections_{0};
};

}  // namespace enclave::testing
