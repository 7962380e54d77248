#include "store/store.h"

#include <sqlite3.h>

#include <algorithm>
#include <bit>
#include <chrono>

#include "core/background_thread.h"
#include "crypto/file_util.h"
#include "crypto/primitives.h"

namespace enclave::store {
namespace fs = std::filesystem;
namespace {

// Schema migrations, applied in order inside one transaction each; user_version records the
// last applied. Never edit a shipped migration: append a new one.
constexpr const char* kMigrations[] = {
    // 1: initial schema.
    R"sql(
    CREATE TABLE tenants (
      name TEXT PRIMARY KEY,
      history_enabled INTEGER NOT NULL DEFAULT 0,
      retention_days INTEGER NOT NULL DEFAULT 0,
      created_at_ms INTEGER NOT NULL
    );
    CREATE TABLE messages (
      id TEXT PRIMARY KEY,
      tenant TEXT NOT NULL,
      conversation_id TEXT NOT NULL,
      role TEXT NOT NULL,
      created_at_ms INTEGER NOT NULL,
      content_sealed BLOB NOT NULL
    );
    CREATE INDEX messages_by_conversation ON messages(tenant, conversation_id, created_at_ms);
    CREATE INDEX messages_by_time ON messages(tenant, created_at_ms);
    CREATE TABLE usage (
      id INTEGER PRIMARY KEY,
      tenant TEXT NOT NULL,
      api_key_name TEXT NOT NULL,
      request_id TEXT NOT NULL,
      backend TEXT NOT NULL,
      model TEXT NOT NULL,
      model_version TEXT NOT NULL,
      prompt_tokens INTEGER NOT NULL,
      completion_tokens INTEGER NOT NULL,
      latency_ms REAL NOT NULL,
      cost_micros INTEGER NOT NULL,
      created_at_ms INTEGER NOT NULL
    );
    CREATE INDEX usage_by_tenant ON usage(tenant, created_at_ms);
    CREATE TABLE api_keys (
      name TEXT PRIMARY KEY,
      tenant TEXT NOT NULL,
      key_id TEXT NOT NULL,
      key_hash TEXT NOT NULL UNIQUE,
      created_at_ms INTEGER NOT NULL,
      revoked INTEGER NOT NULL DEFAULT 0
    );
    )sql",
};
constexpr int kSchemaVersion = sizeof(kMigrations) / sizeof(kMigrations[0]);

Error db_error(sqlite3* db, const std::string& what) {
  return make_error(ErrorCode::kIo, "database: " + what + ": " + sqlite3_errmsg(db));
}

Status exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return make_error(ErrorCode::kIo, std::string("database: ") + msg);
  }
  return Status::ok();
}

// RAII prepared statement with positional binds.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &st_, nullptr) != SQLITE_OK) st_ = nullptr;
  }
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return st_ != nullptr; }
  Stmt& bind(int i, std::string_view v) {
    sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(st_, i, v);
    return *this;
  }
  Stmt& bind(int i, double v) {
    sqlite3_bind_double(st_, i, v);
    return *this;
  }
  Stmt& bind_blob(int i, const std::vector<uint8_t>& v) {
    sqlite3_bind_blob(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  // SQLITE_ROW -> true, SQLITE_DONE -> false, else error.
  Result<bool> step() {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return db_error(db_, "step failed");
  }
  Status run() {
    ENCLAVE_ASSIGN_OR_RETURN(bool row, step());
    (void)row;
    return Status::ok();
  }
  // For the next row of a batch: the statement runs again with new bindings.
  void reset() {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
  }
  std::string text(int col) {
    auto* p = sqlite3_column_text(st_, col);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(st_, col)))
             : std::string();
  }
  int64_t i64(int col) { return sqlite3_column_int64(st_, col); }
  double f64(int col) { return sqlite3_column_double(st_, col); }
  std::vector<uint8_t> blob(int col) {
    auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(st_, col));
    int n = sqlite3_column_bytes(st_, col);
    return p ? std::vector<uint8_t>(p, p + n) : std::vector<uint8_t>();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
};

#define STORE_PREPARE(var, sql) \
  Stmt var(db_, sql);           \
  if (!var.ok()) return db_error(db_, "cannot prepare statement")

// Binds a message ciphertext to its row, tenant, conversation and role.
std::string message_aad(std::string_view tenant, std::string_view id, std::string_view conv,
                        std::string_view role) {
  std::string aad = "enclave.messages.v1";
  for (std::string_view part : {tenant, id, conv, role}) {
    aad += '\0';
    aad += std::to_string(part.size());
    aad += ':';
    aad += part;
  }
  return aad;
}

// Simple transaction guard: rolls back unless committed.
class Txn {
 public:
  explicit Txn(sqlite3* db) : db_(db) { ok_ = static_cast<bool>(exec(db_, "BEGIN IMMEDIATE")); }
  ~Txn() {
    if (ok_ && !done_) (void)exec(db_, "ROLLBACK");
  }
  bool ok() const { return ok_; }
  Status commit() {
    done_ = true;
    return exec(db_, "COMMIT");
  }

 private:
  sqlite3* db_;
  bool ok_ = false;
  bool done_ = false;
};

}  // namespace

int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int Store::schema_version_supported() {
  return kSchemaVersion;
}

Store::Store(fs::path path, sqlite3* db, crypto::KeyStore& keys, Clock clock,
             crypto::ApiKeyHasher hasher)
    : path_(std::move(path)),
      db_(db),
      keys_(keys),
      clock_(std::move(clock)),
      hasher_(std::move(hasher)) {}

Store::~Store() {
  if (batch_thread_.joinable()) {
    {
      std::lock_guard lock(stop_mu_);
      stopping_ = true;
    }
    stop_cv_.notify_all();
    batch_thread_.join();
  }
  finalize_usage_statements();
  sqlite3_close_v2(db_);
}

void Store::batch_loop(uint32_t interval_ms) {
  // Nice 19, not SCHED_IDLE: the checkpoint bounds what a crash can lose (batch_interval_ms), so
  // it must keep running when every core is busy; at weight 15 it takes little from the io
  // threads, and each pass is short (one PASSIVE checkpoint).
  mark_low_priority_thread("db-checkpoint");
  // Skips the checkpoint when nothing changed, and after a second of that sleeps until a commit
  // wakes it (on_wal_commit): an idle server makes no wake-ups.
  IdlePasses idle(1000, interval_ms);
  uint64_t checkpointed_commits = 0;
  std::unique_lock lock(stop_mu_);
  while (!stopping_) {
    if (idle.sleep_due()) {
      checkpoint_asleep_ = true;
      stop_cv_.wait(lock, [this] { return stopping_ || checkpoint_wake_; });
      checkpoint_asleep_ = false;
      idle.record(false);
    } else {
      stop_cv_.wait_for(lock, std::chrono::milliseconds(interval_ms), [this] { return stopping_; });
    }
    checkpoint_wake_ = false;
    if (stopping_) break;
    lock.unlock();  // never hold stop_mu_ while taking mu_
    bool changed = false;
    {
      std::lock_guard db_lock(mu_);
      if (wal_commits_ != checkpointed_commits) {
        changed = true;
        checkpointed_commits = wal_commits_;
        // A passive checkpoint fsyncs the WAL (and then the database) without blocking readers.
        (void)exec(db_, "PRAGMA wal_checkpoint(PASSIVE)");
      }
    }
    idle.record(!changed);
    lock.lock();
  }
}

// SQLite's WAL hook: runs after each commit, in the committing thread, under mu_.
int Store::on_wal_commit(void* store, sqlite3*, const char*, int) {
  auto* self = static_cast<Store*>(store);
  ++self->wal_commits_;
  bool notify = false;
  {
    std::lock_guard lock(self->stop_mu_);
    if (self->checkpoint_asleep_ && !self->checkpoint_wake_) notify = self->checkpoint_wake_ = true;
  }
  if (notify) self->stop_cv_.notify_one();
  return SQLITE_OK;
}

Result<std::unique_ptr<Store>> Store::open(const StoreOptions& options, crypto::KeyStore& keys) {
  // Private from the start: SQLite would create the file 0644, and gives -wal/-shm the mode of the
  // database file.
  Status created = crypto::create_private_dirs(options.db_path.parent_path());
  if (created) created = crypto::create_private_file(options.db_path);
  if (!created) {
    return make_error(ErrorCode::kIo,
                      created.error().message + " (check the --data-dir path and permissions)");
  }
  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(options.db_path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    return make_error(ErrorCode::kIo, "cannot open database " + options.db_path.string() + ": " +
                                          msg + " (check the --data-dir path and permissions)");
  }
  const char* sync = options.sync == SyncPolicy::kAlways  ? "PRAGMA synchronous=FULL"
                     : options.sync == SyncPolicy::kBatch ? "PRAGMA synchronous=NORMAL"
                                                          : "PRAGMA synchronous=OFF";
  for (const char* pragma : {"PRAGMA busy_timeout=5000", "PRAGMA journal_mode=WAL",
                             "PRAGMA secure_delete=ON", "PRAGMA foreign_keys=ON", sync}) {
    Status st = exec(db, pragma);
    if (!st) {
      sqlite3_close_v2(db);
      return st.error();
    }
  }
  auto secret = keys.system_key(crypto::SystemKey::kApiKey);
  if (!secret) {
    sqlite3_close_v2(db);
    return secret.error();
  }
  Clock clock = options.now_ms ? options.now_ms : Clock(system_now_ms);
  std::unique_ptr<Store> store(new Store(options.db_path, db, keys, std::move(clock),
                                         crypto::ApiKeyHasher(std::move(secret).value())));
  ENCLAVE_TRY_STATUS(store->migrate());
  if (options.sync == SyncPolicy::kBatch) {
    uint32_t interval = options.batch_interval_ms ? options.batch_interval_ms : 1;
    Store* raw = store.get();
    // Replaces SQLite's automatic checkpoint (1000 pages, in the committing thread): in batch
    // mode the thread below checkpoints.
    sqlite3_wal_hook(raw->db_, &Store::on_wal_commit, raw);
    store->batch_thread_ = std::thread([raw, interval] { raw->batch_loop(interval); });
  }
  return store;
}

Result<int> Store::schema_version() {
  std::lock_guard lock(mu_);
  STORE_PREPARE(q, "PRAGMA user_version");
  ENCLAVE_ASSIGN_OR_RETURN(bool row, q.step());
  return row ? static_cast<int>(q.i64(0)) : 0;
}

Status Store::migrate() {
  int current = 0;
  {
    STORE_PREPARE(q, "PRAGMA user_version");
    ENCLAVE_ASSIGN_OR_RETURN(bool row, q.step());
    current = row ? static_cast<int>(q.i64(0)) : 0;
  }
  if (current > kSchemaVersion) {
    return make_error(ErrorCode::kUnsupported,
                      "database " + path_.string() + " has schema version " +
                          std::to_string(current) + ", newer than this binary supports (" +
                          std::to_string(kSchemaVersion) + "); upgrade enclave");
  }
  for (int v = current; v < kSchemaVersion; ++v) {
    Txn txn(db_);
    if (!txn.ok()) return db_error(db_, "cannot begin migration");
    ENCLAVE_TRY_STATUS(exec(db_, kMigrations[v]));
    ENCLAVE_TRY_STATUS(exec(db_, ("PRAGMA user_version=" + std::to_string(v + 1)).c_str()));
    ENCLAVE_TRY_STATUS(txn.commit());
  }
  return Status::ok();
}

void Store::set_event_sink(AdminEventSink sink) {
  std::lock_guard lock(mu_);
  sink_ = std::move(sink);
}

Status Store::emit(const AdminEvent& event) {
  if (!sink_) return Status::ok();
  return sink_(event);
}

Status Store::create_tenant(std::string_view name, TenantSettings settings) {
  ENCLAVE_TRY_STATUS(crypto::validate_tenant_name(name));
  std::lock_guard lock(mu_);
  {
    STORE_PREPARE(q, "SELECT 1 FROM tenants WHERE name=?");
    q.bind(1, name);
    ENCLAVE_ASSIGN_OR_RETURN(bool exists, q.step());
    if (exists) {
      return make_error(ErrorCode::kAlreadyExists, "tenant '" + std::string(name) + "' exists");
    }
  }
  // A leftover key (crash between key creation and insert) is reused.
  if (!keys_.has_tenant_key(name)) ENCLAVE_TRY_STATUS(keys_.create_tenant_key(name));
  STORE_PREPARE(ins,
                "INSERT INTO tenants(name, history_enabled, retention_days, created_at_ms) "
                "VALUES(?,?,?,?)");
  ins.bind(1, name)
      .bind(2, int64_t{settings.history_enabled})
      .bind(3, int64_t{settings.retention_days})
      .bind(4, now());
  ENCLAVE_TRY_STATUS(ins.run());
  return emit({"tenant_created",
               std::string(name),
               {{"history_enabled", settings.history_enabled ? "true" : "false"},
                {"retention_days", std::to_string(settings.retention_days)}}});
}

Result<std::vector<TenantInfo>> Store::list_tenants() {
  std::lock_guard lock(mu_);
  STORE_PREPARE(q,
                "SELECT name, history_enabled, retention_days, created_at_ms FROM tenants "
                "ORDER BY name");
  std::vector<TenantInfo> out;
  while (true) {
    ENCLAVE_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) break;
    TenantInfo t;
    t.name = q.text(0);
    t.settings.history_enabled = q.i64(1) != 0;
    t.settings.retention_days = static_cast<uint32_t>(q.i64(2));
    t.created_at_ms = q.i64(3);
    out.push_back(std::move(t));
  }
  return out;
}

Result<TenantInfo> Store::tenant(std::string_view name) {
  ENCLAVE_ASSIGN_OR_RETURN(auto all, list_tenants());
  for (auto& t : all) {
    if (t.name == name) return std::move(t);
  }
  return make_error(ErrorCode::kNotFound, "no tenant '" + std::string(name) +
                                              "'; create it with `enclave tenant create`");
}

Status Store::update_tenant(std::string_view name, TenantSettings settings) {
  std::lock_guard lock(mu_);
  STORE_PREPARE(q, "UPDATE tenants SET history_enabled=?, retention_days=? WHERE name=?");
  q.bind(1, int64_t{settings.history_enabled})
      .bind(2, int64_t{settings.retention_days})
      .bind(3, name);
  ENCLAVE_TRY_STATUS(q.run());
  if (sqlite3_changes(db_) == 0) {
    return make_error(ErrorCode::kNotFound, "no tenant '" + std::string(name) + "'");
  }
  return emit({"tenant_policy_changed",
               std::string(name),
               {{"history_enabled", settings.history_enabled ? "true" : "false"},
                {"retention_days", std::to_string(settings.retention_days)}}});
}

Result<EraseReport> Store::erase_tenant(std::string_view name, std::string_view actor) {
  ENCLAVE_TRY_STATUS(crypto::validate_tenant_name(name));
  std::lock_guard lock(mu_);
  EraseReport report;
  bool known = keys_.has_tenant_key(name);
  {
    STORE_PREPARE(q, "SELECT 1 FROM tenants WHERE name=?");
    q.bind(1, name);
    ENCLAVE_ASSIGN_OR_RETURN(bool row, q.step());
    known = known || row;
  }
  if (!known) {
    return make_error(ErrorCode::kNotFound, "no tenant '" + std::string(name) + "' to erase");
  }
  // 1. Shred the key first: from this instant every copy of the rows is unreadable.
  if (keys_.has_tenant_key(name)) {
    ENCLAVE_TRY_STATUS(keys_.destroy_tenant_key(name));
    report.key_destroyed = true;
  }
  // 2. Remove the rows (secure_delete zeroes the freed pages).
  Txn txn(db_);
  if (!txn.ok()) return db_error(db_, "cannot begin erase");
  struct Target {
    const char* sql;
    int64_t* count;
  };
  for (Target t : {Target{"DELETE FROM messages WHERE tenant=?", &report.messages_deleted},
                   Target{"DELETE FROM usage WHERE tenant=?", &report.usage_deleted},
                   Target{"DELETE FROM api_keys WHERE tenant=?", &report.api_keys_deleted},
                   Target{"DELETE FROM tenants WHERE name=?", nullptr}}) {
    STORE_PREPARE(q, t.sql);
    q.bind(1, name);
    ENCLAVE_TRY_STATUS(q.run());
    if (t.count) *t.count = sqlite3_changes(db_);
  }
  ENCLAVE_TRY_STATUS(txn.commit());
  ENCLAVE_TRY_STATUS(emit({"tenant_erased",
                           std::string(name),
                           {{"actor", std::string(actor)},
                            {"key_destroyed", report.key_destroyed ? "true" : "false"},
                            {"messages_deleted", std::to_string(report.messages_deleted)},
                            {"usage_deleted", std::to_string(report.usage_deleted)},
                            {"api_keys_deleted", std::to_string(report.api_keys_deleted)}}}));
  return report;
}

Result<std::string> Store::append_message(std::string_view tenant, std::string_view conversation_id,
                                          std::string_view role, std::string_view content,
                                          int64_t created_at_ms) {
  std::lock_guard lock(mu_);
  {
    STORE_PREPARE(q, "SELECT history_enabled FROM tenants WHERE name=?");
    q.bind(1, tenant);
    ENCLAVE_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) return make_error(ErrorCode::kNotFound, "no tenant '" + std::string(tenant) + "'");
    if (q.i64(0) == 0) {
      return make_error(ErrorCode::kPermissionDenied,
                        "conversation history is disabled for tenant '" + std::string(tenant) +
                            "' (opt in with `enclave tenant create --history` or update_tenant)");
    }
  }
  ENCLAVE_ASSIGN_OR_RETURN(std::vector<uint8_t> raw_id, crypto::random_bytes(16));
  std::string id = crypto::hex_encode(raw_id);
  ENCLAVE_ASSIGN_OR_RETURN(crypto::SecretBytes key, keys_.tenant_key(tenant));
  std::string aad = message_aad(tenant, id, conversation_id, role);
  ENCLAVE_ASSIGN_OR_RETURN(
      std::vector<uint8_t> sealed,
      crypto::aead_seal(key, crypto::as_bytes(content), crypto::as_bytes(aad)));
  STORE_PREPARE(ins,
                "INSERT INTO messages(id, tenant, conversation_id, role, created_at_ms, "
                "content_sealed) VALUES(?,?,?,?,?,?)");
  ins.bind(1, id)
      .bind(2, tenant)
      .bind(3, conversation_id)
      .bind(4, role)
      .bind(5, created_at_ms ? created_at_ms : now())
      .bind_blob(6, sealed);
  ENCLAVE_TRY_STATUS(ins.run());
  return id;
}

Result<std::vector<Message>> Store::conversation(std::string_view tenant,
                                                 std::string_view conversation_id) {
  std::lock_guard lock(mu_);
  auto key = keys_.tenant_key(tenant);
  if (!key) {
    return make_error(ErrorCode::kNotFound,
                      "no data key for tenant '" + std::string(tenant) +
                          "' (never created, or erased): its messages cannot be decrypted");
  }
  STORE_PREPARE(q,
                "SELECT id, role, created_at_ms, content_sealed FROM messages "
                "WHERE tenant=? AND conversation_id=? ORDER BY created_at_ms, rowid");
  q.bind(1, tenant).bind(2, conversation_id);
  std::vector<Message> out;
  while (true) {
    ENCLAVE_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) break;
    Message m;
    m.id = q.text(0);
    m.role = q.text(1);
    m.created_at_ms = q.i64(2);
    m.conversation_id = std::string(conversation_id);
    std::string aad = message_aad(tenant, m.id, conversation_id, m.role);
    auto plain = crypto::aead_open(*key, q.blob(3), crypto::as_bytes(aad));
    if (!plain) {
      return make_error(ErrorCode::kCorruptData,
                        "message " + m.id + " of tenant '" + std::string(tenant) +
                            "' failed authentication (tampered, or moved from another row)");
    }
    m.content.assign(plain->view());
    out.push_back(std::move(m));
  }
  return out;
}

namespace {
constexpr const char* kInsertUsage =
    "INSERT INTO usage(tenant, api_key_name, request_id, backend, model, model_version, "
    "prompt_tokens, completion_tokens, latency_ms, cost_micros, created_at_ms) "
    "VALUES(?,?,?,?,?,?,?,?,?,?,?)";

void bind_usage(Stmt& q, const UsageRecord& r, int64_t now_ms) {
  q.bind(1, r.tenant)
      .bind(2, r.api_key_name)
      .bind(3, r.request_id)
      .bind(4, r.backend)
      .bind(5, r.model)
      .bind(6, r.model_version)
      .bind(7, int64_t{r.prompt_tokens})
      .bind(8, int64_t{r.completion_tokens})
      .bind(9, r.latency_ms)
      .bind(10, r.cost_micros)
      .bind(11, r.created_at_ms ? r.created_at_ms : now_ms);
}

// SQLITE_STATIC: the row outlives its step, and the bindings are cleared before the batch's
// rows go away, so SQLite need not copy every string.
constexpr int kUsageColumns = 11;

// Binds `r` as the row starting at parameter `first` (1-based) without copying its strings.
void bind_usage_static(sqlite3_stmt* q, int first, const UsageRecord& r, int64_t now_ms) {
  int i = first;
  for (const std::string* text :
       {&r.tenant, &r.api_key_name, &r.request_id, &r.backend, &r.model, &r.model_version}) {
    sqlite3_bind_text(q, i++, text->data(), static_cast<int>(text->size()), SQLITE_STATIC);
  }
  sqlite3_bind_int64(q, first + 6, r.prompt_tokens);
  sqlite3_bind_int64(q, first + 7, r.completion_tokens);
  sqlite3_bind_double(q, first + 8, r.latency_ms);
  sqlite3_bind_int64(q, first + 9, r.cost_micros);
  sqlite3_bind_int64(q, first + 10, r.created_at_ms ? r.created_at_ms : now_ms);
}

// kInsertUsage with `rows` rows of parameters.
std::string insert_usage_rows_sql(size_t rows) {
  std::string sql = kInsertUsage;
  for (size_t i = 1; i < rows; ++i) sql += ",(?,?,?,?,?,?,?,?,?,?,?)";
  return sql;
}

// Runs a statement that returns no row and resets it for the next use.
bool step_done(sqlite3_stmt* q) {
  int rc = sqlite3_step(q);
  sqlite3_reset(q);
  return rc == SQLITE_DONE;
}
}  // namespace

Status Store::prepare_usage_statements() {
  if (usage_begin_ != nullptr) return Status::ok();
  const std::pair<sqlite3_stmt**, const char*> wanted[] = {{&usage_begin_, "BEGIN IMMEDIATE"},
                                                           {&usage_commit_, "COMMIT"}};
  for (auto [slot, sql] : wanted) {
    if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, nullptr) != SQLITE_OK) {
      Error e = db_error(db_, "cannot prepare the usage transaction");
      finalize_usage_statements();
      return e;
    }
  }
  return Status::ok();
}

Result<sqlite3_stmt*> Store::usage_insert(size_t size_log2) {
  sqlite3_stmt*& slot = usage_inserts_[size_log2];
  if (slot != nullptr) return slot;
  std::string sql = insert_usage_rows_sql(size_t{1} << size_log2);
  if (sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                         &slot, nullptr) != SQLITE_OK) {
    slot = nullptr;
    return db_error(db_, "cannot prepare the usage insert");
  }
  return slot;
}

void Store::finalize_usage_statements() {
  for (sqlite3_stmt** slot : {&usage_begin_, &usage_commit_}) {
    sqlite3_finalize(*slot);
    *slot = nullptr;
  }
  for (sqlite3_stmt*& insert : usage_inserts_) {
    sqlite3_finalize(insert);
    insert = nullptr;
  }
}

Status Store::record_usage(const UsageRecord& r) {
  std::lock_guard lock(mu_);
  STORE_PREPARE(q, kInsertUsage);
  bind_usage(q, r, now());
  return q.run();
}

Status Store::record_usage_batch(std::span<const UsageRecord> records) {
  if (records.empty()) return Status::ok();
  std::lock_guard lock(mu_);
  ENCLAVE_TRY_STATUS(prepare_usage_statements());
  if (!step_done(usage_begin_)) return db_error(db_, "cannot begin the usage transaction");
  int64_t now_ms = now();
  bool stored = true;
  // Largest statements first: a batch of n rows takes popcount-many steps (the tail of a batch
  // larger than the largest statement repeats it).
  constexpr size_t kLargest = kUsageInsertSizes - 1;
  size_t at = 0;
  while (stored && at < records.size()) {
    size_t left = records.size() - at;
    size_t size_log2 = std::min<size_t>(kLargest, std::bit_width(left) - 1);
    size_t rows = size_t{1} << size_log2;
    Result<sqlite3_stmt*> insert = usage_insert(size_log2);
    if (!insert) {
      if (sqlite3_get_autocommit(db_) == 0) (void)exec(db_, "ROLLBACK");
      return insert.error();
    }
    for (size_t i = 0; i < rows; ++i) {
      bind_usage_static(*insert, static_cast<int>(i) * kUsageColumns + 1, records[at + i], now_ms);
    }
    stored = step_done(*insert);
    sqlite3_clear_bindings(*insert);  // drop the pointers into `records`
    at += rows;
  }
  if (stored && step_done(usage_commit_)) return Status::ok();
  Error e = db_error(db_, stored ? "cannot commit the usage rows" : "cannot insert a usage row");
  if (sqlite3_get_autocommit(db_) == 0) (void)exec(db_, "ROLLBACK");
  // Prepared again on the next batch: a failure may come from a schema the statement no longer
  // matches.
  finalize_usage_statements();
  return e;
}

Result<std::vector<UsageRecord>> Store::usage(std::string_view tenant, int64_t since_ms) {
  std::lock_guard lock(mu_);
  STORE_PREPARE(q,
                "SELECT tenant, api_key_name, request_id, backend, model, model_version, "
                "prompt_tokens, completion_tokens, latency_ms, cost_micros, created_at_ms "
                "FROM usage WHERE tenant=? AND created_at_ms>=? ORDER BY id");
  q.bind(1, tenant).bind(2, since_ms);
  std::vector<UsageRecord> out;
  while (true) {
    ENCLAVE_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) break;
    UsageRecord r;
    r.tenant = q.text(0);
    r.api_key_name = q.text(1);
    r.request_id = q.text(2);
    r.backend = q.text(3);
    r.model = q.text(4);
    r.model_version = q.text(5);
    r.prompt_tokens = static_cast<uint32_t>(q.i64(6));
    r.completion_tokens = static_cast<uint32_t>(q.i64(7));
    r.latency_ms = q.f64(8);
    r.cost_micros = q.i64(9);
    r.created_at_ms = q.i64(10);
    out.push_back(std::move(r));
  }
  return out;
}

Result<CreatedApiKey> Store::create_api_key(std::string_view name, std::string_view tenant) {
  if (name.empty() || name.size() > 128) {
    return make_error(ErrorCode::kInvalidArgument, "API key name must be 1-128 characters");
  }
  std::lock_guard lock(mu_);
  {
    STORE_PREPARE(q, "SELECT 1 FROM tenants WHERE name=?");
    q.bind(1, tenant);
    ENCLAVE_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) return make_error(ErrorCode::kNotFound, "no tenant '" + std::string(tenant) + "'");
  }
  CreatedApiKey out;
  ENCLAVE_ASSIGN_OR_RETURN(out.key, crypto::generate_api_key());
  ENCLAVE_ASSIGN_OR_RETURN(std::string hash, hasher_.hash(out.key.view()));
  out.info.name = std::string(name);
  out.info.tenant = std::string(tenant);
  out.info.key_id = std::string(out.key.view().substr(crypto::kApiKeyPrefix.size(), 8));
  out.info.created_at_ms = now();
  STORE_PREPARE(ins,
                "INSERT INTO api_keys(name, tenant, key_id, key_hash, created_at_ms) "
                "VALUES(?,?,?,?,?)");
  ins.bind(1, name)
      .bind(2, tenant)
      .bind(3, out.info.key_id)
      .bind(4, hash)
      .bind(5, out.info.created_at_ms);
  auto st = ins.run();
  if (!st) {
    return make_error(ErrorCode::kAlreadyExists,
                      "cannot create API key '" + std::string(name) + "': name already in use");
  }
  ENCLAVE_TRY_STATUS(emit({"api_key_created",
                           std::string(tenant),
                           {{"key_name", std::string(name)}, {"key_id", out.info.key_id}}}));
  return out;
}

Result<ApiKeyInfo> Store::authenticate_api_key(std::string_view presented_key) {
  ENCLAVE_ASSIGN_OR_RETURN(std::string hash, hasher_.hash(presented_key));
  std::lock_guard lock(mu_);
  STORE_PREPARE(q,
                "SELECT name, tenant, key_id, key_hash, created_at_ms, revoked FROM api_keys "
                "WHERE key_hash=?");
  q.bind(1, hash);
  ENCLAVE_ASSIGN_OR_RETURN(bool row, q.step());
  // The lookup is by HMAC (no timing signal about the key itself); the final comparison is
  // constant-time anyway.
  if (!row || !crypto::constant_time_equal(crypto::as_bytes(q.text(3)), crypto::as_bytes(hash)) ||
      q.i64(5) != 0) {
    return make_error(ErrorCode::kUnauthenticated, "invalid or revoked API key");
  }
  ApiKeyInfo info;
  info.name = q.text(0);
  info.tenant = q.text(1);
  info.key_id = q.text(2);
  info.created_at_ms = q.i64(4);
  return info;
}

Status Store::revoke_api_key(std::string_view name) {
  std::lock_guard lock(mu_);
  std::string tenant;
  {
    STORE_PREPARE(q, "SELECT tenant FROM api_keys WHERE name=?");
    q.bind(1, name);
    ENCLAVE_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) return make_error(ErrorCode::kNotFound, "no API key '" + std::string(name) + "'");
    tenant = q.text(0);
  }
  STORE_PREPARE(q, "UPDATE api_keys SET revoked=1 WHERE name=?");
  q.bind(1, name);
  ENCLAVE_TRY_STATUS(q.run());
  return emit({"api_key_revoked", tenant, {{"key_name", std::string(name)}}});
}

Result<std::vector<ApiKeyInfo>> Store::list_api_keys() {
  std::lock_guard lock(mu_);
  STORE_PREPARE(q,
                "SELECT name, tenant, key_id, created_at_ms, revoked FROM api_keys ORDER BY name");
  std::vector<ApiKeyInfo> out;
  while (true) {
    ENCLAVE_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) break;
    ApiKeyInfo i;
    i.name = q.text(0);
    i.tenant = q.text(1);
    i.key_id = q.text(2);
    i.created_at_ms = q.i64(3);
    i.revoked = q.i64(4) != 0;
    out.push_back(std::move(i));
  }
  return out;
}

Result<RetentionReport> Store::apply_retention(int64_t now_ms) {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, int64_t>> rules;
  {
    STORE_PREPARE(q, "SELECT name, retention_days FROM tenants WHERE retention_days>0");
    while (true) {
      ENCLAVE_ASSIGN_OR_RETURN(bool row, q.step());
      if (!row) break;
      rules.emplace_back(q.text(0), q.i64(1));
    }
  }
  RetentionReport report;
  constexpr int64_t kDayMs = 24LL * 3600 * 1000;
  for (const auto& [tenant, days] : rules) {
    int64_t cutoff = now_ms - days * kDayMs;
    STORE_PREPARE(del, "DELETE FROM messages WHERE tenant=? AND created_at_ms<?");
    del.bind(1, tenant).bind(2, cutoff);
    ENCLAVE_TRY_STATUS(del.run());
    int64_t n = sqlite3_changes(db_);
    if (n == 0) continue;
    report.deleted_per_tenant.emplace_back(tenant, n);
    report.total_deleted += n;
    ENCLAVE_TRY_STATUS(emit(
        {"retention_applied",
         tenant,
         {{"retention_days", std::to_string(days)}, {"messages_deleted", std::to_string(n)}}}));
  }
  return report;
}

Status Store::checkpoint() {
  std::lock_guard lock(mu_);
  return exec(db_, "PRAGMA wal_checkpoint(TRUNCATE)");
}

}  // namespace enclave::store
