// Thin, error-checked wrappers over OpenSSL 3: randomness, SHA-256, HMAC-SHA-256,
// constant-time comparison, hex, and AES-256-GCM sealing. Nothing here is hand-rolled.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "crypto/secret.h"

namespace enclave::crypto {

inline constexpr size_t kKeyBytes = 32;       // AES-256 and HMAC keys
inline constexpr size_t kGcmNonceBytes = 12;  // 96-bit random nonce per seal
inline constexpr size_t kGcmTagBytes = 16;
inline constexpr uint8_t kSealVersion = 1;
// Sealed layout: [version:1][nonce:12][ciphertext:n][tag:16].
inline constexpr size_t kSealOverheadBytes = 1 + kGcmNonceBytes + kGcmTagBytes;

using Sha256Digest = std::array<uint8_t, 32>;

inline std::span<const uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Fills `out` from the OpenSSL CSPRNG.
Status random_fill(std::span<uint8_t> out);
Result<std::vector<uint8_t>> random_bytes(size_t n);
// A fresh random 256-bit key.
Result<SecretBytes> random_key();

Sha256Digest sha256(std::span<const uint8_t> data);
Result<Sha256Digest> hmac_sha256(std::span<const uint8_t> key, std::span<const uint8_t> data);

// Constant-time equality (CRYPTO_memcmp); false when sizes differ.
bool constant_time_equal(std::span<const uint8_t> a, std::span<const uint8_t> b);

std::string hex_encode(std::span<const uint8_t> data);
// Lowercase or uppercase hex; error on odd length or non-hex characters.
Result<std::vector<uint8_t>> hex_decode(std::string_view hex);
// Hex straight into a SecretBytes (for keys given as hex in files or env vars).
Result<SecretBytes> hex_decode_secret(std::string_view hex);
// URL-safe base64 without padding (API keys).
std::string base64url_encode(std::span<const uint8_t> data);

// AES-256-GCM with a random nonce. `aad` is authenticated, not encrypted: bind the ciphertext
// to its context (table, row, tenant) so it cannot be moved.
Result<std::vector<uint8_t>> aead_seal(const SecretBytes& key, std::span<const uint8_t> plaintext,
                                       std::span<const uint8_t> aad);
// Opens a sealed blob. Fails with kCorruptData (and returns no plaintext at all) when the key,
// the AAD or any byte is wrong; the partially decrypted buffer is wiped before returning.
Result<SecretBytes> aead_open(const SecretBytes& key, std::span<const uint8_t> sealed,
                              std::span<const uint8_t> aad);

}  // namespace enclave::crypto
