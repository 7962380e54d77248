#include "crypto/api_key.h"

#include "crypto/primitives.h"

namespace enclave::crypto {

Result<SecretBytes> generate_api_key() {
  SecretBytes raw(32);
  ENCLAVE_TRY_STATUS(random_fill({raw.data(), raw.size()}));
  std::string text = std::string(kApiKeyPrefix) + base64url_encode(raw.span());
  SecretBytes out = SecretBytes::from_string(text);
  secure_wipe(text.data(), text.size());
  return out;
}

Result<std::string> ApiKeyHasher::hash(std::string_view api_key) const {
  ENCLAVE_ASSIGN_OR_RETURN(Sha256Digest mac, hmac_sha256(secret_.span(), as_bytes(api_key)));
  return hex_encode(mac);
}

bool ApiKeyHasher::verify(std::string_view api_key, std::string_view stored_hash_hex) const {
  auto computed = hash(api_key);
  if (!computed) return false;
  return constant_time_equal(as_bytes(*computed), as_bytes(stored_hash_hex));
}

}  // namespace enclave::crypto
