// Store: the SQLite database (one file in the data directory, WAL mode, versioned migrations)
// for conversation history (opt-in per tenant), usage records and hashed API keys.
//
// Message contents are sealed with AES-256-GCM under the tenant's data key from the KeyStore;
// the AAD binds each ciphertext to its table, row id, tenant, conversation and role, so a
// ciphertext copied into another row does not open. Wrapped data keys live in the KeyStore
// directory, not in the database: erase_tenant() shreds the key first, which makes the tenant's
// rows unreadable in every copy of the database, then deletes the rows.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/result.h"
#include "crypto/api_key.h"
#include "crypto/keystore.h"
#include "crypto/secret.h"

struct sqlite3;
struct sqlite3_stmt;

namespace enclave::store {

// Durability of each committed write (usage, messages, keys). Maps to SQLite's synchronous
// setting in WAL mode: kAlways = FULL (fsync on every commit); kBatch = NORMAL plus a background
// WAL checkpoint (which fsyncs) every batch_interval_ms, so at most that window of commits can be
// lost in a power failure, never corrupted; kNever = OFF (left to the OS).
enum class SyncPolicy { kAlways, kBatch, kNever };

using Clock = std::function<int64_t()>;  // unix time in milliseconds
int64_t system_now_ms();

struct StoreOptions {
  std::filesystem::path db_path;  // e.g. <data-dir>/enclave.db
  SyncPolicy sync = SyncPolicy::kAlways;
  uint32_t batch_interval_ms = 50;  // kBatch only
  Clock now_ms;                     // defaults to the system clock
};

struct TenantSettings {
  bool history_enabled = false;  // conversation history is opt-in
  uint32_t retention_days = 0;   // 0 = keep until erased
};

struct TenantInfo {
  std::string name{};
  TenantSettings settings;
  int64_t created_at_ms = 0;
};

struct Message {
  std::string id{};
  std::string conversation_id{};
  std::string role{};
  std::string content{};  // plaintext, only in memory
  int64_t created_at_ms = 0;
};

struct UsageRecord {
  std::string tenant{};
  std::string api_key_name{};
  std::string request_id{};
  std::string backend{};  // "local", "remote:<name>"
  std::string model{};
  std::string model_version{};
  uint32_t prompt_tokens = 0;
  uint32_t completion_tokens = 0;
  double latency_ms = 0;
  int64_t cost_micros = 0;    // cost in millionths of the billing currency unit
  int64_t created_at_ms = 0;  // 0 = now
};

struct ApiKeyInfo {
  std::string name{};
  std::string tenant{};
  std::string key_id{};  // first 8 characters after the prefix, for display only
  int64_t created_at_ms = 0;
  bool revoked = false;
};

struct CreatedApiKey {
  ApiKeyInfo info;
  crypto::SecretBytes key;  // shown once; only its HMAC is stored
};

// Admin actions reported to the audit log (wire to audit::AuditLog::append_admin).
struct AdminEvent {
  std::string action{};  // "tenant_created", "tenant_erased", "api_key_created", ...
  std::string tenant{};
  std::vector<std::pair<std::string, std::string>> fields{};  // never secrets or content
};
using AdminEventSink = std::function<Status(const AdminEvent&)>;

struct EraseReport {
  int64_t messages_deleted = 0;
  int64_t usage_deleted = 0;
  int64_t api_keys_deleted = 0;
  bool key_destroyed = false;
};

struct RetentionReport {
  std::vector<std::pair<std::string, int64_t>> deleted_per_tenant{};  // only tenants with deletions
  int64_t total_deleted = 0;
};

class Store {
 public:
  // Opens (creating if needed) the database and applies pending schema migrations. `keys` must
  // outlive the store.
  static Result<std::unique_ptr<Store>> open(const StoreOptions& options, crypto::KeyStore& keys);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  static int schema_version_supported();
  Result<int> schema_version();

  // Admin events (tenant created/erased, keys created/revoked, retention) go here.
  void set_event_sink(AdminEventSink sink);

  // Tenants. create_tenant() also creates the tenant's data key.
  Status create_tenant(std::string_view name, TenantSettings settings = {});
  Result<std::vector<TenantInfo>> list_tenants();
  Result<TenantInfo> tenant(std::string_view name);
  Status update_tenant(std::string_view name, TenantSettings settings);
  // Crypto-shreds the tenant's key, then deletes its rows (messages, usage, API keys, tenant).
  // Idempotent: re-running after a crash midway finishes the job.
  Result<EraseReport> erase_tenant(std::string_view name, std::string_view actor = "system");

  // Conversation history. kPermissionDenied when the tenant has not opted in.
  Result<std::string> append_message(std::string_view tenant, std::string_view conversation_id,
                                     std::string_view role, std::string_view content,
                                     int64_t created_at_ms = 0);
  Result<std::vector<Message>> conversation(std::string_view tenant,
                                            std::string_view conversation_id);

  // Usage. record_usage_batch writes all rows in one transaction (one commit, one fsync under
  // SyncPolicy::kAlways): all or none. UsageWriter feeds it from the request path.
  Status record_usage(const UsageRecord& record);
  Status record_usage_batch(std::span<const UsageRecord> records);
  Result<std::vector<UsageRecord>> usage(std::string_view tenant, int64_t since_ms = 0);

  // API keys.
  Result<CreatedApiKey> create_api_key(std::string_view name, std::string_view tenant);
  // kUnauthenticated for unknown or revoked keys (same message for both).
  Result<ApiKeyInfo> authenticate_api_key(std::string_view presented_key);
  Status revoke_api_key(std::string_view name);
  Result<std::vector<ApiKeyInfo>> list_api_keys();

  // Retention: deletes each tenant's messages older than its retention_days as of `now_ms`.
  Result<RetentionReport> apply_retention(int64_t now_ms);

  // Forces a WAL checkpoint (tests, backups).
  Status checkpoint();
  const std::filesystem::path& path() const { return path_; }

 private:
  Store(std::filesystem::path path, sqlite3* db, crypto::KeyStore& keys, Clock clock,
        crypto::ApiKeyHasher hasher);
  Status migrate();
  void batch_loop(uint32_t interval_ms);
  Status emit(const AdminEvent& event);
  int64_t now() const { return clock_(); }
  // The usage batch's statements, prepared on first use and kept for the store's life (a
  // prepare costs more than the rows of a typical batch). Holds mu_.
  Status prepare_usage_statements();
  // The INSERT of 2^`size_log2` rows in one statement, prepared on first use. Holds mu_.
  Result<sqlite3_stmt*> usage_insert(size_t size_log2);
  void finalize_usage_statements();

  std::filesystem::path path_;
  sqlite3* db_;
  crypto::KeyStore& keys_;
  Clock clock_;
  crypto::ApiKeyHasher hasher_;
  AdminEventSink sink_;
  std::mutex mu_;
  sqlite3_stmt* usage_begin_ = nullptr;  // BEGIN IMMEDIATE
  // INSERT INTO usage ... VALUES(...) with 1, 2, 4, ... 2^(kUsageInsertSizes-1) rows: a batch is
  // stored in as few statements as its size has bits (one step costs about as much as a row).
  static constexpr size_t kUsageInsertSizes = 6;
  sqlite3_stmt* usage_inserts_[kUsageInsertSizes] = {};
  sqlite3_stmt* usage_commit_ = nullptr;  // COMMIT
  std::thread batch_thread_;
  std::mutex stop_mu_;  // lock order: mu_ then stop_mu_ (the WAL hook runs under mu_)
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  bool checkpoint_asleep_ = false;  // idle: the checkpoint thread waits for a commit
  bool checkpoint_wake_ = false;
  uint64_t wal_commits_ = 0;  // commits into the WAL (on_wal_commit); guarded by mu_
  static int on_wal_commit(void* store, sqlite3* db, const char* name, int pages);
};

}  // namespace enclave::store
