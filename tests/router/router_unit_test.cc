// Unit tests of the gateway's pure parts: config, policies, redaction/restore, circuit breaker,
// selector order, SSE parsing.
#include <gtest/gtest.h>

#include "router/config.h"
#include "router/policy.h"
#include "router/redact.h"
#include "router/selector.h"
#include "router/upstream.h"

namespace enclave::router {
namespace {

std::optional<std::string> fake_env(const char* name) {
  std::string n(name);
  if (n == "DEEPSEEK_API_KEY") return std::string("sk-test-deepseek-key-0000000000");
  if (n == "NODE_KEY") return std::string("node-secret-value-1234");
  return std::nullopt;
}

std::optional<std::string> empty_env(const char*) {
  return std::nullopt;
}

constexpr const char* kYaml = R"(
backends:
  - {name: local, type: local}
  - {name: node-a, type: node, url: "https://10.0.0.5:8443", api_key_env: NODE_KEY}
  - {name: node-b, type: node, url: "http://10.0.0.6:8080"}
  - {name: deepseek, preset: deepseek}
pools:
  private: [node-a, node-b]
key_tenants: {team-key: acme}
policies:
  - name: block-codename
    when: {categories: [codename]}
    action: block
    reason: "Project codenames may not be processed."
  - name: secrets-private
    when: {min_level: confidential}
    route: [local, private]
  - name: acme-local
    when: {tenants: [acme]}
    route: [local]
  - name: fast
    when: {latency_budget_below_ms: 500}
    route: [local]
  - name: big-prompts-private
    when: {min_prompt_tokens: 1000}
    route: [private]
  - name: cheap-cloud
    when: {max_cost_usd: 0.01}
    action: redact
    route: [deepseek, local]
  - name: rest
    route: [local]
)";

TEST(RouterConfig, ParsesBackendsPoolsPoliciesAndPresets) {
  auto cfg = parse_gateway_yaml(kYaml, fake_env);
  ASSERT_TRUE(cfg.has_value()) << cfg.error().message;
  ASSERT_EQ(cfg->backends.size(), 4u);
  const BackendConfig* ds = cfg->backend("deepseek");
  ASSERT_NE(ds, nullptr);
  EXPECT_EQ(ds->kind, BackendKind::kCloud);
  EXPECT_EQ(ds->base_url, "https://api.deepseek.com");
  EXPECT_EQ(ds->api_key, "sk-test-deepseek-key-0000000000");
  EXPECT_TRUE(ds->egress());
  EXPECT_EQ(ds->models.front(), "deepseek-chat");
  EXPECT_EQ(cfg->backend("node-a")->api_key, "node-secret-value-1234");
  EXPECT_TRUE(cfg->backend("node-a")->health_check);
  EXPECT_FALSE(cfg->backend("node-a")->egress());
  ASSERT_NE(cfg->pool("private"), nullptr);
  EXPECT_EQ(cfg->policies.size(), 7u);
  EXPECT_TRUE(cfg->policies[5].redact);
  EXPECT_EQ(cfg->policies[0].action, PolicyAction::kBlock);
  EXPECT_EQ(cfg->key_tenants.at("team-key"), "acme");
  // Text completions: DeepSeek serves them (FIM, beta) under /beta; others on /completions.
  EXPECT_EQ(ds->completions_path, "/beta/completions");
  EXPECT_EQ(cfg->backend("node-a")->completions_path, "/completions");
  auto custom = parse_gateway_yaml(
      "backends:\n  - {name: c, base_url: 'http://10.0.0.9', completions_path: /v2/complete}\n",
      fake_env);
  ASSERT_TRUE(custom.has_value()) << custom.error().message;
  EXPECT_EQ(custom->backend("c")->completions_path, "/v2/complete");
  auto bad = parse_gateway_yaml(
      "backends:\n  - {name: c, base_url: 'http://10.0.0.9', completions_path: 'x y'}\n", fake_env);
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("completions_path"), std::string::npos);
}

TEST(RouterConfig, ErrorsNameThePathNeverTheSecret) {
  auto bad_key = parse_gateway_yaml(
      "backends:\n  - {name: x, type: cloud, base_url: 'http://h',"
      " api_key: sk-supersecret-123456789, colour: red}\n",
      empty_env);
  ASSERT_FALSE(bad_key.has_value());
  EXPECT_NE(bad_key.error().message.find("backends[0].colour"), std::string::npos);
  EXPECT_EQ(bad_key.error().message.find("supersecret"), std::string::npos);

  auto missing_env = parse_gateway_yaml(
      "backends:\n  - {name: x, type: node, base_url: 'http://h', api_key_env: NOPE}\n", empty_env);
  ASSERT_FALSE(missing_env.has_value());
  EXPECT_NE(missing_env.error().message.find("NOPE"), std::string::npos);

  auto bad_ref = parse_gateway_yaml(
      "backends: [{name: local, type: local}]\npolicies: [{name: p, route: [ghost]}]\n", empty_env);
  ASSERT_FALSE(bad_ref.has_value());
  EXPECT_NE(bad_ref.error().message.find("ghost"), std::string::npos);

  auto bad_url =
      parse_gateway_yaml("backends: [{name: n, type: node, url: 'ftp://x'}]\n", empty_env);
  EXPECT_FALSE(bad_url.has_value());
  auto syntax = parse_gateway_yaml("backends: [\n", empty_env);
  EXPECT_FALSE(syntax.has_value());
}

TEST(RouterConfig, EnvironmentAloneConfiguresDeepSeek) {
  auto with = gateway_config_from_env(fake_env);
  ASSERT_TRUE(with.has_value());
  ASSERT_NE(with->backend("deepseek"), nullptr);
  EXPECT_EQ(with->backend("deepseek")->base_url, "https://api.deepseek.com");
  ASSERT_EQ(with->policies.size(), 3u);
  EXPECT_EQ(with->policies[2].name, "default-cloud");
  EXPECT_EQ(with->policies[2].route.front(), "deepseek");
  EXPECT_TRUE(with->policies[2].redact);
  auto without = gateway_config_from_env(empty_env);
  ASSERT_TRUE(without.has_value());
  EXPECT_EQ(without->backend("deepseek"), nullptr);
  EXPECT_EQ(without->policies[2].name, "default-local");
  EXPECT_EQ(without->policies[2].route, std::vector<std::string>{"local"});
}

TEST(RouterConfig, ParsesBaseUrls) {
  auto u = parse_base_url("https://api.deepseek.com/v1/");
  ASSERT_TRUE(u.has_value());
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->host, "api.deepseek.com");
  EXPECT_EQ(u->port, "443");
  EXPECT_EQ(u->base_path, "/v1");
  auto v6 = parse_base_url("http://[::1]:8080");
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, "8080");
  EXPECT_FALSE(parse_base_url("http://host:80x").has_value());
}

TEST(RouterPolicy, FirstMatchWinsOverEveryCondition) {
  auto cfg = parse_gateway_yaml(kYaml, fake_env);
  ASSERT_TRUE(cfg.has_value());
  auto decide = [&](RequestFacts f) {
    auto r = evaluate_policies(*cfg, f);
    EXPECT_TRUE(r.has_value());
    return r.has_value() ? (*r)->name : std::string();
  };
  RequestFacts f;
  f.latency_budget_ms = 60000;
  f.prompt_tokens = 10;
  EXPECT_EQ(decide(f), "cheap-cloud");
  RequestFacts code = f;
  code.categories["codename"] = 1;
  code.level = privacy::Level::kSecret;
  EXPECT_EQ(decide(code), "block-codename");
  RequestFacts conf = f;
  conf.level = privacy::Level::kConfidential;
  conf.categories["email"] = 2;
  EXPECT_EQ(decide(conf), "secrets-private");
  RequestFacts tenant = f;
  tenant.tenant = "acme";
  EXPECT_EQ(decide(tenant), "acme-local");
  RequestFacts fast = f;
  fast.latency_budget_ms = 100;
  EXPECT_EQ(decide(fast), "fast");
  RequestFacts big = f;
  big.prompt_tokens = 5000;
  EXPECT_EQ(decide(big), "big-prompts-private");
  RequestFacts costly = f;
  costly.prompt_tokens = 999;  // 999 tokens * 0.28 / 1e6 < 0.01 -> still cheap
  EXPECT_EQ(decide(costly), "cheap-cloud");

  GatewayConfig none = *cfg;
  none.policies.resize(1);  // only the block rule: nothing matches a public request
  auto r = evaluate_policies(none, f);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
}

TEST(RouterPolicy, EstimatesTokens) {
  EXPECT_EQ(estimate_tokens(""), 0);
  EXPECT_EQ(estimate_tokens("abcd"), 1);
  EXPECT_EQ(estimate_tokens("abcde"), 2);
  EXPECT_EQ(estimate_tokens("你好"), 2);
  // Long enough for the vectorized loop, with a tail: 4 ASCII bytes per token, one per code point
  // otherwise (2-, 3- and 4-byte sequences).
  EXPECT_EQ(estimate_tokens(std::string(101, 'a') + "你好\xc3\xa9\xf0\x9f\x98\x80"), 26 + 4);
  // Every byte value: ASCII counts a quarter, lead bytes (0xC0-0xFF) one, continuations none.
  std::string all;
  for (int rep = 0; rep < 3; ++rep) {
    for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  }
  EXPECT_EQ(estimate_tokens(all), (3 * 128 + 3) / 4 + 3 * 64);
}

privacy::Finding finding(std::string type, size_t start, size_t end) {
  privacy::Finding f;
  f.type = std::move(type);
  f.level = privacy::Level::kConfidential;
  f.start = start;
  f.end = end;
  return f;
}

TEST(RouterRedact, SameValueSamePlaceholderAndRestore) {
  Redactor r;
  std::string a = "mail a@x.io and b@y.io";
  std::string ra = r.redact(a, {finding("email", 5, 11), finding("email", 16, 22)});
  EXPECT_EQ(ra, "mail [EMAIL_1] and [EMAIL_2]");
  std::string b = "again a@x.io";
  EXPECT_EQ(r.redact(b, {finding("email", 6, 12)}), "again [EMAIL_1]");
  EXPECT_EQ(r.replaced(), 3u);
  EXPECT_EQ(placeholder_prefix("phone-cn.x"), "[PHONE_CN_X_");
  EXPECT_EQ(restore_all(r, "to [EMAIL_2], cc [EMAIL_1] [EMAIL_9] [x"),
            "to b@y.io, cc a@x.io [EMAIL_9] [x");
}

TEST(RouterRedact, StreamingRestoreAtEverySplit) {
  Redactor r;
  std::string text = "Call 13812345678 or mail 张三@x.cn? no: zs@corp.com";
  size_t p = text.find("13812345678");
  size_t e = text.find("zs@corp.com");
  std::string red = r.redact(text, {finding("phone_cn", p, p + 11), finding("email", e, e + 11)});
  ASSERT_NE(red.find("[PHONE_CN_1]"), std::string::npos);
  std::string answer = "[x] You said: " + red + " [EMAIL_1][PHONE_CN_1]";
  std::string expected = "[x] You said: " + text + " zs@corp.com13812345678";
  for (size_t i = 0; i <= answer.size(); ++i) {
    for (size_t j = i; j <= answer.size(); j += 3) {
      Restorer s(&r);
      std::string out = s.push(answer.substr(0, i));
      out += s.push(answer.substr(i, j - i));
      out += s.push(answer.substr(j));
      out += s.flush();
      ASSERT_EQ(out, expected) << "splits at " << i << "," << j;
    }
  }
  // One byte at a time.
  Restorer s(&r);
  std::string out;
  for (char c : answer) out += s.push(std::string(1, c));
  out += s.flush();
  EXPECT_EQ(out, expected);
  // A truncated placeholder at the end is released verbatim by flush.
  Restorer t(&r);
  EXPECT_EQ(t.push("end [EMAIL_"), "end ");
  EXPECT_EQ(t.flush(), "[EMAIL_");
}

TEST(RouterBreaker, OpensAfterThresholdThenOneHalfOpenProbe) {
  BreakerConfig bc{3, 1000};
  CircuitBreaker b(bc);
  int64_t now = 0;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(b.allow(now));
    b.on_failure(now);
  }
  EXPECT_EQ(b.state(now), CircuitBreaker::State::kClosed);
  ASSERT_TRUE(b.allow(now));
  b.on_failure(now);
  EXPECT_EQ(b.state(now), CircuitBreaker::State::kOpen);
  EXPECT_FALSE(b.allow(now + 999));
  now += 1000;
  EXPECT_EQ(b.state(now), CircuitBreaker::State::kHalfOpen);
  EXPECT_TRUE(b.allow(now));   // the probe
  EXPECT_FALSE(b.allow(now));  // only one
  b.on_failure(now);           // probe failed: open again
  EXPECT_EQ(b.state(now + 1), CircuitBreaker::State::kOpen);
  now += 1000;
  EXPECT_TRUE(b.allow(now));
  b.on_success();
  EXPECT_EQ(b.state(now), CircuitBreaker::State::kClosed);
  EXPECT_TRUE(b.allow(now));
  // A success in between resets the count.
  b.on_failure(now);
  b.on_failure(now);
  b.on_success();
  b.on_failure(now);
  EXPECT_EQ(b.state(now), CircuitBreaker::State::kClosed);
}

TEST(RouterSelector, OrdersPoolsByOutstandingAndFiltersEgress) {
  auto cfg = parse_gateway_yaml(kYaml, fake_env);
  ASSERT_TRUE(cfg.has_value());
  int64_t now = 0;
  Selector sel(*cfg, [&] { return now; });
  PolicyRule rule;
  rule.route = {"private", "deepseek", "local", "node-a"};
  auto names = [](const std::vector<const BackendConfig*>& v) {
    std::vector<std::string> out;
    for (auto* b : v) out.push_back(b->name);
    return out;
  };
  EXPECT_EQ(names(sel.candidates(rule, 1000, true)),
            (std::vector<std::string>{"node-a", "node-b", "deepseek", "local"}));
  ASSERT_TRUE(sel.acquire("node-a"));
  EXPECT_EQ(names(sel.candidates(rule, 1000, false)),
            (std::vector<std::string>{"node-b", "node-a", "local"}));
  sel.release("node-a", true, 50.0, 20.0);
  EXPECT_EQ(sel.snapshot("node-a").outstanding, 0);
  EXPECT_DOUBLE_EQ(sel.snapshot("node-a").ewma_ttft_ms, 50.0);
  sel.acquire("node-a");
  sel.release("node-a", true, 150.0);
  EXPECT_GT(sel.snapshot("node-a").ewma_ttft_ms, 0.0);
  sel.set_healthy("node-b", false);
  EXPECT_EQ(names(sel.candidates(rule, 1000, true)),
            (std::vector<std::string>{"node-a", "deepseek", "local"}));
  // Over the latency budget: tried last.
  EXPECT_EQ(names(sel.candidates(rule, 1, true)),
            (std::vector<std::string>{"deepseek", "local", "node-a"}));
  // Breaker open: left out until half-open.
  for (int i = 0; i < cfg->breaker.failure_threshold; ++i) {
    ASSERT_TRUE(sel.acquire("deepseek"));
    sel.release("deepseek", false);
  }
  EXPECT_EQ(sel.snapshot("deepseek").breaker, CircuitBreaker::State::kOpen);
  EXPECT_EQ(names(sel.candidates(rule, 1000, true)), (std::vector<std::string>{"node-a", "local"}));
  now += cfg->breaker.open_ms;
  EXPECT_EQ(names(sel.candidates(rule, 1000, true)),
            (std::vector<std::string>{"node-a", "deepseek", "local"}));
}

TEST(RouterSse, ParsesEventsSplitAnywhere) {
  std::string stream =
      ": keep-alive\n\ndata: {\"a\":1}\n\ndata: line1\ndata: line2\r\n\r\nevent: x\ndata: "
      "[DONE]\n\n";
  for (size_t i = 0; i <= stream.size(); ++i) {
    SseParser p;
    std::vector<std::string> ev;
    p.push(stream.substr(0, i), ev);
    p.push(stream.substr(i), ev);
    ASSERT_EQ(ev.size(), 3u) << i;
    EXPECT_EQ(ev[0], "{\"a\":1}");
    EXPECT_EQ(ev[1], "line1\nline2");
    EXPECT_EQ(ev[2], "[DONE]");
  }
}

}  // namespace
}  // namespace enclave::router
