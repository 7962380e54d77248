// KeyStore: the master key and the keys it wraps (per-tenant data keys, the audit HMAC key, the
// API-key hashing secret). Lives in its own directory (default <data-dir>/keys/), never inside
// the SQLite database, so destroying a tenant's wrapped key makes that tenant's rows unreadable
// in every copy or backup of the database.
//
// Layout:  keys/master.meta            KDF parameters + key-check value (no secrets)
//          keys/tenants/<name>.key     data key wrapped with AES-256-GCM under the master key
//          keys/system/<name>.key      audit / api-key secrets, wrapped the same way
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "crypto/kdf.h"
#include "crypto/secret.h"

namespace enclave::crypto {

// Environment variables the CLI and server read (never argv: argv is visible in `ps`).
inline constexpr const char* kEnvPassphrase = "ENCLAVE_PASSPHRASE";
inline constexpr const char* kEnvMasterKey = "ENCLAVE_MASTER_KEY";           // 64 hex chars
inline constexpr const char* kEnvMasterKeyFile = "ENCLAVE_MASTER_KEY_FILE";  // file with hex

// Where the master key comes from: a passphrase (stretched with the KDF recorded in the store)
// or a raw 256-bit key (hex, from a key file or environment variable).
struct MasterKeySource {
  enum class Kind { kPassphrase, kRawKey };
  Kind kind = Kind::kPassphrase;
  SecretBytes secret;

  static MasterKeySource passphrase(SecretBytes passphrase);
  static Result<MasterKeySource> raw_key_hex(std::string_view hex);
  static Result<MasterKeySource> from_key_file(const std::filesystem::path& path);
  // ENCLAVE_MASTER_KEY, then ENCLAVE_MASTER_KEY_FILE, then ENCLAVE_PASSPHRASE; kNotFound if none.
  static Result<MasterKeySource> from_environment();
  // Zero-configuration fallback for a first start without an operator-supplied key: reads the
  // raw key in `path` when the file exists, else writes a fresh random 256-bit key there (hex,
  // mode 0600, parent directories 0700) and sets *created. The key then sits next to the data it
  // protects, so production deployments should use a passphrase or an external key instead.
  static Result<MasterKeySource> load_or_create_key_file(const std::filesystem::path& path,
                                                         bool* created = nullptr);
};

enum class SystemKey { kAudit, kApiKey };

struct KeyStoreOptions {
  // Accept KDF parameters below the minimums (unit tests only).
  bool allow_weak_kdf = false;
};

// Tenant names double as file names: [a-z0-9_-], 1..64 chars, starting with a letter or digit.
Status validate_tenant_name(std::string_view name);

class KeyStore {
 public:
  // Creates a new key store in `dir` (kAlreadyExists if one is there). `kdf` is required for a
  // passphrase source and ignored for a raw key. Generates the audit and API-key secrets.
  static Result<std::unique_ptr<KeyStore>> create(const std::filesystem::path& dir,
                                                  const MasterKeySource& source,
                                                  const KdfParams* kdf,
                                                  KeyStoreOptions options = {});
  // Opens an existing key store. A wrong passphrase or key fails with kUnauthenticated before
  // anything is unwrapped. Completes or rolls back an interrupted master-key rotation.
  static Result<std::unique_ptr<KeyStore>> open(const std::filesystem::path& dir,
                                                const MasterKeySource& source,
                                                KeyStoreOptions options = {});
  static bool exists(const std::filesystem::path& dir);

  // Per-tenant data keys.
  Status create_tenant_key(std::string_view tenant);
  Result<SecretBytes> tenant_key(std::string_view tenant) const;
  bool has_tenant_key(std::string_view tenant) const;
  Result<std::vector<std::string>> list_tenant_keys() const;
  // Crypto-shredding: overwrites and removes the wrapped key. Irreversible.
  Status destroy_tenant_key(std::string_view tenant);

  Result<SecretBytes> system_key(SystemKey which) const;

  // Re-wraps every key under a new master key (data is not re-encrypted). Crash-safe: the new
  // master.meta is the commit point; open() rolls an interrupted rotation forward or back.
  Status rotate_master(const MasterKeySource& new_source, const KdfParams* new_kdf);

  // Non-secret identifier of the current master key (for logs and key-file cross-checks).
  std::string master_fingerprint() const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  KeyStore(std::filesystem::path dir, SecretBytes master, std::string fingerprint);
  Status write_wrapped(const std::filesystem::path& path, const std::string& name,
                       const SecretBytes& key, const SecretBytes& master,
                       const std::string& fingerprint) const;
  Result<SecretBytes> read_wrapped(const std::filesystem::path& path,
                                   const std::string& name) const;
  std::filesystem::path tenant_path(std::string_view tenant) const;

  std::filesystem::path dir_;
  SecretBytes master_;
  std::string fingerprint_;
  mutable std::mutex mu_;
};

}  // namespace enclave::crypto
