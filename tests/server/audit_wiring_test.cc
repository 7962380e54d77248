// The server's request audit wired to the real key store, audit log and store (as `enclave
// serve` does): one audit entry per request that reaches a handler, appended before the response
// is sent, no prompt content anywhere on disk, a clean hash chain, usage rows, fail-closed 503,
// and the tenant-erase admin route.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "audit/audit_log.h"
#include "audit/verify.h"
#include "crypto/keystore.h"
#include "fake_backend.h"
#include "router/gateway.h"
#include "server/server.h"
#include "store/store.h"
#include "test_client.h"

namespace enclave::server {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using testing::FakeBackend;
using testing::Reply;

constexpr const char* kAdminKey = "sk-enclave-test-admin-key-0123456789";
constexpr const char* kChatKey = "sk-enclave-test-chat-key-0123456789";
constexpr const char* kEmbedKey = "sk-enclave-test-embed-key-012345678";
constexpr const char* kCanary = "CANARY-7f3e9a1b-secret-prompt-text";

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class AuditWiringTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("enclave_audit_wiring_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    // As `enclave serve` does with no master key configured.
    auto src = crypto::MasterKeySource::load_or_create_key_file(dir_ / "keys" / "master.key");
    ASSERT_TRUE(src) << src.error().message;
    auto ks = crypto::KeyStore::create(dir_ / "keys", *src, nullptr);
    ASSERT_TRUE(ks) << ks.error().message;
    keys_ = std::move(*ks);
    auto log = audit::open_audit_log({.dir = dir_ / "audit"}, *keys_);
    ASSERT_TRUE(log) << log.error().message;
    log_ = std::move(*log);
    auto db = store::Store::open({.db_path = dir_ / "enclave.db"}, *keys_);
    ASSERT_TRUE(db) << db.error().message;
    db_ = std::move(*db);
    audit::AuditLog* alog = log_.get();
    db_->set_event_sink([alog](const store::AdminEvent& e) -> Status {
      auto seq = alog->append_admin({e.action, "serve", e.tenant, e.fields});
      if (!seq) return seq.error();
      return Status::ok();
    });
    ASSERT_TRUE(db_->create_tenant("acme").is_ok());

    auto keys = std::make_shared<KeyStore>(KeyStore::with_secret(std::string(32, 's')));
    ASSERT_TRUE(keys->add_key("admin", kAdminKey, 7).is_ok());
    ASSERT_TRUE(keys->add_key("chat", kChatKey, static_cast<unsigned>(Scope::kChat)).is_ok());
    ASSERT_TRUE(
        keys->add_key("embed", kEmbedKey, static_cast<unsigned>(Scope::kEmbeddings)).is_ok());
    auto s = Server::create({}, keys);
    ASSERT_TRUE(s.has_value()) << s.error().message;
    server_ = std::move(*s);

    AuditHooks hooks;
    store::Store* db_ptr = db_.get();
    hooks.append = [this, alog](const RequestRecord& r) -> Status {
      if (fail_appends_.load()) return Error(ErrorCode::kIo, "audit disk full (test)");
      audit::RequestAudit a;
      a.request_id = r.request_id;
      a.key_name = r.key_name;
      a.tenant = r.key_name == "chat" ? "acme" : r.tenant;
      a.route = r.route;
      a.policy = r.policy;
      a.model = r.model;
      for (const auto& [c, n] : r.sensitivity) a.sensitivity.push_back({c, n});
      a.prompt_tokens = r.prompt_tokens;
      a.completion_tokens = r.completion_tokens;
      a.latency_ms = r.latency_ms;
      a.outcome = r.outcome;
      a.http_status = r.http_status;
      auto seq = alog->append_request(a);
      if (!seq) return seq.error();
      return Status::ok();
    };
    hooks.after = [this, db_ptr](const RequestRecord& r) {
      if (r.http_status != 200 || r.outcome != "ok") return;
      store::UsageRecord u;
      u.tenant = r.key_name == "chat" ? "acme" : r.tenant;
      u.api_key_name = r.key_name;
      u.request_id = r.request_id;
      u.backend = r.backend;
      u.model = r.model;
      u.prompt_tokens = r.prompt_tokens;
      u.completion_tokens = r.completion_tokens;
      u.latency_ms = r.latency_ms;
      EXPECT_TRUE(db_ptr->record_usage(u).is_ok());
      ++usage_rows_;
    };
    hooks.run = server_->services().run_blocking;
    server_->services().auditor = std::make_shared<RequestAuditor>(std::move(hooks));
    server_->services().erase_tenant = [db_ptr](const std::string& tenant,
                                                const std::string& actor) -> Result<std::string> {
      ENCLAVE_ASSIGN_OR_RETURN(store::EraseReport r, db_ptr->erase_tenant(tenant, actor));
      return std::string(R"({"object":"tenant.erased","tenant":")") + tenant +
             R"(","usage_deleted":)" + std::to_string(r.usage_deleted) + "}";
    };
  }

  // With `gateway`: the routing gateway (local backend only, default policies) in front of the
  // handlers, its facts completing the audit records as `enclave serve` wires them.
  void launch(bool gateway) {
    if (gateway) {
      auto cfg = router::gateway_config_from_env(
          [](const char*) -> std::optional<std::string> { return std::nullopt; });
      ASSERT_TRUE(cfg) << cfg.error().message;
      cfg->key_tenants["chat"] = "acme";
      router::GatewayOptions o;
      o.start_health_checks = false;
      std::shared_ptr<RequestAuditor> auditor = server_->services().auditor;
      o.on_facts = [auditor](const router::RouteFacts& f) {
        RouteNote n;
        n.tenant = f.tenant;
        n.model = f.model;
        n.backend = f.backend;
        n.route = f.backend_kind == "local" ? "local" : f.backend;
        n.policy = f.policy;
        n.sensitivity.insert(f.categories.begin(), f.categories.end());
        n.outcome = f.outcome;
        auditor->route_facts(f.request_id, std::move(n));
      };
      auto g = router::Gateway::create(std::move(*cfg), server_->services(), o);
      ASSERT_TRUE(g) << g.error().message;
      gateway_ = std::move(*g);
      gateway_->install();
    }
    ASSERT_TRUE(server_->start().is_ok());
    backend_ = std::make_shared<FakeBackend>(FakeBackend::Options{});
    server_->set_backend(backend_);
  }

  void TearDown() override {
    if (server_) server_->shutdown(std::chrono::milliseconds(2000));
    gateway_.reset();
    server_.reset();
    backend_.reset();
    db_.reset();
    log_.reset();
    keys_.reset();
    fs::remove_all(dir_);
  }

  Reply call(const std::string& method, const std::string& path, const std::string& body,
             const std::string& key) {
    return testing::request(server_->port(), method, path, body, key);
  }

  // Every line of every audit file, parsed.
  std::vector<json::object> entries() {
    std::vector<json::object> out;
    for (const fs::path& f : audit::list_audit_files(dir_ / "audit")) {
      std::ifstream in(f);
      for (std::string line; std::getline(in, line);) {
        if (!line.empty()) out.push_back(json::parse(line).as_object());
      }
    }
    return out;
  }
  std::vector<json::object> requests() {
    std::vector<json::object> out;
    for (auto& e : entries()) {
      if (e.at("type").as_string() == "request") out.push_back(e);
    }
    return out;
  }

  fs::path dir_;
  std::unique_ptr<crypto::KeyStore> keys_;
  std::unique_ptr<audit::AuditLog> log_;
  std::unique_ptr<store::Store> db_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<router::Gateway> gateway_;
  std::shared_ptr<FakeBackend> backend_;
  std::atomic<bool> fail_appends_{false};
  std::atomic<int> usage_rows_{0};
};

TEST_F(AuditWiringTest, OneEntryPerRequestBeforeTheResponseAndNoContent) {
  launch(false);
  std::string msg = std::string(R"([{"role":"user","content":")") + kCanary + R"("}])";
  struct Case {
    std::string path, body, key, model;
    int status;
    bool stream;
  };
  std::vector<Case> cases = {
      {"/v1/chat/completions", R"({"model":"fake-model","max_tokens":3,"messages":)" + msg + "}",
       kChatKey, "fake-model", 200, false},
      {"/v1/chat/completions",
       R"({"model":"fake-model","max_tokens":3,"stream":true,"messages":)" + msg + "}", kChatKey,
       "fake-model", 200, true},
      {"/completions",
       std::string(R"({"model":"fake-alias","max_tokens":2,"prompt":")") + kCanary + "\"}",
       kChatKey, "fake-model", 200, false},  // the alias is recorded as the serving model
      {"/v1/embeddings", std::string(R"({"model":"fake-model","input":")") + kCanary + "\"}",
       kEmbedKey, "fake-model", 200, false},
      {"/v1/chat/completions", R"({"model":"no-such-model","messages":)" + msg + "}", kChatKey,
       "no-such-model", 404, false},
      {"/v1/chat/completions", R"({"model":"fake-model","messages":"not-a-list"})", kChatKey, "",
       400, false},
  };
  size_t expected = 0;
  for (const Case& c : cases) {
    Reply r = call("POST", c.path, c.body, c.key);
    ASSERT_EQ(r.status, c.status) << c.path << " " << r.body;
    if (c.stream) {
      EXPECT_NE(r.body.find("data: [DONE]"), std::string::npos);
    }
    ++expected;
    // Appended before the response went out: the entry is already there.
    std::vector<json::object> got = requests();
    ASSERT_EQ(got.size(), expected) << c.path;
    const json::object& e = got.back();
    EXPECT_EQ(e.at("request_id").as_string(), r.headers["x-request-id"]);
    EXPECT_EQ(e.at("key_name").as_string(), c.key == kChatKey ? "chat" : "embed");
    EXPECT_EQ(e.at("route").as_string(), "local");
    EXPECT_EQ(e.at("policy").as_string(), "default");
    EXPECT_EQ(e.at("model").as_string(), c.model);
    EXPECT_EQ(e.at("http_status").as_int64(), c.status);
    EXPECT_EQ(e.at("outcome").as_string(), c.status == 200 ? "ok" : "client_error");
    EXPECT_TRUE(e.at("sensitivity").is_object());
    EXPECT_GE(e.at("latency_ms").as_double(), 0.0);
    if (c.status == 200) {
      EXPECT_GT(e.at("prompt_tokens").as_int64(), 0) << c.path;
      if (c.path.find("embeddings") == std::string::npos) {
        EXPECT_GT(e.at("completion_tokens").as_int64(), 0) << c.path;
      }
    }
  }
  // Requests that never reach a handler (authentication) are not request entries.
  EXPECT_EQ(call("POST", "/v1/chat/completions", cases[0].body, "").status, 401);
  EXPECT_EQ(call("POST", "/v1/embeddings", cases[3].body, kChatKey).status, 403);
  EXPECT_EQ(requests().size(), expected);

  // Usage rows for the successful requests (recorded after the response).
  for (int i = 0; i < 500 && usage_rows_.load() < 4; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(usage_rows_.load(), 4);
  auto usage = db_->usage("acme");
  ASSERT_TRUE(usage) << usage.error().message;
  ASSERT_EQ(usage->size(), 3u);  // the chat key's three generations
  EXPECT_EQ((*usage)[0].backend, "local");
  EXPECT_EQ((*usage)[0].model, "fake-model");
  EXPECT_GT((*usage)[0].completion_tokens, 0u);

  // No prompt content in the audit files or the database (incl. WAL).
  ASSERT_TRUE(db_->checkpoint().is_ok());
  ASSERT_TRUE(log_->sync().is_ok());
  int files = 0;
  for (const auto& ent : fs::recursive_directory_iterator(dir_)) {
    if (!ent.is_regular_file()) continue;
    ++files;
    EXPECT_EQ(slurp(ent.path()).find(kCanary), std::string::npos) << ent.path();
  }
  EXPECT_GE(files, 3);

  auto audit_key = keys_->system_key(crypto::SystemKey::kAudit);
  ASSERT_TRUE(audit_key);
  auto report = audit::verify_audit_files(audit::list_audit_files(dir_ / "audit"), &*audit_key);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_TRUE(report->clean()) << audit::format_issue(*report->tamper);
  EXPECT_FALSE(report->truncated.has_value());
  EXPECT_EQ(report->entries_ok, entries().size());
}

TEST_F(AuditWiringTest, FailsClosedWhenTheAuditAppendFails) {
  launch(false);
  fail_appends_ = true;
  std::string body =
      R"({"model":"fake-model","max_tokens":2,"messages":[{"role":"user","content":"hi"}]})";
  Reply r = call("POST", "/v1/chat/completions", body, kChatKey);
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(r.body.find("choices"), std::string::npos);

  std::string sbody =
      R"({"model":"fake-model","max_tokens":2,"stream":true,"messages":[{"role":"user","content":"hi"}]})";
  Reply s = call("POST", "/v1/chat/completions", sbody, kChatKey);
  EXPECT_EQ(s.status, 200);  // headers were already out
  EXPECT_EQ(s.body.find("[DONE]"), std::string::npos) << s.body;
  EXPECT_NE(s.body.find("\"error\""), std::string::npos) << s.body;

  Reply e = call("POST", "/v1/embeddings", R"({"model":"fake-model","input":"x"})", kEmbedKey);
  EXPECT_EQ(e.status, 503);
  EXPECT_TRUE(requests().empty());
  EXPECT_EQ(usage_rows_.load(), 0);

  fail_appends_ = false;
  EXPECT_EQ(call("POST", "/v1/chat/completions", body, kChatKey).status, 200);
  EXPECT_EQ(requests().size(), 1u);
}

TEST_F(AuditWiringTest, AdminEraseTenantRoute) {
  launch(false);
  std::string body =
      R"({"model":"fake-model","max_tokens":2,"messages":[{"role":"user","content":"hi"}]})";
  ASSERT_EQ(call("POST", "/v1/chat/completions", body, kChatKey).status, 200);
  for (int i = 0; i < 500 && usage_rows_.load() < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(keys_->has_tenant_key("acme"));

  EXPECT_EQ(call("DELETE", "/v1/admin/tenants/acme", "", "").status, 401);
  EXPECT_EQ(call("DELETE", "/v1/admin/tenants/acme", "", kChatKey).status, 403);
  EXPECT_TRUE(keys_->has_tenant_key("acme"));

  Reply r = call("DELETE", "/v1/admin/tenants/acme", "", kAdminKey);
  ASSERT_EQ(r.status, 200) << r.body;
  json::object o = json::parse(r.body).as_object();
  EXPECT_EQ(o.at("tenant").as_string(), "acme");
  EXPECT_EQ(o.at("usage_deleted").as_int64(), 1);
  EXPECT_FALSE(keys_->has_tenant_key("acme"));

  // Unknown (or already erased) tenant: 404; without /v1 too.
  EXPECT_EQ(call("DELETE", "/admin/tenants/acme", "", kAdminKey).status, 404);
  EXPECT_EQ(call("DELETE", "/admin/tenants/nobody", "", kAdminKey).status, 404);
  EXPECT_EQ(call("DELETE", "/admin/tenants/Bad%2FName", "", kAdminKey).status, 400);

  bool erased_entry = false;
  for (const auto& e : entries()) {
    if (e.at("type").as_string() == "admin" && e.at("action").as_string() == "tenant_erased") {
      erased_entry = true;
      EXPECT_EQ(e.at("tenant").as_string(), "acme");
      EXPECT_EQ(e.at("details").at("actor").as_string(), "api_key:admin");
    }
  }
  EXPECT_TRUE(erased_entry);
  auto audit_key = keys_->system_key(crypto::SystemKey::kAudit);
  ASSERT_TRUE(audit_key);
  auto report = audit::verify_audit_files(audit::list_audit_files(dir_ / "audit"), &*audit_key);
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->clean());
}

TEST_F(AuditWiringTest, GatewayFactsCompleteTheRecord) {
  launch(true);
  const std::string email = "zhang.san@example.com";
  std::string chat = std::string(R"({"model":"fake-model","max_tokens":2,"messages":[)") +
                     R"({"role":"user","content":"mail )" + email + " " + kCanary + R"("}]})";
  std::string stream = chat;
  stream.insert(1, R"("stream":true,)");
  for (const std::string& body : {chat, stream}) {
    Reply r = call("POST", "/v1/chat/completions", body, kChatKey);
    ASSERT_EQ(r.status, 200) << r.body;
  }
  Reply bad = call("POST", "/v1/chat/completions", R"({"model":"fake-model"})", kChatKey);
  EXPECT_EQ(bad.status, 400);
  std::vector<json::object> got = requests();
  ASSERT_EQ(got.size(), 3u);
  for (size_t i = 0; i < 2; ++i) {
    const json::object& e = got[i];
    EXPECT_EQ(e.at("tenant").as_string(), "acme");
    EXPECT_EQ(e.at("route").as_string(), "local");
    EXPECT_FALSE(e.at("policy").as_string().empty());
    EXPECT_EQ(e.at("outcome").as_string(), "ok");
    EXPECT_EQ(e.at("http_status").as_int64(), 200);
    EXPECT_GT(e.at("completion_tokens").as_int64(), 0);
    const json::object& sens = e.at("sensitivity").as_object();
    ASSERT_TRUE(sens.contains("email")) << json::serialize(e);
    EXPECT_EQ(sens.at("email").as_int64(), 1);
  }
  EXPECT_EQ(got[2].at("outcome").as_string(), "client_error");
  EXPECT_EQ(got[2].at("http_status").as_int64(), 400);

  ASSERT_TRUE(db_->checkpoint().is_ok());
  for (const auto& ent : fs::recursive_directory_iterator(dir_)) {
    if (!ent.is_regular_file()) continue;
    std::string data = slurp(ent.path());
    EXPECT_EQ(data.find(kCanary), std::string::npos) << ent.path();
    EXPECT_EQ(data.find(email), std::string::npos) << ent.path();
  }
  auto audit_key = keys_->system_key(crypto::SystemKey::kAudit);
  ASSERT_TRUE(audit_key);
  auto report = audit::verify_audit_files(audit::list_audit_files(dir_ / "audit"), &*audit_key);
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->clean());
}

}  // namespace
}  // namespace enclave::server
