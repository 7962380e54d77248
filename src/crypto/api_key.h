// API keys: generation and storage-safe hashing. Keys are stored only as HMAC-SHA-256 under a
// server secret (KeyStore::system_key(SystemKey::kApiKey)), compared in constant time.
#pragma once

#include <string>
#include <string_view>

#include "core/result.h"
#include "crypto/secret.h"

namespace enclave::crypto {

inline constexpr std::string_view kApiKeyPrefix = "ek_";

// A fresh key "ek_" + 43 base64url characters (256 bits). Shown to the operator once.
Result<SecretBytes> generate_api_key();

class ApiKeyHasher {
 public:
  explicit ApiKeyHasher(SecretBytes server_secret) : secret_(std::move(server_secret)) {}
  // Lowercase hex HMAC-SHA-256 of the presented key; safe to store and index.
  Result<std::string> hash(std::string_view api_key) const;
  // Constant-time check of a presented key against a stored hash.
  bool verify(std::string_view api_key, std::string_view stored_hash_hex) const;

 private:
  SecretBytes secret_;
};

}  // namespace enclave::crypto
