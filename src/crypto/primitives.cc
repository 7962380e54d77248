#include "crypto/primitives.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <climits>
#include <memory>

namespace enclave::crypto {
namespace {

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

Error crypto_error(const char* what) {
  return make_error(ErrorCode::kInternal, std::string("OpenSSL failure in ") + what +
                                              "; check the OpenSSL 3 installation");
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Status random_fill(std::span<uint8_t> out) {
  if (out.empty()) return Status::ok();
  if (out.size() > INT_MAX || RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) {
    return crypto_error("RAND_bytes");
  }
  return Status::ok();
}

Result<std::vector<uint8_t>> random_bytes(size_t n) {
  std::vector<uint8_t> out(n);
  ENCLAVE_TRY_STATUS(random_fill(out));
  return out;
}

Result<SecretBytes> random_key() {
  SecretBytes key(kKeyBytes);
  ENCLAVE_TRY_STATUS(random_fill({key.data(), key.size()}));
  return key;
}

Sha256Digest sha256(std::span<const uint8_t> data) {
  Sha256Digest out{};
  unsigned int len = 0;
  // EVP_Digest only fails on allocation failure; the digest is then all zeros and any chain
  // check using it fails loudly rather than silently passing.
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

Result<Sha256Digest> hmac_sha256(std::span<const uint8_t> key, std::span<const uint8_t> data) {
  Sha256Digest out{};
  unsigned int len = 0;
  if (key.size() > INT_MAX ||
      HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data.data(), data.size(),
           out.data(), &len) == nullptr ||
      len != out.size()) {
    return crypto_error("HMAC-SHA-256");
  }
  return out;
}

bool constant_time_equal(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string hex_encode(std::span<const uint8_t> data) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.resize(data.size() * 2);
  for (size_t i = 0; i < data.size(); ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0xf];
  }
  return out;
}

Result<std::vector<uint8_t>> hex_decode(std::string_view hex) {
  if (hex.size() % 2 != 0) {
    return make_error(ErrorCode::kInvalidArgument, "hex string has odd length");
  }
  std::vector<uint8_t> out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return make_error(ErrorCode::kInvalidArgument, "hex string has a non-hex character");
    }
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

Result<SecretBytes> hex_decode_secret(std::string_view hex) {
  if (hex.size() % 2 != 0) {
    return make_error(ErrorCode::kInvalidArgument, "hex key has odd length");
  }
  SecretBytes out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return make_error(ErrorCode::kInvalidArgument, "hex key has a non-hex character");
    }
    out.data()[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

std::string base64url_encode(std::span<const uint8_t> data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t v = uint32_t(data[i]) << 16 | uint32_t(data[i + 1]) << 8 | data[i + 2];
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  size_t rest = data.size() - i;
  if (rest == 1) {
    uint32_t v = uint32_t(data[i]) << 16;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
  } else if (rest == 2) {
    uint32_t v = uint32_t(data[i]) << 16 | uint32_t(data[i + 1]) << 8;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

Result<std::vector<uint8_t>> aead_seal(const SecretBytes& key, std::span<const uint8_t> plaintext,
                                       std::span<const uint8_t> aad) {
  if (key.size() != kKeyBytes) {
    return make_error(ErrorCode::kInvalidArgument, "AES-256-GCM needs a 32-byte key");
  }
  if (plaintext.size() > INT_MAX / 2 || aad.size() > INT_MAX) {
    return make_error(ErrorCode::kOutOfRange, "message too large to seal (limit 1 GiB)");
  }
  std::vector<uint8_t> out(kSealOverheadBytes + plaintext.size());
  out[0] = kSealVersion;
  uint8_t* nonce = out.data() + 1;
  uint8_t* ct = nonce + kGcmNonceBytes;
  uint8_t* tag = ct + plaintext.size();
  ENCLAVE_TRY_STATUS(random_fill({nonce, kGcmNonceBytes}));

  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nonce) != 1) {
    return crypto_error("AES-256-GCM init");
  }
  if (!aad.empty() &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1) {
    return crypto_error("AES-256-GCM aad");
  }
  if (!plaintext.empty() && EVP_EncryptUpdate(ctx.get(), ct, &len, plaintext.data(),
                                              static_cast<int>(plaintext.size())) != 1) {
    return crypto_error("AES-256-GCM encrypt");
  }
  if (EVP_EncryptFinal_ex(ctx.get(), ct + plaintext.size(), &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kGcmTagBytes, tag) != 1) {
    return crypto_error("AES-256-GCM finish");
  }
  return out;
}

Result<SecretBytes> aead_open(const SecretBytes& key, std::span<const uint8_t> sealed,
                              std::span<const uint8_t> aad) {
  if (key.size() != kKeyBytes) {
    return make_error(ErrorCode::kInvalidArgument, "AES-256-GCM needs a 32-byte key");
  }
  if (sealed.size() < kSealOverheadBytes || sealed[0] != kSealVersion) {
    return make_error(ErrorCode::kCorruptData,
                      "sealed blob is truncated or has an unknown format version");
  }
  if (sealed.size() > INT_MAX / 2 || aad.size() > INT_MAX) {
    return make_error(ErrorCode::kOutOfRange, "sealed blob too large");
  }
  const uint8_t* nonce = sealed.data() + 1;
  const uint8_t* ct = nonce + kGcmNonceBytes;
  size_t ct_len = sealed.size() - kSealOverheadBytes;
  const uint8_t* tag = ct + ct_len;

  SecretBytes plain(ct_len + 16);  // room for EVP_DecryptFinal; wiped on every exit
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nonce) != 1) {
    return crypto_error("AES-256-GCM init");
  }
  if (!aad.empty() &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1) {
    return crypto_error("AES-256-GCM aad");
  }
  if (ct_len &&
      EVP_DecryptUpdate(ctx.get(), plain.data(), &len, ct, static_cast<int>(ct_len)) != 1) {
    return crypto_error("AES-256-GCM decrypt");
  }
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kGcmTagBytes,
                          const_cast<uint8_t*>(tag)) != 1) {
    return crypto_error("AES-256-GCM tag");
  }
  int final_len = 0;
  if (EVP_DecryptFinal_ex(ctx.get(), plain.data() + ct_len, &final_len) != 1) {
    plain.wipe();  // never hand back unauthenticated plaintext
    return make_error(ErrorCode::kCorruptData,
                      "ciphertext failed authentication: wrong key, corrupted bytes, or a "
                      "ciphertext moved from another row or tenant");
  }
  plain.shrink(ct_len);
  return plain;
}

}  // namespace enclave::crypto
