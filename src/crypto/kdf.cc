#include "crypto/kdf.h"

#include <argon2.h>
#include <openssl/evp.h>

#include <climits>

#include "crypto/primitives.h"

namespace enclave::crypto {

const char* kdf_name(KdfKind kind) {
  return kind == KdfKind::kArgon2id ? "argon2id" : "pbkdf2-sha256";
}

Result<KdfKind> parse_kdf_name(std::string_view name) {
  if (name == "argon2id") return KdfKind::kArgon2id;
  if (name == "pbkdf2" || name == "pbkdf2-sha256") return KdfKind::kPbkdf2Sha256;
  return make_error(ErrorCode::kInvalidArgument,
                    "unknown KDF '" + std::string(name) + "'; use argon2id or pbkdf2");
}

Result<KdfParams> KdfParams::defaults(KdfKind kind) {
  KdfParams p;
  p.kind = kind;
  ENCLAVE_ASSIGN_OR_RETURN(p.salt, random_bytes(kMinSaltBytes));
  return p;
}

Result<KdfParams> KdfParams::weak_for_tests(KdfKind kind) {
  ENCLAVE_ASSIGN_OR_RETURN(KdfParams p, defaults(kind));
  p.argon2_time_cost = 1;
  p.argon2_memory_kib = 64;
  p.argon2_parallelism = 1;
  p.pbkdf2_iterations = 1000;
  return p;
}

Status check_kdf_strength(const KdfParams& p) {
  if (p.salt.size() < kMinSaltBytes) {
    return make_error(ErrorCode::kInvalidArgument, "KDF salt shorter than 16 bytes");
  }
  if (p.kind == KdfKind::kPbkdf2Sha256 && p.pbkdf2_iterations < kMinPbkdf2Iterations) {
    return make_error(ErrorCode::kInvalidArgument,
                      "PBKDF2 iteration count " + std::to_string(p.pbkdf2_iterations) +
                          " is below the minimum 600000; re-initialise the key store");
  }
  if (p.kind == KdfKind::kArgon2id &&
      (p.argon2_time_cost < kMinArgon2TimeCost || p.argon2_memory_kib < kMinArgon2MemoryKib ||
       p.argon2_parallelism < 1)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "Argon2id parameters below the minimum (t>=2, m>=19 MiB, p>=1); "
                      "re-initialise the key store");
  }
  return Status::ok();
}

Result<SecretBytes> derive_key(const SecretBytes& passphrase, const KdfParams& p) {
  if (passphrase.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "empty passphrase");
  }
  if (p.salt.empty()) return make_error(ErrorCode::kInvalidArgument, "KDF salt is empty");
  SecretBytes key(kKeyBytes);
  if (p.kind == KdfKind::kArgon2id) {
    int rc = argon2id_hash_raw(p.argon2_time_cost, p.argon2_memory_kib, p.argon2_parallelism,
                               passphrase.data(), passphrase.size(), p.salt.data(), p.salt.size(),
                               key.data(), key.size());
    if (rc != ARGON2_OK) {
      return make_error(ErrorCode::kInvalidArgument,
                        std::string("Argon2id failed: ") + argon2_error_message(rc) +
                            " (check the KDF parameters in the key store)");
    }
    return key;
  }
  if (passphrase.size() > INT_MAX || p.pbkdf2_iterations == 0 || p.pbkdf2_iterations > INT_MAX) {
    return make_error(ErrorCode::kInvalidArgument, "invalid PBKDF2 parameters");
  }
  if (PKCS5_PBKDF2_HMAC(reinterpret_cast<const char*>(passphrase.data()),
                        static_cast<int>(passphrase.size()), p.salt.data(),
                        static_cast<int>(p.salt.size()), static_cast<int>(p.pbkdf2_iterations),
                        EVP_sha256(), static_cast<int>(key.size()), key.data()) != 1) {
    return make_error(ErrorCode::kInternal, "PBKDF2-HMAC-SHA-256 failed inside OpenSSL");
  }
  return key;
}

}  // namespace enclave::crypto
