// API keys: "sk-enclave-" + base64url(32 random bytes). The server keeps only HMAC-SHA-256 digests
// of keys under a per-installation server secret (data_dir/server.secret, 0600) and compares them
// in constant time. Each key has a name and scopes (chat, embeddings, admin; admin implies all).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "server/filter.h"

namespace enclave::server {

// Parses "chat", "embeddings", "admin" (or "*" for all).
Result<unsigned> parse_scopes(const std::vector<std::string>& names);
std::string scope_names(unsigned scopes);

// Fresh random key (OpenSSL RAND_bytes).
Result<std::string> generate_api_key();

struct KeyInfo {
  std::string name;
  unsigned scopes = 0;
};

class KeyStore {
 public:
  // Loads or creates data_dir/server.secret (32 random bytes, mode 0600).
  static Result<KeyStore> open(const std::string& data_dir);
  // For tests: an explicit secret.
  static KeyStore with_secret(std::string secret);

  // Adds a key held in memory only (config keys, ENCLAVE_API_KEY).
  Status add_key(std::string_view name, std::string_view key, unsigned scopes);
  // Loads digests from a key file written by save() (missing file: no keys, ok).
  Status load_file(const std::string& path);
  // Writes every key that was added with persist=true to `path` (0600): names, scopes, digests.
  Status save_file(const std::string& path) const;
  // Adds a key and marks it for save_file().
  Status add_persistent_key(std::string_view name, std::string_view key, unsigned scopes);

  size_t size() const { return entries_.size(); }
  // kUnauthenticated when no key matches; runs over all entries in constant time per entry.
  Result<KeyInfo> authenticate(std::string_view key) const;

 private:
  struct Entry {
    std::string name;
    unsigned scopes = 0;
    std::array<unsigned char, 32> digest{};
    bool persist = false;
  };
  // HMAC-SHA-256 keyed once with the secret (auth.cc): every request hashes the presented key.
  class KeyedHmac;
  void set_secret(std::string secret);
  std::array<unsigned char, 32> digest(std::string_view key) const;
  std::string secret_;
  std::shared_ptr<const KeyedHmac> hmac_;  // immutable, shared by copies of the store
  std::vector<Entry> entries_;
};

// The first filter: Authorization: Bearer <key>; 401 when missing/invalid, 403 when the key lacks
// the route's scope. Public routes (Scope::kNone) pass.
class AuthFilter : public Filter {
 public:
  explicit AuthFilter(std::shared_ptr<const KeyStore> keys) : keys_(std::move(keys)) {}
  std::string name() const override { return "auth"; }
  FilterResult apply(RequestContext& ctx) override;

 private:
  std::shared_ptr<const KeyStore> keys_;
};

}  // namespace enclave::server
