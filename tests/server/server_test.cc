// In-process server on port 0 with a fake backend: routing, auth, keep-alive, SSE framing, limits,
// overload, disconnect cancellation and graceful shutdown.
#include "server/server.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/json.hpp>
#include <thread>

#include "../common/eventually.h"
#include "fake_backend.h"
#include "test_client.h"

namespace enclave::server {
namespace {

using testing::FakeBackend;
using testing::Reply;
namespace json = boost::json;

constexpr const char* kAdminKey = "sk-enclave-test-admin-key-0123456789";
constexpr const char* kChatKey = "sk-enclave-test-chat-key-0123456789";
constexpr const char* kEmbedKey = "sk-enclave-test-embed-key-012345678";

// Waits (bounded) for a condition the server reaches asynchronously.
template <class F>
bool eventually(F f) {
  return enclave::testing::eventually(f, std::chrono::seconds(5), std::chrono::milliseconds(10));
}

class ServerTest : public ::testing::Test {
 protected:
  void start(ServerOptions opts = {}, FakeBackend::Options fopts = {}, bool with_backend = true) {
    auto keys = std::make_shared<KeyStore>(KeyStore::with_secret(std::string(32, 's')));
    ASSERT_TRUE(keys->add_key("admin", kAdminKey, 7).is_ok());
    ASSERT_TRUE(keys->add_key("chat", kChatKey, static_cast<unsigned>(Scope::kChat)).is_ok());
    ASSERT_TRUE(
        keys->add_key("embed", kEmbedKey, static_cast<unsigned>(Scope::kEmbeddings)).is_ok());
    auto s = Server::create(opts, keys);
    ASSERT_TRUE(s.has_value()) << s.error().message;
    server_ = std::move(*s);
    ASSERT_TRUE(server_->start().is_ok());
    backend_ = std::make_shared<FakeBackend>(fopts);
    if (with_backend) server_->set_backend(backend_);
  }
  void TearDown() override {
    if (server_) server_->shutdown(std::chrono::milliseconds(2000));
  }
  Reply post(const std::string& path, const std::string& body, const std::string& key = kChatKey) {
    return testing::request(server_->port(), "POST", path, body, key);
  }
  Reply get(const std::string& path, const std::string& key = "") {
    return testing::request(server_->port(), "GET", path, "", key);
  }

  std::unique_ptr<Server> server_;
  std::shared_ptr<FakeBackend> backend_;
};

json::object error_of(const Reply& r) {
  json::value v = json::parse(r.body);
  return v.as_object().at("error").as_object();
}

// Splits an SSE body into its data payloads, checking the exact "data: ...\n\n" framing.
std::vector<std::string> sse_events(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    EXPECT_EQ(body.compare(pos, 6, "data: "), 0) << "at " << pos << ": " << body.substr(pos, 40);
    size_t end = body.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos);
    if (end == std::string::npos) break;
    out.push_back(body.substr(pos + 6, end - pos - 6));
    pos = end + 2;
  }
  return out;
}

TEST_F(ServerTest, HealthAndReadyArePublic) {
  start({}, {}, false);
  EXPECT_EQ(get("/health").status, 200);
  Reply r = get("/ready");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.headers["retry-after"], "1");
  server_->set_backend(backend_);
  EXPECT_EQ(get("/ready").status, 200);
  EXPECT_EQ(get("/v1/health").status, 200);
}

TEST_F(ServerTest, ChatBeforeModelLoadedIs503) {
  start({}, {}, false);
  Reply r = post("/v1/chat/completions",
                 R"({"model":"fake-model","messages":[{"role":"user","content":"hi"}]})");
  EXPECT_EQ(r.status, 503);
}

TEST_F(ServerTest, AuthMissingInvalidAndScope) {
  start();
  const std::string body = R"({"model":"fake-model","messages":[{"role":"user","content":"hi"}]})";
  Reply none = post("/v1/chat/completions", body, "");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(std::string(error_of(none).at("type").as_string()), "authentication_error");
  Reply bad = post("/v1/chat/completions", body, "sk-enclave-wrong-wrong-wrong-wrong");
  EXPECT_EQ(bad.status, 401);
  EXPECT_EQ(std::string(error_of(bad).at("code").as_string()), "invalid_api_key");
  EXPECT_EQ(bad.body.find("wrong-wrong"), std::string::npos);  // never echo the key
  Reply scope = post("/v1/chat/completions", body, kEmbedKey);
  EXPECT_EQ(scope.status, 403);
  EXPECT_EQ(get("/metrics", kChatKey).status, 403);
  EXPECT_EQ(get("/metrics").status, 401);
  EXPECT_EQ(get("/v1/models").status, 401);
  EXPECT_EQ(get("/v1/models", kEmbedKey).status, 200);
}

TEST_F(ServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  start();
  testing::Connection c(server_->port());
  for (int i = 0; i < 3; ++i) {
    Reply r = c.request(
        "POST", "/v1/chat/completions",
        R"({"model":"fake-model","max_tokens":3,"messages":[{"role":"user","content":"hi"}]})",
        kChatKey);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.headers["connection"], "keep-alive");
  }
  Reply m = c.request("GET", "/models", "", kChatKey);  // without the /v1 prefix
  EXPECT_EQ(m.status, 200);
  json::value v = json::parse(m.body);
  EXPECT_EQ(std::string(v.at("data").as_array()[0].at("id").as_string()), "fake-model");
}

// Requests sent back to back in one write: the second is already buffered when the first is
// answered and is parsed from the buffer without another read.
TEST_F(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
  start();
  testing::Connection c(server_->port());
  const std::string chat =
      R"({"model":"fake-model","max_tokens":2,"messages":[{"role":"user","content":"hi"}]})";
  std::string wire = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  wire += "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ";
  wire += kChatKey;
  wire += "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(chat.size()) +
          "\r\n\r\n" + chat;
  wire += "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n";  // no key: 401
  boost::asio::write(c.socket(), boost::asio::buffer(wire));
  boost::beast::flat_buffer buffer;
  std::vector<Reply> replies;
  for (int i = 0; i < 3; ++i) {
    boost::beast::http::response<boost::beast::http::string_body> res;
    boost::beast::http::read(c.socket(), buffer, res);
    replies.push_back(testing::to_reply(res));
  }
  EXPECT_EQ(replies[0].status, 200);
  EXPECT_NE(replies[0].body.find("ok"), std::string::npos);
  ASSERT_EQ(replies[1].status, 200) << replies[1].body;
  EXPECT_EQ(std::string(json::parse(replies[1].body).at("object").as_string()), "chat.completion");
  EXPECT_EQ(replies[2].status, 401);
}

// Waits up to `limit_s` for the server to close `socket`; true when it did (EOF or reset).
bool closed_by_server(boost::asio::ip::tcp::socket& socket, int limit_s) {
  timeval tv{limit_s, 0};
  int fd = socket.native_handle();
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char byte;
  ssize_t n = ::recv(fd, &byte, 1, 0);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

TEST_F(ServerTest, IdleKeepAliveConnectionIsClosedAfterIdleTimeout) {
  ServerOptions opts;
  opts.idle_timeout_s = 1;
  start(opts);
  testing::Connection c(server_->port());
  ASSERT_EQ(c.request("GET", "/health").status, 200);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(closed_by_server(c.socket(), 10));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(900));
}

TEST_F(ServerTest, ConnectionWithoutRequestIsClosedAfterIdleTimeout) {
  ServerOptions opts;
  opts.idle_timeout_s = 1;
  start(opts);
  testing::Connection c(server_->port());
  EXPECT_TRUE(closed_by_server(c.socket(), 10));
}

TEST_F(ServerTest, RequestTimeLimitAnswers408) {
  ServerOptions opts;
  opts.request_timeout_s = 1;
  FakeBackend::Options slow;
  slow.token_delay = std::chrono::milliseconds(200);
  start(opts, slow);
  testing::Connection c(server_->port());
  Reply r = c.request(
      "POST", "/v1/chat/completions",
      R"({"model":"fake-model","max_tokens":100,"messages":[{"role":"user","content":"hi"}]})",
      kChatKey);
  EXPECT_EQ(r.status, 408) << r.body;
  // The connection stays usable: the next request gets its own time limit.
  EXPECT_EQ(c.request("GET", "/health").status, 200);
}

TEST_F(ServerTest, ChatCompletionFullResponse) {
  start();
  Reply r =
      post("/chat/completions",
           R"({"model":"fake-alias","max_tokens":4,"seed":7,"temperature":0,)"
           R"("messages":[{"role":"system","content":"s"},{"role":"user","content":"hey"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  json::object o = json::parse(r.body).as_object();
  EXPECT_EQ(std::string(o.at("object").as_string()), "chat.completion");
  const auto& choice = o.at("choices").as_array()[0].as_object();
  EXPECT_EQ(std::string(choice.at("message").at("content").as_string()),
            FakeBackend::expected_text(4));
  EXPECT_EQ(std::string(choice.at("finish_reason").as_string()), "length");
  EXPECT_EQ(o.at("usage").at("prompt_tokens").as_int64(), 3 + 1 + 3 + 3);
  EXPECT_EQ(o.at("usage").at("completion_tokens").as_int64(), 4);
  EXPECT_EQ(o.at("usage").at("total_tokens").as_int64(), 14);
  engine::GenerationRequest last = backend_->last_request();
  EXPECT_EQ(last.sampling.seed, 7u);
  EXPECT_EQ(last.sampling.temperature, 0.0f);
  EXPECT_EQ(last.max_tokens, 4);
}

TEST_F(ServerTest, StopStringEndsWithStop) {
  start();
  Reply r =
      post("/v1/chat/completions",
           R"({"model":"fake-model","stop":"w2","messages":[{"role":"user","content":"x"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  json::object o = json::parse(r.body).as_object();
  const auto& choice = o.at("choices").as_array()[0].as_object();
  EXPECT_EQ(std::string(choice.at("finish_reason").as_string()), "stop");
  EXPECT_EQ(std::string(choice.at("message").at("content").as_string()), "w0 w1 ");
}

TEST_F(ServerTest, SseFramingRoleDeltasFinishUsageDone) {
  start();
  Reply r = post(
      "/v1/chat/completions",
      R"({"model":"fake-model","max_tokens":3,"stream":true,)"
      R"("stream_options":{"include_usage":true},"messages":[{"role":"user","content":"a"}]})");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "text/event-stream");
  std::vector<std::string> ev = sse_events(r.body);
  ASSERT_GE(ev.size(), 7u) << r.body;
  EXPECT_EQ(ev.back(), "[DONE]");
  json::object first = json::parse(ev[0]).as_object();
  EXPECT_EQ(std::string(first.at("object").as_string()), "chat.completion.chunk");
  EXPECT_EQ(std::string(first.at("choices").as_array()[0].at("delta").at("role").as_string()),
            "assistant");
  std::string text;
  for (size_t i = 1; i + 3 < ev.size(); ++i) {
    json::object c = json::parse(ev[i]).as_object();
    const auto& ch = c.at("choices").as_array()[0];
    EXPECT_TRUE(ch.at("finish_reason").is_null());
    text += std::string(ch.at("delta").at("content").as_string());
  }
  EXPECT_EQ(text, FakeBackend::expected_text(3));
  json::object fin = json::parse(ev[ev.size() - 3]).as_object();
  EXPECT_EQ(std::string(fin.at("choices").as_array()[0].at("finish_reason").as_string()), "length");
  json::object usage = json::parse(ev[ev.size() - 2]).as_object();
  EXPECT_TRUE(usage.at("choices").as_array().empty());
  EXPECT_EQ(usage.at("usage").at("completion_tokens").as_int64(), 3);
  // Every chunk of one stream shares the id.
  EXPECT_EQ(first.at("id"), fin.at("id"));
}

TEST_F(ServerTest, ReasoningContentSeparatedInFullAndStream) {
  FakeBackend::Options fo;
  fo.reasoning = true;
  start({}, fo);
  const std::string req =
      R"({"model":"fake-model","max_tokens":5,"messages":[{"role":"user","content":"q"}])";
  Reply r = post("/v1/chat/completions", req + "}");
  ASSERT_EQ(r.status, 200) << r.body;
  json::value msg = json::parse(r.body).at("choices").as_array()[0].at("message");
  EXPECT_EQ(std::string(msg.at("reasoning_content").as_string()), "r0");
  EXPECT_EQ(std::string(msg.at("content").as_string()), "w0 w1 ");
  Reply s = post("/v1/chat/completions", req + R"(,"stream":true})");
  std::string reasoning, content;
  for (const std::string& e : sse_events(s.body)) {
    if (e == "[DONE]") continue;
    json::value d = json::parse(e).at("choices").as_array()[0].at("delta");
    if (d.as_object().contains("reasoning_content"))
      reasoning += d.at("reasoning_content").as_string();
    if (d.as_object().contains("content")) content += d.at("content").as_string();
  }
  EXPECT_EQ(reasoning, "r0");
  EXPECT_EQ(content, "w0 w1 ");
}

TEST_F(ServerTest, TextCompletionsStringAndTokens) {
  start();
  Reply r = post("/v1/completions", R"({"model":"fake-model","prompt":"abc","max_tokens":2})");
  ASSERT_EQ(r.status, 200) << r.body;
  json::object o = json::parse(r.body).as_object();
  EXPECT_EQ(std::string(o.at("object").as_string()), "text_completion");
  EXPECT_EQ(std::string(o.at("choices").as_array()[0].at("text").as_string()), "w0 w1 ");
  EXPECT_EQ(o.at("usage").at("prompt_tokens").as_int64(), 3);
  Reply t = post("/v1/completions", R"({"model":"fake-model","prompt":[5,6,7,8],"max_tokens":1})");
  ASSERT_EQ(t.status, 200) << t.body;
  EXPECT_EQ(json::parse(t.body).at("usage").at("prompt_tokens").as_int64(), 4);
  Reply bad = post("/v1/completions", R"({"model":"fake-model","prompt":[5,999]})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(std::string(error_of(bad).at("param").as_string()), "prompt[1]");
  Reply s = post("/v1/completions",
                 R"({"model":"fake-model","prompt":"x","max_tokens":2,"stream":true})");
  std::vector<std::string> ev = sse_events(s.body);
  ASSERT_EQ(ev.size(), 4u) << s.body;
  EXPECT_EQ(ev.back(), "[DONE]");
}

TEST_F(ServerTest, Embeddings) {
  start();
  Reply r = post("/v1/embeddings", R"({"model":"fake-model","input":["ab","cd"]})", kEmbedKey);
  ASSERT_EQ(r.status, 200) << r.body;
  json::object o = json::parse(r.body).as_object();
  ASSERT_EQ(o.at("data").as_array().size(), 2u);
  EXPECT_EQ(o.at("data").as_array()[1].at("embedding").as_array().size(), 8u);
  EXPECT_EQ(o.at("usage").at("prompt_tokens").as_int64(), 4);
  Reply b = post("/v1/embeddings",
                 R"({"model":"fake-model","input":"ab","encoding_format":"base64"})", kEmbedKey);
  ASSERT_EQ(b.status, 200);
  // 8 floats = 32 bytes = 44 base64 characters.
  EXPECT_EQ(json::parse(b.body).at("data").as_array()[0].at("embedding").as_string().size(), 44u);
  EXPECT_EQ(post("/v1/embeddings", R"({"model":"fake-model","input":"ab"})", kChatKey).status, 403);
}

TEST_F(ServerTest, ErrorsAreOpenAiObjects) {
  start();
  Reply bad_json = post("/v1/chat/completions", "{not json");
  EXPECT_EQ(bad_json.status, 400);
  EXPECT_EQ(std::string(error_of(bad_json).at("type").as_string()), "invalid_request_error");
  Reply unknown = post("/v1/chat/completions",
                       R"({"model":"nope","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(std::string(error_of(unknown).at("code").as_string()), "model_not_found");
  EXPECT_EQ(std::string(error_of(unknown).at("param").as_string()), "model");
  Reply n2 = post("/v1/chat/completions",
                  R"({"model":"fake-model","n":2,"messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(n2.status, 400);
  EXPECT_EQ(std::string(error_of(n2).at("param").as_string()), "n");
  Reply fmt = post(
      "/v1/chat/completions",
      R"({"model":"fake-model","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(fmt.status, 400);
  EXPECT_NE(std::string(error_of(fmt).at("message").as_string()).find("not supported"),
            std::string::npos);
  std::string long_text(300, 'a');
  Reply ctx = post(
      "/v1/chat/completions",
      R"({"model":"fake-model","messages":[{"role":"user","content":")" + long_text + R"("}]})");
  EXPECT_EQ(ctx.status, 400);
  std::string msg(error_of(ctx).at("message").as_string());
  EXPECT_NE(msg.find("256"), std::string::npos) << msg;
  EXPECT_NE(msg.find("303"), std::string::npos) << msg;
  Reply utf8 = post(
      "/v1/chat/completions",
      "{\"model\":\"fake-model\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}");
  EXPECT_EQ(utf8.status, 400);
  EXPECT_NE(utf8.body.find("UTF-8"), std::string::npos);
  EXPECT_EQ(get("/v1/nothing", kChatKey).status, 404);
  EXPECT_EQ(get("/v1/chat/completions", kChatKey).status, 405);
  EXPECT_FALSE(unknown.headers["x-request-id"].empty());
}

TEST_F(ServerTest, BodyTooLargeIs413) {
  ServerOptions o;
  o.max_body_bytes = 1024;
  start(o);
  Reply r = post("/v1/chat/completions", std::string(4096, ' '));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(std::string(error_of(r).at("code").as_string()), "request_too_large");
  // A body far past the socket buffers is still being sent when the server refuses it. The
  // server must drain it rather than reset the connection, or the client never sees the 413
  // (a reset makes the client's write or read fail, which throws here).
  for (int i = 0; i < 3; ++i) {
    Reply big = post("/v1/chat/completions", std::string(size_t{8} << 20, ' '));
    EXPECT_EQ(big.status, 413);
  }
}

TEST_F(ServerTest, QueueFullIs429WithRetryAfter) {
  FakeBackend::Options fo;
  fo.n_parallel = 1;
  fo.max_queue = 0;
  fo.token_delay = std::chrono::milliseconds(5);
  start({}, fo);
  // One long stream occupies the only slot.
  testing::Connection c(server_->port());
  auto req = testing::make_request(
      "POST", "/v1/chat/completions",
      R"({"model":"fake-model","max_tokens":100000,"stream":true,"messages":[{"role":"user","content":"x"}]})",
      kChatKey);
  testing::http::write(c.socket(), req);
  ASSERT_TRUE(eventually([&] { return backend_->stats().busy_slots == 1; }));
  Reply r = post("/v1/chat/completions",
                 R"({"model":"fake-model","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.headers["retry-after"], "1");
  EXPECT_EQ(std::string(error_of(r).at("type").as_string()), "rate_limit_error");
}

TEST_F(ServerTest, ClientDisconnectCancelsGeneration) {
  FakeBackend::Options fo;
  fo.token_delay = std::chrono::milliseconds(5);
  start({}, fo);
  for (bool stream : {true, false}) {
    int before = backend_->cancelled();
    {
      testing::Connection c(server_->port());
      auto req = testing::make_request(
          "POST", "/v1/chat/completions",
          std::string(R"({"model":"fake-model","max_tokens":100000,"stream":)") +
              (stream ? "true" : "false") + R"(,"messages":[{"role":"user","content":"x"}]})",
          kChatKey);
      testing::http::write(c.socket(), req);
      ASSERT_TRUE(eventually([&] { return backend_->stats().busy_slots == 1; }));
      if (stream) {
        char buf[256];
        size_t n = c.socket().read_some(testing::net::buffer(buf));  // first bytes arrived
        EXPECT_GT(n, 0u);
      }
    }  // socket closed here
    EXPECT_TRUE(eventually([&] { return backend_->cancelled() == before + 1; }));
    EXPECT_TRUE(eventually([&] { return backend_->stats().busy_slots == 0; }));
  }
}

TEST_F(ServerTest, GracefulShutdownFinishesInFlightStream) {
  FakeBackend::Options fo;
  fo.token_delay = std::chrono::milliseconds(5);
  start({}, fo);
  uint16_t port = server_->port();
  Reply streamed;
  std::thread client([&] {
    streamed = post(
        "/v1/chat/completions",
        R"({"model":"fake-model","max_tokens":40,"stream":true,"messages":[{"role":"user","content":"x"}]})");
  });
  ASSERT_TRUE(eventually([&] { return backend_->stats().busy_slots == 1; }));
  server_->shutdown(std::chrono::milliseconds(5000));
  client.join();
  EXPECT_EQ(streamed.status, 200);
  std::vector<std::string> ev = sse_events(streamed.body);
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.back(), "[DONE]");
  EXPECT_EQ(backend_->cancelled(), 0);
  // No longer accepting.
  EXPECT_THROW(testing::Connection c(port), boost::system::system_error);
}

TEST_F(ServerTest, ShutdownDeadlineCancelsLongGeneration) {
  FakeBackend::Options fo;
  fo.token_delay = std::chrono::milliseconds(5);
  start({}, fo);
  Reply streamed;
  std::thread client([&] {
    try {
      streamed = post(
          "/v1/chat/completions",
          R"({"model":"fake-model","max_tokens":1000000,"stream":true,"messages":[{"role":"user","content":"x"}]})");
    } catch (const std::exception&) {
    }
  });
  ASSERT_TRUE(eventually([&] { return backend_->stats().busy_slots == 1; }));
  server_->shutdown(std::chrono::milliseconds(100));
  client.join();
  EXPECT_EQ(backend_->cancelled(), 1);
  // The client got a terminated stream: an error event, then [DONE].
  std::vector<std::string> ev = sse_events(streamed.body);
  ASSERT_GE(ev.size(), 2u);
  EXPECT_EQ(ev.back(), "[DONE]");
  EXPECT_NE(ev[ev.size() - 2].find("shutting down"), std::string::npos);
}

TEST_F(ServerTest, MetricsExposition) {
  ServerOptions o;
  FakeBackend::Options fo;
  fo.cached_prompt_tokens_total = 17;
  fo.prefix_copies_total = 2;
  start(o, fo);
  ASSERT_EQ(get("/health").status, 200);
  ASSERT_EQ(
      post("/v1/chat/completions",
           R"({"model":"fake-model","max_tokens":3,"messages":[{"role":"user","content":"x"}]})")
          .status,
      200);
  Reply m = get("/metrics", kAdminKey);
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(m.headers["content-type"].rfind("text/plain", 0), 0u);
  EXPECT_NE(m.body.find("enclave_http_requests_total{route=\"health\",status=\"200\"} 1"),
            std::string::npos)
      << m.body;
  EXPECT_NE(m.body.find("enclave_completion_tokens_total 3"), std::string::npos);
  EXPECT_NE(m.body.find("enclave_time_to_first_token_seconds_count 1"), std::string::npos);
  EXPECT_NE(m.body.find("enclave_token_latency_seconds_count 2"), std::string::npos);
  EXPECT_NE(m.body.find("enclave_busy_slots 0"), std::string::npos);
  EXPECT_NE(m.body.find("enclave_slots 4"), std::string::npos);
  EXPECT_NE(m.body.find("enclave_prompt_tokens_cached_total 17"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("enclave_prefix_copies_total 2"), std::string::npos) << m.body;
}

TEST_F(ServerTest, PublicMetricsOption) {
  ServerOptions o;
  o.metrics_public = true;
  start(o);
  EXPECT_EQ(get("/metrics").status, 200);
}

// ---- logprobs ----

std::string str(const json::value& v) {
  return std::string(v.as_string());
}

// The raw bytes of a logprobs entry's "bytes" array.
std::string bytes_of(const json::value& entry) {
  std::string out;
  for (const json::value& b : entry.at("bytes").as_array()) {
    out += static_cast<char>(static_cast<unsigned char>(b.as_int64()));
  }
  return out;
}

TEST_F(ServerTest, ChatLogprobsFullResponse) {
  start();
  Reply r = post("/v1/chat/completions",
                 R"({"model":"fake-model","max_tokens":3,"logprobs":true,"top_logprobs":3,)"
                 R"("messages":[{"role":"user","content":"x"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  engine::GenerationRequest last = backend_->last_request();
  EXPECT_TRUE(last.logprobs);
  EXPECT_EQ(last.top_logprobs, 3);
  const json::value choice = json::parse(r.body).at("choices").as_array()[0];
  const json::array& content = choice.at("logprobs").at("content").as_array();
  ASSERT_EQ(content.size(), 3u);
  for (size_t i = 0; i < content.size(); ++i) {
    const std::string word = "w" + std::to_string(i) + " ";
    EXPECT_EQ(str(content[i].at("token")), word);
    EXPECT_EQ(bytes_of(content[i]), word);
    EXPECT_DOUBLE_EQ(content[i].at("logprob").as_double(), FakeBackend::kSampledLogprob);
    const json::array& top = content[i].at("top_logprobs").as_array();
    ASSERT_EQ(top.size(), 3u);
    EXPECT_EQ(str(top[0].at("token")), word);
    EXPECT_EQ(str(top[1].at("token")), "alt1");
    EXPECT_EQ(bytes_of(top[2]), "alt2");
    EXPECT_DOUBLE_EQ(top[2].at("logprob").as_double(), FakeBackend::kSampledLogprob - 2);
  }
}

TEST_F(ServerTest, ChatWithoutLogprobsHasNullAndEngineSkipsThem) {
  start();
  Reply r = post("/v1/chat/completions", R"({"model":"fake-model","max_tokens":2,"logprobs":false,)"
                                         R"("messages":[{"role":"user","content":"x"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(json::parse(r.body).at("choices").as_array()[0].at("logprobs").is_null());
  EXPECT_FALSE(backend_->last_request().logprobs);
}

TEST_F(ServerTest, LogprobsValidationErrorsAre400WithParam) {
  start();
  const std::string msgs = R"("messages":[{"role":"user","content":"x"}]})";
  Reply no_flag = post("/v1/chat/completions", R"({"model":"fake-model","top_logprobs":2,)" + msgs);
  EXPECT_EQ(no_flag.status, 400);
  EXPECT_EQ(str(error_of(no_flag).at("param")), "top_logprobs");
  Reply too_many = post("/v1/chat/completions",
                        R"({"model":"fake-model","logprobs":true,"top_logprobs":21,)" + msgs);
  EXPECT_EQ(too_many.status, 400);
  EXPECT_EQ(str(error_of(too_many).at("param")), "top_logprobs");
  Reply text_many = post("/v1/completions", R"({"model":"fake-model","prompt":"x","logprobs":6})");
  EXPECT_EQ(text_many.status, 400);
  EXPECT_EQ(str(error_of(text_many).at("param")), "logprobs");
  EXPECT_EQ(backend_->submitted(), 0);
}

// Collects a chat stream's text and logprob entries; checks that no chunk carries text whose
// entries have not gone out yet.
struct ChatStream {
  std::string content, reasoning, entry_bytes;
  std::vector<json::value> entries;
  std::vector<json::value> chunks;  // the choices[0] of every chunk
};

ChatStream read_chat_stream(const std::string& body) {
  ChatStream s;
  for (const std::string& e : sse_events(body)) {
    if (e == "[DONE]") continue;
    json::value v = json::parse(e);
    if (v.at("choices").as_array().empty()) continue;
    const json::value& ch = v.at("choices").as_array()[0];
    s.chunks.push_back(ch);
    const json::object& d = ch.at("delta").as_object();
    if (d.contains("content")) s.content += str(d.at("content"));
    if (d.contains("reasoning_content")) s.reasoning += str(d.at("reasoning_content"));
    if (!ch.at("logprobs").is_null()) {
      for (const json::value& entry : ch.at("logprobs").at("content").as_array()) {
        s.entries.push_back(entry);
        s.entry_bytes += bytes_of(entry);
      }
    }
    // Tokens' text appears with or after their entries, never before.
    EXPECT_LE((s.reasoning + s.content).size(), s.entry_bytes.size()) << e;
  }
  return s;
}

TEST_F(ServerTest, ChatLogprobsStreamHoldsSplitUtf8Entries) {
  FakeBackend::Options fo;
  fo.split_utf8 = true;
  start({}, fo);
  Reply r = post("/v1/chat/completions",
                 R"({"model":"fake-model","max_tokens":4,"stream":true,"logprobs":true,)"
                 R"("top_logprobs":1,"messages":[{"role":"user","content":"x"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  ChatStream s = read_chat_stream(r.body);
  EXPECT_EQ(s.content,
            "\xE2\x82\xAC"
            "w0 w1 ");
  ASSERT_EQ(s.entries.size(), 4u);
  EXPECT_EQ(s.entry_bytes, s.content);
  // A token holding part of a character: lossy text, exact bytes.
  EXPECT_EQ(str(s.entries[0].at("token")), "\xEF\xBF\xBD");
  EXPECT_EQ(bytes_of(s.entries[0]), "\xE2\x82");
  EXPECT_EQ(bytes_of(s.entries[1]), "\xAC");
  // Both halves of the euro sign go out with the chunk that carries it.
  bool euro_chunk_seen = false;
  for (const json::value& ch : s.chunks) {
    const json::object& d = ch.at("delta").as_object();
    if (d.contains("content") && str(d.at("content")) == "\xE2\x82\xAC") {
      euro_chunk_seen = true;
      EXPECT_EQ(ch.at("logprobs").at("content").as_array().size(), 2u);
    }
  }
  EXPECT_TRUE(euro_chunk_seen);
  // The role chunk and the finish chunk (nothing left to flush) carry none.
  EXPECT_TRUE(s.chunks.front().at("logprobs").is_null());
  EXPECT_TRUE(s.chunks.back().at("logprobs").is_null());
}

TEST_F(ServerTest, ChatLogprobsOfStopStringTokensGoOutWithTheFinishChunk) {
  start();
  const std::string req =
      R"({"model":"fake-model","stop":"w2","logprobs":true,"messages":[{"role":"user","content":"x"}])";
  Reply full = post("/v1/chat/completions", req + "}");
  ASSERT_EQ(full.status, 200) << full.body;
  const json::value choice = json::parse(full.body).at("choices").as_array()[0];
  const json::array& content = choice.at("logprobs").at("content").as_array();
  ASSERT_EQ(content.size(), 3u);  // the stop string's token too: it was generated
  EXPECT_TRUE(content[0].at("top_logprobs").as_array().empty());
  Reply r = post("/v1/chat/completions", req + R"(,"stream":true})");
  ASSERT_EQ(r.status, 200) << r.body;
  ChatStream s = read_chat_stream(r.body);
  EXPECT_EQ(s.content, "w0 w1 ");
  ASSERT_EQ(s.entries.size(), 3u);
  EXPECT_EQ(str(s.entries[2].at("token")), "w2 ");
  const json::value& fin = s.chunks.back();
  EXPECT_EQ(str(fin.at("finish_reason")), "stop");
  ASSERT_FALSE(fin.at("logprobs").is_null());
  EXPECT_EQ(fin.at("logprobs").at("content").as_array().size(), 1u);
}

TEST_F(ServerTest, ChatLogprobsCoverReasoningTokensInOrder) {
  FakeBackend::Options fo;
  fo.reasoning = true;
  start({}, fo);
  const std::string req =
      R"({"model":"fake-model","max_tokens":5,"logprobs":true,"messages":[{"role":"user","content":"q"}])";
  Reply full = post("/v1/chat/completions", req + "}");
  ASSERT_EQ(full.status, 200) << full.body;
  const json::array content =
      json::parse(full.body).at("choices").as_array()[0].at("logprobs").at("content").as_array();
  std::vector<std::string> tokens;
  for (const json::value& e : content) tokens.push_back(str(e.at("token")));
  EXPECT_EQ(tokens, (std::vector<std::string>{"<think>", "r0", "</think>", "w0 ", "w1 "}));
  Reply r = post("/v1/chat/completions", req + R"(,"stream":true})");
  ChatStream s = read_chat_stream(r.body);
  EXPECT_EQ(s.reasoning, "r0");
  EXPECT_EQ(s.content, "w0 w1 ");
  EXPECT_EQ(s.entries.size(), 5u);
  for (const json::value& ch : s.chunks) {
    const json::object& d = ch.at("delta").as_object();
    if (d.contains("reasoning_content")) {
      // "<think>" (no text of its own) and "r0" go out with the reasoning text.
      EXPECT_EQ(ch.at("logprobs").at("content").as_array().size(), 2u);
    }
  }
}

TEST_F(ServerTest, CompletionLogprobsLegacyShape) {
  start();
  Reply r = post("/v1/completions",
                 R"({"model":"fake-model","prompt":"abc","max_tokens":3,"logprobs":2})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(backend_->last_request().top_logprobs, 2);
  const json::value lp = json::parse(r.body).at("choices").as_array()[0].at("logprobs");
  const json::array& tokens = lp.at("tokens").as_array();
  ASSERT_EQ(tokens.size(), 3u);
  EXPECT_EQ(str(tokens[1]), "w1 ");
  EXPECT_DOUBLE_EQ(lp.at("token_logprobs").as_array()[2].as_double(), FakeBackend::kSampledLogprob);
  const json::object& top0 = lp.at("top_logprobs").as_array()[0].as_object();
  EXPECT_EQ(top0.size(), 2u);
  EXPECT_DOUBLE_EQ(top0.at("w0 ").as_double(), FakeBackend::kSampledLogprob);
  EXPECT_DOUBLE_EQ(top0.at("alt1").as_double(), FakeBackend::kSampledLogprob - 1);
  const json::array& offsets = lp.at("text_offset").as_array();
  EXPECT_EQ(offsets[0].as_int64(), 0);
  EXPECT_EQ(offsets[1].as_int64(), 3);
  EXPECT_EQ(offsets[2].as_int64(), 6);

  // logprobs: 0 -> only the sampled token in each top_logprobs object.
  Reply zero = post("/v1/completions",
                    R"({"model":"fake-model","prompt":"abc","max_tokens":1,"logprobs":0})");
  ASSERT_EQ(zero.status, 200) << zero.body;
  const json::object only = json::parse(zero.body)
                                .at("choices")
                                .as_array()[0]
                                .at("logprobs")
                                .at("top_logprobs")
                                .as_array()[0]
                                .as_object();
  ASSERT_EQ(only.size(), 1u);
  EXPECT_DOUBLE_EQ(only.at("w0 ").as_double(), FakeBackend::kSampledLogprob);
  Reply off = post("/v1/completions", R"({"model":"fake-model","prompt":"abc","max_tokens":1})");
  EXPECT_TRUE(json::parse(off.body).at("choices").as_array()[0].at("logprobs").is_null());
}

TEST_F(ServerTest, CompletionLogprobsStreamOffsetsContinueAcrossChunks) {
  FakeBackend::Options fo;
  fo.split_utf8 = true;
  start({}, fo);
  Reply r = post("/v1/completions", R"({"model":"fake-model","prompt":"abc","max_tokens":4,)"
                                    R"("stream":true,"logprobs":1})");
  ASSERT_EQ(r.status, 200) << r.body;
  std::string text;
  std::vector<std::string> tokens;
  std::vector<int64_t> offsets;
  for (const std::string& e : sse_events(r.body)) {
    if (e == "[DONE]") continue;
    const json::value ch = json::parse(e).at("choices").as_array()[0];
    text += str(ch.at("text"));
    if (ch.at("logprobs").is_null()) continue;
    for (const json::value& t : ch.at("logprobs").at("tokens").as_array()) tokens.push_back(str(t));
    for (const json::value& o : ch.at("logprobs").at("text_offset").as_array()) {
      offsets.push_back(o.as_int64());
    }
  }
  EXPECT_EQ(text,
            "\xE2\x82\xAC"
            "w0 w1 ");
  EXPECT_EQ(tokens, (std::vector<std::string>{"\xEF\xBF\xBD", "\xEF\xBF\xBD", "w0 ", "w1 "}));
  // In characters: the euro sign starts at 0 and is one character; its second half adds none.
  EXPECT_EQ(offsets, (std::vector<int64_t>{0, 1, 1, 4}));
}

}  // namespace
}  // namespace enclave::server
