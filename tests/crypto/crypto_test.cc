// Primitives, KDF parameters and API-key hashing.
#include <gtest/gtest.h>

#include <string>

#include "crypto/api_key.h"
#include "crypto/kdf.h"
#include "crypto/primitives.h"
#include "crypto/secret.h"

namespace enclave::crypto {
namespace {

TEST(SecretBytes, MoveLeavesSourceEmptyAndCloneIsIndependent) {
  SecretBytes a = SecretBytes::from_string("hunter2");
  SecretBytes b = std::move(a);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): checking the moved-from state
  EXPECT_EQ(b.view(), "hunter2");
  SecretBytes c = b.clone();
  b.wipe();
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(c.view(), "hunter2");
  c.shrink(3);
  EXPECT_EQ(c.view(), "hun");
}

TEST(Hex, RoundTripAndRejectsBadInput) {
  std::vector<uint8_t> data = {0x00, 0x01, 0xab, 0xff};
  EXPECT_EQ(hex_encode(data), "0001abff");
  auto back = hex_decode("0001ABff");
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, data);
  EXPECT_FALSE(hex_decode("abc"));
  EXPECT_FALSE(hex_decode("zz"));
}

TEST(Sha256, KnownAnswer) {
  EXPECT_EQ(hex_encode(sha256(as_bytes("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(HmacSha256, Rfc4231Case2) {
  auto mac = hmac_sha256(as_bytes("Jefe"), as_bytes("what do ya want for nothing?"));
  ASSERT_TRUE(mac);
  EXPECT_EQ(hex_encode(*mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(ConstantTimeEqual, SizesAndContent) {
  EXPECT_TRUE(constant_time_equal(as_bytes("abc"), as_bytes("abc")));
  EXPECT_FALSE(constant_time_equal(as_bytes("abc"), as_bytes("abd")));
  EXPECT_FALSE(constant_time_equal(as_bytes("abc"), as_bytes("abcd")));
}

class Aead : public ::testing::Test {
 protected:
  void SetUp() override {
    auto k = random_key();
    ASSERT_TRUE(k);
    key_ = std::move(k).value();
  }
  SecretBytes key_;
};

TEST_F(Aead, SealOpenRoundTrip) {
  auto sealed = aead_seal(key_, as_bytes("hello world"), as_bytes("ctx"));
  ASSERT_TRUE(sealed);
  EXPECT_EQ(sealed->size(), 11 + kSealOverheadBytes);
  auto plain = aead_open(key_, *sealed, as_bytes("ctx"));
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->view(), "hello world");
}

TEST_F(Aead, EmptyPlaintext) {
  auto sealed = aead_seal(key_, {}, as_bytes("ctx"));
  ASSERT_TRUE(sealed);
  auto plain = aead_open(key_, *sealed, as_bytes("ctx"));
  ASSERT_TRUE(plain);
  EXPECT_TRUE(plain->empty());
}

TEST_F(Aead, NoncesDiffer) {
  auto a = aead_seal(key_, as_bytes("same"), {});
  auto b = aead_seal(key_, as_bytes("same"), {});
  ASSERT_TRUE(a && b);
  EXPECT_NE(*a, *b);
}

TEST_F(Aead, EveryTamperFails) {
  auto sealed = aead_seal(key_, as_bytes("secret message"), as_bytes("ctx"));
  ASSERT_TRUE(sealed);
  for (size_t i = 0; i < sealed->size(); ++i) {
    auto bad = *sealed;
    bad[i] ^= 0x01;
    auto r = aead_open(key_, bad, as_bytes("ctx"));
    EXPECT_FALSE(r) << "byte " << i;
  }
  auto wrong_aad = aead_open(key_, *sealed, as_bytes("other"));
  ASSERT_FALSE(wrong_aad);
  EXPECT_EQ(wrong_aad.error().code, ErrorCode::kCorruptData);
  auto other_key = random_key();
  ASSERT_TRUE(other_key);
  EXPECT_FALSE(aead_open(*other_key, *sealed, as_bytes("ctx")));
  std::vector<uint8_t> truncated(sealed->begin(), sealed->begin() + 10);
  EXPECT_FALSE(aead_open(key_, truncated, as_bytes("ctx")));
}

TEST(Kdf, DefaultsMeetRequiredMinimums) {
  auto a = KdfParams::defaults(KdfKind::kArgon2id);
  auto p = KdfParams::defaults(KdfKind::kPbkdf2Sha256);
  ASSERT_TRUE(a && p);
  EXPECT_GE(p->pbkdf2_iterations, 600'000u);
  EXPECT_EQ(p->salt.size(), 16u);
  EXPECT_GE(a->argon2_time_cost, 2u);
  EXPECT_GE(a->argon2_memory_kib, 19u * 1024);
  EXPECT_GE(a->argon2_parallelism, 1u);
  EXPECT_EQ(a->salt.size(), 16u);
  EXPECT_TRUE(check_kdf_strength(*a));
  EXPECT_TRUE(check_kdf_strength(*p));
  auto a2 = KdfParams::defaults(KdfKind::kArgon2id);
  ASSERT_TRUE(a2);
  EXPECT_NE(a->salt, a2->salt);  // random salt per key store
}

TEST(Kdf, WeakParamsAreRejectedByStrengthCheck) {
  auto w = KdfParams::weak_for_tests(KdfKind::kPbkdf2Sha256);
  ASSERT_TRUE(w);
  auto st = check_kdf_strength(*w);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("600000"), std::string::npos);
  auto wa = KdfParams::weak_for_tests(KdfKind::kArgon2id);
  ASSERT_TRUE(wa);
  EXPECT_FALSE(check_kdf_strength(*wa));
  wa->salt.resize(8);
  EXPECT_FALSE(check_kdf_strength(*wa));
}

TEST(Kdf, Pbkdf2KnownAnswer) {
  // PBKDF2-HMAC-SHA256, P="password", S="salt", c=1 and c=2, dkLen=32.
  KdfParams p;
  p.kind = KdfKind::kPbkdf2Sha256;
  p.salt = {'s', 'a', 'l', 't'};
  p.pbkdf2_iterations = 1;
  auto k1 = derive_key(SecretBytes::from_string("password"), p);
  ASSERT_TRUE(k1);
  EXPECT_EQ(hex_encode(k1->span()),
            "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b");
  p.pbkdf2_iterations = 2;
  auto k2 = derive_key(SecretBytes::from_string("password"), p);
  ASSERT_TRUE(k2);
  EXPECT_EQ(hex_encode(k2->span()),
            "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43");
}

TEST(Kdf, Argon2idDeterministicAndSaltSensitive) {
  auto p = KdfParams::weak_for_tests(KdfKind::kArgon2id);
  ASSERT_TRUE(p);
  auto pass = SecretBytes::from_string("correct horse");
  auto k1 = derive_key(pass, *p);
  auto k2 = derive_key(pass, *p);
  ASSERT_TRUE(k1 && k2);
  EXPECT_EQ(k1->size(), 32u);
  EXPECT_TRUE(constant_time_equal(k1->span(), k2->span()));
  auto k3 = derive_key(SecretBytes::from_string("correct horsf"), *p);
  ASSERT_TRUE(k3);
  EXPECT_FALSE(constant_time_equal(k1->span(), k3->span()));
  p->salt[0] ^= 1;
  auto k4 = derive_key(pass, *p);
  ASSERT_TRUE(k4);
  EXPECT_FALSE(constant_time_equal(k1->span(), k4->span()));
  EXPECT_FALSE(derive_key(SecretBytes(), *p));
}

TEST(ApiKeys, GenerateHashVerify) {
  auto key = generate_api_key();
  ASSERT_TRUE(key);
  EXPECT_EQ(key->view().substr(0, 3), "ek_");
  EXPECT_EQ(key->size(), 3u + 43u);
  auto secret = random_key();
  ASSERT_TRUE(secret);
  ApiKeyHasher hasher(secret->clone());
  auto h = hasher.hash(key->view());
  ASSERT_TRUE(h);
  EXPECT_EQ(h->size(), 64u);
  EXPECT_EQ(h->find(std::string(key->view())), std::string::npos);
  EXPECT_TRUE(hasher.verify(key->view(), *h));
  EXPECT_FALSE(hasher.verify("ek_wrong", *h));
  auto other_secret = random_key();
  ASSERT_TRUE(other_secret);
  ApiKeyHasher other(std::move(other_secret).value());
  EXPECT_FALSE(other.verify(key->view(), *h));  // a stolen DB without the server secret is useless
}

}  // namespace
}  // namespace enclave::crypto
