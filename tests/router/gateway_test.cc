// The gateway in the real server request path: in-process server on port 0 with the fake local
// backend, the DeepSeek emulator as the cloud (and as private nodes). Asserts routes (headers),
// that the emulator never received a sensitive value, that answers are restored (also streamed,
// with placeholders split at every offset), fail-closed, fallback, circuit breaking, bad input.
#include "router/gateway.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include "emulator.h"
#include "server/fake_backend.h"
#include "server/server.h"
#include "server/test_client.h"

namespace enclave::router {
namespace {

namespace json = boost::json;
using enclave::testing::DeepSeekEmulator;
using enclave::testing::EmulatorOptions;
using server::testing::FakeBackend;
using server::testing::Reply;

constexpr const char* kKey = "sk-enclave-router-test-key-0123456789";

struct Sample {
  std::string category;  // scanner type
  std::string value;
  std::string sentence;  // contains value
};

// One sample per category, in English and Chinese sentences.
std::vector<Sample> samples() {
  std::vector<Sample> s = {
      {"cn_id", "11010519491231002X", "我的身份证号是11010519491231002X，请核对。"},
      {"phone_cn", "13812345678", "请拨打手机13812345678联系张先生。"},
      {"phone_intl", "+44 20 7946 0958", "Call our London office at +44 20 7946 0958 today."},
      {"email", "zhang.san@example.com", "Write to zhang.san@example.com about the invoice."},
      {"email", "li.si@corp.cn", "邮箱：li.si@corp.cn，请回复。"},
      {"bank_card", "4111 1111 1111 1111", "Charge card 4111 1111 1111 1111 for the order."},
      {"bank_card", "6222021234567890128", "银行卡号6222021234567890128已冻结。"},
      {"iban", "GB82 WEST 1234 5698 7654 32", "Wire it to IBAN GB82 WEST 1234 5698 7654 32 now."},
      {"ipv4", "10.23.45.67", "The database lives at 10.23.45.67 in rack 4."},
      {"ipv6", "2001:db8:85a3::8a2e:370:7334", "服务器地址 2001:db8:85a3::8a2e:370:7334 不可达。"},
      {"us_ssn", "123-45-6789", "My SSN is 123-45-6789, keep it safe."},
      {"passport", "E12345678", "护照号码 E12345678 即将过期。"},
      {"api_key", "sk-proj4abcdefghijklmnopqrstuvwxyz0123",
       "Use sk-proj4abcdefghijklmnopqrstuvwxyz0123 as the key."},
      {"aws_access_key", "AKIAIOSFODNN7EXAMPLE",
       "export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE please"},
      {"github_token", "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
       "token ghp_abcdefghijklmnopqrstuvwxyz0123456789 leaked"},
      {"jwt",
       "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
       "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
       "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
       "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U is my session"},
      {"private_key",
       "-----BEGIN RSA PRIVATE "
       "KEY-----\nMIIEowIBAAKCAQEAvNmQ1bL6Yx0abcdefghijklmnopqrstuvwxyz0123456789AB\n"
       "-----END RSA PRIVATE KEY-----",
       "key:\n-----BEGIN RSA PRIVATE "
       "KEY-----\nMIIEowIBAAKCAQEAvNmQ1bL6Yx0abcdefghijklmnopqrstuvwxyz0123456789AB\n"
       "-----END RSA PRIVATE KEY-----\nend"},
      {"codename", "Phoenix", "Status of project Phoenix for the board?"},
      {"codename", "凤凰计划", "凤凰计划的进度如何？"},
  };
  return s;
}

std::string chat_body(const std::string& user, bool stream = false,
                      const std::string& model = "deepseek-chat",
                      const std::string& system = "You are helpful.") {
  json::object o{{"model", model},
                 {"messages", json::array{json::object{{"role", "system"}, {"content", system}},
                                          json::object{{"role", "user"}, {"content", user}}}},
                 {"max_tokens", 4}};
  if (stream) o["stream"] = true;
  return json::serialize(o);
}

Reply post(uint16_t port, const std::string& body,
           std::vector<std::pair<std::string, std::string>> headers = {},
           const std::string& path = "/v1/chat/completions") {
  server::testing::Connection c(port);
  auto req = server::testing::make_request("POST", path, body, kKey);
  for (auto& [k, v] : headers) req.set(k, v);
  server::testing::http::write(c.socket(), req);
  server::testing::beast::flat_buffer buf;
  server::testing::http::response<server::testing::http::string_body> res;
  server::testing::http::read(c.socket(), buf, res);
  return server::testing::to_reply(res);
}

std::string content_of(const Reply& r, const char* field = "content") {
  json::value v = json::parse(r.body);
  const json::value* s = v.at("choices").at(0).at("message").as_object().if_contains(field);
  return s && s->is_string() ? std::string(s->as_string()) : std::string();
}

// Concatenated string `field` of every choice in an SSE body: of the choice's `delta` for chat
// chunks, of the choice itself for text completions. Fails on framing errors.
std::string sse_choices_text(const std::string& body, const char* field, bool in_delta) {
  std::string out;
  size_t pos = 0;
  bool done = false;
  while (pos < body.size()) {
    EXPECT_EQ(body.compare(pos, 6, "data: "), 0) << body.substr(pos, 60);
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) break;
    std::string data = body.substr(pos + 6, end - pos - 6);
    pos = end + 2;
    if (data == "[DONE]") {
      done = true;
      continue;
    }
    json::value v = json::parse(data);
    for (const auto& c : v.at("choices").as_array()) {
      const json::value* holder = in_delta ? c.as_object().if_contains("delta") : &c;
      if (!holder) continue;
      const json::value* s = holder->as_object().if_contains(field);
      if (s && s->is_string()) out += std::string(s->as_string());
    }
  }
  EXPECT_TRUE(done) << "no [DONE]";
  return out;
}

// Concatenated delta texts of a chat SSE body.
std::string stream_text(const std::string& body, const char* field = "content") {
  return sse_choices_text(body, field, /*in_delta=*/true);
}

std::string completion_body(const std::string& prompt, bool stream = false,
                            const std::string& model = "deepseek-chat") {
  json::object o{{"model", model}, {"prompt", prompt}, {"max_tokens", 4}};
  if (stream) o["stream"] = true;
  return json::serialize(o);
}

std::string text_of(const Reply& r) {
  json::value v = json::parse(r.body);
  const json::value* s = v.at("choices").at(0).as_object().if_contains("text");
  return s && s->is_string() ? std::string(s->as_string()) : std::string();
}

// Concatenated choices[].text of a text completion's SSE body.
std::string stream_completion_text(const std::string& body) {
  return sse_choices_text(body, "text", /*in_delta=*/false);
}

uint16_t dead_port() {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor a(
      ioc, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();  // closed when `a` goes away: connections are refused
}

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    emu_ = std::make_unique<DeepSeekEmulator>();
    rules_path_ = std::filesystem::temp_directory_path() /
                  ("enclave-router-rules-" + std::to_string(::getpid()) + ".yaml");
    std::ofstream(rules_path_) << "terms:\n  - category: codename\n    level: secret\n"
                                  "    keywords: [Phoenix, 凤凰计划]\n";
  }
  void TearDown() override {
    if (server_) server_->shutdown(std::chrono::milliseconds(2000));
    gateway_.reset();
    server_.reset();
    emu_->stop();
    std::filesystem::remove(rules_path_);
  }

  std::string cloud_backend(const std::string& name = "deepseek") {
    return "  - {name: " + name + ", preset: deepseek, base_url: '" + emu_->base_url() +
           "', api_key: " + emu_->api_key() + "}\n";
  }

  void start(const std::string& yaml, bool with_local = true) {
    auto keys =
        std::make_shared<server::KeyStore>(server::KeyStore::with_secret(std::string(32, 's')));
    ASSERT_TRUE(keys->add_key("tester", kKey, 7).is_ok());
    auto s = server::Server::create({}, keys);
    ASSERT_TRUE(s.has_value()) << s.error().message;
    server_ = std::move(*s);
    auto cfg = parse_gateway_yaml("scanner_rules: '" + rules_path_.string() + "'\n" + yaml);
    ASSERT_TRUE(cfg.has_value()) << cfg.error().message;
    GatewayOptions o;
    o.now = [this] { return now_ms_.load(); };
    o.on_facts = [this](const RouteFacts& f) {
      std::lock_guard lock(mu_);
      facts_.push_back(f);
    };
    o.start_health_checks = false;
    auto g = Gateway::create(std::move(*cfg), server_->services(), o);
    ASSERT_TRUE(g.has_value()) << g.error().message;
    gateway_ = std::move(*g);
    gateway_->install();
    ASSERT_TRUE(server_->start().is_ok());
    local_ = std::make_shared<FakeBackend>(FakeBackend::Options{});
    if (with_local) server_->set_backend(local_);
  }

  uint16_t port() const { return server_->port(); }
  std::vector<RouteFacts> facts() {
    std::lock_guard lock(mu_);
    return facts_;
  }

  std::unique_ptr<DeepSeekEmulator> emu_;
  std::unique_ptr<server::Server> server_;
  std::unique_ptr<Gateway> gateway_;
  std::shared_ptr<FakeBackend> local_;
  std::filesystem::path rules_path_;
  std::atomic<int64_t> now_ms_{1000000};
  std::mutex mu_;
  std::vector<RouteFacts> facts_;
};

TEST_F(GatewayTest, ScannerDetectsEverySample) {
  privacy::ScanRules rules;
  rules.terms.push_back({"codename", privacy::Level::kSecret, {"Phoenix", "凤凰计划"}, {}});
  auto scanner = privacy::SensitivityScanner::create(rules);
  ASSERT_TRUE(scanner.has_value());
  for (const Sample& s : samples()) {
    auto f = (*scanner)->scan(s.sentence);
    ASSERT_TRUE(f.has_value());
    bool found = false;
    for (const auto& x : *f)
      found =
          found || (x.type == s.category && s.sentence.substr(x.start, x.end - x.start) == s.value);
    EXPECT_TRUE(found) << s.category << " not detected in sample";
  }
}

// Default policy: confidential/secret stay local, internal (IPs) go out redacted, public goes out.
TEST_F(GatewayTest, DefaultPolicyKeepsSensitiveDataOffTheCloud) {
  start("backends:\n  - {name: local, type: local}\n" + cloud_backend());
  for (const Sample& s : samples()) {
    Reply r = post(port(), chat_body(s.sentence));
    ASSERT_EQ(r.status, 200) << s.category << ": " << r.body;
    bool internal = s.category == "ipv4" || s.category == "ipv6";
    if (internal) {
      EXPECT_EQ(r.headers["x-enclave-route"], "deepseek") << s.category;
      EXPECT_EQ(r.headers["x-enclave-policy"], "default-cloud");
      EXPECT_EQ(r.headers["x-enclave-redacted"], "1");
      EXPECT_EQ(content_of(r), "You said: " + s.sentence);  // restored
    } else {
      EXPECT_EQ(r.headers["x-enclave-route"], "local") << s.category;
      EXPECT_EQ(r.headers["x-enclave-policy"], "default-sensitive-private") << s.category;
      EXPECT_EQ(r.headers.count("x-enclave-redacted"), 0u);
      EXPECT_EQ(content_of(r), FakeBackend::expected_text(4));
    }
  }
  Reply pub = post(port(), chat_body("What is the capital of France?"));
  EXPECT_EQ(pub.headers["x-enclave-route"], "deepseek");
  EXPECT_EQ(content_of(pub), "You said: What is the capital of France?");
  std::string seen = emu_->recorded();
  ASSERT_FALSE(seen.empty());
  for (const Sample& s : samples()) {
    EXPECT_EQ(seen.find(s.value), std::string::npos) << s.category << " reached the cloud";
  }
  EXPECT_NE(seen.find("[IPV4_1]"), std::string::npos);
  // Audit facts: categories and counts, never values. The last one is emitted just after its
  // response went out: wait for it (bounded).
  for (int i = 0; i < 500 && facts().size() < samples().size() + 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto fs = facts();
  ASSERT_EQ(fs.size(), samples().size() + 1);
  EXPECT_EQ(fs[0].categories.at("cn_id"), 1u);
  EXPECT_EQ(fs[0].backend, "local");
  for (const RouteFacts& f : fs) {
    std::string dump = f.request_id + f.key_name + f.model + f.backend + f.policy + f.outcome;
    for (const auto& [k, v] : f.categories) dump += k;
    for (const Sample& s : samples()) EXPECT_EQ(dump.find(s.value), std::string::npos);
  }
}

// A redact-everything policy sends every category to the cloud as placeholders and restores.
TEST_F(GatewayTest, RedactsEveryCategoryAndRestoresTheAnswer) {
  start("backends:\n  - {name: local, type: local}\n" + cloud_backend() +
        "policies:\n  - {name: redact-all, action: redact, route: [deepseek]}\n");
  for (const Sample& s : samples()) {
    std::string prompt = s.sentence + " / again: " + s.value;
    Reply r = post(port(), chat_body(prompt, false, "deepseek-reasoner"));
    ASSERT_EQ(r.status, 200) << s.category << ": " << r.body;
    EXPECT_EQ(r.headers["x-enclave-route"], "deepseek");
    EXPECT_EQ(r.headers["x-enclave-policy"], "redact-all");
    EXPECT_EQ(r.headers["x-enclave-redacted"], "2") << s.category;
    EXPECT_EQ(content_of(r), "You said: " + prompt) << s.category;
    EXPECT_EQ(content_of(r, "reasoning_content"), "Considering: " + prompt);
  }
  std::string seen = emu_->recorded();
  for (const Sample& s : samples()) {
    EXPECT_EQ(seen.find(s.value), std::string::npos) << s.category << " reached the cloud";
  }
  // Same value, same placeholder.
  EXPECT_NE(seen.find("号是[CN_ID_1]，请核对。 / again: [CN_ID_1]"), std::string::npos);
  EXPECT_NE(seen.find("[CODENAME_1]"), std::string::npos);
}

// The emulator splits the echoed answer at every code-point offset (and pairs of offsets), so
// placeholders arrive cut at every position; the client must get the exact original.
TEST_F(GatewayTest, RestoresPlaceholdersSplitAcrossSseChunksAtEveryOffset) {
  start("backends:\n" + cloud_backend() +
        "policies:\n  - {name: redact-all, action: redact, route: [deepseek]}\n");
  std::string prompt = "邮件 a.b@example.com 电话 13812345678 again a.b@example.com";
  std::string redacted_answer = "You said: 邮件 [EMAIL_1] 电话 [PHONE_CN_1] again [EMAIL_1]";
  size_t n_cp = 0;
  for (unsigned char c : redacted_answer) n_cp += (c & 0xC0) != 0x80;
  for (size_t k = 1; k < n_cp; ++k) {
    emu_->set_split_points({k, k + 5});
    Reply r = post(port(), chat_body(prompt, true, "deepseek-reasoner"));
    ASSERT_EQ(r.status, 200) << r.body;
    ASSERT_EQ(r.headers["x-enclave-route"], "deepseek");
    ASSERT_EQ(r.headers["x-enclave-redacted"], "3");
    ASSERT_EQ(r.headers["content-type"], "text/event-stream");
    ASSERT_EQ(stream_text(r.body), "You said: " + prompt) << "split at " << k;
    ASSERT_EQ(stream_text(r.body, "reasoning_content"), "Considering: " + prompt);
  }
  emu_->set_split_points({});
  EXPECT_EQ(emu_->recorded().find("a.b@example.com"), std::string::npos);
  EXPECT_EQ(emu_->recorded().find("13812345678"), std::string::npos);
}

// Fail closed: no private backend usable -> 503, nothing sent to the cloud.
TEST_F(GatewayTest, FailsClosedWhenOnlyTheCloudIsLeft) {
  start("backends:\n" + cloud_backend() + "  - {name: local, type: local}\n", /*with_local=*/false);
  Reply r = post(port(), chat_body("mail zhang.san@example.com now"));
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(r.headers["x-enclave-policy"], "default-sensitive-private");
  EXPECT_EQ(r.headers["x-enclave-route"], "none");
  EXPECT_EQ(emu_->chat_requests(), 0);
  Reply pub = post(port(), chat_body("hello there"));  // public traffic still goes out
  EXPECT_EQ(pub.status, 200);
  EXPECT_EQ(pub.headers["x-enclave-route"], "deepseek");
}

TEST_F(GatewayTest, FailsClosedForCloudOnlyConfig) {
  start("backends:\n" + cloud_backend());
  for (const char* p :
       {"card 4111 1111 1111 1111", "key AKIAIOSFODNN7EXAMPLE", "身份证11010519491231002X"}) {
    Reply r = post(port(), chat_body(p));
    EXPECT_EQ(r.status, 503) << r.body;
  }
  EXPECT_EQ(emu_->chat_requests(), 0);
  EXPECT_TRUE(emu_->recorded().empty());
}

// A policy that would send confidential data out unredacted is overridden by the egress guard.
TEST_F(GatewayTest, EgressGuardOverridesAPermissivePolicy) {
  start("backends:\n" + cloud_backend() + "policies:\n  - {name: careless, route: [deepseek]}\n");
  Reply r = post(port(), chat_body("SSN 123-45-6789"));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.headers["x-enclave-policy"], "careless");
  EXPECT_EQ(emu_->chat_requests(), 0);
}

TEST_F(GatewayTest, FallsBackWhenTheCloudIsDown) {
  uint16_t dead = dead_port();
  start(
      "retries: 1\nretry_backoff_ms: 1\nbackends:\n  - {name: local, type: local}\n"
      "  - {name: dead, preset: deepseek, base_url: 'http://127.0.0.1:" +
      std::to_string(dead) + "', api_key: x}\n" + cloud_backend("backup") +
      "policies:\n  - {name: chain, action: redact, route: [dead, backup, local]}\n");
  Reply r = post(port(), chat_body("hello fallback"));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["x-enclave-route"], "backup");
  EXPECT_EQ(content_of(r), "You said: hello fallback");
  EXPECT_EQ(gateway_->selector().snapshot("dead").failures, 2u);  // first try + one retry

  // Upstream errors (429, then 503 on the retry) move on along the chain; the client never sees
  // them.
  emu_->fail_next(429);
  emu_->fail_next(503);
  Reply r2 = post(port(), chat_body("hello again", true));
  EXPECT_EQ(r2.status, 200);
  EXPECT_EQ(r2.headers["x-enclave-route"], "local");
  EXPECT_EQ(stream_text(r2.body), FakeBackend::expected_text(4));
}

TEST_F(GatewayTest, CircuitBreakerOpensThenProbesHalfOpen) {
  start(
      "retries: 0\nbreaker: {failure_threshold: 2, open_ms: 5000}\nbackends:\n"
      "  - {name: local, type: local}\n" +
      cloud_backend() + "policies:\n  - {name: chain, action: redact, route: [deepseek, local]}\n");
  emu_->fail_next(503, 2);
  for (int i = 0; i < 2; ++i) {
    Reply r = post(port(), chat_body("public question"));
    EXPECT_EQ(r.headers["x-enclave-route"], "local");
  }
  EXPECT_EQ(emu_->chat_requests(), 2);
  EXPECT_EQ(gateway_->selector().snapshot("deepseek").breaker, CircuitBreaker::State::kOpen);
  Reply skipped = post(port(), chat_body("public question"));
  EXPECT_EQ(skipped.headers["x-enclave-route"], "local");
  EXPECT_EQ(emu_->chat_requests(), 2);  // open: not even tried
  now_ms_ += 5000;
  EXPECT_EQ(gateway_->selector().snapshot("deepseek").breaker, CircuitBreaker::State::kHalfOpen);
  Reply probe = post(port(), chat_body("public question"));
  EXPECT_EQ(probe.headers["x-enclave-route"], "deepseek");
  EXPECT_EQ(emu_->chat_requests(), 3);
  EXPECT_EQ(gateway_->selector().snapshot("deepseek").breaker, CircuitBreaker::State::kClosed);
}

TEST_F(GatewayTest, PrivateNodesHealthChecksAndLeastOutstanding) {
  uint16_t dead = dead_port();
  start("backends:\n  - {name: node-a, type: node, url: '" + emu_->base_url() +
            "', api_key: " + emu_->api_key() +
            ", models: [deepseek-chat]}\n"
            "  - {name: node-b, type: node, url: 'http://127.0.0.1:" +
            std::to_string(dead) +
            "', models: [deepseek-chat]}\n"
            "pools: {private: [node-b, node-a]}\n"
            "policies:\n  - {name: private-only, route: [private]}\n",
        /*with_local=*/false);
  std::promise<void> checked;
  gateway_->check_health([&] { checked.set_value(); });
  checked.get_future().wait();
  EXPECT_TRUE(gateway_->selector().snapshot("node-a").healthy);
  EXPECT_FALSE(gateway_->selector().snapshot("node-b").healthy);
  // Nodes are private: they get the original content, no placeholders.
  Reply r = post(port(), chat_body("mail zhang.san@example.com"));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["x-enclave-route"], "node-a");
  EXPECT_EQ(r.headers.count("x-enclave-redacted"), 0u);
  EXPECT_EQ(content_of(r), "You said: mail zhang.san@example.com");
  EXPECT_GT(gateway_->selector().snapshot("node-a").ewma_ttft_ms, 0.0);
}

TEST_F(GatewayTest, BlocksWithTheReason) {
  start("backends:\n  - {name: local, type: local}\n" + cloud_backend() +
        "policies:\n  - {name: no-codenames, when: {categories: [codename]}, action: block,"
        " reason: 'Codenames may not be processed here.'}\n  - {name: rest, route: [local]}\n");
  Reply r = post(port(), chat_body("what about Phoenix?"));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.headers["x-enclave-route"], "blocked");
  EXPECT_EQ(r.headers["x-enclave-policy"], "no-codenames");
  EXPECT_NE(r.body.find("Codenames may not be processed here."), std::string::npos);
  EXPECT_EQ(r.body.find("Phoenix"), std::string::npos);
  // Also for system prompts and text completions.
  Reply sys = post(port(), chat_body("hi", false, "deepseek-chat", "Project 凤凰计划 context"));
  EXPECT_EQ(sys.status, 403);
  Reply comp = post(port(), R"({"model":"fake-model","prompt":"Phoenix status","max_tokens":2})",
                    {}, "/v1/completions");
  EXPECT_EQ(comp.status, 403);
  Reply ok = post(port(), R"({"model":"fake-model","prompt":"hello","max_tokens":2})", {},
                  "/v1/completions");
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.headers["x-enclave-route"], "local");
}

TEST_F(GatewayTest, OverheadMetricLeavesOutTheUpstreamsTime) {
  emu_->stop();
  EmulatorOptions slow;
  slow.answer_delay_ms = 300;
  emu_ = std::make_unique<DeepSeekEmulator>(slow);
  start("backends:\n" + cloud_backend() + "policies:\n  - {name: all, route: [deepseek]}\n",
        /*with_local=*/false);
  Reply r = post(port(), chat_body("hello slow cloud"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["x-enclave-route"], "deepseek");
  // The facts (and the metric) are recorded right after the answer is handed over.
  std::string m;
  for (int i = 0;
       i < 500 && m.find("enclave_gateway_overhead_seconds_count 1\n") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    m = server_->services().metrics.render(nullptr, true);
  }
  EXPECT_NE(m.find("enclave_gateway_overhead_seconds_count 1\n"), std::string::npos) << m;
  std::vector<RouteFacts> f = facts();
  ASSERT_EQ(f.size(), 1u);
  EXPECT_GE(f[0].latency_ms, 300.0);  // the request took the upstream's 300 ms...
  // ...which the gateway's own time leaves out: it is in the 100 ms bucket, not only in +Inf.
  EXPECT_NE(m.find("enclave_gateway_overhead_seconds_bucket{le=\"0.1\"} 1\n"), std::string::npos)
      << m;
  EXPECT_NE(m.find("enclave_gateway_overhead_seconds_bucket{le=\"1e-05\"} "), std::string::npos)
      << "microsecond buckets";
}

TEST_F(GatewayTest, LatencyBudgetRoutesLocally) {
  start("backends:\n  - {name: local, type: local}\n" + cloud_backend());
  Reply fast = post(port(), chat_body("quick one"), {{"X-Enclave-Latency-Budget-Ms", "200"}});
  EXPECT_EQ(fast.headers["x-enclave-route"], "local");
  EXPECT_EQ(fast.headers["x-enclave-policy"], "default-latency-local");
  Reply slow = post(port(), chat_body("quick one"), {{"X-Enclave-Latency-Budget-Ms", "20000"}});
  EXPECT_EQ(slow.headers["x-enclave-route"], "deepseek");
  Reply bad = post(port(), chat_body("quick one"), {{"X-Enclave-Latency-Budget-Ms", "soon"}});
  EXPECT_EQ(bad.status, 400);
}

TEST_F(GatewayTest, BadInputGetsAClear4xx) {
  start("max_message_bytes: 1000\nbackends:\n  - {name: local, type: local}\n" + cloud_backend());
  std::string invalid_utf8 =
      "{\"model\":\"deepseek-chat\",\"messages\":[{\"role\":\"user\","
      "\"content\":\"bad \xff\xfe bytes\"}]}";
  Reply r1 = post(port(), invalid_utf8);
  EXPECT_EQ(r1.status, 400);
  EXPECT_NE(r1.body.find("UTF-8"), std::string::npos) << r1.body;
  for (const char* odd : {"[1,2]", "{\"messages\":5}", "{", "{\"model\":\"x\",\"messages\":[{}]}",
                          "{\"model\":\"deepseek-chat\",\"messages\":[]}"}) {
    Reply r = post(port(), odd);
    EXPECT_EQ(r.status, 400) << odd << " -> " << r.body;
    EXPECT_NE(r.body.find("\"error\""), std::string::npos);
  }
  Reply big = post(port(), chat_body(std::string(2000, 'a')));
  EXPECT_EQ(big.status, 413) << big.body;
  EXPECT_NE(big.body.find("messages[1].content"), std::string::npos);
  EXPECT_EQ(emu_->chat_requests(), 0);
}

TEST_F(GatewayTest, UpstreamClientErrorsAreRelayedAndWrongKeysFallBack) {
  start(
      "backends:\n  - {name: local, type: local}\n"
      "  - {name: deepseek, preset: deepseek, base_url: '" +
      emu_->base_url() + "', api_key: sk-wrong-key-000000000000000000}\n" + cloud_backend("good") +
      "policies:\n  - {name: chain, action: redact, route: [deepseek, good]}\n");
  Reply r = post(port(), chat_body("hello"));
  EXPECT_EQ(r.status, 200);  // 401 from the first: next in chain
  EXPECT_EQ(r.headers["x-enclave-route"], "good");
  emu_->fail_next(422);
  Reply bad = post(port(), chat_body("hello"));  // deepseek: 401 (key) -> good: 422 relayed
  EXPECT_EQ(bad.status, 422) << bad.body;
  EXPECT_NE(bad.body.find("Invalid Parameters"), std::string::npos);
}

// Text completions go through the same chain as chat: every category, Chinese and English, is
// replaced before DeepSeek's (beta FIM) /completions endpoint sees it and restored in the answer.
TEST_F(GatewayTest, TextCompletionsAreRedactedRoutedAndRestored) {
  start("backends:\n  - {name: local, type: local}\n" + cloud_backend() +
        "policies:\n  - {name: redact-all, action: redact, route: [deepseek]}\n");
  for (const Sample& s : samples()) {
    std::string prompt = s.sentence + " / again: " + s.value;
    Reply r = post(port(), completion_body(prompt), {}, "/v1/completions");
    ASSERT_EQ(r.status, 200) << s.category << ": " << r.body;
    EXPECT_EQ(r.headers["x-enclave-route"], "deepseek");
    EXPECT_EQ(r.headers["x-enclave-policy"], "redact-all");
    EXPECT_EQ(r.headers["x-enclave-redacted"], "2") << s.category;
    EXPECT_EQ(text_of(r), "You said: " + prompt) << s.category;
  }
  EXPECT_EQ(emu_->completion_requests(), static_cast<int>(samples().size()));
  EXPECT_EQ(emu_->chat_requests(), 0);
  std::string seen = emu_->recorded();
  EXPECT_NE(seen.find("POST /beta/completions "), std::string::npos);  // the preset's FIM path
  for (const Sample& s : samples()) {
    EXPECT_EQ(seen.find(s.value), std::string::npos) << s.category << " reached the cloud";
  }
  EXPECT_NE(seen.find("[EMAIL_1]"), std::string::npos);
}

TEST_F(GatewayTest, StreamedTextCompletionsRestorePlaceholdersSplitAnywhere) {
  start("backends:\n" + cloud_backend() +
        "policies:\n  - {name: redact-all, action: redact, route: [deepseek]}\n");
  std::string prompt = "邮件 a.b@example.com 电话 13812345678";
  std::string redacted_answer = "You said: 邮件 [EMAIL_1] 电话 [PHONE_CN_1]";
  size_t n_cp = 0;
  for (unsigned char c : redacted_answer) n_cp += (c & 0xC0) != 0x80;
  for (size_t k = 1; k < n_cp; ++k) {
    emu_->set_split_points({k});
    Reply r = post(port(), completion_body(prompt, true), {}, "/v1/completions");
    ASSERT_EQ(r.status, 200) << r.body;
    ASSERT_EQ(r.headers["x-enclave-route"], "deepseek");
    ASSERT_EQ(r.headers["x-enclave-redacted"], "2");
    ASSERT_EQ(r.headers["content-type"], "text/event-stream");
    ASSERT_EQ(stream_completion_text(r.body), "You said: " + prompt) << "split at " << k;
  }
  emu_->set_split_points({});
  EXPECT_EQ(emu_->recorded().find("a.b@example.com"), std::string::npos);
  EXPECT_EQ(emu_->recorded().find("13812345678"), std::string::npos);
}

// The default policy for completions: sensitive prompts stay local, public ones go out; and the
// gateway fails closed when only the cloud is left.
TEST_F(GatewayTest, TextCompletionsFollowTheDefaultPolicyAndFailClosed) {
  start("backends:\n  - {name: local, type: local}\n" + cloud_backend());
  Reply secret =
      post(port(), completion_body("我的身份证号是11010519491231002X"), {}, "/v1/completions");
  ASSERT_EQ(secret.status, 200) << secret.body;
  EXPECT_EQ(secret.headers["x-enclave-route"], "local");
  EXPECT_EQ(secret.headers["x-enclave-policy"], "default-sensitive-private");
  EXPECT_EQ(text_of(secret), FakeBackend::expected_text(4));
  Reply pub = post(port(), completion_body("Once upon a time"), {}, "/v1/completions");
  ASSERT_EQ(pub.status, 200) << pub.body;
  EXPECT_EQ(pub.headers["x-enclave-route"], "deepseek");
  EXPECT_EQ(text_of(pub), "You said: Once upon a time");
  // Token-id prompts cannot be scanned or sent to another tokenizer: local only.
  Reply ids = post(port(), R"({"model":"deepseek-chat","prompt":[1,2,3],"max_tokens":4})", {},
                   "/v1/completions");
  ASSERT_EQ(ids.status, 200) << ids.body;
  EXPECT_EQ(ids.headers["x-enclave-route"], "local");
  EXPECT_EQ(emu_->completion_requests(), 1);
  EXPECT_EQ(emu_->recorded().find("11010519491231002X"), std::string::npos);

  server_->set_backend(nullptr);  // local engine gone: nothing sensitive may fall over to the cloud
  Reply closed =
      post(port(), completion_body("card 4111 1111 1111 1111 please"), {}, "/v1/completions");
  EXPECT_EQ(closed.status, 503) << closed.body;
  EXPECT_EQ(closed.headers["x-enclave-route"], "none");
  EXPECT_EQ(emu_->completion_requests(), 1);
  EXPECT_EQ(emu_->recorded().find("4111 1111 1111 1111"), std::string::npos);
}

// Private nodes get text completions on /completions with the original content.
TEST_F(GatewayTest, TextCompletionsReachPrivateNodesUnredacted) {
  start("backends:\n  - {name: node-a, type: node, url: '" + emu_->base_url() +
            "', api_key: " + emu_->api_key() +
            ", models: [deepseek-chat]}\npolicies:\n  - {name: private-only, route: [node-a]}\n",
        /*with_local=*/false);
  Reply r = post(port(), completion_body("mail zhang.san@example.com"), {}, "/v1/completions");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["x-enclave-route"], "node-a");
  EXPECT_EQ(r.headers.count("x-enclave-redacted"), 0u);
  EXPECT_EQ(text_of(r), "You said: mail zhang.san@example.com");
  EXPECT_NE(emu_->recorded().find("POST /completions "), std::string::npos);
}

// A private node over HTTPS with a self-signed CA: verification on, the CA from the backend's
// ca_file. With the wrong CA the handshake fails and the request fails closed (503, nothing
// served elsewhere), and the upstream error says why.
TEST_F(GatewayTest, HttpsNodeVerifiedAgainstItsConfiguredCa) {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("enclave-router-tls-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string cmd =
      "cd " + dir.string() +
      " && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1"
      " -subj /CN=enclave-node-ca"
      " && openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other-ca.pem -days 1"
      " -subj /CN=some-other-ca"
      " && openssl req -newkey rsa:2048 -nodes -keyout node.key -out node.csr -subj /CN=127.0.0.1"
      " && printf 'subjectAltName=IP:127.0.0.1\n' > san.ext"
      " && openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out node.pem"
      " -days 1 -extfile san.ext > /dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl CLI needed to make test certificates";

  // The node: another Enclave server (TLS) with its own key and the fake local model.
  const std::string node_key = "sk-enclave-node-key-0123456789abcdef";
  auto node_keys =
      std::make_shared<server::KeyStore>(server::KeyStore::with_secret(std::string(32, 'n')));
  ASSERT_TRUE(node_keys->add_key("gateway", node_key, 7).is_ok());
  server::ServerOptions no;
  no.tls_cert = (dir / "node.pem").string();
  no.tls_key = (dir / "node.key").string();
  auto node = server::Server::create(no, node_keys);
  ASSERT_TRUE(node.has_value()) << node.error().message;
  ASSERT_TRUE((*node)->start().is_ok());
  (*node)->set_backend(std::make_shared<FakeBackend>(FakeBackend::Options{}));
  std::string url = "https://127.0.0.1:" + std::to_string((*node)->port());

  auto node_backend = [&](const std::string& name, const std::string& ca) {
    return "  - {name: " + name + ", type: node, url: '" + url + "', api_key: " + node_key +
           ", ca_file: '" + (dir / ca).string() + "', models: [fake-model], health_check: false}\n";
  };
  start("retries: 0\nbackends:\n" + node_backend("node-good", "ca.pem") +
            node_backend("node-wrong-ca", "other-ca.pem") +
            "  - {name: deepseek, preset: deepseek, base_url: '" + emu_->base_url() +
            "', api_key: " + emu_->api_key() +
            "}\n"
            "policies:\n"
            "  - {name: via-wrong-ca, when: {models: [wrong]}, route: [node-wrong-ca]}\n"
            "  - {name: private, route: [node-good]}\n",
        /*with_local=*/false);

  Reply ok = post(port(), chat_body("mail zhang.san@example.com", false, "fake-model"));
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.headers["x-enclave-route"], "node-good");
  EXPECT_EQ(content_of(ok), FakeBackend::expected_text(4));
  Reply streamed = post(port(), chat_body("hello node", true, "fake-model"));
  ASSERT_EQ(streamed.status, 200) << streamed.body;
  EXPECT_EQ(stream_text(streamed.body), FakeBackend::expected_text(4));

  Reply closed = post(port(), chat_body("mail zhang.san@example.com", false, "wrong"));
  EXPECT_EQ(closed.status, 503) << closed.body;
  EXPECT_EQ(closed.headers["x-enclave-route"], "none");
  EXPECT_EQ(closed.headers["x-enclave-policy"], "via-wrong-ca");
  EXPECT_EQ(emu_->chat_requests(), 0);  // nothing fell over to the cloud
  EXPECT_EQ(closed.body.find("zhang.san"), std::string::npos);

  // The client's own error names the failed verification.
  UpstreamEndpoint e;
  e.url = *parse_base_url(url);
  e.ca_file = (dir / "other-ca.pem").string();
  UpstreamCall call;
  call.method = "GET";
  call.path = "/health";
  std::promise<Status> done;
  UpstreamEvents ev;
  ev.on_done = [&done](Status st) { done.set_value(st); };
  gateway_->client().start(e, std::move(call), std::move(ev));
  Status st = done.get_future().get();
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.error().message.find("certificate verification"), std::string::npos)
      << st.error().message;

  (*node)->shutdown(std::chrono::milliseconds(1000));
  std::filesystem::remove_all(dir);
}

// ---- logprobs ----

std::string with_logprobs(const std::string& body, const std::string& fields) {
  return body.substr(0, body.size() - 1) + "," + fields + "}";
}

// The stream's logprob entries (choices[0].logprobs.content of every chunk), in order.
std::vector<json::value> stream_logprob_entries(const std::string& body) {
  std::vector<json::value> out;
  size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    size_t end = body.find("\n\n", pos);
    std::string data = body.substr(pos + 6, end - pos - 6);
    pos = end;
    if (data == "[DONE]") break;
    json::value v = json::parse(data);
    for (const auto& c : v.at("choices").as_array()) {
      const json::value* lp = c.as_object().if_contains("logprobs");
      if (!lp || lp->is_null()) continue;
      for (const json::value& e : lp->at("content").as_array()) out.push_back(e);
    }
  }
  return out;
}

// Unredacted routes pass logprobs through: the upstream is asked for them and its answer relayed.
TEST_F(GatewayTest, LogprobsPassThroughToTheCloudAndBack) {
  start("backends:\n" + cloud_backend() +
        "policies:\n  - {name: cloud, action: redact, route: [deepseek]}\n");
  const std::string body = with_logprobs(chat_body("What is the capital of France?"),
                                         R"("logprobs":true,"top_logprobs":2)");
  Reply r = post(port(), body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["x-enclave-route"], "deepseek");
  EXPECT_EQ(r.headers.count("x-enclave-redacted"), 0u);
  std::string seen = emu_->recorded();
  EXPECT_NE(seen.find(R"("logprobs":true)"), std::string::npos);
  EXPECT_NE(seen.find(R"("top_logprobs":2)"), std::string::npos);
  const json::value lp = json::parse(r.body).at("choices").at(0).at("logprobs");
  ASSERT_TRUE(lp.is_object()) << r.body;
  std::string joined;
  for (const json::value& e : lp.at("content").as_array()) {
    joined += std::string(e.at("token").as_string());
    EXPECT_EQ(e.at("top_logprobs").as_array().size(), 2u);
  }
  EXPECT_EQ(joined, "You said: What is the capital of France?");

  Reply s = post(port(), with_logprobs(chat_body("What is the capital of France?", true),
                                       R"("logprobs":true)"));
  ASSERT_EQ(s.status, 200) << s.body;
  std::string streamed;
  for (const json::value& e : stream_logprob_entries(s.body)) {
    streamed += std::string(e.at("token").as_string());
  }
  EXPECT_EQ(streamed, "You said: What is the capital of France?");

  Reply c = post(port(), with_logprobs(completion_body("Once upon"), R"("logprobs":3)"), {},
                 "/v1/completions");
  ASSERT_EQ(c.status, 200) << c.body;
  EXPECT_NE(emu_->recorded().find(R"("logprobs":3)"), std::string::npos);
}

// Redacted requests: the cloud is not asked for logprobs and any it sends are withheld (their
// tokens would hold placeholders that cannot be restored consistently); the answer is restored.
TEST_F(GatewayTest, RedactedRoutesWithholdLogprobs) {
  emu_->stop();  // a cloud that sends logprobs unasked: the gateway withholds them anyway
  emu_ = std::make_unique<DeepSeekEmulator>(
      enclave::testing::EmulatorOptions{.always_logprobs = true});
  start("backends:\n" + cloud_backend() +
        "policies:\n  - {name: cloud, action: redact, route: [deepseek]}\n");
  const std::string prompt = "Write to zhang.san@example.com about the invoice.";
  Reply r = post(port(), with_logprobs(chat_body(prompt), R"("logprobs":true,"top_logprobs":2)"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["x-enclave-redacted"], "1");
  EXPECT_EQ(content_of(r), "You said: " + prompt);
  EXPECT_TRUE(json::parse(r.body).at("choices").at(0).at("logprobs").is_null());
  std::string seen = emu_->recorded();
  EXPECT_EQ(seen.find("logprobs"), std::string::npos);
  EXPECT_EQ(seen.find("zhang.san@example.com"), std::string::npos);

  Reply s = post(port(), with_logprobs(chat_body(prompt, true), R"("logprobs":true)"));
  ASSERT_EQ(s.status, 200) << s.body;
  EXPECT_EQ(stream_text(s.body), "You said: " + prompt);
  EXPECT_TRUE(stream_logprob_entries(s.body).empty());
  EXPECT_EQ(s.body.find("[EMAIL_1]"), std::string::npos);
}

// A sensitive request kept local gets the local engine's logprobs.
TEST_F(GatewayTest, LocalRouteServesLogprobs) {
  start("backends:\n  - {name: local, type: local}\n" + cloud_backend());
  Reply r = post(port(), with_logprobs(chat_body("My SSN is 123-45-6789, keep it safe."),
                                       R"("logprobs":true,"top_logprobs":1)"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["x-enclave-route"], "local");
  const json::array content =
      json::parse(r.body).at("choices").at(0).at("logprobs").at("content").as_array();
  ASSERT_EQ(content.size(), 4u);
  EXPECT_EQ(content[0].at("token").as_string(), "w0 ");
}

}  // namespace
}  // namespace enclave::router
