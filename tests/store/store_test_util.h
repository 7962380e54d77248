// Shared by the store tests: a fresh directory per test with a key store under it.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "crypto/keystore.h"

namespace enclave::store::testing {

// dir_ is <tmp>/enclave_<suite>_<pid>_<test>, emptied before and removed after each test; keys_
// is a key store in dir_/keys (weak Argon2id parameters, so that tests stay fast).
class KeyedDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("enclave_" + std::string(info->test_suite_name()) + "_" + std::to_string(::getpid()) +
            "_" + info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto kdf = crypto::KdfParams::weak_for_tests(crypto::KdfKind::kArgon2id);
    ASSERT_TRUE(kdf);
    auto ks = crypto::KeyStore::create(
        dir_ / "keys", crypto::MasterKeySource::passphrase(crypto::SecretBytes::from_string("pw")),
        &*kdf, {.allow_weak_kdf = true});
    ASSERT_TRUE(ks) << ks.error().message;
    keys_ = std::move(ks).value();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::unique_ptr<crypto::KeyStore> keys_;
};

}  // namespace enclave::store::testing
