// Passphrase -> master key derivation: Argon2id (default) or PBKDF2-HMAC-SHA-256 (FIPS option).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"
#include "crypto/secret.h"

namespace enclave::crypto {

enum class KdfKind { kArgon2id, kPbkdf2Sha256 };

const char* kdf_name(KdfKind kind);
Result<KdfKind> parse_kdf_name(std::string_view name);  // "argon2id" | "pbkdf2"

// Minimums enforced when a key store is opened (unless a test opts out explicitly).
inline constexpr uint32_t kMinPbkdf2Iterations = 600'000;  // OWASP 2023 for PBKDF2-HMAC-SHA256
inline constexpr uint32_t kMinArgon2TimeCost = 2;
inline constexpr uint32_t kMinArgon2MemoryKib = 19 * 1024;  // OWASP minimum: 19 MiB, t=2, p=1
inline constexpr size_t kMinSaltBytes = 16;

// Everything needed to re-derive the key; stored (not secret) next to the wrapped keys.
struct KdfParams {
  KdfKind kind = KdfKind::kArgon2id;
  std::vector<uint8_t> salt;               // random, >= 16 bytes
  uint32_t argon2_time_cost = 3;           // RFC 9106 second recommended option: t=3,
  uint32_t argon2_memory_kib = 64 * 1024;  // m=64 MiB,
  uint32_t argon2_parallelism = 4;         // p=4
  uint32_t pbkdf2_iterations = kMinPbkdf2Iterations;

  // Production defaults with a fresh random 16-byte salt.
  static Result<KdfParams> defaults(KdfKind kind);
  // Deliberately cheap parameters for unit tests only; a key store refuses them unless opened
  // with allow_weak_kdf.
  static Result<KdfParams> weak_for_tests(KdfKind kind);
};

// OK when the parameters meet the minimums above.
Status check_kdf_strength(const KdfParams& params);

// Derives a 32-byte key. The passphrase is not copied.
Result<SecretBytes> derive_key(const SecretBytes& passphrase, const KdfParams& params);

}  // namespace enclave::crypto
