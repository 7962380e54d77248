// KeyStore: passphrase and raw-key sources, wrong passphrase, tenant keys, shredding, rotation.
#include "crypto/keystore.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "crypto/file_util.h"
#include "crypto/primitives.h"

namespace enclave::crypto {
namespace {
namespace fs = std::filesystem;

class KeyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("enclave_ks_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<KeyStore> make(const std::string& pass, KdfKind kind = KdfKind::kArgon2id) {
    auto kdf = KdfParams::weak_for_tests(kind);
    EXPECT_TRUE(kdf);
    auto ks = KeyStore::create(dir_, MasterKeySource::passphrase(SecretBytes::from_string(pass)),
                               &*kdf, {.allow_weak_kdf = true});
    EXPECT_TRUE(ks) << (ks ? "" : ks.error().message);
    return ks ? std::move(ks).value() : nullptr;
  }
  Result<std::unique_ptr<KeyStore>> reopen(const std::string& pass) {
    return KeyStore::open(dir_, MasterKeySource::passphrase(SecretBytes::from_string(pass)),
                          {.allow_weak_kdf = true});
  }
  fs::path dir_;
};

TEST_F(KeyStoreTest, CreateReopenAndWrongPassphrase) {
  const std::string pass = "Tr0ub4dor&3-unique-passphrase";
  auto ks = make(pass);
  ASSERT_TRUE(ks);
  ASSERT_TRUE(ks->create_tenant_key("acme"));
  auto k1 = ks->tenant_key("acme");
  ASSERT_TRUE(k1);
  EXPECT_TRUE(KeyStore::exists(dir_));

  auto again = reopen(pass);
  ASSERT_TRUE(again) << again.error().message;
  auto k2 = (*again)->tenant_key("acme");
  ASSERT_TRUE(k2);
  EXPECT_TRUE(constant_time_equal(k1->span(), k2->span()));
  EXPECT_EQ((*again)->master_fingerprint(), ks->master_fingerprint());

  auto wrong = reopen("Tr0ub4dor&3-unique-passphrasf");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, ErrorCode::kUnauthenticated);
  EXPECT_NE(wrong.error().message.find("wrong passphrase"), std::string::npos);
  EXPECT_EQ(wrong.error().message.find("Tr0ub4dor"), std::string::npos);  // never echo secrets

  // Refuses to overwrite an existing store.
  auto kdf = KdfParams::weak_for_tests(KdfKind::kArgon2id);
  auto dup = KeyStore::create(dir_, MasterKeySource::passphrase(SecretBytes::from_string(pass)),
                              &*kdf, {.allow_weak_kdf = true});
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, ErrorCode::kAlreadyExists);
}

TEST_F(KeyStoreTest, WeakKdfRefusedWithoutOptIn) {
  auto ks = make("pass-pbkdf2", KdfKind::kPbkdf2Sha256);
  ASSERT_TRUE(ks);
  auto meta = read_file(dir_ / "master.meta");
  ASSERT_TRUE(meta);
  EXPECT_NE(meta->find("kdf=pbkdf2"), std::string::npos);
  EXPECT_NE(meta->find("pbkdf2_iterations=1000"), std::string::npos);
  EXPECT_NE(meta->find("salt="), std::string::npos);
  auto strict =
      KeyStore::open(dir_, MasterKeySource::passphrase(SecretBytes::from_string("pass-pbkdf2")));
  ASSERT_FALSE(strict);
  EXPECT_NE(strict.error().message.find("600000"), std::string::npos);
}

TEST_F(KeyStoreTest, KeysLiveOutsideAndNothingSecretInFiles) {
  auto ks = make("file-scan-pass");
  ASSERT_TRUE(ks);
  ASSERT_TRUE(ks->create_tenant_key("acme"));
  auto key = ks->tenant_key("acme");
  ASSERT_TRUE(key);
  std::string key_hex = hex_encode(key->span());
  for (const auto& e : fs::recursive_directory_iterator(dir_)) {
    if (!e.is_regular_file()) continue;
    auto text = read_file(e.path());
    ASSERT_TRUE(text);
    EXPECT_EQ(text->find("file-scan-pass"), std::string::npos) << e.path();
    EXPECT_EQ(text->find(key_hex), std::string::npos) << e.path();
    EXPECT_EQ(text->find(std::string(key->view())), std::string::npos) << e.path();
  }
}

TEST_F(KeyStoreTest, TenantKeysAreDistinctAndDestroyable) {
  auto ks = make("p");
  ASSERT_TRUE(ks);
  ASSERT_TRUE(ks->create_tenant_key("a"));
  ASSERT_TRUE(ks->create_tenant_key("b"));
  EXPECT_FALSE(ks->create_tenant_key("a"));
  EXPECT_FALSE(ks->create_tenant_key("../evil"));
  EXPECT_FALSE(ks->create_tenant_key("UPPER"));
  auto ka = ks->tenant_key("a");
  auto kb = ks->tenant_key("b");
  ASSERT_TRUE(ka && kb);
  EXPECT_FALSE(constant_time_equal(ka->span(), kb->span()));
  auto list = ks->list_tenant_keys();
  ASSERT_TRUE(list);
  EXPECT_EQ(*list, (std::vector<std::string>{"a", "b"}));
  ASSERT_TRUE(ks->destroy_tenant_key("a"));
  EXPECT_FALSE(ks->has_tenant_key("a"));
  EXPECT_FALSE(ks->tenant_key("a"));
  EXPECT_FALSE(fs::exists(dir_ / "tenants" / "a.key"));
  EXPECT_TRUE(ks->tenant_key("b"));
}

TEST_F(KeyStoreTest, WrappedKeyCopiedToAnotherTenantFails) {
  auto ks = make("p");
  ASSERT_TRUE(ks);
  ASSERT_TRUE(ks->create_tenant_key("a"));
  ASSERT_TRUE(ks->create_tenant_key("b"));
  auto text = read_file(dir_ / "tenants" / "a.key");
  ASSERT_TRUE(text);
  std::string forged = *text;
  forged.replace(forged.find("name=tenant:a"), 13, "name=tenant:b");
  ASSERT_TRUE(write_file_durable(dir_ / "tenants" / "b.key", forged));
  auto kb = ks->tenant_key("b");
  ASSERT_FALSE(kb);
  EXPECT_EQ(kb.error().code, ErrorCode::kCorruptData);
}

TEST_F(KeyStoreTest, RotationRewrapsWithoutChangingDataKeys) {
  auto ks = make("old-pass");
  ASSERT_TRUE(ks);
  ASSERT_TRUE(ks->create_tenant_key("acme"));
  auto before = ks->tenant_key("acme");
  auto audit_before = ks->system_key(SystemKey::kAudit);
  ASSERT_TRUE(before && audit_before);
  auto sealed = aead_seal(*before, as_bytes("data sealed before rotation"), as_bytes("row1"));
  ASSERT_TRUE(sealed);
  std::string old_fp = ks->master_fingerprint();

  auto kdf = KdfParams::weak_for_tests(KdfKind::kPbkdf2Sha256);
  ASSERT_TRUE(
      ks->rotate_master(MasterKeySource::passphrase(SecretBytes::from_string("new-pass")), &*kdf));
  EXPECT_NE(ks->master_fingerprint(), old_fp);
  EXPECT_FALSE(reopen("old-pass"));
  auto again = reopen("new-pass");
  ASSERT_TRUE(again) << again.error().message;
  auto after = (*again)->tenant_key("acme");
  ASSERT_TRUE(after);
  auto plain = aead_open(*after, *sealed, as_bytes("row1"));
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->view(), "data sealed before rotation");
  auto audit_after = (*again)->system_key(SystemKey::kAudit);
  ASSERT_TRUE(audit_after);
  EXPECT_TRUE(constant_time_equal(audit_before->span(), audit_after->span()));
  for (const auto& e : fs::recursive_directory_iterator(dir_)) {
    EXPECT_NE(e.path().extension(), ".new") << e.path();
  }
}

TEST_F(KeyStoreTest, InterruptedRotationRollsBack) {
  auto ks = make("pass");
  ASSERT_TRUE(ks);
  ASSERT_TRUE(ks->create_tenant_key("acme"));
  // Simulate a crash after staging but before the commit rename.
  ASSERT_TRUE(write_file_durable(dir_ / "tenants" / "acme.key.new", "garbage"));
  ASSERT_TRUE(write_file_durable(dir_ / "master.meta.new", "garbage"));
  auto again = reopen("pass");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_TRUE((*again)->tenant_key("acme"));
  EXPECT_FALSE(fs::exists(dir_ / "tenants" / "acme.key.new"));
  EXPECT_FALSE(fs::exists(dir_ / "master.meta.new"));
}

TEST_F(KeyStoreTest, RawKeyFromHexFileAndEnvironment) {
  std::string hex(64, 'a');
  auto src = MasterKeySource::raw_key_hex(hex);
  ASSERT_TRUE(src);
  auto ks = KeyStore::create(dir_, *src, nullptr);
  ASSERT_TRUE(ks) << ks.error().message;
  ASSERT_TRUE((*ks)->create_tenant_key("t1"));

  fs::path key_file = dir_.string() + ".keyfile";
  { std::ofstream(key_file) << hex << "\n"; }
  auto from_file = MasterKeySource::from_key_file(key_file);
  ASSERT_TRUE(from_file);
  auto again = KeyStore::open(dir_, *from_file);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_TRUE((*again)->tenant_key("t1"));
  fs::remove(key_file);

  ::setenv(kEnvMasterKey, hex.c_str(), 1);
  auto from_env = MasterKeySource::from_environment();
  ::unsetenv(kEnvMasterKey);
  ASSERT_TRUE(from_env);
  EXPECT_TRUE(KeyStore::open(dir_, *from_env));

  auto wrong = MasterKeySource::raw_key_hex(std::string(64, 'b'));
  ASSERT_TRUE(wrong);
  auto bad = KeyStore::open(dir_, *wrong);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kUnauthenticated);
  // A passphrase cannot open a raw-key store: clear message, no attempt.
  auto mismatch = KeyStore::open(dir_, MasterKeySource::passphrase(SecretBytes::from_string("x")));
  ASSERT_FALSE(mismatch);
  EXPECT_NE(mismatch.error().message.find("ENCLAVE_MASTER_KEY"), std::string::npos);
  EXPECT_FALSE(MasterKeySource::raw_key_hex("abcd"));
}

}  // namespace
}  // namespace enclave::crypto
