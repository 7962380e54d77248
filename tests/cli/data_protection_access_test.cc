// cli/data_protection_access: the master-key resolution order shared by serve and the keys,
// tenant and audit commands, and the modes of everything a first start creates.
#include "cli/data_protection_access.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace enclave::cli {
namespace {
namespace fs = std::filesystem;

constexpr const char* kOtherKeyHex =
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return 07777;  // no such file: matches no expected mode
  return st.st_mode & 0777;
}

class DataProtectionAccessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* var :
         {crypto::kEnvMasterKey, crypto::kEnvMasterKeyFile, crypto::kEnvPassphrase}) {
      ::unsetenv(var);
    }
    // A usual umask that leaves group/other read bits: files must be private regardless.
    old_umask_ = ::umask(022);
    root_ = fs::temp_directory_path() /
            ("enclave_cli_dp_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
    data_dir_ = (root_ / "data").string();
  }
  void TearDown() override {
    ::umask(old_umask_);
    fs::remove_all(root_);
  }
  // What `enclave serve` does on a first start with no key configured.
  Result<DataProtection> open_as_serve() {
    return open_data_protection(data_dir_, {.missing_master_key = MissingMasterKey::kCreateKeyFile,
                                            .create_key_store = true,
                                            .actor = "serve"});
  }

  mode_t old_umask_ = 0;
  fs::path root_;
  std::string data_dir_;
};

TEST_F(DataProtectionAccessTest, FirstServeStartCreatesOnlyPrivateFilesAndDirectories) {
  auto dp = open_as_serve();
  ASSERT_TRUE(dp) << dp.error().message;
  EXPECT_TRUE(dp->master_key_file_created);
  EXPECT_TRUE(dp->key_store_created);
  EXPECT_EQ(dp->master_key_file, default_master_key_file(data_dir_));
  ASSERT_TRUE(dp->db->create_tenant("acme"));  // writes the WAL, the key store and the audit log

  const fs::path data(data_dir_);
  for (const fs::path& dir :
       {data, data / "keys", data / "keys" / "tenants", data / "keys" / "system", data / "audit"}) {
    EXPECT_EQ(mode_of(dir), 0700u) << dir;
  }
  size_t n_files = 0;
  for (const fs::path& dir :
       {data, data / "keys", data / "keys" / "tenants", data / "keys" / "system", data / "audit"}) {
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (!entry.is_regular_file()) continue;
      EXPECT_EQ(mode_of(entry.path()), 0600u) << entry.path();
      ++n_files;
    }
  }
  for (const char* name : {"enclave.db", "enclave.db-wal", "enclave.db-shm"}) {
    EXPECT_TRUE(fs::exists(data / name)) << name;
  }
  EXPECT_TRUE(fs::exists(data / "keys" / "master.key"));
  EXPECT_TRUE(fs::exists(data / "keys" / "tenants" / "acme.key"));
  EXPECT_GE(n_files, 9u);  // db + wal + shm, master.key/.meta, 2 system keys, tenant key, audit
}

TEST_F(DataProtectionAccessTest, SubcommandsFindTheKeyFileServeGenerated) {
  {
    auto serve = open_as_serve();
    ASSERT_TRUE(serve) << serve.error().message;
    ASSERT_TRUE(serve->db->create_tenant("acme"));
  }
  // No environment variable and no terminal: the key file is found before any prompt.
  auto cli = open_data_protection(data_dir_);
  ASSERT_TRUE(cli) << cli.error().message;
  EXPECT_EQ(cli->master_key_file, default_master_key_file(data_dir_));
  EXPECT_FALSE(cli->master_key_file_created);
  EXPECT_FALSE(cli->key_store_created);
  auto tenants = cli->db->list_tenants();
  ASSERT_TRUE(tenants) << tenants.error().message;
  ASSERT_EQ(tenants->size(), 1u);
  EXPECT_EQ((*tenants)[0].name, "acme");
  EXPECT_TRUE(cli->keys->has_tenant_key("acme"));
}

TEST_F(DataProtectionAccessTest, EnvironmentComesBeforeTheKeyFile) {
  ASSERT_TRUE(open_as_serve());
  ASSERT_EQ(::setenv(crypto::kEnvMasterKey, kOtherKeyHex, 1), 0);
  auto master = resolve_master_key(data_dir_, MissingMasterKey::kPromptPassphrase);
  ASSERT_TRUE(master) << master.error().message;
  EXPECT_TRUE(master->key_file.empty());
  EXPECT_EQ(master->source.kind, crypto::MasterKeySource::Kind::kRawKey);
  // The store was created under the key file's key, so the other key is refused.
  auto dp = open_data_protection(data_dir_);
  ASSERT_FALSE(dp);
  EXPECT_EQ(dp.error().code, ErrorCode::kUnauthenticated);
}

TEST_F(DataProtectionAccessTest, ServeWithAnEnvironmentKeyWritesNoKeyFile) {
  ASSERT_EQ(::setenv(crypto::kEnvMasterKey, kOtherKeyHex, 1), 0);
  auto dp = open_as_serve();
  ASSERT_TRUE(dp) << dp.error().message;
  EXPECT_TRUE(dp->master_key_file.empty());
  EXPECT_FALSE(fs::exists(default_master_key_file(data_dir_)));
  EXPECT_EQ(mode_of(data_dir_), 0700u);
  EXPECT_EQ(mode_of(fs::path(data_dir_) / "enclave.db"), 0600u);
}

TEST_F(DataProtectionAccessTest, NoKeyAnywhereNamesEveryWayToProvideOne) {
  // stdin from /dev/null: no terminal, so no prompt.
  ASSERT_NE(std::freopen("/dev/null", "r", stdin), nullptr);
  auto master = resolve_master_key(data_dir_, MissingMasterKey::kPromptPassphrase);
  ASSERT_FALSE(master);
  EXPECT_EQ(master.error().code, ErrorCode::kNotFound);
  const std::string& msg = master.error().message;
  for (const char* part : {"ENCLAVE_PASSPHRASE", "ENCLAVE_MASTER_KEY", "ENCLAVE_MASTER_KEY_FILE",
                           "master.key", "enclave serve"}) {
    EXPECT_NE(msg.find(part), std::string::npos) << part << " missing from: " << msg;
  }
  // Looking for a key creates nothing.
  EXPECT_FALSE(fs::exists(data_dir_));
  // A subcommand never creates a key store: that is `enclave keys init`.
  ASSERT_EQ(::setenv(crypto::kEnvMasterKey, kOtherKeyHex, 1), 0);
  auto dp = open_data_protection(data_dir_);
  ASSERT_FALSE(dp);
  EXPECT_EQ(dp.error().code, ErrorCode::kNotFound);
  EXPECT_NE(dp.error().message.find("keys init"), std::string::npos) << dp.error().message;
}

}  // namespace
}  // namespace enclave::cli
