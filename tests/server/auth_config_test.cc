// API keys (generation, HMAC digests, key file, server secret permissions) and YAML config.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>
#include <vector>

#include "server/auth.h"
#include "server/config.h"

namespace enclave::server {
namespace {

std::string temp_dir(const char* name) {
  auto p = std::filesystem::temp_directory_path() /
           (std::string("enclave_server_") + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

TEST(ApiKeys, GeneratedKeysAreRandomAndWellFormed) {
  Result<std::string> a = generate_api_key();
  Result<std::string> b = generate_api_key();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->rfind("sk-enclave-", 0), 0u);
  EXPECT_EQ(a->size(), 11u + 43u);  // 32 bytes base64url without padding
  EXPECT_NE(*a, *b);
  for (char c : a->substr(11))
    EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_');
}

TEST(ApiKeys, AuthenticateByDigestWithScopes) {
  KeyStore ks = KeyStore::with_secret(std::string(32, 'x'));
  ASSERT_TRUE(ks.add_key("c", "sk-enclave-aaaaaaaaaaaaaaaa", 1).is_ok());
  ASSERT_TRUE(ks.add_key("e", "sk-enclave-bbbbbbbbbbbbbbbb", 2).is_ok());
  Result<KeyInfo> c = ks.authenticate("sk-enclave-aaaaaaaaaaaaaaaa");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->name, "c");
  EXPECT_EQ(c->scopes, 1u);
  EXPECT_EQ(ks.authenticate("sk-enclave-bbbbbbbbbbbbbbbb")->name, "e");
  Result<KeyInfo> bad = ks.authenticate("sk-enclave-aaaaaaaaaaaaaaab");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kUnauthenticated);
  EXPECT_FALSE(ks.add_key("short", "abc", 1).is_ok());
  // A different secret gives different digests: the same key no longer matches.
  KeyStore other = KeyStore::with_secret(std::string(32, 'y'));
  ASSERT_TRUE(other.add_key("c", "sk-enclave-aaaaaaaaaaaaaaaa", 1).is_ok());
  EXPECT_TRUE(other.authenticate("sk-enclave-aaaaaaaaaaaaaaaa"));
}

// Digests come from pooled HMAC contexts restarted per call: call after call, from several
// threads at once, each must equal a one-shot HMAC-SHA-256 of the key under the secret.
TEST(ApiKeys, PooledHmacContextsGiveOneShotDigestsUnderConcurrency) {
  const std::string secret(32, 's');
  const std::string key = "sk-enclave-pooled-0123456789abcdef";
  KeyStore ks = KeyStore::with_secret(secret);
  ASSERT_TRUE(ks.add_persistent_key("pooled", key, 1).is_ok());
  ASSERT_TRUE(ks.add_key("other", "sk-enclave-other-0123456789abcdef", 2).is_ok());
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        // Alternate good and bad keys of different lengths so a context that kept any state
        // from the previous call would give a wrong answer.
        if ((i + t) % 3 == 0) {
          if (ks.authenticate(key + std::string(static_cast<size_t>(i % 5 + 1), 'x'))) ++wrong;
        } else if (i % 2 == 0) {
          auto r = ks.authenticate(key);
          if (!r || r->name != "pooled") ++wrong;
        } else {
          auto r = ks.authenticate("sk-enclave-other-0123456789abcdef");
          if (!r || r->name != "other") ++wrong;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);

  unsigned char expected[32];
  unsigned int len = 0;
  ASSERT_NE(HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
                 reinterpret_cast<const unsigned char*>(key.data()), key.size(), expected, &len),
            nullptr);
  std::string expected_hex;
  for (unsigned i = 0; i < len; ++i) {
    char buf[3];
    std::snprintf(buf, sizeof(buf), "%02x", expected[i]);
    expected_hex += buf;
  }
  std::string dir = temp_dir("pooled");
  ASSERT_TRUE(ks.save_file(dir + "/keys.json").is_ok());
  std::ifstream in(dir + "/keys.json");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find(expected_hex), std::string::npos) << "digest differs from one-shot HMAC";
  std::filesystem::remove_all(dir);
}

TEST(ApiKeys, SecretAndKeyFileArePrivateAndHoldNoKeys) {
  std::string dir = temp_dir("keys");
  std::string key = *generate_api_key();
  {
    Result<KeyStore> ks = KeyStore::open(dir);
    ASSERT_TRUE(ks) << ks.error().message;
    ASSERT_TRUE(ks->add_persistent_key("admin", key, 7).is_ok());
    ASSERT_TRUE(ks->add_key("memory-only", "sk-enclave-cccccccccccccccc", 1).is_ok());
    ASSERT_TRUE(ks->save_file(dir + "/keys.json").is_ok());
  }
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/server.secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_size, 32);
  ASSERT_EQ(::stat((dir + "/keys.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::ifstream in(dir + "/keys.json");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text.find(key), std::string::npos);
  EXPECT_EQ(text.find("memory-only"), std::string::npos);
  EXPECT_NE(text.find("\"admin\""), std::string::npos);
  // Reopen: same secret, key file loads, key authenticates.
  Result<KeyStore> again = KeyStore::open(dir);
  ASSERT_TRUE(again);
  ASSERT_TRUE(again->load_file(dir + "/keys.json").is_ok());
  EXPECT_EQ(again->size(), 1u);
  Result<KeyInfo> info = again->authenticate(key);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->scopes, 7u);
  std::filesystem::remove_all(dir);
}

TEST(ApiKeys, CorruptKeyFileIsAnError) {
  std::string dir = temp_dir("corrupt");
  std::ofstream(dir + "/keys.json")
      << "{\"keys\":[{\"name\":\"a\",\"digest\":\"zz\",\"scopes\":[]}]}";
  KeyStore ks = KeyStore::with_secret(std::string(32, 'x'));
  Status st = ks.load_file(dir + "/keys.json");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kCorruptData);
  std::filesystem::remove_all(dir);
}

TEST(ApiKeys, Scopes) {
  EXPECT_EQ(*parse_scopes({"chat"}), 1u);
  EXPECT_EQ(*parse_scopes({"chat", "embeddings"}), 3u);
  EXPECT_EQ(*parse_scopes({"admin"}), 7u);
  EXPECT_FALSE(parse_scopes({"root"}));
}

TEST(Config, YamlOverridesDefaults) {
  ServerConfig c;
  ASSERT_TRUE(load_config_text(R"(
host: 0.0.0.0
port: 9000
model: /m.gguf
parallel: 8
ctx: 2048
metrics_public: true
max_body_bytes: 1000
keys:
  - name: ci
    key: sk-enclave-0123456789abcdef
    scopes: [chat]
)",
                               c)
                  .is_ok());
  EXPECT_EQ(c.host, "0.0.0.0");
  EXPECT_EQ(c.port, 9000);
  EXPECT_EQ(c.model, "/m.gguf");
  EXPECT_EQ(c.parallel, 8);
  EXPECT_EQ(c.ctx, 2048);
  EXPECT_TRUE(c.metrics_public);
  EXPECT_EQ(c.max_body_bytes, 1000u);
  EXPECT_EQ(c.threads, 2);  // untouched default
  ASSERT_EQ(c.keys.size(), 1u);
  EXPECT_EQ(c.keys[0].scopes, std::vector<std::string>{"chat"});
  EXPECT_EQ(c.effective_key_file(), "./data/keys.json");
  EXPECT_EQ(c.audit_fsync, "always");  // default: durable before the answer
  ASSERT_TRUE(load_config_text("audit_fsync: batch\n", c).is_ok());
  EXPECT_EQ(c.audit_fsync, "batch");
  EXPECT_FALSE(c.mmap);  // default: weights copied into huge-page memory
  ASSERT_TRUE(load_config_text("mmap: true\n", c).is_ok());
  EXPECT_TRUE(c.mmap);
  EXPECT_FALSE(load_config_text("mmap: sometimes\n", c).is_ok());
}

TEST(Config, Errors) {
  ServerConfig c;
  Status typo = load_config_text("prot: 80\n", c);
  ASSERT_FALSE(typo);
  EXPECT_NE(typo.error().message.find("prot"), std::string::npos);
  EXPECT_FALSE(load_config_text("port: [1]\n", c));
  EXPECT_FALSE(load_config_text("port: 70000\n", c));
  EXPECT_FALSE(load_config_text("parallel: 0\n", c));
  EXPECT_FALSE(load_config_text("keys: [{name: x}]\n", c));
  Status fsync = load_config_text("audit_fsync: sometimes\n", c);
  ASSERT_FALSE(fsync);
  EXPECT_NE(fsync.error().message.find("always, batch or never"), std::string::npos);
  EXPECT_EQ(load_config_file("/nonexistent/enclave.yaml", c).error().code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace enclave::server
