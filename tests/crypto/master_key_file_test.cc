// MasterKeySource::load_or_create_key_file: first start writes a 0600 random key, later starts
// read the same key, and a key store created under it reopens.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "crypto/file_util.h"
#include "crypto/keystore.h"

namespace enclave::crypto {
namespace {
namespace fs = std::filesystem;

TEST(MasterKeyFile, CreatedOnceThenReused) {
  fs::path dir = fs::temp_directory_path() / ("enclave_mkf_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::path file = dir / "keys" / "master.key";

  bool created = false;
  auto first = MasterKeySource::load_or_create_key_file(file, &created);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_TRUE(created);
  EXPECT_EQ(first->kind, MasterKeySource::Kind::kRawKey);
  ASSERT_EQ(first->secret.size(), 32u);
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto text = read_file(file);
  ASSERT_TRUE(text);
  EXPECT_EQ(text->size(), 65u);  // 64 hex + newline

  auto ks = KeyStore::create(dir / "keys", *first, nullptr);
  ASSERT_TRUE(ks) << ks.error().message;
  std::string fp = (*ks)->master_fingerprint();
  ks->reset();

  created = true;
  auto second = MasterKeySource::load_or_create_key_file(file, &created);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_FALSE(created);
  ASSERT_EQ(second->secret.size(), 32u);
  EXPECT_EQ(0, std::memcmp(first->secret.data(), second->secret.data(), 32));
  auto reopened = KeyStore::open(dir / "keys", *second);
  ASSERT_TRUE(reopened) << reopened.error().message;
  EXPECT_EQ((*reopened)->master_fingerprint(), fp);

  // A damaged key file is an error, never silently replaced.
  ASSERT_TRUE(write_file_durable(file, "not hex").is_ok());
  EXPECT_FALSE(MasterKeySource::load_or_create_key_file(file, &created));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace enclave::crypto
