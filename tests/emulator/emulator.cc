// DeepSeek API emulator: POSIX sockets (so every received byte is recorded as is) with Beast's
// HTTP/1.1 request parser fed by hand; one thread per connection, keep-alive.
#include "emulator.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstring>
#include <optional>

namespace enclave::testing {

namespace http = boost::beast::http;
namespace json = boost::json;

namespace {

bool send_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

const char* reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 402:
      return "Payment Required";
    case 404:
      return "Not Found";
    case 422:
      return "Unprocessable Entity";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
  }
  return "Error";
}

std::string full_response(int status, const std::string& body, bool keep_alive) {
  return "HTTP/1.1 " + std::to_string(status) + " " + reason(status) +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         (keep_alive ? "\r\nConnection: keep-alive" : "\r\nConnection: close") + "\r\n\r\n" + body;
}

// Error bodies as DeepSeek writes them (reference §6.7).
std::string error_body(int status) {
  std::string message, type = "invalid_request_error";
  switch (status) {
    case 400:
      message = "Invalid Format: the request body is malformed";
      break;
    case 401:
      message = "Authentication Fails, Your api key is invalid";
      type = "authentication_error";
      break;
    case 402:
      message = "Insufficient Balance";
      type = "unknown_error";
      break;
    case 422:
      message = "Invalid Parameters";
      break;
    case 429:
      message = "Rate Limit Reached";
      type = "rate_limit_error";
      break;
    case 503:
      message = "Server Overloaded";
      type = "server_error";
      break;
    default:
      message = "Server Error";
      type = "server_error";
  }
  json::object e{
      {"message", message}, {"type", type}, {"param", nullptr}, {"code", "invalid_request_error"}};
  return json::serialize(json::object{{"error", e}});
}

// Code-point boundaries of a UTF-8 string, as byte offsets.
std::vector<size_t> cp_offsets(const std::string& s) {
  std::vector<size_t> out;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) out.push_back(i);
  }
  out.push_back(s.size());
  return out;
}

std::vector<std::string> split_answer(const std::string& text, const std::vector<size_t>& cps) {
  std::vector<std::string> pieces;
  if (cps.empty()) {  // one chunk per word (the space travels with the word before it)
    size_t start = 0;
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] == ' ') {
        pieces.push_back(text.substr(start, i + 1 - start));
        start = i + 1;
      }
    }
    if (start < text.size()) pieces.push_back(text.substr(start));
    return pieces;
  }
  std::vector<size_t> bounds = cp_offsets(text);
  size_t n_cp = bounds.size() - 1;
  size_t prev = 0;
  for (size_t cp : cps) {
    if (cp == 0 || cp >= n_cp) continue;
    size_t b = bounds[cp];
    if (b > prev) pieces.push_back(text.substr(prev, b - prev));
    prev = b;
  }
  pieces.push_back(text.substr(prev));
  return pieces;
}

std::string chunk_frame(const std::string& data) {
  char len[20];
  std::snprintf(len, sizeof(len), "%zx\r\n", data.size());
  return std::string(len) + data + "\r\n";
}

// Status line and headers of a chunked SSE response.
std::string sse_head(bool keep_alive) {
  return std::string("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8") +
         "\r\nTransfer-Encoding: chunked\r\nCache-Control: no-cache" +
         (keep_alive ? "\r\nConnection: keep-alive" : "\r\nConnection: close") + "\r\n\r\n";
}

// The [DONE] event and the last chunk of a stream.
bool finish_sse(int fd, bool keep_alive) {
  if (!send_all(fd, chunk_frame("data: [DONE]\n\n"))) return false;
  return send_all(fd, "0\r\n\r\n") && keep_alive;
}

}  // namespace

DeepSeekEmulator::DeepSeekEmulator(EmulatorOptions options) : options_(std::move(options)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::listen(listen_fd_, 128);
  socklen_t len = sizeof(addr);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

DeepSeekEmulator::~DeepSeekEmulator() {
  stop();
}

void DeepSeekEmulator::stop() {
  if (stopping_.exchange(true)) return;
  ::shutdown(listen_fd_, SHUT_RDWR);
  ::close(listen_fd_);
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> workers;
  {
    std::lock_guard lock(mu_);
    for (int fd : client_fds_) ::shutdown(fd, SHUT_RDWR);
    workers = std::move(workers_);
  }
  for (auto& t : workers) t.join();
}

std::string DeepSeekEmulator::recorded() const {
  std::lock_guard lock(mu_);
  return recorded_;
}

void DeepSeekEmulator::fail_next(int status, int count) {
  std::lock_guard lock(mu_);
  for (int i = 0; i < count; ++i) failures_.push_back(status);
}

void DeepSeekEmulator::set_split_points(std::vector<size_t> offsets) {
  std::lock_guard lock(mu_);
  split_points_ = std::move(offsets);
}

void DeepSeekEmulator::accept_loop() {
  while (!stopping_) {
    int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) {
      if (stopping_) return;
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ++connections_;
    std::lock_guard lock(mu_);
    client_fds_.push_back(fd);
    workers_.emplace_back([this, fd] { serve(fd); });
  }
}

void DeepSeekEmulator::serve(int fd) {
  std::string pending;
  char buf[8192];
  bool keep_alive = true;
  while (keep_alive && !stopping_) {
    http::request_parser<http::string_body> parser;
    parser.eager(true);
    parser.body_limit(64u << 20);
    boost::beast::error_code ec;
    // Feed the bytes already read, then read more until the request is complete.
    while (!parser.is_done()) {
      if (!pending.empty()) {
        size_t used = parser.put(boost::asio::buffer(pending), ec);
        if (ec == http::error::need_more) ec = {};
        if (ec) break;
        pending.erase(0, used);
        if (parser.is_done()) break;
        if (used > 0) continue;
      }
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        keep_alive = false;
        break;
      }
      {
        std::lock_guard lock(mu_);
        recorded_.append(buf, static_cast<size_t>(n));
      }
      pending.append(buf, static_cast<size_t>(n));
    }
    if (!keep_alive) break;
    if (ec) {
      send_all(fd, full_response(400, error_body(400), false));
      break;
    }
    auto& req = parser.get();
    keep_alive = req.keep_alive();
    if (!handle(fd, std::string(req.method_string()), std::string(req.target()),
                std::string(req[http::field::authorization]), req.body(), keep_alive)) {
      break;
    }
  }
  ::close(fd);
}

bool DeepSeekEmulator::handle(int fd, const std::string& method, std::string target,
                              const std::string& auth, const std::string& body, bool keep_alive) {
  if (target.rfind("/v1/", 0) == 0) target = target.substr(3);
  if (method == "GET" && target == "/health" && options_.health) {
    return send_all(fd, full_response(200, R"({"status":"ok"})", keep_alive));
  }
  if (method == "GET" && target == "/models") {
    return send_all(fd, full_response(200,
                                      R"({"object":"list","data":[{"id":"deepseek-chat","object":)"
                                      R"("model","owned_by":"deepseek"},{"id":"deepseek-reasoner",)"
                                      R"("object":"model","owned_by":"deepseek"}]})",
                                      keep_alive));
  }
  if (method == "POST" && options_.answer_delay_ms > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(options_.answer_delay_ms));
  }
  if (method == "POST" && (target == "/completions" || target == "/beta/completions")) {
    return handle_completion(fd, auth, body, keep_alive);
  }
  if (method != "POST" || target != "/chat/completions") {
    return send_all(fd, full_response(404,
                                      R"({"error":{"message":"Not Found","type":)"
                                      R"("invalid_request_error","code":"not_found"}})",
                                      keep_alive));
  }
  ++chat_requests_;
  std::vector<size_t> splits;
  bool keep = false;
  std::optional<json::object> parsed = admit(fd, auth, body, keep_alive, &splits, &keep);
  if (!parsed) return keep;
  const json::object& o = *parsed;
  const json::value* model = o.if_contains("model");
  const json::value* messages = o.if_contains("messages");
  if (!model || !model->is_string() || !messages || !messages->is_array() ||
      messages->as_array().empty()) {
    return send_all(fd, full_response(422, error_body(422), keep_alive));
  }
  std::string model_id(model->as_string());
  if (model_id != "deepseek-chat" && model_id != "deepseek-reasoner") {
    return send_all(fd, full_response(400, error_body(400), keep_alive));
  }
  std::string last_user;
  for (const json::value& m : messages->as_array()) {
    if (!m.is_object()) return send_all(fd, full_response(422, error_body(422), keep_alive));
    const json::value* role = m.as_object().if_contains("role");
    const json::value* content = m.as_object().if_contains("content");
    if (!role || !role->is_string()) {
      return send_all(fd, full_response(422, error_body(422), keep_alive));
    }
    if (role->as_string() == "user" && content && content->is_string()) {
      last_user = std::string(content->as_string());
    }
  }
  bool reasoner = model_id == "deepseek-reasoner";
  std::string answer = "You said: " + last_user;
  std::string reasoning = "Considering: " + last_user;
  bool stream = false;
  if (const json::value* st = o.if_contains("stream"); st && st->is_bool()) stream = st->as_bool();
  bool usage = false;
  if (const json::value* so = o.if_contains("stream_options"); so && so->is_object()) {
    const json::value* iu = so->as_object().if_contains("include_usage");
    usage = iu && iu->is_bool() && iu->as_bool();
  }
  json::object usage_obj{{"prompt_tokens", 10},
                         {"completion_tokens", 5},
                         {"total_tokens", 15},
                         {"prompt_cache_hit_tokens", 0},
                         {"prompt_cache_miss_tokens", 10}};
  const std::string id = "emu-" + std::to_string(chat_requests_.load());
  // logprobs: true -> one entry per streamed piece of the answer (content only, as DeepSeek does),
  // each with `top_logprobs` alternatives; the piece itself is the most likely at -0.125.
  bool logprobs = options_.always_logprobs;
  if (const json::value* lp = o.if_contains("logprobs"); lp && lp->is_bool() && lp->as_bool()) {
    logprobs = true;
  }
  int64_t top_n = 0;
  if (const json::value* t = o.if_contains("top_logprobs"); t && t->is_int64()) {
    top_n = t->as_int64();
  }
  auto entry = [&](const std::string& piece) {
    json::array bytes;
    for (unsigned char c : piece) bytes.push_back(c);
    json::array top;
    for (int64_t i = 0; i < top_n; ++i) {
      json::object alt{{"token", i == 0 ? piece : "alt" + std::to_string(i)},
                       {"logprob", -0.125 - static_cast<double>(i)},
                       {"bytes", i == 0 ? bytes : json::array{}}};
      top.push_back(std::move(alt));
    }
    return json::object{
        {"token", piece}, {"logprob", -0.125}, {"bytes", bytes}, {"top_logprobs", std::move(top)}};
  };
  auto logprobs_of = [&](const std::vector<std::string>& pieces) -> json::value {
    if (!logprobs) return nullptr;
    json::array content;
    for (const std::string& p : pieces) content.push_back(entry(p));
    return json::object{{"content", std::move(content)}};
  };
  if (!stream) {
    json::object msg{{"role", "assistant"}, {"content", answer}};
    if (reasoner) msg["reasoning_content"] = reasoning;
    json::object r{{"id", id},
                   {"object", "chat.completion"},
                   {"created", 1700000000},
                   {"model", model_id},
                   {"system_fingerprint", "fp_emulator"},
                   {"choices", json::array{json::object{
                                   {"index", 0},
                                   {"message", msg},
                                   {"logprobs", logprobs_of(split_answer(answer, splits))},
                                   {"finish_reason", "stop"}}}},
                   {"usage", usage_obj}};
    return send_all(fd, full_response(200, json::serialize(r), keep_alive));
  }
  if (!send_all(fd, sse_head(keep_alive))) return false;
  auto chunk = [&](json::object delta, json::value finish, json::value lp = nullptr) {
    json::object c{{"id", id},
                   {"object", "chat.completion.chunk"},
                   {"created", 1700000000},
                   {"model", model_id},
                   {"system_fingerprint", "fp_emulator"},
                   {"choices", json::array{json::object{{"index", 0},
                                                        {"delta", std::move(delta)},
                                                        {"logprobs", std::move(lp)},
                                                        {"finish_reason", finish}}}}};
    return send_all(fd, chunk_frame("data: " + json::serialize(c) + "\n\n"));
  };
  if (!send_all(fd, chunk_frame(": keep-alive\n\n"))) return false;
  if (!chunk(json::object{{"role", "assistant"}, {"content", ""}}, nullptr)) return false;
  if (reasoner) {
    for (const std::string& p : split_answer(reasoning, splits)) {
      if (!chunk(json::object{{"content", nullptr}, {"reasoning_content", p}}, nullptr)) {
        return false;
      }
    }
  }
  for (const std::string& p : split_answer(answer, splits)) {
    json::object d{{"content", p}};
    if (reasoner) d["reasoning_content"] = nullptr;
    if (!chunk(std::move(d), nullptr, logprobs_of({p}))) return false;
  }
  if (!chunk(json::object{{"content", ""}}, "stop")) return false;
  if (usage) {
    json::object u{
        {"id", id},          {"object", "chat.completion.chunk"}, {"created", 1700000000},
        {"model", model_id}, {"choices", json::array{}},          {"usage", usage_obj}};
    if (!send_all(fd, chunk_frame("data: " + json::serialize(u) + "\n\n"))) return false;
  }
  return finish_sse(fd, keep_alive);
}

std::optional<json::object> DeepSeekEmulator::admit(int fd, const std::string& auth,
                                                    const std::string& body, bool keep_alive,
                                                    std::vector<size_t>* splits, bool* keep) {
  if (auth != "Bearer " + options_.api_key) {
    *keep = send_all(fd, full_response(401, error_body(401), keep_alive));
    return std::nullopt;
  }
  {
    std::lock_guard lock(mu_);
    if (!failures_.empty()) {
      int status = failures_.front();
      failures_.pop_front();
      *keep = send_all(fd, full_response(status, error_body(status), keep_alive));
      return std::nullopt;
    }
    *splits = split_points_;
  }
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) {
    *keep = send_all(fd, full_response(400, error_body(400), keep_alive));
    return std::nullopt;
  }
  return std::move(v.as_object());
}

// Text completions as DeepSeek's beta FIM endpoint (and OpenAI's legacy /v1/completions) answer
// them: choices[].text, object "text_completion"; streamed as SSE chunks of choices[].text.
bool DeepSeekEmulator::handle_completion(int fd, const std::string& auth, const std::string& body,
                                         bool keep_alive) {
  ++completion_requests_;
  std::vector<size_t> splits;
  bool keep = false;
  std::optional<json::object> parsed = admit(fd, auth, body, keep_alive, &splits, &keep);
  if (!parsed) return keep;
  const json::object& o = *parsed;
  const json::value* model = o.if_contains("model");
  const json::value* prompt = o.if_contains("prompt");
  if (!model || !model->is_string() || !prompt || !prompt->is_string()) {
    return send_all(fd, full_response(422, error_body(422), keep_alive));
  }
  std::string model_id(model->as_string());
  if (model_id != "deepseek-chat") {  // FIM completion is served by deepseek-chat only
    return send_all(fd, full_response(400, error_body(400), keep_alive));
  }
  std::string answer = "You said: " + std::string(prompt->as_string());
  bool stream = false;
  if (const json::value* st = o.if_contains("stream"); st && st->is_bool()) stream = st->as_bool();
  json::object usage_obj{{"prompt_tokens", 10}, {"completion_tokens", 5}, {"total_tokens", 15}};
  const std::string id = "emu-cmpl-" + std::to_string(completion_requests_.load());
  auto choice = [](std::string text, json::value finish) {
    return json::object{
        {"text", std::move(text)}, {"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish}};
  };
  auto envelope = [&](json::array choices) {
    return json::object{{"id", id},
                        {"object", "text_completion"},
                        {"created", 1700000000},
                        {"model", model_id},
                        {"system_fingerprint", "fp_emulator"},
                        {"choices", std::move(choices)}};
  };
  if (!stream) {
    json::object r = envelope(json::array{choice(answer, "stop")});
    r["usage"] = usage_obj;
    return send_all(fd, full_response(200, json::serialize(r), keep_alive));
  }
  if (!send_all(fd, sse_head(keep_alive))) return false;
  auto chunk = [&](std::string text, json::value finish) {
    json::object c = envelope(json::array{choice(std::move(text), finish)});
    return send_all(fd, chunk_frame("data: " + json::serialize(c) + "\n\n"));
  };
  for (const std::string& p : split_answer(answer, splits)) {
    if (!chunk(p, nullptr)) return false;
  }
  if (!chunk("", "stop")) return false;
  return finish_sse(fd, keep_alive);
}

}  // namespace enclave::testing
